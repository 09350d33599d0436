"""WSGI middleware in front of moto: counts calls per service and action, adds
latency, makes S3's conditional writes atomic, and in hostile mode behaves like real
AWS where moto is kinder — throttling, 5xx, not-found right after create,
DependencyViolation while Lambda ENIs linger, IAM propagation errors, S3's 409 for
racing conditional writes — each in its service's own error format."""

import io
import json
import os
import random
import re
import sys
import threading
import time
import uuid
from collections import Counter
from urllib.parse import parse_qs, unquote

from . import gateway, lambda_runtime, s3, schedules, timing

QUERY_XML = {"iam", "sts", "elasticache"}
JSON_SERVICES = {"ssm", "events", "cognito-idp"}
REST_JSON = {"lambda", "apigateway"}
THROTTLE = {
    "ec2": ("RequestLimitExceeded", 503),
    "iam": ("Throttling", 400),
    "sts": ("Throttling", 400),
    "elasticache": ("Throttling", 400),
    "ssm": ("ThrottlingException", 400),
    "events": ("ThrottlingException", 400),
    "cognito-idp": ("TooManyRequestsException", 400),
    "lambda": ("TooManyRequestsException", 429),
    "apigateway": ("TooManyRequestsException", 429),
    "s3": ("SlowDown", 503),
}
EC2_NOT_FOUND = {
    "vpc": ("VpcId", "InvalidVpcID.NotFound"),
    "subnet": ("SubnetId", "InvalidSubnetID.NotFound"),
    "sg": ("GroupId", "InvalidGroup.NotFound"),
    "igw": ("InternetGatewayId", "InvalidInternetGatewayID.NotFound"),
    "rtb": ("RouteTableId", "InvalidRouteTableID.NotFound"),
    "nat": ("NatGatewayId", "NatGatewayNotFound"),
}
# Calls that create something, whose response hostile mode may lose after the work is
# done: the case that makes a blind retry create a second object.
LOSABLE = {
    "CreateVpc", "CreateSubnet", "CreateInternetGateway", "AllocateAddress", "CreateNatGateway",
    "CreateRouteTable", "CreateSecurityGroup", "AuthorizeSecurityGroupIngress",
    "AuthorizeSecurityGroupEgress", "CreateUserPool", "CreateUserPoolClient", "POST /restapis",
    "CreateServerlessCache", "CreateRole", "CreateFunction", "PutParameter", "PutRule",
    "AddPermission", "CreateLogGroup", "PutObject", "DeleteObject",
}
LAMBDA_PATH = re.compile(r"^/2015-03-31/functions/?([^/]*)/?(.*)$")


def _service(environ):
    auth = environ.get("HTTP_AUTHORIZATION", "")
    m = re.search(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request", auth)
    return m.group(1) if m else "unknown"


def _action(service, environ, body):
    if service == "s3":
        return s3.action(environ)
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return target.split(".")[-1]
    if service in REST_JSON:
        method, path = environ["REQUEST_METHOD"], environ.get("PATH_INFO", "")
        m = LAMBDA_PATH.match(path)
        if service == "lambda" and m:
            name, rest = m.groups()
            if not name:
                return {"POST": "CreateFunction", "GET": "ListFunctions"}.get(method, method)
            if not rest:
                return {"GET": "GetFunction", "DELETE": "DeleteFunction"}.get(method, method)
            key = (method, rest.split("/")[0])
            return {
                ("PUT", "configuration"): "UpdateFunctionConfiguration",
                ("GET", "configuration"): "GetFunctionConfiguration",
                ("PUT", "code"): "UpdateFunctionCode",
                ("POST", "versions"): "PublishVersion",
                ("POST", "invocations"): "Invoke",
                ("POST", "aliases"): "CreateAlias",
                ("PUT", "aliases"): "UpdateAlias",
                ("GET", "aliases"): "GetAlias",
                ("POST", "policy"): "AddPermission",
                ("GET", "policy"): "GetPolicy",
                ("DELETE", "policy"): "RemovePermission",
            }.get(key, f"{method} {rest.split('/')[0]}")
        parts = [p for p in path.split("/") if p]
        shape = "/".join("{}" if i % 2 else p for i, p in enumerate(parts))
        return f"{method} /{shape}"
    params = parse_qs(body.decode(errors="replace")) if body else {}
    if not params:
        params = parse_qs(environ.get("QUERY_STRING", ""))
    return (params.get("Action") or ["Unknown"])[0]


class Emulator:
    def __init__(self, app, hostile=False, latency_ms=0.0, seed=None):
        self.app = app
        self.hostile = hostile
        self.latency = latency_ms / 1000.0
        self.rng = random.Random(seed)
        self.calls = Counter()
        self.lock = threading.Lock()
        self.created = {}          # EC2 id -> creation time (eventual consistency)
        self.roles = {}            # role ARN -> creation time (IAM propagation)
        self.vpc_functions = {}    # function name -> (subnets, groups)
        self.lingering = {}        # subnet or group id -> until (ENIs left by deleted functions)
        self.throttle_rate = float(os.environ.get("DEPLOY_EMULATOR_THROTTLE", "0.08"))
        self.error_rate = float(os.environ.get("DEPLOY_EMULATOR_5XX", "0.03"))
        # Creates that take effect but whose response is lost (a 500 after the work).
        self.lost_rate = float(os.environ.get("DEPLOY_EMULATOR_LOST", "0.1"))
        self.lost = Counter()

    # Responses in each protocol's own error format.
    def error(self, start_response, service, code, message, status, method=None):
        request_id = str(uuid.uuid4())
        print(f"hostile: {service}.{getattr(self, 'current_action', '?')} -> {code} ({status}): {message}", file=sys.stderr, flush=True)
        if service == "s3":
            return s3.error(start_response, method, code, message, status)
        if service == "ec2":
            body = f'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>{code}</Code><Message>{message}</Message></Error></Errors><RequestID>{request_id}</RequestID></Response>'
            headers = [("Content-Type", "text/xml")]
        elif service in QUERY_XML:
            kind = "Receiver" if status >= 500 else "Sender"
            body = f'<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>{request_id}</RequestId></ErrorResponse>'
            headers = [("Content-Type", "text/xml")]
        elif service in JSON_SERVICES:
            body = json.dumps({"__type": code, "message": message})
            headers = [("Content-Type", "application/x-amz-json-1.1")]
        else:
            body = json.dumps({"message": message, "Type": "User"})
            headers = [("Content-Type", "application/json"), ("X-Amzn-ErrorType", code)]
        headers.append(("x-amzn-RequestId", request_id))
        reason = {400: "Bad Request", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}.get(status, "Error")
        start_response(f"{status} {reason}", headers)
        return [body.encode()]

    def control(self, environ, start_response):
        def reply(status, kind, body):
            # A length, so plain HTTP/1.0 clients get a plain (unchunked) body.
            start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
            return [body]

        path = environ.get("PATH_INFO", "")
        if path == "/_deploy/health":
            return reply("200 OK", "text/plain", b"ok")
        if path == "/_deploy/calls":
            with self.lock:
                if environ["REQUEST_METHOD"] == "DELETE":
                    self.calls.clear()
                data = {"total": sum(self.calls.values()), "calls": dict(sorted(self.calls.items())), "lost": dict(sorted(self.lost.items()))}
            return reply("200 OK", "application/json", json.dumps(data).encode())
        return reply("404 Not Found", "text/plain", b"unknown control path")

    def injected(self, service, action, params_text, environ, start_response):
        now = time.monotonic()
        method = environ["REQUEST_METHOD"]
        if self.rng.random() < self.throttle_rate:
            code, status = THROTTLE.get(service, ("ThrottlingException", 400))
            message = "Please reduce your request rate." if service == "s3" else "Rate exceeded"
            return self.error(start_response, service, code, message, status, method)
        if self.rng.random() < self.error_rate:
            if service == "s3":
                code, status, message = self.rng.choice(s3.SERVER_ERRORS)
                return self.error(start_response, service, code, message, status, method)
            return self.error(start_response, service, "ServiceUnavailable" if service != "ec2" else "Unavailable", "Service is temporarily unavailable", 503)
        if service == "s3" and s3.is_conditional_write(action, environ) and self.rng.random() < self.throttle_rate:
            # Real S3 answers this to a conditional write that races another write of
            # the key; the client is to read the ETag again and retry.
            return self.error(start_response, service, "ConditionalRequestConflict",
                              "The conditional request cannot succeed due to a conflicting operation against this resource.", 409, method)
        if service == "ec2" and action.startswith("Describe"):
            for ident, born in list(self.created.items()):
                if now - born < timing.seconds("consistency") and ident in params_text:
                    prefix = ident.split("-")[0]
                    _, code = EC2_NOT_FOUND.get(prefix, ("", "InvalidID.NotFound"))
                    return self.error(start_response, service, code, f"The ID '{ident}' does not exist", 400)
        if service == "ec2" and action in ("DeleteSecurityGroup", "DeleteSubnet"):
            for ident, until in list(self.lingering.items()):
                if now < until and ident in params_text:
                    return self.error(start_response, service, "DependencyViolation", f"resource {ident} has a dependent object (a Lambda network interface)", 400)
        if service == "lambda" and action == "CreateFunction":
            for arn, born in self.roles.items():
                if now - born < timing.seconds("iam_propagation") and arn in params_text:
                    return self.error(start_response, service, "InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda.", 400)
        return None

    def observe(self, service, action, params_text, response_body):
        """Remembers what the hostile rules need: fresh ids, roles, VPC functions."""
        now = time.monotonic()
        text = response_body.decode(errors="replace")
        if service == "ec2" and action.startswith("Create"):
            for ident in re.findall(r"<(?:vpcId|subnetId|groupId|internetGatewayId|routeTableId|natGatewayId)>([a-z]+-[0-9a-f]+)</", text)[:1]:
                self.created[ident] = now
        if service == "iam" and action == "CreateRole":
            m = re.search(r"<Arn>([^<]+)</Arn>", text)
            if m:
                self.roles[m.group(1)] = now
        if service == "lambda" and action in ("CreateFunction", "UpdateFunctionConfiguration"):
            try:
                cfg = json.loads(text)
                vpc = cfg.get("VpcConfig") or {}
                if vpc.get("SubnetIds"):
                    self.vpc_functions[cfg["FunctionName"]] = (vpc.get("SubnetIds", []), vpc.get("SecurityGroupIds", []))
            except (ValueError, KeyError):
                pass
        if service == "lambda" and action == "DeleteFunction":
            m = LAMBDA_PATH.match(params_text.split(" ", 1)[-1])
            name = unquote(m.group(1)).split(":")[-1] if m else ""
            for ident in sum(map(list, self.vpc_functions.pop(name, ([], []))), []):
                self.lingering[ident] = now + timing.seconds("eni_linger")

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        # The data planes come first: hostile mode and injected latency are the control
        # plane's, as on AWS.
        if gateway.is_data_plane(path):
            return gateway.serve(environ, start_response)
        if path.startswith("/_deploy/lambda/"):
            return lambda_runtime.control(environ, start_response)
        if path.startswith("/_deploy/events/"):
            return schedules.control(environ, start_response)
        if path.startswith("/_deploy/"):
            return self.control(environ, start_response)
        if environ.get("wsgi.input_terminated"):
            body = environ["wsgi.input"].read()  # a chunked body, dechunked by the server
        else:
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        service = _service(environ)
        action = _action(service, environ, body)
        with self.lock:
            self.calls[f"{service}.{action}"] += 1
        delay = self.latency + timing.seconds("call")
        if delay:
            time.sleep(delay)
        params_text = f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')} {unquote(body.decode(errors='replace'))}"
        if self.hostile:
            with self.lock:
                self.current_action = action
                refused = self.injected(service, action, params_text, environ, start_response)
            if refused is not None:
                return refused
        captured = {}

        def capture(status, headers, exc_info=None):
            # Held back until the response is known to be delivered (hostile mode
            # may lose it).
            captured["status"], captured["headers"], captured["exc_info"] = status, headers, exc_info

            def write(_data):
                raise RuntimeError("the emulator's apps return their bodies")

            return write

        chunks = s3.serve(self.app, action, environ, capture) if service == "s3" else list(self.app(environ, capture))
        succeeded = captured.get("status", "").startswith("2")
        if self.hostile and succeeded:
            with self.lock:
                self.observe(service, action, params_text, b"".join(chunks))
                lose = action in LOSABLE and self.rng.random() < self.lost_rate
            if lose:
                # The call took effect; its answer never arrives.
                with self.lock:
                    self.lost[f"{service}.{action}"] += 1
                code = "InternalError" if service in ("ec2", "iam", "s3") else "InternalFailure"
                return self.error(start_response, service, code, "We encountered an internal error. Please try again. (the emulator did the work and lost the response)", 500,
                                  environ["REQUEST_METHOD"])
        start_response(captured["status"], captured["headers"], captured["exc_info"])
        return chunks
