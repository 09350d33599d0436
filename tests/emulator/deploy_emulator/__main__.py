"""Runs moto's server with this project's extensions: ElastiCache Serverless, NAT
gateways that stay pending for a while, the call counter and hostile mode."""

import argparse
import atexit
import os
import signal
import sys
import time

from werkzeug.serving import run_simple


def main():
    p = argparse.ArgumentParser(prog="deploy_emulator")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--hostile", action="store_true")
    p.add_argument("--profile", choices=["fast", "hostile", "realistic"])
    p.add_argument("--scale", type=float, default=0.01)
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--seed", type=int)
    a = p.parse_args()
    os.environ["DEPLOY_EMULATOR_PROFILE"] = a.profile or ("hostile" if a.hostile else "fast")
    os.environ["DEPLOY_EMULATOR_SCALE"] = str(a.scale)
    os.environ.setdefault("MOTO_PORT", str(a.port))

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    from . import apigateway, nat, serverless
    from .middleware import Emulator

    serverless.install()
    apigateway.install()
    nat.install()
    atexit.register(serverless.shutdown)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(0))
    app = Emulator(DomainDispatcherApplication(create_backend_app), hostile=a.hostile, latency_ms=a.latency_ms, seed=a.seed)
    run_simple("127.0.0.1", a.port, app, threaded=True, use_reloader=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
