"""The caches' network front: TLS verified against the emulator's CA bundle, Valkey
announcing the front's port, plain clients refused, fronts stopped with their cache,
and security groups enforced on function instances (rule evaluation against moto's EC2
objects, and end to end from a VPC function)."""

import json
import os
import signal
import socket
import ssl
import subprocess
import time
import unittest
from unittest import mock

import boto3
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from moto import mock_aws
from moto.ec2.models import ec2_backends

from deploy_emulator import cache_front, lambda_runtime
from tests.support import ACCOUNT, REGION, Emulator

PING = b"*1\r\n$4\r\nPING\r\n"
CLUSTER_SLOTS = b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nSLOTS\r\n"
CLUSTER_NODES = b"*2\r\n$7\r\nCLUSTER\r\n$5\r\nNODES\r\n"

# Opens a TLS connection (verified with the platform's trust store, SSL_CERT_FILE) to
# the port in its event, PINGs and answers with the reply, "timeout" or the error.
PINGER = """#!/usr/bin/python3
import http.client, json, os, socket, ssl
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
api = http.client.HTTPConnection(host, int(port))
while True:
    api.request("GET", "/2018-06-01/runtime/invocation/next")
    r = api.getresponse()
    event = json.loads(r.read())
    try:
        with socket.create_connection(("127.0.0.1", event["port"]), timeout=2) as raw:
            with ssl.create_default_context().wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"*1\\r\\n$4\\r\\nPING\\r\\n")
                result = s.recv(64).decode()
    except TimeoutError:
        result = "timeout"
    except OSError as e:
        result = f"error: {e}"
    api.request("POST", f"/2018-06-01/runtime/invocation/{r.getheader('Lambda-Runtime-Aws-Request-Id')}/response",
                json.dumps(result))
    api.getresponse().read()
"""


def network(ec2):
    """A VPC with two subnets, another VPC with one, a function group (AWS's default
    egress: everything) and a cache group (no ingress)."""
    vpc = ec2.create_vpc(CidrBlock="10.20.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.20.{i}.0/24", AvailabilityZone=f"{REGION}{z}")["Subnet"]["SubnetId"]
               for i, z in ((1, "a"), (2, "b"))]
    other = ec2.create_vpc(CidrBlock="10.30.0.0/16")["Vpc"]["VpcId"]
    stranger = ec2.create_subnet(VpcId=other, CidrBlock="10.30.1.0/24")["Subnet"]["SubnetId"]
    function_sg = ec2.create_security_group(GroupName="fn", Description="fn", VpcId=vpc)["GroupId"]
    cache_sg = ec2.create_security_group(GroupName="cache", Description="cache", VpcId=vpc)["GroupId"]
    return vpc, subnets, stranger, function_sg, cache_sg


def tcp(port, to_port=None, group=None, cidr=None):
    rule = {"IpProtocol": "tcp", "FromPort": port, "ToPort": to_port or port}
    if group:
        rule["UserIdGroupPairs"] = [{"GroupId": group}]
    if cidr:
        rule["IpRanges"] = [{"CidrIp": cidr}]
    return [rule]


def command(sock, payload):
    sock.sendall(payload)
    sock.settimeout(5)
    return sock.recv(65536)


class RuleEvaluationTest(unittest.TestCase):
    """cache_front.refusal against moto's in-process EC2 backend."""

    def setUp(self):
        mock = mock_aws()
        mock.start()
        self.addCleanup(mock.stop)
        self.ec2 = boto3.client("ec2", region_name=REGION)
        self.vpc, self.subnets, self.stranger, self.fn_sg, self.cache_sg = network(self.ec2)
        self.backend = ec2_backends[ACCOUNT][REGION]

    def refusal(self, port=6379, function_subnets=None, function_groups=None):
        return cache_front.refusal(self.backend, self.subnets, [self.cache_sg],
                                   self.subnets[:1] if function_subnets is None else function_subnets,
                                   [self.fn_sg] if function_groups is None else function_groups, port)

    def test_missing_ingress_is_named(self):
        reason = self.refusal()
        self.assertIn("no ingress rule", reason)
        self.assertIn(self.cache_sg, reason)
        self.assertIn("tcp/6379", reason)

    def test_ingress_from_the_function_group_opens_that_port_only(self):
        self.ec2.authorize_security_group_ingress(GroupId=self.cache_sg, IpPermissions=tcp(6379, group=self.fn_sg))
        self.assertIsNone(self.refusal(6379))
        self.assertIn("tcp/6380", self.refusal(6380))

    def test_ingress_by_cidr_must_hold_every_function_subnet(self):
        self.ec2.authorize_security_group_ingress(GroupId=self.cache_sg, IpPermissions=tcp(6379, 6380, cidr="10.20.1.0/24"))
        self.assertIsNone(self.refusal(6380, function_subnets=self.subnets[:1]))
        self.assertIn("no ingress rule", self.refusal(6380, function_subnets=self.subnets))
        self.ec2.authorize_security_group_ingress(GroupId=self.cache_sg, IpPermissions=tcp(6379, cidr="10.20.0.0/16"))
        self.assertIsNone(self.refusal(6379, function_subnets=self.subnets))

    def test_egress_is_required(self):
        self.ec2.authorize_security_group_ingress(GroupId=self.cache_sg, IpPermissions=tcp(6379, group=self.fn_sg))
        self.ec2.revoke_security_group_egress(GroupId=self.fn_sg, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        reason = self.refusal()
        self.assertIn("no egress rule", reason)
        self.assertIn(self.fn_sg, reason)
        # To a CIDR holding only one of the cache's subnets: not enough.
        self.ec2.authorize_security_group_egress(GroupId=self.fn_sg, IpPermissions=tcp(6379, cidr="10.20.1.0/24"))
        self.assertIn("no egress rule", self.refusal())
        self.ec2.authorize_security_group_egress(GroupId=self.fn_sg, IpPermissions=tcp(6379, group=self.cache_sg))
        self.assertIsNone(self.refusal())

    def test_function_outside_the_cache_vpc_or_any_vpc(self):
        self.ec2.authorize_security_group_ingress(GroupId=self.cache_sg, IpPermissions=[{"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}])
        self.assertIsNone(self.refusal())
        self.assertIn("not in the cache's VPC", self.refusal(function_subnets=[self.stranger]))
        self.assertIn("not attached to a VPC", self.refusal(function_subnets=[], function_groups=[]))


class CallerTest(unittest.TestCase):
    """Which function instance holds the client end of a connection, through /proc."""

    def test_the_instance_is_found_when_a_child_of_its_process_connects(self):
        with socket.create_server(("127.0.0.1", 0)) as listener:
            script = f"import socket, time; s = socket.create_connection(('127.0.0.1', {listener.getsockname()[1]})); time.sleep(60)"
            # `; true` keeps the shell alive, so the connecting python is its child.
            shell = subprocess.Popen(["sh", "-c", f'python3 -c "{script}"; true'], start_new_session=True)
            self.addCleanup(shell.wait)
            self.addCleanup(os.killpg, shell.pid, signal.SIGKILL)
            conn, peer = listener.accept()
            with conn:
                instance = {"pid": shell.pid, "function_name": "f"}
                with mock.patch.object(lambda_runtime, "instances", return_value=[instance]):
                    self.assertIs(cache_front._calling_instance(peer, conn.getsockname()), instance)
                bystander = subprocess.Popen(["sleep", "60"])
                self.addCleanup(bystander.wait)
                self.addCleanup(bystander.kill)
                with mock.patch.object(lambda_runtime, "instances", return_value=[{"pid": bystander.pid}]):
                    self.assertIsNone(cache_front._calling_instance(peer, conn.getsockname()))


class FrontTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = Emulator().start()
        cls.ec2 = cls.emulator.client("ec2")
        cls.elasticache = cls.emulator.client("elasticache")
        cls.vpc, cls.subnets, _, cls.fn_sg, cls.cache_sg = network(cls.ec2)
        cls.cache = cls.create_cache("front")

    @classmethod
    def tearDownClass(cls):
        cls.emulator.stop()

    @classmethod
    def create_cache(cls, name):
        cls.elasticache.create_serverless_cache(ServerlessCacheName=name, Engine="valkey", SubnetIds=cls.subnets,
                                                SecurityGroupIds=[cls.cache_sg])
        for _ in range(200):
            cache = cls.elasticache.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
            if cache["Status"] == "available":
                return cache
            time.sleep(0.1)
        raise AssertionError(f"cache {name} never became available")

    def tls(self, port, host="localhost"):
        context = ssl.create_default_context(cafile=self.emulator.ca_bundle)
        return context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname=host)

    def test_endpoints_are_the_fronts(self):
        endpoint, reader = self.cache["Endpoint"], self.cache["ReaderEndpoint"]
        self.assertEqual(endpoint["Address"], "127.0.0.1")
        self.assertEqual(reader["Address"], "127.0.0.1")
        self.assertNotEqual(endpoint["Port"], reader["Port"])

    def test_tls_verified_for_ip_and_name_and_valkey_announces_the_front(self):
        """No rule lets anything in, yet this test's client gets through: it is not a
        function instance, and this machine is inside the VPC, like a bastion."""
        port = self.cache["Endpoint"]["Port"]
        for host in ("127.0.0.1", "localhost"):
            with self.tls(port, host) as s:
                self.assertEqual(command(s, PING), b"+PONG\r\n")
                slots = command(s, CLUSTER_SLOTS)
                self.assertIn(b"$9\r\n127.0.0.1\r\n:%d\r\n" % port, slots)
                self.assertIn(b" 127.0.0.1:%d@" % port, command(s, CLUSTER_NODES))
        with self.tls(self.cache["ReaderEndpoint"]["Port"]) as s:
            self.assertEqual(command(s, PING), b"+PONG\r\n")
            self.assertIn(b":%d\r\n" % port, command(s, CLUSTER_SLOTS))

    def test_only_the_emulator_ca_makes_the_certificate_valid(self):
        with socket.create_connection(("127.0.0.1", self.cache["Endpoint"]["Port"]), timeout=5) as raw:
            with self.assertRaises(ssl.SSLCertVerificationError):
                ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")

    def test_certificates_have_what_webpki_requires(self):
        with self.tls(self.cache["Endpoint"]["Port"]) as s:
            leaf = x509.load_der_x509_certificate(s.getpeercert(binary_form=True))
        self.assertFalse(leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        self.assertEqual(list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value),
                         [ExtendedKeyUsageOID.SERVER_AUTH])
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(names.get_values_for_type(x509.DNSName), ["localhost"])
        self.assertEqual([str(ip) for ip in names.get_values_for_type(x509.IPAddress)], ["127.0.0.1"])
        with open(self.emulator.ca_bundle, "rb") as f:
            blocks = f.read().split(b"-----BEGIN CERTIFICATE-----")
        self.assertGreater(len(blocks), 3, "the bundle lacks the system CAs")
        ca = x509.load_pem_x509_certificate(b"-----BEGIN CERTIFICATE-----" + blocks[-1])
        self.assertEqual(leaf.issuer, ca.subject)
        self.assertTrue(ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        self.assertTrue(ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)

    def test_plain_client_is_refused(self):
        with socket.create_connection(("127.0.0.1", self.cache["Endpoint"]["Port"]), timeout=5) as s:
            try:
                reply = command(s, PING)
            except ConnectionResetError:
                reply = b""
        self.assertNotIn(b"PONG", reply)

    def test_deleting_a_cache_stops_its_fronts(self):
        cache = self.create_cache("short-lived")
        ports = [cache["Endpoint"]["Port"], cache["ReaderEndpoint"]["Port"]]
        with self.tls(ports[0]) as held:
            self.assertEqual(command(held, PING), b"+PONG\r\n")
            self.elasticache.delete_serverless_cache(ServerlessCacheName="short-lived")
            for _ in range(100):
                try:
                    self.elasticache.describe_serverless_caches(ServerlessCacheName="short-lived")
                except self.elasticache.exceptions.ClientError:
                    break
                time.sleep(0.1)
            self.assertEqual(held.recv(16), b"", "a connection outlived its cache")
        for port in ports:
            with self.assertRaises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", port), timeout=2).close()

    def test_security_groups_apply_to_function_instances(self):
        lam = self.emulator.client("lambda")
        self.emulator.create_function("pinger", PINGER, Timeout=15, VpcConfig={
            "SubnetIds": self.subnets[:1], "SecurityGroupIds": [self.fn_sg]})
        for _ in range(300):
            if lam.get_function_configuration(FunctionName="pinger")["State"] == "Active":
                break
            time.sleep(0.1)

        def ping(port):
            answer = lam.invoke(FunctionName="pinger", Payload=json.dumps({"port": port}))
            return json.loads(answer["Payload"].read())

        endpoint, reader = self.cache["Endpoint"]["Port"], self.cache["ReaderEndpoint"]["Port"]
        self.assertEqual(ping(endpoint), "timeout")
        self.assertRegex(self.emulator.log(), rf"black-holed a connection from function pinger .*{self.fn_sg}.*"
                                              rf"endpoint \(port 6379\): no ingress rule of {self.cache_sg}")
        # Rules are read per connection: the warm instance gets in once the rule exists,
        # on the endpoint's logical port (6379) only.
        self.ec2.authorize_security_group_ingress(GroupId=self.cache_sg, IpPermissions=tcp(6379, group=self.fn_sg))
        try:
            self.assertEqual(ping(endpoint), "+PONG\r\n")
            self.assertEqual(ping(reader), "timeout")
            self.assertRegex(self.emulator.log(), r"reader endpoint \(port 6380\): no ingress rule .* tcp/6380")
        finally:
            self.ec2.revoke_security_group_ingress(GroupId=self.cache_sg, IpPermissions=tcp(6379, group=self.fn_sg))


if __name__ == "__main__":
    unittest.main()
