"""Runs moto's server with this project's extensions: ElastiCache Serverless on a real
Valkey behind a TLS front that enforces security groups, NAT gateways that stay
pending for a while, a Lambda runtime that executes the deployed `bootstrap`, the API
Gateway REST data plane with the Cognito authorizer, schedules that fire, the call
counter and hostile mode."""

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
    p.add_argument("--schedule-scale", type=float, default=1.0,
                   help="multiplies schedule periods (tests: 0.001 turns rate(6 hours) into 21.6 s)")
    a = p.parse_args()
    os.environ["DEPLOY_EMULATOR_PROFILE"] = a.profile or ("hostile" if a.hostile else "fast")
    os.environ["DEPLOY_EMULATOR_SCALE"] = str(a.scale)
    os.environ.setdefault("MOTO_PORT", str(a.port))
    os.environ["DEPLOY_EMULATOR_PORT"] = str(a.port)
    os.environ["DEPLOY_EMULATOR_SCHEDULE_SCALE"] = str(a.schedule_scale)

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

    from . import apigateway, cache_front, gateway, lambda_runtime, nat, schedules, serverless
    from .middleware import Emulator

    serverless.install()
    apigateway.install()
    nat.install()
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
    run_simple("127.0.0.1", a.port, app, threaded=True, use_reloader=False, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
