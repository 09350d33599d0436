"""Lambda execution, as AWS runs functions: `Invoke` (moto's HTTP API and the Python API
below) starts the deployed `bootstrap` of the invoked version as a process that talks to
a Runtime API of its own, keeps instances warm and reuses them, starts more for
concurrent invocations up to a cap, enforces the timeout and the 10 s init limit, and
writes the process's output with START/END/REPORT lines to moto's CloudWatch Logs.
It also makes moto's PublishVersion keep each version's own code.

Python API (the gateway, schedules and the cache front call it):
    invoke(account, region, function, qualifier=None, payload=b"", asynchronous=False,
           log_tail=False) -> {"status", "request_id", "payload", "function_error",
                               "executed_version", "log_tail" (text of the log's last 4 KB)}
    instances() -> [{"pid", "function_name", "function_arn", "version", "account",
                     "region", "subnet_ids", "security_group_ids"}]
    NotFound, Throttled
Control endpoints under /_deploy/lambda/: see control()."""

import base64
import hashlib
import io
import json
import math
import os
import platform
import re
import secrets
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections import Counter
from datetime import datetime, timezone
from http import HTTPStatus
from http.client import parse_headers
from pathlib import Path
from urllib.parse import unquote, urlsplit

from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import LambdaBackend, LambdaStorage, lambda_backends
from moto.awslambda.responses import LambdaResponse
from moto.logs.models import logs_backends
from moto.utilities.utils import get_partition

MAX_REQUEST = 6291456      # Invoke's synchronous payload limit
MAX_RESPONSE = 6291556     # the function's response limit
INIT_LIMIT = 10.0          # seconds an on-demand init may take
THROTTLE_WAIT = 2.0        # seconds a synchronous invoke waits for a free instance
TAIL_BYTES = 4096          # X-Amz-Log-Result holds the log's last 4 KB
FLUSH_AFTER = 0.5          # seconds output waits for its invocation's end to go to the logs with it
DEFAULT_CONCURRENCY = 10
ELF_MACHINE = {"x86_64": 62, "arm64": 183}
QEMU_CPU = {"x86_64": "x86_64", "arm64": "aarch64"}
HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}.get(
    platform.machine().lower(), platform.machine())
INVOCATIONS = re.compile(r"^/[^/]+/functions/(.+?)/invocations/?$")
FULL_ARN = re.compile(r"arn:aws[\w-]*:lambda:([\w-]+):(\d{12}):function:([\w-]+)(?::([\w$-]+))?")
PARTIAL_ARN = re.compile(r"(\d{12}):function:([\w-]+)(?::([\w$-]+))?")
NAME = re.compile(r"([\w-]+)(?::([\w$-]+))?")
RUNTIME_POST = re.compile(r"/2018-06-01/runtime/invocation/([^/]+)/(response|error)")


class NotFound(Exception):
    """The function or the qualifier does not exist."""


class Throttled(Exception):
    """The function's concurrency cap is reached and no instance freed up in time."""


class TooManyRequests(LambdaClientError):
    code = 429

    def __init__(self):
        super().__init__("TooManyRequestsException", "Rate Exceeded.")
        self.description = json.dumps({"Reason": "ConcurrentInvocationLimitExceeded", "Type": "User", "message": "Rate Exceeded."})


class RequestTooLarge(LambdaClientError):
    code = 413

    def __init__(self):
        super().__init__("RequestTooLargeException", f"Request must be smaller than {MAX_REQUEST} bytes for the InvokeFunction operation")


class InvalidRequestContent(LambdaClientError):
    code = 400

    def __init__(self, why):
        super().__init__("InvalidRequestContentException", f"Could not parse request body into json: {why}")


class EntrypointError(Exception):
    """The bootstrap cannot be started (Runtime.InvalidEntrypoint)."""


# ---- Invocations -----------------------------------------------------------------------

class Invocation:
    """One request on its way through an instance. The first outcome (response, error,
    exit, timeout) wins; `delivered` is set when the runtime receives the event (or the
    invocation ended before that), `done` when it has an outcome."""

    def __init__(self, request_id, payload, invoked_arn, client_context):
        self.id = request_id
        self.payload = payload or b"{}"  # Lambda hands an empty payload over as {}
        self.invoked_arn = invoked_arn
        self.client_context = client_context
        self.trace_id = f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)};Parent={secrets.token_hex(8)};Sampled=0"
        self.assigned = time.monotonic()
        self.started = None     # monotonic time the runtime received it
        self.deadline = None
        self.finished = None
        self.delivered = threading.Event()
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.log = []           # its log lines, for the tail
        self.response = b""
        self.function_error = None
        self.failure = None     # (phase, error type, reason) when Lambda itself failed it
        self.timed_out = False

    def finish(self, response, function_error=None, failure=None, timed_out=False):
        with self.lock:
            if self.done.is_set():
                return False
            self.finished = time.monotonic()
            self.response, self.function_error, self.failure, self.timed_out = response, function_error, failure, timed_out
            self.done.set()
        self.delivered.set()
        return True

    def fail(self, phase, error_type, reason, timed_out=False):
        message = f"RequestId: {self.id} Error: {reason}"
        body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
        return self.finish(body, "Unhandled", (phase, error_type, reason), timed_out)


def _exit_reason(code):
    """How the Lambda service words a runtime's exit (Go's os/exec wording)."""
    if code == 0:
        return "Runtime exited without providing a reason"
    if code > 0:
        return f"Runtime exited with error: exit status {code}"
    try:
        name = signal.strsignal(-code) or f"signal {-code}"
    except ValueError:
        name = f"signal {-code}"
    return f"Runtime exited with error: signal: {name[0].lower()}{name[1:]}"


# ---- The Runtime API of one instance ---------------------------------------------------

class RuntimeApi:
    """One connection of a runtime to its instance's Runtime API (HTTP/1.1, keep-alive);
    `self.server` is the Instance. Parsed by hand: http.server's email-based parsing
    cost more than the rest of a warm invocation."""

    def __init__(self, connection, instance):
        self.connection = connection
        self.server = instance
        self.rfile = connection.makefile("rb")
        self.write_lock = threading.Lock()  # the invoker delivers events on this connection too
        self.close_connection = False
        self.awaiting = False  # its `next` waits for an invocation; guarded by the Instance's lock
        self.path = ""
        self.headers = {}  # lower-case names

    def serve(self):
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # A `next` that waits keeps even a `Connection: close` connection open: the
        # runtime reads the event, then hangs up.
        while not self.close_connection or self.awaiting:
            line = self.rfile.readline(65537)
            if not line:
                return
            parts = line.decode("latin-1").split()
            if len(parts) != 3 or not parts[2].startswith("HTTP/"):
                self.close_connection = True
                return self.reply_json(400, {"errorType": "BadRequest", "errorMessage": f"bad request line {line[:100]!r}"})
            method, self.path, version = parts
            self.headers = {}
            while (header := self.rfile.readline(65537)) not in (b"\r\n", b"\n", b""):
                name, _, value = header.decode("latin-1").partition(":")
                self.headers[name.strip().lower()] = value.strip()
            if version == "HTTP/1.0" or self.headers.get("connection", "").lower() == "close":
                self.close_connection = True
            if method == "GET":
                self.do_GET()
            elif method == "POST":
                self.do_POST()
            else:
                self.body()
                self.reply_json(405, {"errorType": "MethodNotAllowed", "errorMessage": f"{method} {self.path}"})

    def reply(self, status, body=b"", headers=()):
        """One write per response: headers and body together."""
        reason = HTTPStatus(status).phrase
        head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers)]
        with self.write_lock:
            self.connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    def reply_json(self, status, value):
        self.reply(status, json.dumps(value).encode(), [("Content-Type", "application/json")])

    def body(self):
        """The request body, and the trailers of a chunked one (streamed responses)."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks), parse_headers(self.rfile)
        length = int(self.headers.get("content-length") or 0)
        return (self.rfile.read(length) if length else b""), {}

    def do_GET(self):
        if self.path == "/2018-06-01/runtime/invocation/next":
            return self.server.next(self)
        self.reply_json(404, {"errorType": "NotFound", "errorMessage": f"unknown path {self.path}"})

    def do_POST(self):
        body, trailers = self.body()
        m = RUNTIME_POST.fullmatch(self.path)
        if m:
            request_id, kind = m.groups()
            error = kind == "error" or bool(trailers and trailers.get("Lambda-Runtime-Function-Error-Type"))
            if trailers and trailers.get("Lambda-Runtime-Function-Error-Body"):
                body = base64.b64decode(trailers["Lambda-Runtime-Function-Error-Body"])
            return self.server.respond(self, request_id, body, error)
        if self.path == "/2018-06-01/runtime/init/error":
            return self.server.init_error(self, body)
        self.reply_json(404, {"errorType": "NotFound", "errorMessage": f"unknown path {self.path}"})


def _serve(connection, instance):
    handler = RuntimeApi(connection, instance)
    try:
        handler.serve()
    except (OSError, ValueError):
        pass  # the runtime went away, or spoke something else than HTTP
    finally:
        instance.forget(handler)
        connection.close()


# ---- Instances -------------------------------------------------------------------------

class Instance:
    """One execution environment: a bootstrap process serving one version's code and
    configuration, its Runtime API port and its log stream."""

    def __init__(self, account, region, fn, signature):
        self.account, self.region = account, region
        self.name = fn.function_name
        self.version = str(fn.version)
        self.function_arn = fn.function_arn
        self.signature = signature
        self.memory = int(fn.memory_size)
        self.timeout = float(fn.timeout)
        vpc = fn._vpc_config or {}
        self.subnet_ids = list(vpc.get("SubnetIds") or [])
        self.security_group_ids = list(vpc.get("SecurityGroupIds") or [])
        self.group = f"/aws/lambda/{self.name}"
        self.stream = f"{datetime.now(timezone.utc):%Y/%m/%d}/[{self.version}]{uuid.uuid4().hex}"
        self.state = "busy"       # busy | idle | dead; guarded by _cond
        self.lock = threading.Lock()  # guards pending, current, waiting, ready, dead
        self.pending = None       # the invocation waiting for `next`
        self.current = None       # the invocation the runtime is working on
        self.waiting = []         # connections whose `next` waits for an invocation
        self.ready = False        # the runtime has called `next` once
        self.dead = False
        self.proc = None
        self.listener = None
        self.spawned = time.monotonic()
        self.init_ms = 0.0
        self.peak_mb = 0
        self.memory_lock = threading.Lock()
        self.status_fd = None     # /proc/PID/status, kept open; -1 once the process is gone
        self.tail_target = None   # the invocation whose tail collects the log lines
        self.log_lock = threading.Lock()
        self.selector = selectors.DefaultSelector()
        self.partial = {}         # pipe fd -> bytes of an unfinished line
        self.unsent = []          # log events not yet in the stream; guarded by log_lock
        self.eof = set()
        _open_stream(account, region, self.group, self.stream)

    # -- Start and stop

    def start(self, fn):
        """Unpacks the code and starts `bootstrap`; EntrypointError when it cannot run."""
        root = _unpacked(getattr(fn, "code_bytes", b"") or b"")
        bootstrap = os.path.join(root, "bootstrap")
        command = _command(bootstrap, fn.architectures[0])
        self.listener = socket.create_server(("127.0.0.1", 0))
        port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name=f"lambda-api-{port}").start()
        self.spawned = time.monotonic()
        try:
            self.proc = subprocess.Popen(command, cwd=root, env=_environment(fn, self, root, port),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                         start_new_session=True)
        except OSError as e:
            self._close_listener()
            reason = (e.strerror or str(e))
            raise EntrypointError(f"fork/exec {bootstrap}: {reason[0].lower()}{reason[1:]}") from None
        for pipe in (self.proc.stdout, self.proc.stderr):
            fd = pipe.fileno()
            os.set_blocking(fd, False)
            self.partial[fd] = b""
            self.selector.register(fd, selectors.EVENT_READ)
        threading.Thread(target=self._pump_until_closed, daemon=True).start()
        threading.Thread(target=self._watch, daemon=True).start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve, args=(connection, self), daemon=True).start()

    def _close_listener(self):
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept()
            except OSError:
                pass
            self.listener.close()

    def kill(self):
        """Stops the process and whatever it started: the sandbox is its own session."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def _watch(self):
        """The process ended: the instance is gone, and so is what it was working on."""
        code = self.proc.wait()
        self._close_status()
        self.kill()  # what it left running goes with the sandbox
        _retire(self)
        with self.lock:
            self.dead = True
            victim = self.current or self.pending
            self.waiting.clear()
        if victim is not None:
            victim.fail("invoke" if victim.started else "init", "Runtime.ExitError", _exit_reason(code))
        self._close_listener()

    # -- The Runtime API

    def next(self, handler):
        """The runtime asks for an event: it gets the pending invocation, or its
        connection waits until `run` delivers the next one on it directly (no thread
        hand-off on the warm path)."""
        with self.lock:
            first = not self.ready
            if first:
                self.ready = True
                self.init_ms = (time.monotonic() - self.spawned) * 1000
            if self.dead:
                handler.close_connection = True
                return
            inv = self.pending
            if inv is None:
                handler.awaiting = True
                self.waiting.append(handler)
            else:
                self.pending, self.current = None, inv
        if first:
            self._sample_memory()  # a runtime that dies later still reports its init's peak
        if inv is not None:
            self._deliver(handler, inv)

    def forget(self, handler):
        """The connection closed: nothing is delivered on it any more."""
        with self.lock:
            if handler in self.waiting:
                self.waiting.remove(handler)
                handler.awaiting = False

    def _deliver(self, handler, inv):
        """Sends `inv` as the answer to the runtime's `next` on `handler`."""
        inv.started = time.monotonic()
        inv.deadline = inv.started + self.timeout
        headers = [("Content-Type", "application/json"),
                   ("Lambda-Runtime-Aws-Request-Id", inv.id),
                   ("Lambda-Runtime-Deadline-Ms", str(int((time.time() + self.timeout) * 1000))),
                   ("Lambda-Runtime-Invoked-Function-Arn", inv.invoked_arn),
                   ("Lambda-Runtime-Trace-Id", inv.trace_id)]
        if inv.client_context:
            headers.append(("Lambda-Runtime-Client-Context", inv.client_context))
        # START before the event leaves, so the function's output follows it in the stream.
        self.log([f"START RequestId: {inv.id} Version: {self.version}"], flush=False)
        inv.delivered.set()
        try:
            handler.reply(200, inv.payload, headers)
            if handler.close_connection:
                handler.connection.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the runtime went away: its exit or the timeout ends the invocation

    def respond(self, handler, request_id, body, error):
        with self.lock:
            inv = self.current if self.current is not None and self.current.id == request_id else None
            if inv is not None:
                self.current = None
        if inv is None:
            return handler.reply_json(400, {"errorMessage": "Invalid request ID", "errorType": "InvalidRequestID"})
        if len(body) > MAX_RESPONSE and not error:
            message = f"Response payload size exceeded maximum allowed payload size ({MAX_RESPONSE} bytes)."
            inv.finish(json.dumps({"errorMessage": message, "errorType": "Function.ResponseSizeTooLarge"}).encode(), "Unhandled")
            return handler.reply_json(413, {"errorMessage": f"Exceeded maximum allowed payload size ({MAX_RESPONSE} bytes).",
                                            "errorType": "RequestEntityTooLarge"})
        inv.finish(body, "Unhandled" if error else None)
        handler.reply_json(202, {"status": "OK"})

    def init_error(self, handler, body):
        with self.lock:
            inv = None if self.ready else self.pending
        if inv is None:
            return handler.reply_json(403, {"errorMessage": "init/error outside the init phase", "errorType": "InvalidStateTransition"})
        error_type = handler.headers.get("lambda-runtime-function-error-type") or "Runtime.Unknown"
        try:
            posted = json.loads(body)
            error_type = posted.get("errorType") or error_type
        except (ValueError, AttributeError):
            body = json.dumps({"errorType": error_type, "errorMessage": body.decode(errors="replace")}).encode()
        # What the runtime posted is what the invoker gets; the sandbox is then reset.
        inv.finish(body, "Unhandled", ("init", error_type, None))
        handler.reply_json(202, {"status": "OK"})
        _retire(self)
        self.kill()

    # -- Invoking

    def run(self, inv, fn=None):
        """Hands `inv` to the runtime (starting the instance's process with `fn`'s code
        first when cold) and waits for its outcome, within the init limit and the
        function's timeout; then logs it."""
        cold = fn is not None
        handler = None
        with self.lock:
            # Pending before the process starts: a bootstrap that dies at once fails it.
            alive = not self.dead
            if alive and self.waiting:
                handler, self.current = self.waiting.pop(0), inv
                handler.awaiting = False
            elif alive:
                self.pending = inv
        if handler is not None:
            self._deliver(handler, inv)
        if not alive:  # it died between two invocations
            inv.fail("invoke", "Runtime.ExitError", _exit_reason(self.proc.returncode))
        if cold:
            try:
                self.start(fn)
            except EntrypointError as e:
                _retire(self)
                inv.fail("init", "Runtime.InvalidEntrypoint", str(e))
        if not inv.delivered.wait(INIT_LIMIT if cold else self.timeout):
            self._time_out(inv, "init" if cold else "invoke", INIT_LIMIT if cold else self.timeout)
        elif not inv.done.wait(max(0.0, inv.deadline - time.monotonic()) if inv.deadline else None):
            self._time_out(inv, "invoke", self.timeout)
        self._report(inv, cold)

    def _time_out(self, inv, phase, limit):
        self._sample_memory()
        if inv.fail(phase, "Sandbox.Timedout", f"Task timed out after {limit:.2f} seconds", timed_out=True):
            _retire(self)  # before the kill, so that nobody picks the instance meanwhile
            self.kill()

    def _report(self, inv, cold):
        """The platform's lines for one invocation: INIT_REPORT when init failed, START
        when the runtime never got it, the failure, END and REPORT."""
        lines = []
        phase, error_type, reason = inv.failure or (None, None, None)
        if phase == "init":
            init_ms = (inv.finished - self.spawned) * 1000
            status = "timeout" if inv.timed_out else f"error\tError Type: {error_type}"
            lines.append(f"INIT_REPORT Init Duration: {init_ms:.2f} ms\tPhase: init\tStatus: {status}")
        if inv.started is None:
            lines.append(f"START RequestId: {inv.id} Version: {self.version}")
        if inv.timed_out:
            lines.append(f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%S.%f}"[:-3] + f"Z {inv.id} {reason}")
        elif reason:
            lines.append(f"RequestId: {inv.id} Error: {reason}\n{error_type}")
        duration = (inv.finished - (inv.started or inv.assigned)) * 1000
        init = self.init_ms if cold and self.ready else 0.0
        report = (f"REPORT RequestId: {inv.id}\tDuration: {duration:.2f} ms\tBilled Duration: {math.ceil(duration + init)} ms"
                  f"\tMemory Size: {self.memory} MB\tMax Memory Used: {self._sample_memory()} MB")
        if init:
            report += f"\tInit Duration: {init:.2f} ms"
        if inv.timed_out:
            report += "\tStatus: timeout"
        elif error_type:
            report += f"\tStatus: error\tError Type: {error_type}"
        lines += [f"END RequestId: {inv.id}", report]
        self.log(lines)

    def _sample_memory(self):
        """Max Memory Used: the process's peak resident set (VmHWM), in MB. The status
        file stays open while the process lives: one read per sample, not three calls."""
        with self.memory_lock:
            try:
                if self.status_fd is None:
                    self.status_fd = os.open(f"/proc/{self.proc.pid}/status", os.O_RDONLY)
                if self.status_fd >= 0:
                    status = os.pread(self.status_fd, 16384, 0)
                    kb = int(status.split(b"VmHWM:", 1)[1].split(None, 1)[0])
                    self.peak_mb = max(self.peak_mb, math.ceil(kb / 1024))
            except (OSError, AttributeError, ValueError, IndexError):
                pass  # gone (or never started): the last sample stands
            return self.peak_mb

    def _close_status(self):
        with self.memory_lock:
            if self.status_fd is not None and self.status_fd >= 0:
                os.close(self.status_fd)
            self.status_fd = -1  # never reopened: the pid may be another process's now

    # -- Logs

    def log(self, lines, flush=True):
        """Writes the process's pending output, then `lines`, to the instance's stream;
        with flush=False they wait for the next write (one PutLogEvents per warm
        invocation: each one costs the invoker)."""
        with self.log_lock:
            self._pump()
            self._emit(lines)
            if flush:
                self._flush()

    def _pump(self):
        """Reads whatever the process has written so far (never blocks) and logs its
        complete lines; the caller holds log_lock."""
        lines = []
        for fd in list(self.partial):
            while fd not in self.eof:
                try:
                    data = os.read(fd, 65536)
                except BlockingIOError:
                    break
                if not data:
                    self.eof.add(fd)
                    data = b"\n" if self.partial[fd] else b""
                *complete, self.partial[fd] = (self.partial[fd] + data).split(b"\n")
                lines += complete
        if lines:
            self._emit([line.decode(errors="replace").rstrip("\r") for line in lines])

    def _pump_until_closed(self):
        """Reads the output as it comes; what no invocation's end has written within
        FLUSH_AFTER goes to the stream from here."""
        while self.partial:
            self.selector.select(FLUSH_AFTER if self.unsent else None)
            with self.log_lock:
                self._pump()
                for fd in self.eof & set(self.partial):
                    self.selector.unregister(fd)
                    del self.partial[fd]
                if self.unsent and time.time() * 1000 - self.unsent[0]["timestamp"] >= FLUSH_AFTER * 1000:
                    self._flush()
        with self.log_lock:
            self._flush()
        self.selector.close()
        self.proc.stdout.close()
        self.proc.stderr.close()

    def _emit(self, messages):
        if not messages:
            return
        # Stamped now, sent later; in order, as PutLogEvents wants them.
        now = max(int(time.time() * 1000), self.unsent[-1]["timestamp"] if self.unsent else 0)
        self.unsent += [{"timestamp": now, "message": m} for m in messages]
        if self.tail_target is not None:
            self.tail_target.log += messages

    def _flush(self):
        if self.unsent:
            events, self.unsent = self.unsent, []
            _put(self.account, self.region, self.group, self.stream, events)

    def view(self):
        return {"pid": self.proc.pid, "function_name": self.name, "function_arn": self.function_arn,
                "version": self.version, "account": self.account, "region": self.region,
                "subnet_ids": self.subnet_ids, "security_group_ids": self.security_group_ids}


# ---- Pools: instances and counters per function ----------------------------------------

_cond = threading.Condition()
_pools = {}  # (account, region, name) -> Pool


class Pool:
    def __init__(self):
        self.instances = []
        self.counts = Counter()


def _cap(account, region, fn):
    """ReservedConcurrentExecutions (function-wide, so read from $LATEST), else the
    emulator's per-function cap."""
    reserved = lambda_backends[account][region].get_function(fn.function_name).reserved_concurrency
    if reserved not in (None, ""):
        return int(reserved)
    return int(os.environ.get("DEPLOY_EMULATOR_LAMBDA_CONCURRENCY") or DEFAULT_CONCURRENCY)


def _acquire(account, region, fn, signature, wait):
    """A warm idle instance for this signature, or a new one (cold) while under the cap;
    else waits up to `wait` seconds (None: as long as it takes) for either."""
    deadline = None if wait is None else time.monotonic() + wait
    cap = _cap(account, region, fn)
    with _cond:
        pool = _pools.setdefault((account, region, fn.function_name), Pool())
        while True:
            for inst in pool.instances:
                if inst.signature == signature and inst.state == "idle":
                    inst.state = "busy"
                    return inst, False
            if len(pool.instances) >= cap:
                # An idle instance of another version or configuration makes room.
                spare = next((i for i in pool.instances if i.state == "idle"), None)
                if spare is not None:
                    _retire_locked(spare)
                    spare.kill()
            if len(pool.instances) < cap:
                inst = Instance(account, region, fn, signature)
                pool.instances.append(inst)
                pool.counts["cold_starts"] += 1
                return inst, True
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                pool.counts["throttles"] += 1
                raise Throttled(f"{fn.function_name}: {cap} instances busy")
            _cond.wait(remaining)


def _retire_locked(inst):
    inst.state = "dead"
    pool = _pools.get((inst.account, inst.region, inst.name))
    if pool is not None and inst in pool.instances:
        pool.instances.remove(inst)
    _cond.notify_all()


def _retire(inst):
    with _cond:
        _retire_locked(inst)


def _release(inst):
    with _cond:
        inst.tail_target = None
        if inst.state == "busy":
            inst.state = "idle"
            _cond.notify_all()


def _signature(fn):
    """What makes an execution environment: the version, its code and configuration."""
    return json.dumps([str(fn.version), fn.code_sha_256, fn.environment_vars, fn.memory_size, fn.timeout, fn.handler,
                       fn.run_time, fn.architectures, fn._vpc_config], sort_keys=True, default=str)


def _reap_stale(account, region, name):
    """Stops idle instances whose version and configuration neither $LATEST nor an alias
    points to any more (updated, republished or deleted functions)."""
    backend = lambda_backends[account][region]
    live = set()
    try:
        live.add(_signature(backend.get_function(name)))
        for alias in backend.list_aliases(name):
            live.add(_signature(backend.get_function(name, alias.function_version)))
    except LambdaClientError:
        pass  # deleted: nothing is live
    with _cond:
        pool = _pools.get((account, region, name))
        for inst in list(pool.instances if pool else []):
            if inst.state == "idle" and inst.signature not in live:
                _retire_locked(inst)
                inst.kill()


# ---- Code and process ------------------------------------------------------------------

_unpack_lock = threading.Lock()


def _code_root():
    run_dir = os.environ.get("DEPLOY_EMULATOR_RUN_DIR") or os.path.join(
        tempfile.gettempdir(), f"deploy-emulator-{os.environ.get('DEPLOY_EMULATOR_PORT', '0')}")
    return Path(run_dir) / "lambda-code"


def _unpacked(code):
    """The directory holding this zip's files (with their permissions), unpacked once per
    code hash."""
    digest = hashlib.sha256(code).hexdigest()
    root = _code_root() / digest
    with _unpack_lock:
        if not root.is_dir():
            partial = root.with_name(digest + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            partial.mkdir(parents=True)
            try:
                with zipfile.ZipFile(io.BytesIO(code)) as z:
                    for info in z.infolist():
                        _extract(z, info, partial)
            except (zipfile.BadZipFile, OSError, ValueError) as e:
                shutil.rmtree(partial, ignore_errors=True)
                raise EntrypointError(f"Could not unzip the function's code: {e}") from None
            partial.rename(root)
    return str(root)


def _extract(z, info, dest):
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        target = os.path.normpath(os.path.join(dest, info.filename))
        if not target.startswith(str(dest) + os.sep):
            raise ValueError(f"{info.filename} points outside the package")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(z.read(info).decode(), target)
        return
    path = z.extract(info, dest)
    if not info.is_dir():
        # Lambda keeps the zip's Unix permissions: a bootstrap without +x cannot start.
        os.chmod(path, (mode & 0o7777) if mode & 0o777 else 0o644)


def _elf_machine(path):
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if len(head) < 20 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[18:20], "little" if head[5] == 1 else "big")


def _command(bootstrap, arch):
    """How to start `bootstrap` for the function's architecture: directly, or under
    qemu-user for the other architecture (never natively as the wrong one)."""
    if not os.path.lexists(bootstrap):
        raise EntrypointError(f"Couldn't find valid bootstrap(s): [{bootstrap} /opt/bootstrap]")
    machine = _elf_machine(bootstrap)
    if machine is not None and machine != ELF_MACHINE.get(arch):
        raise EntrypointError(f"fork/exec {bootstrap}: exec format error")
    # A script runs on the platform's own interpreter, whatever the architecture.
    if machine is None or arch == HOST_ARCH:
        return [bootstrap]
    cpu = QEMU_CPU[arch]
    qemu = shutil.which(f"qemu-{cpu}-static") or shutil.which(f"qemu-{cpu}")
    if qemu is None:
        raise EntrypointError(f"fork/exec {bootstrap}: exec format error (this {HOST_ARCH} machine runs {arch} functions "
                              f"under qemu-{cpu}-static or qemu-{cpu}, and neither is on PATH: install qemu-user-static)")
    sysroot = f"/usr/{cpu}-linux-gnu"  # Debian's libc6-{arch}-cross, for dynamically linked binaries
    return [qemu, *(["-L", sysroot] if os.path.isdir(sysroot) else []), bootstrap]


def _environment(fn, inst, root, port):
    """Exactly what Lambda gives a process: the version's variables and Lambda's own,
    nothing from the emulator's environment."""
    unreserved = {"PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin", "LANG": "en_US.UTF-8", "TZ": ":UTC"}
    if os.environ.get("DEPLOY_EMULATOR_CA_BUNDLE"):
        unreserved["SSL_CERT_FILE"] = os.environ["DEPLOY_EMULATOR_CA_BUNDLE"]
    reserved = {
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": inst.name,
        "AWS_LAMBDA_FUNCTION_VERSION": inst.version,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(inst.memory),
        "AWS_REGION": inst.region,
        "AWS_DEFAULT_REGION": inst.region,
        "AWS_LAMBDA_LOG_GROUP_NAME": inst.group,
        "AWS_LAMBDA_LOG_STREAM_NAME": inst.stream,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "_HANDLER": fn.handler or "",
        "LAMBDA_TASK_ROOT": root,
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        # Not set by Lambda: it points the function's SDK calls at this local cloud.
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{os.environ.get('DEPLOY_EMULATOR_PORT', '5000')}",
    }
    if fn.run_time and not fn.run_time.startswith("provided"):
        reserved["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{fn.run_time}"  # not defined for OS-only runtimes
    return {**unreserved, **{k: str(v) for k, v in (fn.environment_vars or {}).items()}, **reserved}


# ---- CloudWatch Logs (moto's backend, in-process) --------------------------------------

_logs_lock = threading.Lock()  # moto's logs backend is not thread-safe


def _open_stream(account, region, group, stream):
    backend = logs_backends[account][region]
    with _logs_lock:
        if group not in backend.groups:
            backend.create_log_group(group, tags={})  # as Lambda does: no retention
        if stream not in backend.groups[group].streams:
            backend.create_log_stream(group, stream)


def _put(account, region, group, stream, events):
    try:
        with _logs_lock:
            logs_backends[account][region].put_log_events(group, stream, events)
    except Exception:  # the group was deleted under the function: Lambda recreates it
        _open_stream(account, region, group, stream)
        with _logs_lock:
            logs_backends[account][region].put_log_events(group, stream, events)


# ---- Invoke ----------------------------------------------------------------------------

def _parse(account, region, function, qualifier):
    """(account, region, name, qualifier) of a name, partial ARN or ARN, maybe qualified."""
    m = FULL_ARN.fullmatch(function)
    if m:
        region, account, name, qual = m.groups()
    elif (m := PARTIAL_ARN.fullmatch(function)):
        account, name, qual = m.groups()
    elif (m := NAME.fullmatch(function)):
        name, qual = m.groups()
    else:
        name, qual = function, None
    return account, region, name, qualifier or qual


def _resolve(account, region, name, qualifier):
    """The moto model of the invoked version (aliases resolved); moto's not-found error."""
    return lambda_backends[account][region].get_function(name, qualifier)


def _execute(account, region, fn, invoked_arn, request_id, payload, client_context, log_tail, wait):
    signature = _signature(fn)
    inst, cold = _acquire(account, region, fn, signature, wait)
    inv = Invocation(request_id, payload, invoked_arn, client_context)
    inst.tail_target = inv
    try:
        if cold:
            _reap_stale(account, region, fn.function_name)
        inst.run(inv, fn if cold else None)
    finally:
        _release(inst)
    with _cond:
        counts = _pools[(account, region, fn.function_name)].counts
        counts["invocations"] += 1
        counts["errors"] += bool(inv.function_error)
        counts["timeouts"] += inv.timed_out
    tail = ""
    if log_tail:
        tail = ("\n".join(inv.log) + "\n").encode()[-TAIL_BYTES:].decode(errors="ignore")
    return {"status": 200, "request_id": request_id, "payload": inv.response, "function_error": inv.function_error,
            "executed_version": str(fn.version), "log_tail": tail}


def _run_async(*args):
    try:
        _execute(*args)
    except Exception as e:  # nobody waits for the outcome: say it in the emulator's log
        print(f"lambda_runtime: asynchronous invocation failed: {type(e).__name__}: {e}", file=sys.stderr, flush=True)


def _invoke(fn, account, region, name, qualifier, payload, asynchronous, log_tail, client_context=None):
    """Runs the resolved version `fn`: in the background when asynchronous."""
    partition = get_partition(region)
    invoked_arn = f"arn:{partition}:lambda:{region}:{account}:function:{name}" + (f":{qualifier}" if qualifier else "")
    request_id = str(uuid.uuid4())
    if asynchronous:
        # The event queue holds it until an instance is free: no throttling error.
        args = (account, region, fn, invoked_arn, request_id, payload, client_context, False, None)
        threading.Thread(target=_run_async, args=args, daemon=True).start()
        return {"status": 202, "request_id": request_id, "payload": b"", "function_error": None,
                "executed_version": str(fn.version), "log_tail": ""}
    return _execute(account, region, fn, invoked_arn, request_id, payload, client_context, log_tail, THROTTLE_WAIT)


def invoke(account, region, function, qualifier=None, payload=b"", asynchronous=False, log_tail=False):
    """Invokes a function as Lambda's Invoke does (see the module's docstring)."""
    account, region, name, qualifier = _parse(account, region, function, qualifier)
    if isinstance(payload, str):
        payload = payload.encode()
    try:
        fn = _resolve(account, region, name, qualifier)
    except (LambdaClientError, KeyError) as e:
        if isinstance(e, LambdaClientError) and e.error_type != "ResourceNotFoundException":
            raise
        raise NotFound(f"{function}{':' + qualifier if qualifier else ''}: {e}") from None
    return _invoke(fn, account, region, name, qualifier, bytes(payload), asynchronous, log_tail)


def instances():
    """Every running instance (see the module's docstring)."""
    with _cond:
        return [i.view() for pool in _pools.values() for i in pool.instances if i.proc is not None and i.state != "dead"]


# ---- moto: Invoke over HTTP, versions that keep their code, deletes --------------------

def _http_invoke(self):
    """LambdaResponse.invoke: runs the function instead of moto's Docker path."""
    m = INVOCATIONS.match(urlsplit(self.path).path)
    account, region, name, qualifier = _parse(self.current_account, self.region, unquote(m.group(1)) if m else "",
                                              self.querystring.get("Qualifier", [None])[0])
    kind = self.headers.get("X-Amz-Invocation-Type") or "RequestResponse"
    payload = self.raw_body or b""
    if isinstance(payload, str):
        payload = payload.encode()
    if len(payload) > MAX_REQUEST:
        raise RequestTooLarge()
    if payload:
        try:
            json.loads(payload)
        except ValueError as e:
            raise InvalidRequestContent(e) from None
    fn = _resolve(account, region, name, qualifier)
    # moto takes the status from the headers, and its own request id unless told (below).
    if kind == "DryRun":
        return 204, {"status": 204}, ""
    context = self.headers.get("X-Amz-Client-Context")
    if context:
        try:
            context = base64.b64decode(context).decode()
        except ValueError:
            pass
    try:
        result = _invoke(fn, account, region, name, qualifier, payload, kind == "Event",
                         self.headers.get("X-Amz-Log-Type") == "Tail", context)
    except Throttled:
        raise TooManyRequests() from None
    if kind == "Event":
        return 202, {"status": 202, "x-amzn-requestid": result["request_id"]}, ""
    headers = {"Content-Type": "application/json", "X-Amz-Executed-Version": result["executed_version"],
               "x-amzn-requestid": result["request_id"]}
    if result["function_error"]:
        headers["X-Amz-Function-Error"] = result["function_error"]
    if self.headers.get("X-Amz-Log-Type") == "Tail":
        headers["X-Amz-Log-Result"] = base64.b64encode(result["log_tail"].encode()).decode()
    return 200, headers, result["payload"]


def _http_invoke_async(self):
    """LambdaResponse.invoke_async (the deprecated InvokeAsync): an Event invocation."""
    name = unquote(self.path.rstrip("/").rsplit("/", 2)[-2])
    account, region, name, qualifier = _parse(self.current_account, self.region, name, None)
    fn = _resolve(account, region, name, qualifier)
    _invoke(fn, account, region, name, qualifier, self.raw_body or b"", True, False)
    return 202, {"status": 202}, json.dumps({"Status": 202})


def install():
    LambdaResponse.invoke = _http_invoke
    LambdaResponse.invoke_async = _http_invoke_async
    original_enrich = LambdaResponse._enrich_response

    def enrich_response(headers, body):
        # The invocation's request id is the response's, as on AWS (moto draws its own).
        request_id = headers.get("x-amzn-requestid")
        headers, body = original_enrich(headers, body)
        if request_id:
            headers["x-amzn-requestid"] = request_id
        return headers, body

    LambdaResponse._enrich_response = staticmethod(enrich_response)

    original_publish = LambdaStorage.publish_version
    original_delete = LambdaBackend.delete_function

    highest = {}  # (account, region, function) -> highest version number ever published

    def publish_version(self, name_or_arn, description=""):
        # moto's version is a shallow copy of $LATEST sharing its `code` dict, which a
        # later UpdateFunctionCode rewrites; a version keeps what it was published with.
        latest = self.get_function_by_name_or_arn_forbid_qualifier(name_or_arn)
        versions = self._functions.get(latest.function_name, {}).get("versions", [])
        before = len(versions)
        key = (latest.account_id, latest.region, latest.function_name)
        highest[key] = max([highest.get(key, 0)] + [int(v.version) for v in versions if str(v.version).isdigit()])
        fn = original_publish(self, name_or_arn, description)
        if fn is not None and len(versions) > before:
            # Lambda never reuses a version number, even after versions are deleted;
            # moto numbers them by count.
            self._arns.pop(fn.function_arn, None)
            fn.set_version(highest[key] + 1)
            self._arns[fn.function_arn] = fn
            highest[key] += 1
        if fn is not None:
            fn.code = dict(fn.code)
        return fn

    def delete_function(self, function_name, qualifier=None):
        original_delete(self, function_name, qualifier)
        _, _, name, _ = _parse(self.account_id, self.region_name, function_name, None)
        if qualifier is None:
            # A new function of the same name starts again at version 1.
            highest.pop((self.account_id, self.region_name, name), None)
        _reap_stale(self.account_id, self.region_name, name)

    LambdaStorage.publish_version = publish_version
    LambdaBackend.delete_function = delete_function


# ---- Control endpoint and shutdown -----------------------------------------------------

COUNTERS = ("invocations", "cold_starts", "errors", "timeouts", "throttles")


def control(environ, start_response):
    """GET /_deploy/lambda/functions: counters and live instances per function (DELETE
    resets the counters); GET /_deploy/lambda/instances: instances(); DELETE stops them
    all (the next invocations start afresh)."""
    def reply(status, body):
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    path, method = environ.get("PATH_INFO"), environ["REQUEST_METHOD"]
    if path == "/_deploy/lambda/instances":
        if method == "DELETE":
            return reply("200 OK", {"stopped": len(_stop_all())})
        return reply("200 OK", instances())
    if path != "/_deploy/lambda/functions":
        return reply("404 Not Found", {"message": "unknown control path"})
    with _cond:
        if method == "DELETE":
            for pool in _pools.values():
                pool.counts.clear()
        out = {}
        for (_, _, name), pool in _pools.items():
            entry = out.setdefault(name, {**dict.fromkeys(COUNTERS, 0), "instances": []})
            for key in COUNTERS:
                entry[key] += pool.counts[key]
            entry["instances"] += [{"pid": i.proc.pid, "version": i.version, "state": i.state}
                                   for i in pool.instances if i.proc is not None]
    return reply("200 OK", out)


def _stop_all():
    with _cond:
        everything = [i for pool in _pools.values() for i in pool.instances]
        for inst in everything:
            _retire_locked(inst)
    for inst in everything:
        inst.kill()
    return everything


def shutdown():
    _stop_all()
