"""The API Gateway REST data plane. A stage answers at
`http://127.0.0.1:PORT/restapis/{api_id}/{stage}/_user_request_/{path}` (this machine
resolves no `*.execute-api.amazonaws.com` names) with the definition of the deployment
it points to (the snapshots apigateway.py keeps): resource routing with `{param}` and
greedy `{proxy+}` segments, the Cognito user-pool authorizer, Lambda proxy (AWS_PROXY)
integrations through lambda_runtime, MOCK integrations and gateway responses, with API
Gateway's status codes, messages, headers and proxy event."""

import base64
import binascii
import http
import json
import os
import re
import sys
import threading
import time
import uuid
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from moto.apigateway.models import apigateway_backends
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda.models import lambda_backends
from moto.cognitoidp.models import cognitoidp_backends

from . import apigateway, lambda_runtime

URL = re.compile(r"^/restapis/([^/]+)/([^/]+)/_user_request_(/.*)?$")
RAW_HEADERS = "deploy_emulator.raw_headers"
ANY = "ANY"
VERBS = {"GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", ANY}
LAMBDA_URI = re.compile(r"^arn:aws[a-z-]*:apigateway:[^:]+:lambda:path/2015-03-31/functions/(arn:aws[a-z-]*:lambda:([^:]+):(\d+):function:[^/]+)/invocations$")
POOL_ARN = re.compile(r"^arn:aws[a-z-]*:cognito-idp:([^:]+):(\d+):userpool/(.+)$")
PARAMETER = re.compile(r"^method\.request\.(header|querystring|path)\.(.+)$")
CONTEXT_REF = re.compile(r"\$(?:\{context\.([A-Za-z.]+)\}|context\.([A-Za-z.]+))")
DEFAULT_TIMEOUT_MS = 29000
LAMBDA_INIT_LIMIT = 10.0  # seconds a cold start's init may take on top of the function's timeout
MAX_PAYLOAD = 10 * 1024 * 1024
PROXY_RESPONSE_KEYS = {"statusCode", "headers", "multiValueHeaders", "body", "isBase64Encoded"}
DEFAULT_TEMPLATE = '{"message":$context.error.messageString}'
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Gateway response types used here (and FORBIDDEN, an unknown stage's answer, which no
# API's gateway responses shape): default status, message, x-amzn-ErrorType.
RESPONSES = {
    "API_CONFIGURATION_ERROR": (500, "Internal server error", "InternalServerErrorException"),
    "DEFAULT_5XX": (502, "Internal server error", "InternalServerErrorException"),
    "FORBIDDEN": (403, "Forbidden", "ForbiddenException"),
    "INTEGRATION_FAILURE": (504, "Internal server error", "InternalServerErrorException"),
    "INTEGRATION_TIMEOUT": (504, "Endpoint request timed out", None),
    "MISSING_AUTHENTICATION_TOKEN": (403, "Missing Authentication Token", "MissingAuthenticationTokenException"),
    "REQUEST_TOO_LARGE": (413, "Request Too Long", "RequestTooLongException"),
    "UNAUTHORIZED": (401, "Unauthorized", "UnauthorizedException"),
}


def log(message):
    print(f"gateway: {message}", file=sys.stderr, flush=True)


def _b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _render(template, context):
    """Mapping templates reduced to what these APIs use: `$context.…` references."""
    return CONTEXT_REF.sub(lambda m: str(context.get(m.group(1) or m.group(2), "")), template)


def _parameters(mapping, prefix):
    """[(header, source)] for the `prefix…` entries of a responseParameters map; a source
    is ("literal", text) for a quoted value or (kind, name) for a request parameter."""
    out = []
    for target, value in (mapping or {}).items():
        value = str(value)
        if not target.startswith(prefix):
            continue
        if len(value) >= 2 and value[0] == value[-1] == "'":
            out.append((target[len(prefix):], ("literal", value[1:-1])))
        elif m := PARAMETER.match(value):
            kind, name = m.groups()
            out.append((target[len(prefix):], (kind, name.lower() if kind == "header" else name)))
    return out


def _media_type(value):
    return (value or "").split(";")[0].split(",")[0].strip().lower()


def _media_matches(patterns, media_type):
    return bool(media_type) and any(p in ("*/*", media_type, media_type.split("/")[0] + "/*") for p in patterns)


def _date(seconds):
    t = time.gmtime(seconds)
    return t, f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"


_keys = {}  # pool id -> (pool, {kid: public key})


def _pool_keys(account, region, pool_id):
    """The verification keys of a user pool, straight from moto's Cognito (the keys its
    JWKS endpoint publishes)."""
    pool = cognitoidp_backends[account][region].user_pools.get(pool_id)
    if pool is None:
        return {}
    cached = _keys.get(pool_id)
    if cached is None or cached[0] is not pool:
        key = pool.json_web_key
        cached = _keys[pool_id] = (pool, {key.kid: key.public_key})
    return cached[1]


class Cognito:
    """A COGNITO_USER_POOLS authorizer as one method uses it."""

    def __init__(self, scheme, scopes):
        authorizer = scheme.get("x-amazon-apigateway-authorizer") or {}
        source = str(authorizer.get("identitySource") or "")
        prefix = "method.request.header."
        self.header = (source[len(prefix):] if source.startswith(prefix) else scheme.get("name") or "Authorization").lower()
        self.issuers = {}
        for arn in authorizer.get("providerARNs") or []:
            if m := POOL_ARN.match(arn):
                region, account, pool_id = m.groups()
                self.issuers[f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"] = (account, region, pool_id)
        self.scopes = set(scopes)
        validation = authorizer.get("identityValidationExpression")
        self.validation = re.compile(validation) if validation else None

    def claims(self, headers):
        """The verified token's claims, or None (401). No audience check: REST Cognito
        authorizers make none unless identityValidationExpression is set."""
        value = headers.get(self.header)
        if not value:
            return None
        # The raw token and a `Bearer `-prefixed one are both taken.
        token = value[7:] if value[:7].lower() == "bearer " else value
        parts = token.strip().split(".")
        if len(parts) != 3:
            return None
        try:
            header, claims = json.loads(_b64url(parts[0])), json.loads(_b64url(parts[1]))
            signature = _b64url(parts[2])
        except (ValueError, binascii.Error):
            return None
        if not isinstance(header, dict) or not isinstance(claims, dict) or header.get("alg") != "RS256":
            return None
        pool = self.issuers.get(claims.get("iss"))
        key = _pool_keys(*pool).get(header.get("kid")) if pool else None
        if key is None:
            return None
        try:
            key.verify(signature, f"{parts[0]}.{parts[1]}".encode(), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            return None
        exp = claims.get("exp")
        if isinstance(exp, bool) or not isinstance(exp, (int, float)) or exp <= time.time():
            return None
        # A method with authorization scopes takes access tokens holding one of them;
        # the others take ID tokens only.
        if self.scopes:
            if claims.get("token_use") != "access" or not self.scopes & set(str(claims.get("scope", "")).split()):
                return None
        elif claims.get("token_use") != "id":
            return None
        if self.validation and not self.validation.fullmatch(str(claims.get("aud", ""))):
            return None
        return claims


def _claim_strings(claims):
    """Claims as REST Cognito authorizers hand them on: all strings, lists joined with
    commas, `exp` and `iat` as Java's Date.toString() prints them."""
    out = {}
    for name, value in claims.items():
        if name in ("exp", "iat") and isinstance(value, (int, float)) and not isinstance(value, bool):
            t, clock = _date(value)
            out[name] = f"{DAYS[t.tm_wday]} {MONTHS[t.tm_mon - 1]} {t.tm_mday:02d} {clock} UTC {t.tm_year}"
        elif isinstance(value, bool):
            out[name] = "true" if value else "false"
        elif isinstance(value, list):
            out[name] = ",".join(str(v) for v in value)
        elif isinstance(value, dict):
            out[name] = json.dumps(value)
        elif isinstance(value, float) and value.is_integer():
            out[name] = str(int(value))
        else:
            out[name] = str(value)
    return out


class Method:
    """One method of one resource, compiled: its authorizer and its integration."""

    def __init__(self, doc, path, resource_id, verb, op):
        self.resource_path = path
        self.resource_id = resource_id
        self.verb = verb
        self.operation = op.get("operationId")
        self.authorizer = None
        self.unsupported = None
        security = op["security"] if "security" in op else doc.get("security") or []
        requirement = next((r for r in security if r), None)
        if requirement:
            name, scopes = next(iter(requirement.items()))
            scheme = ((doc.get("components") or {}).get("securitySchemes") or {}).get(name) or {}
            authorizer = scheme.get("x-amazon-apigateway-authorizer") or {}
            kinds = {str(scheme.get("x-amazon-apigateway-authtype", "")).lower(), str(authorizer.get("type", "")).lower()}
            if "cognito_user_pools" in kinds:
                self.authorizer = Cognito(scheme, scopes or [])
            else:
                self.unsupported = f"security scheme {name!r}: only Cognito user-pool authorizers are emulated"
        integration = op.get("x-amazon-apigateway-integration") or {}
        self.kind = str(integration.get("type", "")).lower()
        self.timeout = float(integration.get("timeoutInMillis") or DEFAULT_TIMEOUT_MS) / 1000.0
        if self.kind == "aws_proxy":
            if m := LAMBDA_URI.match(str(integration.get("uri", ""))):
                self.function, self.function_region, self.function_account = m.groups()
            else:
                self.unsupported = f"AWS_PROXY uri {integration.get('uri')!r}: only Lambda functions are emulated"
        elif self.kind == "mock":
            self.request_templates = {k.lower(): v for k, v in (integration.get("requestTemplates") or {}).items()}
            self.responses = [
                (None if pattern == "default" else re.compile(pattern),
                 int(r.get("statusCode") or 200),
                 _parameters(r.get("responseParameters"), "method.response.header."),
                 (r.get("responseTemplates") or {}).get("application/json"))
                for pattern, r in (integration.get("responses") or {}).items()
            ]
            # The default response answers only when no pattern matches.
            self.responses.sort(key=lambda r: r[0] is None)
        else:
            self.unsupported = f"integration type {self.kind or 'none'!r}: AWS_PROXY to Lambda and MOCK are emulated"


class Node:
    """A resource in the routing tree."""

    __slots__ = ("literals", "param", "greedy", "path", "methods")

    def __init__(self, path):
        self.literals = {}
        self.param = None   # (name, Node)
        self.greedy = None  # (name, Node)
        self.path = path
        self.methods = {}

    def child(self, segment):
        path = f"{self.path.rstrip('/')}/{segment}"
        if segment.startswith("{") and segment.endswith("+}"):
            self.greedy = self.greedy or (segment[1:-2], Node(path))
            return self.greedy[1]
        if segment.startswith("{") and segment.endswith("}"):
            self.param = self.param or (segment[1:-1], Node(path))
            return self.param[1]
        return self.literals.setdefault(segment, Node(path))

    def match(self, segments, i=0):
        """(resource, path parameters) for segments[i:]: a literal segment first, then a
        path parameter, then a greedy one; None when no resource matches."""
        if i == len(segments):
            return self, {}
        found = None
        if literal := self.literals.get(segments[i]):
            found = literal.match(segments, i + 1)
        if found is None and self.param:
            name, node = self.param
            if found := node.match(segments, i + 1):
                found[1][name] = segments[i]
        if found is None and self.greedy:
            name, node = self.greedy
            found = node, {name: "/".join(segments[i:])}
        return found


class Api:
    """A deployment's definition compiled for serving."""

    def __init__(self, snapshot):
        doc = snapshot.document
        self.root = Node("/")
        for path, item in (doc.get("paths") or {}).items():
            node = self.root
            for segment in filter(None, path.split("/")):
                node = node.child(segment)
            for key, op in (item or {}).items():
                verb = ANY if key.lower() == "x-amazon-apigateway-any-method" else key.upper()
                if verb in VERBS and isinstance(op, dict):
                    node.methods[verb] = Method(doc, node.path, snapshot.resource_ids.get(node.path), verb, op)
        self.responses = {
            kind: (int(r["statusCode"]) if r.get("statusCode") else None,
                   _parameters(r.get("responseParameters"), "gatewayresponse.header."),
                   (r.get("responseTemplates") or {}).get("application/json"))
            for kind, r in (doc.get(apigateway.GATEWAY_RESPONSES) or {}).items()
        }
        self.binary_types = [t.lower() for t in doc.get("x-amazon-apigateway-binary-media-types") or []]


class Request:
    """One data-plane request as API Gateway sees it, and the answers it can get."""

    def __init__(self, environ, api_id, stage, path):
        self.environ = environ
        self.api_id = api_id
        self.stage = stage
        self.path = path.encode("latin-1").decode("utf-8", "replace")
        self.method = environ["REQUEST_METHOD"].upper()
        self.id = str(uuid.uuid4())
        self.apigw_id = base64.b64encode(os.urandom(11)).decode()
        self.trace_id = f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"
        self.started = time.time()
        self.raw_headers = list(environ.get(RAW_HEADERS) or ())
        self.headers = {name.lower(): value for name, value in self.raw_headers}
        self.query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        self.path_parameters = {}
        self.resource_path = ""
        self.traced = False  # X-Amzn-Trace-Id goes on answers that went through an integration

    def body(self):
        length = int(self.environ.get("CONTENT_LENGTH") or 0)
        if length:
            return self.environ["wsgi.input"].read(length)
        return self.environ["wsgi.input"].read() if self.environ.get("wsgi.input_terminated") else b""

    def parameter(self, source):
        kind, name = source
        if kind == "literal":
            return name
        if kind == "header":
            return self.headers.get(name)
        if kind == "querystring":
            return dict(self.query).get(name)
        return self.path_parameters.get(name)

    def context(self, message="", kind=""):
        return {
            "error.message": message,
            "error.messageString": json.dumps(message),
            "error.responseType": kind,
            "requestId": self.id,
            "extendedRequestId": self.apigw_id,
            "apiId": self.api_id,
            "stage": self.stage,
            "resourcePath": self.resource_path,
            "httpMethod": self.method,
        }

    def answer(self, start_response, status, headers, body):
        """Sends a response with the headers API Gateway adds."""
        headers = [(n, v) for n, v in headers if n.lower() != "content-length"]
        if not any(n.lower() == "content-type" for n, _ in headers):
            headers.append(("Content-Type", "application/json"))
        headers += [
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", self.id),
            ("x-amz-apigw-id", self.apigw_id),
        ]
        if self.traced:
            headers.append(("X-Amzn-Trace-Id", self.trace_id))
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        start_response(f"{status} {reason}", headers)
        return [body]

    def refuse(self, start_response, api, kind, status=None):
        """A gateway response: the API's own for this type if it has one, else its
        DEFAULT_4XX / DEFAULT_5XX, else API Gateway's built-in one."""
        default_status, message, error_type = RESPONSES[kind]
        status = status or default_status
        custom = None
        if api is not None:
            custom = api.responses.get(kind)
            if custom and custom[0]:
                status = custom[0]
            custom = custom or api.responses.get("DEFAULT_4XX" if status < 500 else "DEFAULT_5XX")
        headers = [("x-amzn-ErrorType", error_type)] if error_type else []
        template = DEFAULT_TEMPLATE
        if custom:
            headers += [(name, value) for name, source in custom[1] if (value := self.parameter(source)) is not None]
            template = custom[2] or template
        return self.answer(start_response, status, headers, _render(template, self.context(message, kind)).encode())


def is_data_plane(path):
    return path.startswith("/restapis/") and "/_user_request_" in path and URL.match(path) is not None


def serve(environ, start_response):
    # REST APIs hand the path on still percent-encoded, path parameters included (the
    # decoded PATH_INFO serves only if the client encoded the gateway's own part).
    m = URL.match(environ.get("RAW_URI", "").split("?", 1)[0]) or URL.match(environ["PATH_INFO"])
    api_id, stage_name, path = m.groups()
    request = Request(environ, api_id, stage_name, path or "/")
    definition = apigateway.DEFINITIONS.get(api_id)
    stage = snapshot = None
    if definition is not None:
        rest_api = apigateway_backends[definition.account][definition.region].apis.get(api_id)
        stage = rest_api.stages.get(stage_name) if rest_api else None
        snapshot = definition.deployments.get(stage.deployment_id) if stage else None
    if snapshot is None:
        if stage is not None:
            log(f"{api_id}/{stage_name}: deployment {stage.deployment_id} has no definition imported with PutRestApi or ImportRestApi (the only ones served)")
        return request.refuse(start_response, None, "FORBIDDEN")
    if snapshot.compiled is None:
        snapshot.compiled = Api(snapshot)
    api = snapshot.compiled
    found = api.root.match([s for s in request.path.split("/") if s])
    method = found and (found[0].methods.get(request.method) or found[0].methods.get(ANY))
    if not method:
        return request.refuse(start_response, api, "MISSING_AUTHENTICATION_TOKEN")
    request.path_parameters = found[1]
    request.resource_path = method.resource_path
    if method.unsupported:
        log(f"{api_id}/{stage_name} {request.method} {method.resource_path}: {method.unsupported}")
        return request.refuse(start_response, api, "API_CONFIGURATION_ERROR")
    claims = None
    if method.authorizer:
        claims = method.authorizer.claims(request.headers)
        if claims is None:
            return request.refuse(start_response, api, "UNAUTHORIZED")
    body = request.body()
    if len(body) > MAX_PAYLOAD:
        return request.refuse(start_response, api, "REQUEST_TOO_LARGE")
    if method.kind == "mock":
        return _mock(start_response, request, api, method, body)
    return _proxy(start_response, request, api, method, definition, stage, body, claims)


def _mock(start_response, request, api, method, body):
    """A MOCK integration: the request template picks the status code, the integration
    response it selects gives the method response."""
    kind = _media_type(request.headers.get("content-type")) or "application/json"
    template = method.request_templates.get(kind, method.request_templates.get("application/json"))
    try:
        selected = int(json.loads(_render(template, request.context()) if template is not None else body)["statusCode"])
    except (ValueError, KeyError, TypeError):
        log(f"{request.api_id}/{request.stage} {request.method} {request.resource_path}: the MOCK request template gives no statusCode")
        return request.refuse(start_response, api, "API_CONFIGURATION_ERROR")
    for pattern, status, parameters, response_template in method.responses:
        if pattern is None or pattern.fullmatch(str(selected)):
            headers = [(name, value) for name, source in parameters if (value := request.parameter(source)) is not None]
            out = _render(response_template, request.context()).encode() if response_template else b""
            return request.answer(start_response, status, headers, out)
    log(f"{request.api_id}/{request.stage} {request.method} {request.resource_path}: no integration response for status {selected}")
    return request.refuse(start_response, api, "API_CONFIGURATION_ERROR")


def _event(request, api, method, definition, stage, body, claims):
    """The Lambda proxy integration's input, format 1.0."""
    environ = request.environ
    source_ip = environ.get("REMOTE_ADDR", "127.0.0.1")
    forwarded = request.headers.get("x-forwarded-for")
    added = [
        ("X-Forwarded-For", f"{forwarded}, {source_ip}" if forwarded else source_ip),
        ("X-Forwarded-Port", environ.get("SERVER_PORT", "")),
        ("X-Forwarded-Proto", environ.get("wsgi.url_scheme", "http")),
    ]
    if "x-amzn-trace-id" not in request.headers:
        added.append(("X-Amzn-Trace-Id", request.trace_id))
    replaced = {name.lower() for name, _ in added}
    multi_headers = {}
    for name, value in [h for h in request.raw_headers if h[0].lower() not in replaced] + added:
        multi_headers.setdefault(name, []).append(value)
    multi_query = {}
    for name, value in request.query:
        multi_query.setdefault(name, []).append(value)
    binary = bool(body) and _media_matches(api.binary_types, _media_type(request.headers.get("content-type")))
    t, clock = _date(request.started)
    context = {
        "resourceId": method.resource_id,
        "resourcePath": method.resource_path,
        "httpMethod": request.method,
        "extendedRequestId": request.apigw_id,
        "requestTime": f"{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:{clock} +0000",
        "path": f"/{request.stage}{request.path}",
        "accountId": definition.account,
        "protocol": environ.get("SERVER_PROTOCOL", "HTTP/1.1"),
        "stage": request.stage,
        "domainPrefix": request.api_id,
        "requestTimeEpoch": int(request.started * 1000),
        "requestId": request.id,
        "identity": {
            "cognitoIdentityPoolId": None,
            "accountId": None,
            "cognitoIdentityId": None,
            "caller": None,
            "sourceIp": source_ip,
            "principalOrgId": None,
            "accessKey": None,
            "cognitoAuthenticationType": None,
            "cognitoAuthenticationProvider": None,
            "userArn": None,
            "userAgent": request.headers.get("user-agent"),
            "user": None,
        },
        "domainName": f"{request.api_id}.execute-api.{definition.region}.amazonaws.com",
        "apiId": request.api_id,
    }
    if method.operation:
        context["operationName"] = method.operation
    if claims is not None:
        context["authorizer"] = {"claims": _claim_strings(claims)}
    return {
        "resource": method.resource_path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": request.path_parameters or None,
        "stageVariables": dict(stage.variables) if stage.variables else None,
        "requestContext": context,
        "body": (base64.b64encode(body).decode() if binary else body.decode("utf-8", "replace")) if body else None,
        "isBase64Encoded": binary,
    }


def _ends_in_time(method):
    """Whether the function's own timeout, cold start included, ends an invocation
    before the integration times out: then the request's thread calls it directly,
    saving a hand-off to another thread (slow when threads contend for the GIL)."""
    try:
        fn = lambda_backends[method.function_account][method.function_region].get_function(method.function)
    except LambdaClientError:
        return True  # the invocation fails at once
    return fn.timeout + LAMBDA_INIT_LIMIT <= method.timeout


def _within(seconds, function, *args, **kwargs):
    """function(...)'s result, or TimeoutError after `seconds`. The call runs in a daemon
    thread: one stuck in a hung function must not hold the emulator's exit."""
    outcome = []
    done = threading.Event()

    def run():
        try:
            outcome.append((True, function(*args, **kwargs)))
        except Exception as e:  # handed to the waiting request
            outcome.append((False, e))
        done.set()

    threading.Thread(target=run, name="gateway-integration", daemon=True).start()
    if not done.wait(seconds):
        raise TimeoutError
    ok, value = outcome[0]
    if not ok:
        raise value
    return value


def _header_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ValueError(f"header value {value!r}")


def _proxy_response(api, request, payload):
    """(status, headers, body) from a Lambda proxy response; ValueError when it is not
    one (API Gateway's "Malformed Lambda proxy response")."""
    out = json.loads(payload)
    if not isinstance(out, dict) or not out.keys() <= PROXY_RESPONSE_KEYS:
        raise ValueError("not a proxy response object")
    status = out.get("statusCode")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"statusCode {status!r}")
    single, multi = out.get("headers") or {}, out.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict) or not all(isinstance(v, list) for v in multi.values()):
        raise ValueError("headers")
    # A header in both maps takes its values from multiValueHeaders.
    values = {name: [value] for name, value in single.items() if value is not None}
    values.update({name: list(vs) for name, vs in multi.items()})
    headers = [(name, _header_value(v)) for name, vs in values.items() for v in vs]
    body, encoded = out.get("body"), out.get("isBase64Encoded")
    if not isinstance(body, (str, type(None))) or not isinstance(encoded, (bool, type(None))):
        raise ValueError("body or isBase64Encoded")
    data = (body or "").encode()
    # Only binary media types get decoded; for any other, the client gets the base64
    # text, as from API Gateway.
    content_type = next((v for n, v in headers if n.lower() == "content-type"), "")
    if encoded and body and (_media_matches(api.binary_types, _media_type(request.headers.get("accept")))
                             or _media_matches(api.binary_types, _media_type(content_type))):
        data = base64.b64decode(body, validate=True)
    return status, headers, data


def _proxy(start_response, request, api, method, definition, stage, body, claims):
    """An AWS_PROXY integration: the function gets the proxy event and answers the
    request with its proxy response."""
    event = _event(request, api, method, definition, stage, body, claims)
    payload = json.dumps(event, separators=(",", ":")).encode()
    where = f"{request.api_id}/{request.stage} {request.method} {request.resource_path}"
    request.traced = True
    try:
        call = (method.function_account, method.function_region, method.function)
        if _ends_in_time(method):
            result = lambda_runtime.invoke(*call, payload=payload)
        else:
            result = _within(method.timeout, lambda_runtime.invoke, *call, payload=payload)
    except TimeoutError:
        log(f"{where}: Execution failed due to a timeout error")
        return request.refuse(start_response, api, "INTEGRATION_TIMEOUT")
    except lambda_runtime.NotFound as e:
        log(f"{where}: Execution failed due to configuration error: {e}")
        return request.refuse(start_response, api, "API_CONFIGURATION_ERROR")
    except lambda_runtime.Throttled:
        # Lambda's 429 reaches the client as a 500.
        log(f"{where}: Lambda invocation failed with status: 429")
        return request.refuse(start_response, api, "INTEGRATION_FAILURE", status=500)
    if result.get("function_error"):
        log(f"{where}: Lambda execution failed with status 200 due to customer function error")
        return request.refuse(start_response, api, "DEFAULT_5XX")
    try:
        status, headers, data = _proxy_response(api, request, result.get("payload") or b"")
    except (ValueError, binascii.Error) as e:
        log(f"{where}: Execution failed due to configuration error: Malformed Lambda proxy response ({e})")
        return request.refuse(start_response, api, "DEFAULT_5XX")
    return request.answer(start_response, status, headers, data)


def install():
    """Keeps each request's headers as sent (names' case, repeated headers), which the
    proxy event carries and WSGI's environ loses."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler

    original = MotoRequestHandler.make_environ

    def make_environ(self):
        environ = original(self)
        environ[RAW_HEADERS] = self.headers.items()
        return environ

    MotoRequestHandler.make_environ = make_environ
