"""Lambda execution in the emulator: functions run their deployed `bootstrap` through the
Runtime API, over moto's Invoke API as on AWS, and through the in-process Python API."""

import base64
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import unittest
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support import ACCOUNT, LAMBDA_TRUST, REGION, Emulator, bootstrap_zip

# Answers through the Runtime API with its event, its exact environment (from
# /proc/self/environ: Python may add LC_CTYPE to os.environ), pid, cwd, the `next`
# headers and MARK; the event can ask it to sleep, exit, fail or write a file first.
ECHO = """#!/usr/bin/python3
import http.client, json, os, sys, time
host, port = os.environ["AWS_LAMBDA_RUNTIME_API"].split(":")
api = http.client.HTTPConnection(host, int(port))
with open("/proc/self/environ", "rb") as f:
    env = dict(pair.split("=", 1) for pair in f.read().decode().split("\\0") if pair)
print("initialised", flush=True)
while True:
    api.request("GET", "/2018-06-01/runtime/invocation/next")
    r = api.getresponse()
    event = json.loads(r.read())
    request_id = r.getheader("Lambda-Runtime-Aws-Request-Id")
    print("handling", json.dumps(event), flush=True)
    time.sleep(event.get("sleep", 0))
    if "exit" in event:
        print("exiting on request", file=sys.stderr, flush=True)
        sys.exit(event["exit"])
    if "write" in event:
        # Whole or not at all: the test polls for the file.
        with open(event["write"] + ".tmp", "w") as f:
            json.dump(event, f)
        os.replace(event["write"] + ".tmp", event["write"])
    if event.get("fail"):
        api.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/error",
                    json.dumps({"errorType": "Oops", "errorMessage": "asked to fail"}))
    else:
        answer = {"mark": "MARK", "event": event, "env": env, "pid": os.getpid(), "cwd": os.getcwd(),
                  "headers": dict(r.getheaders())}
        api.request("POST", f"/2018-06-01/runtime/invocation/{request_id}/response", json.dumps(answer))
    api.getresponse().read()
"""

# What Lambda sets besides the function's own variables (AWS_ENDPOINT_URL and
# SSL_CERT_FILE are the emulator's: the local cloud and its CA).
LAMBDA_VARIABLES = {
    "AWS_LAMBDA_RUNTIME_API", "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE", "_HANDLER", "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL", "PATH", "LANG", "TZ", "SSL_CERT_FILE",
}
STREAM = re.compile(r"^\d{4}/\d{2}/\d{2}/\[(\$LATEST|\d+)\][0-9a-f]{32}$")


def echo(mark="MARK"):
    return ECHO.replace("MARK", mark)


class LambdaRuntimeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = Emulator().start()
        cls.lam = cls.emulator.client("lambda")
        cls.logs = cls.emulator.client("logs")

    @classmethod
    def tearDownClass(cls):
        cls.emulator.stop()

    def invoke(self, name, event=None, **kwargs):
        """(response, decoded payload) of a synchronous invocation."""
        response = self.lam.invoke(FunctionName=name, Payload=json.dumps(event or {}).encode(), **kwargs)
        return response, json.loads(response["Payload"].read())

    def counts(self, name):
        status, listing = self.emulator.control("GET", "/_deploy/lambda/functions")
        self.assertEqual(status, 200, listing)
        return listing[name]

    def log_messages(self, name):
        return [e["message"] for e in self.logs.filter_log_events(logGroupName=f"/aws/lambda/{name}")["events"]]

    def test_runs_bootstrap_with_event_and_exactly_lambdas_environment(self):
        self.emulator.create_function("env", echo(), {"GREETING": "hello", "LANG": "C.UTF-8"}, MemorySize=256)
        response, answer = self.invoke("env", {"n": 1})
        self.assertEqual(response["StatusCode"], 200)
        self.assertEqual(response["ExecutedVersion"], "$LATEST")
        self.assertNotIn("FunctionError", response)
        self.assertEqual(answer["event"], {"n": 1})
        env = answer["env"]
        self.assertEqual(set(env), LAMBDA_VARIABLES | {"GREETING"})
        self.assertEqual(env["GREETING"], "hello")
        self.assertEqual(env["LANG"], "C.UTF-8")  # unreserved: the function's own value wins
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_NAME"], "env")
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_VERSION"], "$LATEST")
        self.assertEqual(env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"], "256")
        self.assertEqual((env["AWS_REGION"], env["AWS_DEFAULT_REGION"]), (REGION, REGION))
        self.assertEqual(env["AWS_LAMBDA_LOG_GROUP_NAME"], "/aws/lambda/env")
        self.assertRegex(env["AWS_LAMBDA_LOG_STREAM_NAME"], STREAM)
        self.assertEqual(env["AWS_LAMBDA_INITIALIZATION_TYPE"], "on-demand")
        self.assertEqual(env["_HANDLER"], "bootstrap")
        self.assertEqual(env["LAMBDA_TASK_ROOT"], answer["cwd"])
        self.assertTrue(os.path.isfile(os.path.join(env["LAMBDA_TASK_ROOT"], "bootstrap")))
        self.assertRegex(env["AWS_LAMBDA_RUNTIME_API"], r"^127\.0\.0\.1:\d+$")
        self.assertNotEqual(env["AWS_LAMBDA_RUNTIME_API"], f"127.0.0.1:{self.emulator.port}")
        self.assertEqual(env["AWS_ENDPOINT_URL"], self.emulator.url)
        self.assertEqual(env["PATH"], "/usr/local/bin:/usr/bin/:/bin:/opt/bin")
        self.assertEqual(env["TZ"], ":UTC")
        self.assertTrue(os.path.isfile(env["SSL_CERT_FILE"]))
        headers = {k.lower(): v for k, v in answer["headers"].items()}
        request_id = response["ResponseMetadata"]["RequestId"]
        self.assertEqual(headers["lambda-runtime-aws-request-id"], request_id)
        self.assertEqual(headers["lambda-runtime-invoked-function-arn"], f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:env")
        self.assertRegex(headers["lambda-runtime-trace-id"], r"^Root=1-[0-9a-f]{8}-[0-9a-f]{24};")
        deadline = int(headers["lambda-runtime-deadline-ms"]) / 1000
        self.assertTrue(time.time() < deadline <= time.time() + 3, deadline)

    def test_warm_instance_is_reused(self):
        self.emulator.create_function("warm", echo())
        _, first = self.invoke("warm")
        _, second = self.invoke("warm")
        self.assertEqual(first["pid"], second["pid"])
        counts = self.counts("warm")
        self.assertEqual((counts["invocations"], counts["cold_starts"]), (2, 1))
        self.assertEqual([i["pid"] for i in counts["instances"]], [first["pid"]])
        status, stopped = self.emulator.control("DELETE", "/_deploy/lambda/instances")
        self.assertEqual(status, 200)
        self.assertGreaterEqual(stopped["stopped"], 1)
        _, third = self.invoke("warm")
        self.assertNotEqual(third["pid"], first["pid"])
        self.assertEqual(self.counts("warm")["cold_starts"], 2)

    def test_concurrent_invocations_get_their_own_instances(self):
        self.emulator.create_function("busy", echo())
        answers = []
        # A client each: boto3 clients are thread-safe, but two calls at once is the point.
        clients = [self.emulator.client("lambda") for _ in range(2)]
        threads = [threading.Thread(target=lambda c=c: answers.append(json.loads(
            c.invoke(FunctionName="busy", Payload=b'{"sleep": 1}')["Payload"].read()))) for c in clients]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(len({a["pid"] for a in answers}), 2, answers)
        self.assertEqual(self.counts("busy")["cold_starts"], 2)

    def test_reserved_concurrency_throttles_beyond_it(self):
        self.emulator.create_function("scarce", echo())
        self.lam.put_function_concurrency(FunctionName="scarce", ReservedConcurrentExecutions=1)
        slow = threading.Thread(target=self.invoke, args=("scarce", {"sleep": 4}))
        slow.start()
        time.sleep(0.5)
        # botocore would retry the throttle until the slow one is done: no retries.
        once = boto3.client("lambda", endpoint_url=self.emulator.url, region_name=REGION, aws_access_key_id="testing",
                            aws_secret_access_key="testing", config=Config(retries={"total_max_attempts": 1}))
        with self.assertRaises(ClientError) as refused:
            once.invoke(FunctionName="scarce")
        slow.join()
        self.assertEqual(refused.exception.response["Error"]["Code"], "TooManyRequestsException")
        self.assertEqual(refused.exception.response["ResponseMetadata"]["HTTPStatusCode"], 429)

    def test_version_numbers_are_never_reused_after_a_version_is_deleted(self):
        self.lam.create_function(FunctionName="numbered", Runtime="provided.al2023", Handler="bootstrap",
                                 Role=self.emulator.lambda_role(), Code={"ZipFile": bootstrap_zip(echo("a"))})
        published = []
        for i in range(3):
            self.lam.update_function_configuration(FunctionName="numbered", MemorySize=128 + 64 * (i + 1))
            self.lam.get_waiter("function_updated_v2").wait(FunctionName="numbered")
            published.append(self.lam.publish_version(FunctionName="numbered")["Version"])
        self.assertEqual(published, ["1", "2", "3"])
        self.lam.delete_function(FunctionName="numbered", Qualifier="1")
        self.lam.delete_function(FunctionName="numbered", Qualifier="2")
        self.lam.update_function_configuration(FunctionName="numbered", MemorySize=1024)
        self.lam.get_waiter("function_updated_v2").wait(FunctionName="numbered")
        self.assertEqual(self.lam.publish_version(FunctionName="numbered")["Version"], "4")
        listed = [v["Version"] for v in self.lam.list_versions_by_function(FunctionName="numbered")["Versions"]]
        self.assertEqual(listed, ["$LATEST", "3", "4"])

    def test_each_version_runs_the_bytes_it_was_published_with(self):
        first, second = bootstrap_zip(echo("first")), bootstrap_zip(echo("second"))
        self.lam.create_function(FunctionName="versions", Runtime="provided.al2023", Handler="bootstrap",
                                 Role=self.emulator.lambda_role(), Code={"ZipFile": first})
        self.assertEqual(self.lam.publish_version(FunctionName="versions")["Version"], "1")
        self.lam.update_function_code(FunctionName="versions", ZipFile=second)
        self.assertEqual(self.lam.publish_version(FunctionName="versions")["Version"], "2")
        locations = {q: self.lam.get_function(FunctionName="versions", Qualifier=q)["Code"]["Location"] for q in ("1", "2")}
        self.assertNotEqual(locations["1"], locations["2"])
        for qualifier, code, mark in (("1", first, "first"), ("2", second, "second"), ("$LATEST", second, "second")):
            config = self.lam.get_function(FunctionName="versions", Qualifier=qualifier)["Configuration"]
            self.assertEqual(config["CodeSha256"], base64.b64encode(hashlib.sha256(code).digest()).decode(), qualifier)
            response, answer = self.invoke("versions", Qualifier=qualifier)
            self.assertEqual((answer["mark"], response["ExecutedVersion"]), (mark, qualifier))
            self.assertEqual(answer["env"]["AWS_LAMBDA_FUNCTION_VERSION"], qualifier)

        self.lam.create_alias(FunctionName="versions", Name="live", FunctionVersion="1")
        response, answer = self.invoke("versions:live")
        self.assertEqual((answer["mark"], response["ExecutedVersion"]), ("first", "1"))
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:versions:live"
        self.assertEqual({k.lower(): v for k, v in answer["headers"].items()}["lambda-runtime-invoked-function-arn"], arn)
        self.lam.update_alias(FunctionName="versions", Name="live", FunctionVersion="2")
        response, answer = self.invoke("versions", Qualifier="live")
        self.assertEqual((answer["mark"], response["ExecutedVersion"]), ("second", "2"))

    def test_timeout_kills_the_instance_and_fails_as_aws_does(self):
        self.emulator.create_function("slow", echo(), Timeout=1)
        _, before = self.invoke("slow")
        started = time.monotonic()
        response, error = self.invoke("slow", {"sleep": 5}, LogType="Tail")
        self.assertLess(time.monotonic() - started, 3)
        request_id = response["ResponseMetadata"]["RequestId"]
        self.assertEqual(response["FunctionError"], "Unhandled")
        self.assertEqual(error, {"errorType": "Sandbox.Timedout",
                                 "errorMessage": f"RequestId: {request_id} Error: Task timed out after 1.00 seconds"})
        tail = base64.b64decode(response["LogResult"]).decode()
        self.assertRegex(tail, rf"\dZ {request_id} Task timed out after 1\.00 seconds\n")
        self.assertRegex(tail, rf"REPORT RequestId: {request_id}\t.*\tStatus: timeout\n")
        deadline = time.monotonic() + 2  # killed at once; reaped a moment later
        while os.path.exists(f"/proc/{before['pid']}") and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertFalse(os.path.exists(f"/proc/{before['pid']}"), "the timed-out process lives on")
        _, after = self.invoke("slow")
        self.assertNotEqual(after["pid"], before["pid"])
        counts = self.counts("slow")
        self.assertEqual((counts["timeouts"], counts["cold_starts"], counts["errors"]), (1, 2, 1))

    def test_init_crash_is_a_runtime_exit_error_with_the_last_output_logged(self):
        self.emulator.create_function("crash", "#!/bin/sh\necho 'reading settings' \necho 'no settings file' >&2\nexit 3\n")
        response, error = self.invoke("crash", LogType="Tail")
        request_id = response["ResponseMetadata"]["RequestId"]
        self.assertEqual(response["FunctionError"], "Unhandled")
        self.assertEqual(error, {"errorType": "Runtime.ExitError",
                                 "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status 3"})
        tail = base64.b64decode(response["LogResult"]).decode()
        self.assertIn("no settings file\n", tail)
        self.assertIn("Phase: init\tStatus: error\tError Type: Runtime.ExitError", tail)
        messages = self.log_messages("crash")
        self.assertIn("no settings file", messages)
        self.assertIn(f"RequestId: {request_id} Error: Runtime exited with error: exit status 3\nRuntime.ExitError", messages)

    def test_function_error_and_exit_during_invocation(self):
        self.emulator.create_function("errors", echo())
        response, error = self.invoke("errors", {"fail": True})
        self.assertEqual((response["FunctionError"], error), ("Unhandled", {"errorType": "Oops", "errorMessage": "asked to fail"}))
        _, answer = self.invoke("errors")  # still the same, warm instance
        response, error = self.invoke("errors", {"exit": 0})
        self.assertEqual(error["errorType"], "Runtime.ExitError")
        self.assertTrue(error["errorMessage"].endswith("Error: Runtime exited without providing a reason"), error)
        self.assertEqual(self.counts("errors")["instances"], [])

    def test_logs_have_start_end_report_per_instance_stream(self):
        self.emulator.create_function("logged", echo(), MemorySize=192)
        cold, _ = self.invoke("logged", {"n": "cold"})
        warm, _ = self.invoke("logged", {"n": "warm"})
        group = "/aws/lambda/logged"
        streams = self.logs.describe_log_streams(logGroupName=group)["logStreams"]
        self.assertEqual(len(streams), 1)
        self.assertRegex(streams[0]["logStreamName"], STREAM)
        self.assertNotIn("retentionInDays", self.logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0])
        messages = self.log_messages("logged")
        ids = [r["ResponseMetadata"]["RequestId"] for r in (cold, warm)]
        report = r"REPORT RequestId: {}\tDuration: \d+\.\d\d ms\tBilled Duration: \d+ ms\tMemory Size: 192 MB\tMax Memory Used: [1-9]\d* MB"
        expected = [
            "initialised",
            f"START RequestId: {ids[0]} Version: $LATEST", 'handling {"n": "cold"}', f"END RequestId: {ids[0]}",
            re.compile(report.format(ids[0]) + r"\tInit Duration: \d+\.\d\d ms$"),
            f"START RequestId: {ids[1]} Version: $LATEST", 'handling {"n": "warm"}', f"END RequestId: {ids[1]}",
            re.compile(report.format(ids[1]) + "$"),
        ]
        self.assertEqual(len(messages), len(expected), messages)
        for message, want in zip(messages, expected):
            if isinstance(want, str):
                self.assertEqual(message, want)
            else:
                self.assertRegex(message, want)

    def test_event_invocation_runs_in_the_background(self):
        self.emulator.create_function("background", echo())
        target = Path(tempfile.mkdtemp()) / "event.json"
        response = self.lam.invoke(FunctionName="background", InvocationType="Event",
                                   Payload=json.dumps({"sleep": 0.5, "write": str(target)}).encode())
        self.assertEqual(response["StatusCode"], 202)
        self.assertEqual(response["Payload"].read(), b"")
        self.assertFalse(target.exists(), "the Event invocation waited for the function")
        deadline = time.monotonic() + 10
        while not target.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertEqual(json.loads(target.read_text())["write"], str(target))
        dry = self.lam.invoke(FunctionName="background", InvocationType="DryRun")
        self.assertEqual(dry["StatusCode"], 204)

    def test_unknown_function_or_qualifier(self):
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.lam.invoke(FunctionName="nowhere")
        self.emulator.create_function("known", echo())
        with self.assertRaises(self.lam.exceptions.ResourceNotFoundException):
            self.lam.invoke(FunctionName="known", Qualifier="7")

    def test_bootstrap_must_match_the_architecture(self):
        with open(sys.executable, "rb") as f:
            x86_64 = f.read()  # this machine's own binary
        arm64 = b"\x7fELF\x02\x01\x01" + bytes(9) + (2).to_bytes(2, "little") + (183).to_bytes(2, "little") + bytes(44)
        for name, binary, arch in (("arm-x86", x86_64, "arm64"), ("x86-arm", arm64, "x86_64")):
            self.lam.create_function(FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=self.emulator.lambda_role(),
                                     Code={"ZipFile": bootstrap_zip(binary)}, Architectures=[arch])
            response, error = self.invoke(name)
            self.assertEqual(error["errorType"], "Runtime.InvalidEntrypoint", name)
            self.assertRegex(error["errorMessage"], r"Error: fork/exec \S+/bootstrap: exec format error$")
        self.lam.create_function(FunctionName="arm", Runtime="provided.al2023", Handler="bootstrap", Role=self.emulator.lambda_role(),
                                 Code={"ZipFile": bootstrap_zip(arm64)}, Architectures=["arm64"])
        response, error = self.invoke("arm")
        if shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64"):
            self.assertEqual(error["errorType"], "Runtime.ExitError")  # qemu ran it, and this header is all it has
        else:
            self.assertEqual(error["errorType"], "Runtime.InvalidEntrypoint")
            self.assertIn("install qemu-user-static", error["errorMessage"])


class PythonApiTest(unittest.TestCase):
    """The in-process API the gateway and schedules use, on moto's in-memory backends."""

    @classmethod
    def setUpClass(cls):
        from moto.awslambda.models import lambda_backends
        from moto.iam.models import iam_backends

        from deploy_emulator import lambda_runtime
        cls.runtime = lambda_runtime
        cls.run_dir = tempfile.TemporaryDirectory()
        os.environ["DEPLOY_EMULATOR_RUN_DIR"] = cls.run_dir.name  # where the code is unpacked
        lambda_runtime.install()
        role = iam_backends[ACCOUNT]["aws"].create_role("api-test", json.dumps(LAMBDA_TRUST), "/", None, "", [], None)
        cls.backend = lambda_backends[ACCOUNT][REGION]
        cls.backend.create_function({"FunctionName": "api", "Runtime": "provided.al2023", "Handler": "bootstrap", "Role": role.arn,
                                     "Code": {"ZipFile": base64.b64encode(bootstrap_zip(echo())).decode()}})
        cls.backend.publish_version("api")
        cls.backend.create_alias("live", "api", "1", "", None)

    @classmethod
    def tearDownClass(cls):
        cls.runtime.shutdown()
        del os.environ["DEPLOY_EMULATOR_RUN_DIR"]
        cls.run_dir.cleanup()

    def test_names_arns_and_qualifiers(self):
        arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:api"
        for function, qualifier, version in (("api", None, "$LATEST"), (arn, None, "$LATEST"), (f"{arn}:live", None, "1"),
                                             (f"{ACCOUNT}:function:api:1", None, "1"), ("api:live", "$LATEST", "$LATEST")):
            result = self.runtime.invoke(ACCOUNT, REGION, function, qualifier, payload='{"x": 1}', log_tail=True)
            self.assertEqual((result["status"], result["executed_version"], result["function_error"]), (200, version, None), function)
            self.assertEqual(json.loads(result["payload"])["event"], {"x": 1})
            self.assertIn(f"END RequestId: {result['request_id']}\n", result["log_tail"])
        with self.assertRaises(self.runtime.NotFound):
            self.runtime.invoke(ACCOUNT, REGION, "api", "missing")
        with self.assertRaises(self.runtime.NotFound):
            self.runtime.invoke(ACCOUNT, REGION, "absent")
        listed = self.runtime.instances()
        self.assertEqual({i["version"] for i in listed}, {"$LATEST", "1"})
        for instance in listed:
            self.assertEqual((instance["function_name"], instance["subnet_ids"]), ("api", []))
            self.assertTrue(os.path.exists(f"/proc/{instance['pid']}"))

    def test_asynchronous_returns_at_once(self):
        started = time.monotonic()
        result = self.runtime.invoke(ACCOUNT, REGION, "api", payload=b'{"sleep": 1}', asynchronous=True)
        self.assertLess(time.monotonic() - started, 0.5)
        self.assertEqual((result["status"], result["payload"]), (202, b""))


if __name__ == "__main__":
    unittest.main()
