"""The network front of the emulated ElastiCache Serverless caches, as a cache behaves
inside a VPC: each cache's endpoint and reader endpoint are TLS listeners on
127.0.0.1 (certificate from the emulator's own CA) that pipe to the cache's plain
cluster-mode Valkey, and that enforce security groups.

Security groups: the caller of each connection is identified through /proc (its
socket's inode among the file descriptors of the running function instances and
their children). A function instance gets through only if its subnets are in the
cache's VPC, one of its groups lets it out to the cache on the cache's logical port
(6379 endpoint, 6380 reader, whatever local port the front really has) and one of the
cache's groups lets it in. Otherwise the connection is black-holed, as in a VPC: never
answered (no TLS handshake) until the client gives up, and a line on stderr says
which rule is missing. Rules are read from moto's EC2 backend on every connection, so
changes apply at once. A caller that is not a function instance (a developer's or a
test's client) is let through: this machine is inside the VPC, like a bastion.

TLS files live in `$DEPLOY_EMULATOR_RUN_DIR/tls` (a temporary directory without it):
`ca.pem` (the emulator's CA), `ca-bundle.pem` (the system CAs plus that CA; its path is
exported as DEPLOY_EMULATOR_CA_BUNDLE, which function processes get as SSL_CERT_FILE),
`server.pem` and `server.key` (for 127.0.0.1 and localhost)."""

import atexit
import datetime
import ipaddress
import os
import selectors
import shutil
import socket
import ssl
import sys
import tempfile
import threading

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from moto.ec2.models import ec2_backends

from . import lambda_runtime

ENDPOINT_PORT = 6379  # the ports real ElastiCache Serverless listens on, which rules name
READER_PORT = 6380
ENDPOINT_NAMES = {ENDPOINT_PORT: "endpoint", READER_PORT: "reader endpoint"}
HANDSHAKE_SECONDS = 10
CHUNK = 65536

_context = None  # the server-side ssl.SSLContext
_tls_dir = None
_own_dir = False


def _certificate(subject, issuer, public_key, signing_key, extensions, days):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(public_key)
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(hours=1))
               .not_valid_after(now + datetime.timedelta(days=days)))
    for extension, critical in extensions:
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(signing_key, hashes.SHA256())


def _write(path, data, mode=0o644):
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode), "wb") as f:
        f.write(data)


def _make_tls(directory):
    """Creates the CA, the server certificate and the bundle; returns the bundle's path.
    What rustls/webpki insist on: the CA is a CA allowed to sign certificates, the leaf
    is not a CA, names 127.0.0.1 and localhost as SANs and is for server auth."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = "deploy emulator CA"
    ca = _certificate(ca_name, ca_name, ca_key.public_key(), ca_key, [
        (x509.BasicConstraints(ca=True, path_length=0), True),
        (x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                       encipher_only=False, decipher_only=False), True),
        (x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False),
    ], days=3650)
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = _certificate("localhost", ca_name, key.public_key(), ca_key, [
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                       data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                       encipher_only=False, decipher_only=False), True),
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
        (x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False),
        (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
        (x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False),
    ], days=825)
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    _write(f"{directory}/ca.pem", ca_pem)
    _write(f"{directory}/server.pem", leaf.public_bytes(serialization.Encoding.PEM))
    _write(f"{directory}/server.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                        serialization.NoEncryption()), 0o600)
    system = "/etc/ssl/certs/ca-certificates.crt"
    if not os.path.exists(system):
        import certifi
        system = certifi.where()
    with open(system, "rb") as f:
        bundle = f.read().rstrip(b"\n") + b"\n" + ca_pem
    _write(f"{directory}/ca-bundle.pem", bundle)
    return f"{directory}/ca-bundle.pem"


def install():
    global _context, _tls_dir, _own_dir
    run_dir = os.environ.get("DEPLOY_EMULATOR_RUN_DIR")
    if run_dir:
        _tls_dir = os.path.join(run_dir, "tls")
        os.makedirs(_tls_dir, exist_ok=True)
    else:
        _tls_dir, _own_dir = tempfile.mkdtemp(prefix="deploy-emulator-tls-"), True
        atexit.register(shutdown)
    os.environ["DEPLOY_EMULATOR_CA_BUNDLE"] = _make_tls(_tls_dir)
    _context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    _context.minimum_version = ssl.TLSVersion.TLSv1_2
    _context.load_cert_chain(f"{_tls_dir}/server.pem", f"{_tls_dir}/server.key")


def shutdown():
    if _own_dir:
        shutil.rmtree(_tls_dir, ignore_errors=True)


# ---- Who is calling: /proc ------------------------------------------------------------

def _proc_hex(ip, port, width):
    """An address as /proc/net/tcp{,6} prints it: 32-bit words in host byte order."""
    packed = socket.inet_aton(ip) if width == 4 else b"\0" * 10 + b"\xff\xff" + socket.inet_aton(ip)
    words = "".join("%08X" % int.from_bytes(packed[i:i + 4], sys.byteorder) for i in range(0, len(packed), 4))
    return f"{words}:{port:04X}"


def _socket_inode(peer, front):
    """The inode of the client's end of a connection: the socket whose local address is
    the peer and whose remote address is the front (also as IPv4-mapped IPv6)."""
    for table, width in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        local, remote = _proc_hex(*peer, width), _proc_hex(*front, width)
        try:
            with open(table) as f:
                for line in f:
                    fields = line.split()
                    if len(fields) > 9 and fields[1] == local and fields[2] == remote:
                        return fields[9]
        except FileNotFoundError:
            continue
    return None


def _holds(pid, needle):
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == needle:
                return True
        except OSError:
            continue
    return False


def _children():
    """pid -> child pids, from /proc/*/stat (this kernel may lack /proc/PID/task/*/children)."""
    tree = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _calling_instance(peer, front):
    """The function instance (from lambda_runtime.instances()) whose process, or one of
    its descendants, holds the client end of this connection; None for anyone else."""
    instances = lambda_runtime.instances()
    if not instances:
        return None
    inode = _socket_inode(peer, front)
    if inode is None:
        return None
    needle = f"socket:[{inode}]"
    # The bootstrap itself usually holds the socket: try that before walking /proc.
    for instance in instances:
        if _holds(instance["pid"], needle):
            return instance
    tree = _children()
    for instance in instances:
        stack = list(tree.get(instance["pid"], []))
        while stack:
            pid = stack.pop()
            if _holds(pid, needle):
                return instance
            stack.extend(tree.get(pid, []))
    return None


# ---- Security groups: moto's EC2 backend -----------------------------------------------

def _allows_port(rule, port):
    return rule.ip_protocol == "-1" or (rule.ip_protocol == "tcp" and rule.from_port <= port <= rule.to_port)


def _reaches(rule, groups, subnets):
    """Whether a rule's peer is one of `groups` or a CIDR holding every one of `subnets`
    (a cache or function may sit in any of its subnets, so a CIDR covering only some
    would work on AWS only some of the time)."""
    ref = rule.source_group or {}
    if ref.get("GroupId") in {g.id for g in groups} or ref.get("GroupName") in {g.name for g in groups}:
        return True
    cidr = rule.ip_range.get("CidrIp") if rule.ip_range else None
    if not cidr or not subnets:
        return False
    network = ipaddress.ip_network(cidr, strict=False)
    return all(ipaddress.ip_network(s.cidr_block).subnet_of(network) for s in subnets)


def _groups(ec2, ids):
    return [g for g in (ec2.get_security_group_from_id(i) for i in ids) if g is not None]


def _ids(groups):
    return ", ".join(g.id for g in groups) or "(none)"


def _cidrs(subnets):
    return ", ".join(s.cidr_block for s in subnets)


def refusal(ec2, cache_subnet_ids, cache_group_ids, function_subnet_ids, function_group_ids, port):
    """Why a function in these subnets and groups cannot open TCP `port` to a cache in
    those, or None if the VPC lets it. A cache without subnets or groups has the
    default VPC's subnets and its VPC's default group, as on AWS."""
    if not function_subnet_ids:
        return "the function is not attached to a VPC, so it cannot reach the cache's private addresses"
    cache_subnets = ([ec2.get_subnet(i) for i in cache_subnet_ids] if cache_subnet_ids
                     else list(ec2.get_default_subnets().values()))
    vpc = cache_subnets[0].vpc_id if cache_subnets else None
    function_subnets = [ec2.get_subnet(i) for i in function_subnet_ids]
    outside = sorted({s.id for s in function_subnets if s.vpc_id != vpc})
    if outside:
        return f"subnets {', '.join(outside)} are not in the cache's VPC {vpc}"
    cache_groups = _groups(ec2, cache_group_ids or [ec2.get_default_security_group(vpc).id])
    function_groups = _groups(ec2, function_group_ids)
    if not any(_allows_port(r, port) and _reaches(r, cache_groups, cache_subnets)
               for g in function_groups for r in list(g.egress_rules)):
        return (f"no egress rule of {_ids(function_groups)} allows tcp/{port} to {_ids(cache_groups)} "
                f"or to a CIDR holding {_cidrs(cache_subnets)}")
    if not any(_allows_port(r, port) and _reaches(r, function_groups, function_subnets)
               for g in cache_groups for r in list(g.ingress_rules)):
        return (f"no ingress rule of {_ids(cache_groups)} allows tcp/{port} from {_ids(function_groups)} "
                f"or from a CIDR holding {_cidrs(function_subnets)}")
    return None


def _instance_refusal(cache, instance, port):
    if (instance["account"], instance["region"]) != (cache.account, cache.region):
        return f"the function is in {instance['account']}/{instance['region']}, the cache in {cache.account}/{cache.region}"
    try:
        return refusal(ec2_backends[cache.account][cache.region], cache.subnet_ids, cache.security_group_ids,
                       instance["subnet_ids"], instance["security_group_ids"], port)
    except Exception as e:  # e.g. a subnet deleted under a running function: no route either
        return f"its network could not be resolved ({e})"


# ---- The listeners ------------------------------------------------------------------

def _send(sock, data):
    """Blocking, so a reader that does not keep up slows down its writer."""
    sock.setblocking(True)
    try:
        sock.sendall(data)
    finally:
        sock.setblocking(False)


def _pipe(client, upstream):
    """Copies both ways until either side closes. Reads are non-blocking and drain each
    side (TLS may hold decrypted bytes that select cannot see); one thread drives both
    directions, since an SSL connection must not be used by two threads at once."""
    client.setblocking(False)
    upstream.setblocking(False)
    with selectors.DefaultSelector() as selector:
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        while True:
            for key, _ in selector.select():
                source, target = key.fileobj, key.data
                while True:
                    try:
                        data = source.recv(CHUNK)
                    except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                        break
                    if not data:
                        return
                    _send(target, data)


class Front:
    """The two TLS listeners of one cache; `ports` maps the logical port to the real one."""

    def __init__(self, cache):
        self.cache = cache
        self.listeners = {}
        self.ports = {}
        self.live = set()  # open sockets, shut down by stop()
        self.lock = threading.Lock()
        for logical in (ENDPOINT_PORT, READER_PORT):
            listener = socket.create_server(("127.0.0.1", 0))
            self.listeners[logical] = listener
            self.ports[logical] = listener.getsockname()[1]
            threading.Thread(target=self._accept, args=(listener, logical), daemon=True,
                             name=f"cache-front-{cache.name}-{logical}").start()

    def _accept(self, listener, logical):
        while True:
            try:
                conn, peer = listener.accept()
            except OSError:  # stop() shut the listener down
                return
            threading.Thread(target=self._serve, args=(conn, peer, logical), daemon=True).start()

    def _track(self, sock, add=True):
        with self.lock:
            if add:
                self.live.add(sock)
            else:
                self.live.discard(sock)

    def _serve(self, conn, peer, logical):
        self._track(conn)
        opened = [conn]
        try:
            instance = _calling_instance(peer, conn.getsockname())
            reason = instance and _instance_refusal(self.cache, instance, logical)
            if reason:
                print(f"cache-front: black-holed a connection from function {instance['function_name']} "
                      f"(version {instance['version']}, pid {instance['pid']}, groups "
                      f"{', '.join(instance['security_group_ids']) or '(none)'}) to cache {self.cache.name}'s "
                      f"{ENDPOINT_NAMES[logical]} (port {logical}): {reason}", file=sys.stderr, flush=True)
                while conn.recv(CHUNK):  # never answered; held until the client gives up
                    pass
                return
            conn.settimeout(HANDSHAKE_SECONDS)
            client = _context.wrap_socket(conn, server_side=True)
            self._track(conn, add=False)
            self._track(client)
            opened[0] = client
            upstream = socket.create_connection(("127.0.0.1", self.cache.valkey.port), timeout=5)
            self._track(upstream)
            opened.append(upstream)
            _pipe(client, upstream)
        except OSError:  # refused handshakes (plain clients), resets, stop()
            pass
        finally:
            for sock in opened:
                self._track(sock, add=False)
                sock.close()

    def stop(self):
        """Closes both listeners and every connection, as deleting a cache does."""
        with self.lock:
            doomed = list(self.listeners.values()) + list(self.live)
        for sock in doomed:
            try:
                # The plain socket's shutdown, even for TLS ones: it wakes blocked calls
                # in other threads without touching their SSL state.
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:
                pass
        for listener in self.listeners.values():
            listener.close()
