"""The API Gateway REST data plane in the emulator, driven over HTTP like a client would:
an OpenAPI definition shaped like the one the Rust side renders (Cognito authorizer,
Lambda proxy routes, MOCK preflights, gateway responses), deployed to a stage, served
only as of its last deployment, with functions running their real `bootstrap`."""

import base64
import json
import time
import unittest
import urllib.error
import urllib.request

from joserfc import jwk, jwt
from moto.utilities.utils import load_resource

from .support import ACCOUNT, REGION, Emulator

ORIGIN = "https://game.example.com"
ALLOW_HEADERS = "authorization,content-type"
STAGE = "v1"

# A function answering per $MODE: echo (the event as the body), malformed (not a proxy
# response), crash (a function error) or slow (sleeps past the integration timeout).
BOOTSTRAP = """#!/usr/bin/python3
import json, os, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
mode = os.environ["MODE"]
while True:
    with urllib.request.urlopen(api + "next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    if mode == "crash":
        error = {"errorMessage": "boom", "errorType": "RuntimeError"}
        urllib.request.urlopen(urllib.request.Request(api + request_id + "/error", data=json.dumps(error).encode(), method="POST")).read()
        continue
    if mode == "slow":
        time.sleep(3)
    answer = {"hello": "world"} if mode == "malformed" else {
        "statusCode": 201,
        "headers": {"Content-Type": "application/json", "Access-Control-Allow-Origin": "%s", "X-Both": "single"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"], "X-Both": ["multi"]},
        "body": json.dumps(event),
    }
    urllib.request.urlopen(urllib.request.Request(api + request_id + "/response", data=json.dumps(answer).encode(), method="POST")).read()
""" % ORIGIN


def render(function_arns, pool_arn, routes):
    """An API definition shaped like the one src/aws/apigateway.rs builds (Lambda proxy
    routes, the Cognito authorizer, gateway responses with CORS headers), plus MOCK
    preflights, which the emulator also serves: routes are (method, path, function,
    auth, extra integration fields)."""
    methods = sorted({m for m, *_ in routes} | {"OPTIONS"})
    cors = {
        "Access-Control-Allow-Origin": f"'{ORIGIN}'",
        "Access-Control-Allow-Headers": f"'{ALLOW_HEADERS}'",
    }
    preflight = {
        "responses": {"200": {"description": "CORS preflight", "headers": {
            h: {"schema": {"type": "string"}} for h in
            ("Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers", "Access-Control-Max-Age")}}},
        "x-amazon-apigateway-integration": {
            "type": "mock",
            "requestTemplates": {"application/json": '{"statusCode": 200}'},
            "responses": {"default": {"statusCode": "200", "responseParameters": {
                "method.response.header.Access-Control-Allow-Origin": f"'{ORIGIN}'",
                "method.response.header.Access-Control-Allow-Methods": f"'{','.join(methods)}'",
                "method.response.header.Access-Control-Allow-Headers": f"'{ALLOW_HEADERS}'",
                "method.response.header.Access-Control-Max-Age": "'600'",
            }}},
        },
    }
    doc = {
        "openapi": "3.0.1",
        "info": {"title": "gateway-test", "version": "1"},
        "paths": {},
        "components": {"securitySchemes": {"cognito": {
            "type": "apiKey", "name": "Authorization", "in": "header",
            "x-amazon-apigateway-authtype": "cognito_user_pools",
            "x-amazon-apigateway-authorizer": {"type": "cognito_user_pools", "providerARNs": [pool_arn]},
        }}},
        "x-amazon-apigateway-gateway-responses": {
            kind: {"responseParameters": {f"gatewayresponse.header.{h}": v for h, v in cors.items()}}
            for kind in ("DEFAULT_4XX", "DEFAULT_5XX")
        },
    }
    for method, path, function, auth, extra in routes:
        item = doc["paths"].setdefault(path, {})
        params = [s.strip("{}+") for s in path.split("/") if s.startswith("{")]
        if params:
            item["parameters"] = [{"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params]
        op = {
            "x-amazon-apigateway-integration": {
                "type": "aws_proxy",
                "httpMethod": "POST",
                "uri": f"arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arns[function]}/invocations",
                "passthroughBehavior": "when_no_match",
                **extra,
            },
            "responses": {},
        }
        if auth:
            op["security"] = [{"cognito": auth if isinstance(auth, list) else []}]
        item["x-amazon-apigateway-any-method" if method == "ANY" else method.lower()] = op
        item["options"] = preflight
    return doc


class GatewayTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = Emulator().start()
        try:
            cls.provision()
        except BaseException:
            cls.emulator.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.emulator.stop()

    @classmethod
    def provision(cls):
        e = cls.emulator
        cls.pool_id, cls.pool_arn, cls.client_id = cls.user_pool("players")
        cls.other_pool_id, _, cls.other_client_id = cls.user_pool("others")
        cls.tokens = cls.sign_in(cls.pool_id, cls.client_id, "ada")
        cls.other_tokens = cls.sign_in(cls.other_pool_id, cls.other_client_id, "eve")
        lam = e.client("lambda")
        arns = {}
        for mode in ("echo", "malformed", "crash", "slow"):
            arns[mode] = e.create_function(f"gw-{mode}", BOOTSTRAP, {"MODE": mode})["FunctionArn"]
        version = lam.publish_version(FunctionName="gw-echo")["Version"]
        arns["echo:live"] = lam.create_alias(FunctionName="gw-echo", Name="live", FunctionVersion=version)["AliasArn"]
        cls.routes = [
            ("GET", "/items", "echo:live", True, {}),
            ("GET", "/items/{id}", "echo:live", True, {}),
            ("POST", "/items/{id}", "echo", True, {}),
            ("GET", "/items/special", "echo", False, {}),
            ("GET", "/scoped", "echo", ["aws.cognito.signin.user.admin"], {}),
            ("ANY", "/public/{proxy+}", "echo", False, {}),
            ("GET", "/broken", "malformed", False, {}),
            ("GET", "/crash", "crash", False, {}),
            ("GET", "/slow", "slow", False, {"timeoutInMillis": 1000}),
        ]
        cls.arns = arns
        apigw = e.client("apigateway")
        cls.api_id = apigw.create_rest_api(name="gateway-test")["id"]
        cls.put(render(arns, cls.pool_arn, cls.routes))
        cls.deployment = apigw.create_deployment(restApiId=cls.api_id, stageName=STAGE)["id"]

    @classmethod
    def user_pool(cls, name):
        idp = cls.emulator.client("cognito-idp")
        pool = idp.create_user_pool(PoolName=name)["UserPool"]
        client = idp.create_user_pool_client(UserPoolId=pool["Id"], ClientName="web",
                                             ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
                                             ReadAttributes=["email"])
        return pool["Id"], pool["Arn"], client["UserPoolClient"]["ClientId"]

    @classmethod
    def sign_in(cls, pool_id, client_id, username):
        idp = cls.emulator.client("cognito-idp")
        idp.admin_create_user(UserPoolId=pool_id, Username=username, MessageAction="SUPPRESS",
                              TemporaryPassword="Temporary-1!",
                              UserAttributes=[{"Name": "email", "Value": f"{username}@example.com"}])
        idp.admin_set_user_password(UserPoolId=pool_id, Username=username, Password="Permanent-1!", Permanent=True)
        for group in ("admins", "players"):
            idp.create_group(UserPoolId=pool_id, GroupName=group)
            idp.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
        result = idp.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                                   AuthParameters={"USERNAME": username, "PASSWORD": "Permanent-1!"})
        return result["AuthenticationResult"]

    @classmethod
    def put(cls, doc, mode="overwrite"):
        cls.emulator.client("apigateway").put_rest_api(restApiId=cls.api_id, mode=mode, failOnWarnings=False,
                                                        body=json.dumps(doc).encode())

    def call(self, method, path, headers=None, body=None, stage=STAGE):
        """(status, headers, body) of a data-plane request."""
        url = f"{self.emulator.url}/restapis/{self.api_id}/{stage}/_user_request_{path}"
        request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                return r.status, r.headers, r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers, e.read()

    def invocations(self, mode):
        """How many times the function has been invoked, from the runtime's own count."""
        status, listing = self.emulator.control("GET", "/_deploy/lambda/functions")
        self.assertEqual(status, 200, listing)
        return listing.get(f"gw-{mode}", {}).get("invocations", 0)

    def assert_refused(self, response, status, message, error_type):
        code, headers, body = response
        self.assertEqual(code, status, body)
        self.assertEqual(json.loads(body), {"message": message})
        self.assertEqual(headers["x-amzn-ErrorType"], error_type)
        # DEFAULT_4XX / DEFAULT_5XX carry the CORS headers, so browsers can read refusals.
        self.assertEqual(headers["Access-Control-Allow-Origin"], ORIGIN)
        self.assertEqual(headers["Access-Control-Allow-Headers"], ALLOW_HEADERS)

    def test_unknown_routes_and_methods_are_missing_authentication_token(self):
        for method, path in [("GET", "/nowhere"), ("DELETE", "/items"), ("GET", "/"), ("GET", "/items/1/2"), ("GET", "/public")]:
            with self.subTest(method=method, path=path):
                self.assert_refused(self.call(method, path), 403, "Missing Authentication Token",
                                    "MissingAuthenticationTokenException")

    def test_an_unknown_stage_is_forbidden(self):
        status, _, body = self.call("GET", "/items/special", stage="nope")
        self.assertEqual((status, json.loads(body)), (403, {"message": "Forbidden"}))

    def test_protected_routes_refuse_bad_tokens_without_invoking_the_function(self):
        id_token = self.tokens["IdToken"]
        head, payload, signature = id_token.split(".")
        tampered = f"{head}.{payload}.{signature[:20]}{'A' if signature[20] != 'A' else 'B'}{signature[21:]}"
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        key = jwk.RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json"))
        expired = jwt.encode({"kid": "dummy", "alg": "RS256"}, {**claims, "exp": int(time.time()) - 5}, key)
        cases = {
            "no token": {},
            "empty": {"Authorization": ""},
            "not a JWT": {"Authorization": "Bearer not-a-token"},
            "tampered signature": {"Authorization": tampered},
            "expired": {"Authorization": f"Bearer {expired}"},
            "another pool's ID token": {"Authorization": self.other_tokens["IdToken"]},
            "an access token on a method without scopes": {"Authorization": self.tokens["AccessToken"]},
        }
        before = self.invocations("echo")
        for case, headers in cases.items():
            with self.subTest(case):
                self.assert_refused(self.call("GET", "/items/7", headers), 401, "Unauthorized", "UnauthorizedException")
        # A method with authorization scopes wants an access token holding one: not an ID token.
        self.assert_refused(self.call("GET", "/scoped", {"Authorization": id_token}), 401, "Unauthorized", "UnauthorizedException")
        self.assertEqual(self.invocations("echo"), before)

    def test_a_valid_id_token_reaches_the_function_with_its_claims(self):
        before = self.invocations("echo")
        for value in (self.tokens["IdToken"], f"Bearer {self.tokens['IdToken']}"):
            status, headers, body = self.call("GET", "/items/42?tag=a&tag=b&page=2",
                                              {"Authorization": value, "X-Custom-Header": "yes"})
            self.assertEqual(status, 201, body)
            event = json.loads(body)
            self.assertEqual(event["resource"], "/items/{id}")
            self.assertEqual(event["path"], "/items/42")
            self.assertEqual(event["httpMethod"], "GET")
            self.assertEqual(event["pathParameters"], {"id": "42"})
            self.assertEqual(event["queryStringParameters"], {"tag": "b", "page": "2"})
            self.assertEqual(event["multiValueQueryStringParameters"], {"tag": ["a", "b"], "page": ["2"]})
            self.assertEqual(event["headers"]["X-Custom-Header"], "yes")
            self.assertEqual(event["multiValueHeaders"]["X-Custom-Header"], ["yes"])
            self.assertIsNone(event["body"])
            self.assertFalse(event["isBase64Encoded"])
            self.assertIsNone(event["stageVariables"])
            context = event["requestContext"]
            self.assertEqual(context["path"], f"/{STAGE}/items/42")
            self.assertEqual((context["stage"], context["apiId"], context["accountId"]), (STAGE, self.api_id, ACCOUNT))
            self.assertEqual((context["resourcePath"], context["httpMethod"]), ("/items/{id}", "GET"))
            self.assertEqual(context["domainName"], f"{self.api_id}.execute-api.{REGION}.amazonaws.com")
            self.assertEqual(context["identity"]["sourceIp"], "127.0.0.1")
            self.assertEqual(context["requestId"], headers["x-amzn-RequestId"])
            self.assertEqual(context["extendedRequestId"], headers["x-amz-apigw-id"])
            claims = context["authorizer"]["claims"]
            self.assertEqual(claims["cognito:username"], "ada")
            self.assertEqual(claims["email"], "ada@example.com")
            self.assertEqual(claims["token_use"], "id")
            self.assertEqual(claims["iss"], f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}")
            self.assertEqual(sorted(claims["cognito:groups"].split(",")), ["admins", "players"])
            self.assertTrue(all(isinstance(v, str) for v in claims.values()), claims)
            self.assertRegex(claims["exp"], r"^[A-Z][a-z]{2} [A-Z][a-z]{2} \d\d \d\d:\d\d:\d\d UTC \d{4}$")
            # The function's headers and multiValueHeaders, merged.
            self.assertEqual(headers["Access-Control-Allow-Origin"], ORIGIN)
            self.assertEqual(headers.get_all("Set-Cookie"), ["a=1", "b=2"])
            self.assertEqual(headers.get_all("X-Both"), ["multi"])
        self.assertEqual(self.invocations("echo"), before + 2)

    def test_scoped_methods_take_access_tokens_with_a_scope(self):
        status, _, body = self.call("GET", "/scoped", {"Authorization": self.tokens["AccessToken"]})
        self.assertEqual(status, 201, body)
        self.assertEqual(json.loads(body)["requestContext"]["authorizer"]["claims"]["token_use"], "access")

    def test_literal_segments_win_and_greedy_paths_take_the_rest(self):
        status, _, body = self.call("GET", "/items/special")
        self.assertEqual(status, 201, body)
        self.assertEqual(json.loads(body)["resource"], "/items/special")
        status, _, body = self.call("PATCH", "/public/a/b%20c/d", {"Content-Type": "text/plain"}, b"payload")
        self.assertEqual(status, 201, body)
        event = json.loads(body)
        self.assertEqual((event["resource"], event["httpMethod"], event["body"]), ("/public/{proxy+}", "PATCH", "payload"))
        # As on API Gateway, the path and its parameters stay percent-encoded.
        self.assertEqual((event["path"], event["pathParameters"]), ("/public/a/b%20c/d", {"proxy": "a/b%20c/d"}))
        self.assertNotIn("authorizer", event["requestContext"])

    def test_preflights_answer_from_the_mock_integration(self):
        before = self.invocations("echo")
        status, headers, body = self.call("OPTIONS", "/items/9", {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"})
        self.assertEqual((status, body), (200, b""))
        self.assertEqual(headers["Access-Control-Allow-Origin"], ORIGIN)
        self.assertEqual(headers["Access-Control-Allow-Methods"], "ANY,GET,OPTIONS,POST")
        self.assertEqual(headers["Access-Control-Allow-Headers"], ALLOW_HEADERS)
        self.assertEqual(headers["Access-Control-Max-Age"], "600")
        self.assertEqual(self.invocations("echo"), before)

    def test_function_failures_are_internal_server_errors(self):
        self.assert_refused(self.call("GET", "/broken"), 502, "Internal server error", "InternalServerErrorException")
        self.assert_refused(self.call("GET", "/crash"), 502, "Internal server error", "InternalServerErrorException")
        self.assertGreaterEqual(self.invocations("malformed"), 1)

    def test_the_integration_timeout_is_a_504(self):
        started = time.monotonic()
        status, headers, body = self.call("GET", "/slow")
        self.assertEqual((status, json.loads(body)), (504, {"message": "Endpoint request timed out"}))
        self.assertLess(time.monotonic() - started, 2.5)
        self.assertEqual(headers["Access-Control-Allow-Origin"], ORIGIN)

    def test_definition_changes_are_served_only_after_a_deployment(self):
        apigw = self.emulator.client("apigateway")
        added = self.routes + [("GET", "/extra", "echo", False, {})]
        try:
            self.put(render(self.arns, self.pool_arn, added))
            self.assertEqual(self.call("GET", "/extra")[0], 403)
            new = apigw.create_deployment(restApiId=self.api_id, stageName=STAGE)["id"]
            self.assertEqual(self.call("GET", "/extra")[0], 201)
            # Merge mode keeps the methods the merged document does not define.
            self.put({"openapi": "3.0.1", "info": {"title": "gateway-test", "version": "1"}, "paths": {
                "/merged": {"get": render(self.arns, self.pool_arn, [("GET", "/merged", "echo", False, {})])["paths"]["/merged"]["get"]}}},
                mode="merge")
            apigw.create_deployment(restApiId=self.api_id, stageName=STAGE)
            self.assertEqual(self.call("GET", "/merged")[0], 201)
            self.assertEqual(self.call("GET", "/extra")[0], 201)
            self.assertEqual(self.call("GET", "/items/1")[0], 401)
            # Pointing the stage back at an older deployment serves that one again.
            apigw.update_stage(restApiId=self.api_id, stageName=STAGE,
                               patchOperations=[{"op": "replace", "path": "/deploymentId", "value": new}])
            self.assertEqual(self.call("GET", "/merged")[0], 403)
            self.assertEqual(self.call("GET", "/extra")[0], 201)
        finally:
            self.put(render(self.arns, self.pool_arn, self.routes))
            apigw.update_stage(restApiId=self.api_id, stageName=STAGE,
                               patchOperations=[{"op": "replace", "path": "/deploymentId", "value": self.deployment}])


if __name__ == "__main__":
    unittest.main()
