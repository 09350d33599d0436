"""Shared by the emulator's tests: an emulator of their own on a free port (started and
stopped by tests/emulator/start and stop), boto3 clients for it, its control endpoints,
and Lambda functions whose code is a `bootstrap` script."""

import io
import json
import os
import socket
import subprocess
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import boto3

EMULATOR_DIR = Path(__file__).resolve().parent.parent  # tests/emulator
ACCOUNT = "123456789012"  # moto's default account
REGION = "us-east-1"
LAMBDA_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """One emulator process on a free port; `args` go to tests/emulator/start, e.g.
    `Emulator("--schedule-scale", "0.001")`. Use with `with`, or start()/stop()."""

    def __init__(self, *args):
        self.port = free_port()
        self.args = args
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"deploy-emulator-{self.port}" / "log"

    def start(self):
        done = subprocess.run(["bash", str(EMULATOR_DIR / "start"), "--port", str(self.port), *self.args],
                              capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise RuntimeError(f"the emulator did not start: {done.stderr}")
        return self

    def stop(self):
        subprocess.run(["bash", str(EMULATOR_DIR / "stop"), "--port", str(self.port)], capture_output=True, timeout=60)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log(self):
        """The emulator's stdout and stderr so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def ca_bundle(self):
        """The PEM bundle (system CAs + the emulator's CA) the cache endpoints verify with."""
        return str(self.log_path.parent / "tls" / "ca-bundle.pem")

    def client(self, service):
        return boto3.client(service, endpoint_url=self.url, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def control(self, method, path, body=None):
        """(status, decoded JSON or raw bytes) of a request to the emulator itself."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as r:
                status, raw = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, raw = e.code, e.read()
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw

    def lambda_role(self, name="test-lambda-role"):
        """The ARN of a role Lambda may assume (created once per emulator)."""
        iam = self.client("iam")
        try:
            return iam.get_role(RoleName=name)["Role"]["Arn"]
        except iam.exceptions.NoSuchEntityException:
            return iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(LAMBDA_TRUST))["Role"]["Arn"]

    def create_function(self, name, bootstrap, environment=None, **extra):
        """A provided.al2023 function whose zip holds `bootstrap` (a script's text)."""
        return self.client("lambda").create_function(
            FunctionName=name, Runtime="provided.al2023", Handler="bootstrap", Role=self.lambda_role(),
            Code={"ZipFile": bootstrap_zip(bootstrap)},
            Environment={"Variables": environment or {}}, **extra)


def bootstrap_zip(script):
    """A deployment package holding an executable `bootstrap`."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        info = zipfile.ZipInfo("bootstrap")
        info.external_attr = 0o755 << 16
        z.writestr(info, script)
    return buffer.getvalue()
