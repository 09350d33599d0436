"""S3 as the state backend meets it: calls counted by action, conditional writes
answered and applied atomically as S3 does (If-None-Match: * creates once, If-Match
swaps only the version it names, conditional deletes), a bucket policy denying requests
without TLS, and hostile mode's S3 errors (SlowDown, InternalError,
ConditionalRequestConflict, lost answers) in S3's own format."""

import http.client
import json
import os
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from .support import REGION, Emulator

# Path-style, as the tool talks to the emulator; one attempt per call, so the test sees
# each answer the emulator gives.
PATH_STYLE = Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, max_pool_connections=32)
BUCKET = "deploy-state"


def s3_of(em):
    return boto3.client("s3", endpoint_url=em.url, region_name=REGION, config=PATH_STYLE,
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def refusal(call):
    """(error code, HTTP status) of a call that must fail."""
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError("the call succeeded")


def hostile(throttle="0", server_errors="0", lost="0"):
    """An emulator in hostile mode with these rates (and a fixed seed)."""
    rates = {"DEPLOY_EMULATOR_THROTTLE": throttle, "DEPLOY_EMULATOR_5XX": server_errors, "DEPLOY_EMULATOR_LOST": lost}
    with mock.patch.dict(os.environ, rates):
        return Emulator("--hostile", "--seed", "7").start()


def until_not_throttled(call):
    for _ in range(50):
        try:
            return call()
        except ClientError as e:
            if e.response["Error"]["Code"] != "SlowDown":
                raise
    raise AssertionError("throttled 50 times")


class ActionNames(unittest.TestCase):
    def test_each_call_is_counted_by_its_s3_action(self):
        with Emulator() as em:
            s3 = s3_of(em)
            s3.create_bucket(Bucket=BUCKET)
            s3.head_bucket(Bucket=BUCKET)
            s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
            s3.get_bucket_versioning(Bucket=BUCKET)
            s3.put_bucket_encryption(Bucket=BUCKET, ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
            s3.get_bucket_encryption(Bucket=BUCKET)
            block = {k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")}
            s3.put_public_access_block(Bucket=BUCKET, PublicAccessBlockConfiguration=block)
            s3.get_public_access_block(Bucket=BUCKET)
            s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(denying("false")))
            s3.get_bucket_policy(Bucket=BUCKET)
            s3.put_bucket_lifecycle_configuration(Bucket=BUCKET, LifecycleConfiguration={"Rules": [{
                "ID": "old-versions", "Status": "Enabled", "Filter": {"Prefix": ""},
                "NoncurrentVersionExpiration": {"NoncurrentDays": 90}}]})
            s3.get_bucket_lifecycle_configuration(Bucket=BUCKET)
            s3.put_object(Bucket=BUCKET, Key="env/prod.json", Body=b"{}", IfNoneMatch="*")
            s3.head_object(Bucket=BUCKET, Key="env/prod.json")
            s3.get_object(Bucket=BUCKET, Key="env/prod.json")["Body"].read()
            s3.copy_object(Bucket=BUCKET, Key="env/prod.backup.json", CopySource={"Bucket": BUCKET, "Key": "env/prod.json"})
            s3.list_objects_v2(Bucket=BUCKET, Prefix="env/")
            s3.list_objects(Bucket=BUCKET)
            s3.list_object_versions(Bucket=BUCKET, Prefix="env/prod.json")
            s3.delete_object(Bucket=BUCKET, Key="env/prod.backup.json")
            s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": "env/prod.json"}]})
            upload = s3.create_multipart_upload(Bucket=BUCKET, Key="big")["UploadId"]
            part = s3.upload_part(Bucket=BUCKET, Key="big", UploadId=upload, PartNumber=1, Body=b"x")["ETag"]
            s3.list_parts(Bucket=BUCKET, Key="big", UploadId=upload)
            s3.complete_multipart_upload(Bucket=BUCKET, Key="big", UploadId=upload,
                                         MultipartUpload={"Parts": [{"ETag": part, "PartNumber": 1}]})
            s3.put_object_tagging(Bucket=BUCKET, Key="big", Tagging={"TagSet": [{"Key": "a", "Value": "1"}]})
            s3.delete_bucket_lifecycle(Bucket=BUCKET)
            s3.delete_bucket_policy(Bucket=BUCKET)
            s3.list_buckets()

            status, calls = em.control("GET", "/_deploy/calls")
            self.assertEqual(status, 200)
            self.assertEqual(calls["calls"], {f"s3.{name}": 1 for name in (
                "CreateBucket", "HeadBucket", "PutBucketVersioning", "GetBucketVersioning", "PutBucketEncryption",
                "GetBucketEncryption", "PutPublicAccessBlock", "GetPublicAccessBlock", "PutBucketPolicy",
                "GetBucketPolicy", "PutBucketLifecycleConfiguration", "GetBucketLifecycleConfiguration", "PutObject",
                "HeadObject", "GetObject", "CopyObject", "ListObjectsV2", "ListObjects", "ListObjectVersions",
                "DeleteObject", "DeleteObjects", "CreateMultipartUpload", "UploadPart", "ListParts",
                "CompleteMultipartUpload", "PutObjectTagging", "DeleteBucketLifecycle", "DeleteBucketPolicy",
                "ListBuckets")})

    def test_s3_calls_wait_out_the_injected_latency(self):
        with Emulator("--latency-ms", "400") as em:
            s3 = s3_of(em)
            started = time.monotonic()
            self.assertEqual(refusal(lambda: s3.head_bucket(Bucket=BUCKET)), ("404", 404))
            self.assertGreaterEqual(time.monotonic() - started, 0.4)


class ConditionalWrites(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = Emulator().start()
        cls.s3 = s3_of(cls.emulator)
        cls.s3.create_bucket(Bucket=BUCKET)
        cls.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})

    @classmethod
    def tearDownClass(cls):
        cls.emulator.stop()

    def read(self, key):
        return self.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()

    def test_if_none_match_creates_once(self):
        self.s3.put_object(Bucket=BUCKET, Key="once", Body=b"first", IfNoneMatch="*")
        self.assertEqual(refusal(lambda: self.s3.put_object(Bucket=BUCKET, Key="once", Body=b"second", IfNoneMatch="*")),
                         ("PreconditionFailed", 412))
        self.assertEqual(self.read("once"), b"first")
        # S3 takes only `*` here.
        self.assertEqual(refusal(lambda: self.s3.put_object(Bucket=BUCKET, Key="once", Body=b"x", IfNoneMatch='"abc"')),
                         ("NotImplemented", 501))

    def test_a_key_whose_current_version_is_a_delete_marker_can_be_created_again(self):
        self.s3.put_object(Bucket=BUCKET, Key="reborn", Body=b"1", IfNoneMatch="*")
        self.s3.delete_object(Bucket=BUCKET, Key="reborn")
        self.s3.put_object(Bucket=BUCKET, Key="reborn", Body=b"2", IfNoneMatch="*")
        self.assertEqual(self.read("reborn"), b"2")

    def test_if_match_replaces_only_the_version_it_names(self):
        first = self.s3.put_object(Bucket=BUCKET, Key="cas", Body=b"v1")["ETag"]
        second = self.s3.put_object(Bucket=BUCKET, Key="cas", Body=b"v2", IfMatch=first)["ETag"]
        self.assertNotEqual(first, second)
        self.assertEqual(refusal(lambda: self.s3.put_object(Bucket=BUCKET, Key="cas", Body=b"v3", IfMatch=first)),
                         ("PreconditionFailed", 412))
        self.assertEqual(self.read("cas"), b"v2")

    def test_if_match_on_a_missing_key_is_no_such_key(self):
        self.assertEqual(refusal(lambda: self.s3.put_object(Bucket=BUCKET, Key="absent", Body=b"x", IfMatch='"0123"')),
                         ("NoSuchKey", 404))
        self.assertEqual(refusal(lambda: self.s3.head_object(Bucket=BUCKET, Key="absent")), ("404", 404))

    def test_a_conditional_delete_removes_only_the_version_it_names(self):
        etag = self.s3.put_object(Bucket=BUCKET, Key="lock", Body=b"held")["ETag"]
        self.assertEqual(refusal(lambda: self.s3.delete_object(Bucket=BUCKET, Key="lock", IfMatch='"0123"')),
                         ("PreconditionFailed", 412))
        self.assertEqual(self.read("lock"), b"held")
        self.s3.delete_object(Bucket=BUCKET, Key="lock", IfMatch=etag)
        self.assertEqual(refusal(lambda: self.s3.head_object(Bucket=BUCKET, Key="lock")), ("404", 404))
        self.assertEqual(refusal(lambda: self.s3.delete_object(Bucket=BUCKET, Key="lock", IfMatch=etag)),
                         ("NoSuchKey", 404))
        # `*`: whatever version is there.
        self.s3.put_object(Bucket=BUCKET, Key="lock", Body=b"again")
        self.s3.delete_object(Bucket=BUCKET, Key="lock", IfMatch="*")
        self.assertEqual(refusal(lambda: self.s3.head_object(Bucket=BUCKET, Key="lock")), ("404", 404))

    def test_a_copy_honours_the_destinations_conditions(self):
        self.s3.put_object(Bucket=BUCKET, Key="copy-source", Body=b"source")
        self.s3.put_object(Bucket=BUCKET, Key="copy-target", Body=b"target")
        source = {"Bucket": BUCKET, "Key": "copy-source"}
        self.assertEqual(refusal(lambda: self.s3.copy_object(Bucket=BUCKET, Key="copy-target", CopySource=source, IfNoneMatch="*")),
                         ("PreconditionFailed", 412))
        self.assertEqual(self.read("copy-target"), b"target")

    def test_racing_creates_of_one_key_have_one_winner(self):
        # Large bodies keep each request busy long enough for the racers to overlap.
        body = os.urandom(1 << 20)
        racers = 16
        for round_ in range(4):
            key = f"race-{round_}"
            start = threading.Barrier(racers)

            def create(n):
                start.wait()
                try:
                    self.s3.put_object(Bucket=BUCKET, Key=key, Body=body[:-1] + bytes([n]), IfNoneMatch="*")
                    return 200
                except ClientError as e:
                    return e.response["ResponseMetadata"]["HTTPStatusCode"]

            with ThreadPoolExecutor(racers) as pool:
                answers = sorted(pool.map(create, range(racers)))
            self.assertEqual(answers, [200] + [412] * (racers - 1), f"round {round_}")
            versions = self.s3.list_object_versions(Bucket=BUCKET, Prefix=key)["Versions"]
            self.assertEqual(len(versions), 1, f"round {round_}: one create, one version")


class ChunkedBodies(unittest.TestCase):
    def test_a_body_sent_in_chunks_is_stored_whole(self):
        # Transfer-Encoding: chunked has no Content-Length; the object was stored empty.
        with Emulator() as em:
            s3 = s3_of(em)
            s3.create_bucket(Bucket=BUCKET)
            conn = http.client.HTTPConnection("127.0.0.1", em.port, timeout=30)
            self.addCleanup(conn.close)
            conn.putrequest("PUT", f"/{BUCKET}/chunked")
            conn.putheader("Authorization", "AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/s3/aws4_request, "
                                            "SignedHeaders=host, Signature=0")
            conn.putheader("Transfer-Encoding", "chunked")
            conn.endheaders()
            for part in (b"first ", b"second", b""):
                conn.send(b"%x\r\n%s\r\n" % (len(part), part))
            self.assertEqual(conn.getresponse().status, 200)
            self.assertEqual(s3.get_object(Bucket=BUCKET, Key="chunked")["Body"].read(), b"first second")


class BucketPolicies(unittest.TestCase):
    def test_a_policy_denying_requests_without_tls_lets_the_emulators_through(self):
        # The emulator stands in for S3's HTTPS endpoint; moto denied every object
        # request under this policy, whatever the condition said.
        with Emulator() as em:
            s3 = s3_of(em)
            s3.create_bucket(Bucket=BUCKET)
            s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(denying("false")))
            s3.put_object(Bucket=BUCKET, Key="state.json", Body=b"{}")
            self.assertEqual(s3.get_object(Bucket=BUCKET, Key="state.json")["Body"].read(), b"{}")
            s3.delete_object(Bucket=BUCKET, Key="state.json")
            # The condition is judged, not dropped: a statement that applies denies.
            s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(denying("true")))
            self.assertEqual(refusal(lambda: s3.put_object(Bucket=BUCKET, Key="state.json", Body=b"{}")), ("403", 403))


def denying(secure_transport):
    """The tool's bootstrap policy when `secure_transport` is "false"."""
    return {"Version": "2012-10-17", "Statement": [{
        "Sid": "DenyInsecureTransport", "Effect": "Deny", "Principal": "*", "Action": "s3:*",
        "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": secure_transport}}}]}


class HostileS3(unittest.TestCase):
    def test_throttling_is_slow_down(self):
        em = hostile(throttle="1")
        self.addCleanup(em.stop)
        s3 = s3_of(em)
        self.assertEqual(refusal(lambda: s3.create_bucket(Bucket=BUCKET)), ("SlowDown", 503))
        # HEAD answers carry no body: the SDK knows the error by its status only.
        self.assertEqual(refusal(lambda: s3.head_bucket(Bucket=BUCKET)), ("503", 503))

    def test_server_errors_are_s3s(self):
        em = hostile(server_errors="1")
        self.addCleanup(em.stop)
        s3 = s3_of(em)
        seen = {refusal(lambda: s3.list_buckets()) for _ in range(20)}
        self.assertEqual(seen, {("InternalError", 500), ("ServiceUnavailable", 503)})

    def test_conditional_writes_meet_conflicts_before_the_work(self):
        em = hostile(throttle="0.3")
        self.addCleanup(em.stop)
        s3 = s3_of(em)
        until_not_throttled(lambda: s3.create_bucket(Bucket=BUCKET))
        answers = {}
        for n in range(40):
            try:
                s3.put_object(Bucket=BUCKET, Key=f"k{n}", Body=b"x", IfNoneMatch="*")
                answers[f"k{n}"] = "written"
            except ClientError as e:
                answers[f"k{n}"] = e.response["Error"]["Code"]
        self.assertIn("ConditionalRequestConflict", answers.values())
        self.assertLessEqual(set(answers.values()), {"written", "SlowDown", "ConditionalRequestConflict"})
        listed = until_not_throttled(lambda: s3.list_objects_v2(Bucket=BUCKET))
        written = sorted(o["Key"] for o in listed.get("Contents", []))
        self.assertEqual(written, sorted(k for k, answer in answers.items() if answer == "written"))

    def test_a_write_whose_answer_is_lost_took_effect(self):
        em = hostile(lost="1")
        self.addCleanup(em.stop)
        s3 = s3_of(em)
        s3.create_bucket(Bucket=BUCKET)
        self.assertEqual(refusal(lambda: s3.put_object(Bucket=BUCKET, Key="state.json", Body=b"{}", IfNoneMatch="*")),
                         ("InternalError", 500))
        self.assertEqual(s3.get_object(Bucket=BUCKET, Key="state.json")["Body"].read(), b"{}")
        # A retry of the create sees the first one's object.
        self.assertEqual(refusal(lambda: s3.put_object(Bucket=BUCKET, Key="state.json", Body=b"{}", IfNoneMatch="*")),
                         ("PreconditionFailed", 412))
        etag = s3.head_object(Bucket=BUCKET, Key="state.json")["ETag"]
        self.assertEqual(refusal(lambda: s3.delete_object(Bucket=BUCKET, Key="state.json", IfMatch=etag)),
                         ("InternalError", 500))
        self.assertEqual(refusal(lambda: s3.head_object(Bucket=BUCKET, Key="state.json")), ("404", 404))
        self.assertEqual(em.control("GET", "/_deploy/calls")[1]["lost"], {"s3.PutObject": 1, "s3.DeleteObject": 1})


if __name__ == "__main__":
    unittest.main()
