"""Runs moto's server with this project's extensions: ElastiCache Serverless on a real
Valkey behind a TLS front that enforces security groups, NAT gateways that stay
pending for a while, a Lambda runtime that executes the deployed `bootstrap`, the API
Gateway REST data plane with the Cognito authorizer, schedules that fire, S3's
conditional writes as one atomic step, the call counter and hostile mode."""

import argparse
import atexit
import os
import signal
import socket
import sys

from werkzeug.exceptions import ClientDisconnected, InternalServerError
from werkzeug.serving import run_simple
from werkzeug.wsgi import LimitedStream


def _handler(base):
    """werkzeug's request handler with HTTP/1.1 keep-alive, as AWS's endpoints and API
    Gateway have: werkzeug's own answers `Connection: close` to every request, so each
    call paid a new connection, a new thread and a drain of the socket, and wrote its
    head and body apart."""

    class KeepAlive(base):
        protocol_version = "HTTP/1.1"

        def setup(self):
            super().setup()
            # One write per response, but a chunked one is several: never wait for ACKs.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def run_wsgi(self):
            # http.server has answered `Expect: 100-continue` already.
            environ = self.environ = self.make_environ()
            body = None
            if environ.get("wsgi.input_terminated"):
                self.close_connection = True  # a chunked body: werkzeug's dechunker leaves its end unread
            else:
                body = environ["wsgi.input"] = LimitedStream(self.rfile, int(environ.get("CONTENT_LENGTH") or 0))
            state = {}

            def start_response(status, headers, exc_info=None):
                if exc_info and "sent" in state:
                    raise exc_info[1].with_traceback(exc_info[2])
                state["status"], state["headers"] = status, headers
                return write

            def write(data):
                head = b""
                if "sent" not in state:
                    state["sent"] = True
                    head = self._head(environ, state)
                if environ["REQUEST_METHOD"] == "HEAD":
                    data = b""
                elif state["chunked"] and data:
                    data = b"%x\r\n%s\r\n" % (len(data), data)
                if head or data:
                    self.wfile.write(head + data)  # the head goes with the first data: one packet

            def execute(app):
                result = app(environ, start_response)
                try:
                    for data in result:
                        write(data)
                    if "sent" not in state:
                        write(b"")
                    if state["chunked"]:
                        self.wfile.write(b"0\r\n\r\n")
                finally:
                    if hasattr(result, "close"):
                        result.close()
                    if "sent" in state:
                        self.log_request(state["code"])  # once answered: the client does not wait for it
                if body is not None:
                    try:
                        body.exhaust()  # what the application left unread precedes the next request
                    except ClientDisconnected:
                        self.close_connection = True

            try:
                execute(self.server.app)
            except self.connection_dropped_errors as e:
                self.close_connection = True
                self.connection_dropped(e, environ)
            except Exception as e:
                if self.server.passthrough_errors:
                    raise
                self.close_connection = True
                if "sent" not in state:
                    try:
                        state.clear()
                        execute(InternalServerError())
                    except Exception:
                        pass
                from werkzeug.debug.tbtools import DebugTraceback

                self.server.log("error", f"Error on request:\n{DebugTraceback(e).render_traceback_text()}")

        def _head(self, environ, state):
            """The status line and headers; decides the framing and whether the
            connection stays open."""
            code, _, reason = state["status"].partition(" ")
            code = state["code"] = int(code)
            names = {k.lower() for k, _ in state["headers"]}
            framed = ("content-length" in names or environ["REQUEST_METHOD"] == "HEAD"
                      or 100 <= code < 200 or code in (204, 304))
            state["chunked"] = not framed and self.request_version >= "HTTP/1.1"
            if not framed and not state["chunked"]:
                self.close_connection = True  # an HTTP/1.0 client reads the body until the end
            if any(k.lower() == "connection" and v.lower() == "close" for k, v in state["headers"]):
                self.close_connection = True
            lines = [f"{self.protocol_version} {code} {reason}", f"Server: {self.version_string()}",
                     f"Date: {self.date_time_string()}", *(f"{k}: {v}" for k, v in state["headers"])]
            if state["chunked"]:
                lines.append("Transfer-Encoding: chunked")
            if self.close_connection and "connection" not in names:
                lines.append("Connection: close")
            return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    return KeepAlive


def main():
    p = argparse.ArgumentParser(prog="deploy_emulator")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--hostile", action="store_true")
    p.add_argument("--profile", choices=["fast", "hostile", "realistic"])
    p.add_argument("--scale", type=float, default=0.01)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--seed", type=int)
    p.add_argument("--lose-responses", type=float, metavar="RATE",
                   help="hostile mode: share of create calls that take effect but answer 500 (default 0.1)")
    p.add_argument("--schedule-scale", type=float, default=1.0,
                   help="multiplies schedule periods (tests: 0.001 turns rate(6 hours) into 21.6 s)")
    a = p.parse_args()
    os.environ["DEPLOY_EMULATOR_PROFILE"] = a.profile or ("hostile" if a.hostile else "fast")
    os.environ["DEPLOY_EMULATOR_SCALE"] = str(a.scale)
    os.environ.setdefault("MOTO_PORT", str(a.port))
    os.environ["DEPLOY_EMULATOR_PORT"] = str(a.port)
    os.environ["DEPLOY_EMULATOR_SCHEDULE_SCALE"] = str(a.schedule_scale)
    if a.lose_responses is not None:
        os.environ["DEPLOY_EMULATOR_LOST"] = str(a.lose_responses)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    from . import apigateway, cache_front, cognito, gateway, lambda_runtime, nat, s3, schedules, security_groups, serverless
    from .middleware import Emulator

    serverless.install()
    apigateway.install()
    apigateway.install_rest_api_tags()
    nat.install()
    cognito.install()
    security_groups.install()
    s3.install()
    cache_front.install()
    lambda_runtime.install()
    gateway.install()
    schedules.install()
    atexit.register(schedules.shutdown)
    atexit.register(lambda_runtime.shutdown)
    atexit.register(serverless.shutdown)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    app = Emulator(DomainDispatcherApplication(create_backend_app), hostile=a.hostile, latency_ms=a.latency_ms, seed=a.seed)
    run_simple("127.0.0.1", a.port, app, threaded=True, use_reloader=False, request_handler=_handler(MotoRequestHandler))


if __name__ == "__main__":
    main()
