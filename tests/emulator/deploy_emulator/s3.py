"""S3 as the middleware needs it: the action a path-style REST-XML request names (for
the call counter and hostile mode), S3's XML error document, and conditional writes
(If-Match, If-None-Match) evaluated and applied as one atomic step, as on S3. moto
checks a precondition and then writes without a lock, so two racing
`If-None-Match: *` writes can both succeed; it also refuses `If-Match: *` on
DeleteObject, ignores the preconditions of CopyObject and CompleteMultipartUpload's
If-Match, and takes an If-None-Match other than `*` as unconditional.

Also bucket policies' `aws:SecureTransport` conditions, judged as for requests over TLS
(see install)."""

import base64
import json
import os
import re
import threading
import uuid
from http import HTTPStatus
from urllib.parse import parse_qs, unquote
from xml.sax.saxutils import escape

from moto.iam.access_control import IAMPolicy, PermissionResult
from moto.iam.models import get_account_id_from
from moto.s3.exceptions import S3ClientError
from moto.s3.models import FakeBucket, FakeKey, s3_backends
from moto.utilities.utils import get_partition

VERBS = {"GET": "Get", "PUT": "Put", "DELETE": "Delete"}
# Subresources whose Get/Put/Delete actions are the verb and this name.
BUCKET_CONFIGURATIONS = {
    "accelerate": "BucketAccelerateConfiguration",
    "acl": "BucketAcl",
    "cors": "BucketCors",
    "encryption": "BucketEncryption",
    "lifecycle": "BucketLifecycleConfiguration",
    "location": "BucketLocation",
    "logging": "BucketLogging",
    "notification": "BucketNotificationConfiguration",
    "object-lock": "ObjectLockConfiguration",
    "ownershipControls": "BucketOwnershipControls",
    "policy": "BucketPolicy",
    "policyStatus": "BucketPolicyStatus",
    "publicAccessBlock": "PublicAccessBlock",
    "replication": "BucketReplication",
    "requestPayment": "BucketRequestPayment",
    "tagging": "BucketTagging",
    "versioning": "BucketVersioning",
    "website": "BucketWebsite",
}
OBJECT_CONFIGURATIONS = {
    "acl": "ObjectAcl",
    "legal-hold": "ObjectLegalHold",
    "retention": "ObjectRetention",
    "tagging": "ObjectTagging",
}
BUCKET_ACTIONS = {
    ("PUT", None): "CreateBucket",
    ("DELETE", None): "DeleteBucket",
    ("HEAD", None): "HeadBucket",
    ("GET", None): "ListObjects",
    ("GET", "list-type"): "ListObjectsV2",
    ("GET", "versions"): "ListObjectVersions",
    ("GET", "uploads"): "ListMultipartUploads",
    ("POST", "delete"): "DeleteObjects",
    ("DELETE", "lifecycle"): "DeleteBucketLifecycle",
}
OBJECT_ACTIONS = {
    ("PUT", None): "PutObject",
    ("GET", None): "GetObject",
    ("HEAD", None): "HeadObject",
    ("DELETE", None): "DeleteObject",
    ("GET", "attributes"): "GetObjectAttributes",
    ("POST", "restore"): "RestoreObject",
    ("POST", "select"): "SelectObjectContent",
    ("POST", "uploads"): "CreateMultipartUpload",
    ("PUT", "uploadId"): "UploadPart",
    ("GET", "uploadId"): "ListParts",
    ("POST", "uploadId"): "CompleteMultipartUpload",
    ("DELETE", "uploadId"): "AbortMultipartUpload",
}
# A PUT that names a source object (x-amz-copy-source) copies instead.
COPIES = {"PutObject": "CopyObject", "UploadPart": "UploadPartCopy"}
# Subresources left unnamed: counted as "METHOD ?name" rather than mistaken for a listing.
UNNAMED = {"analytics", "intelligent-tiering", "inventory", "metrics", "metadataConfiguration",
           "metadataTable", "session", "torrent", "annotation", "renameObject", "abac"}
SUBRESOURCES = ({k for _, k in BUCKET_ACTIONS} | {k for _, k in OBJECT_ACTIONS}
                | BUCKET_CONFIGURATIONS.keys() | OBJECT_CONFIGURATIONS.keys() | UNNAMED) - {None}

CONDITIONAL_WRITES = {"PutObject", "CopyObject", "CompleteMultipartUpload", "DeleteObject"}
# Every write of an object takes the lock, so none comes between a conditional write's
# check and its write.
WRITES = CONDITIONAL_WRITES | {"DeleteObjects"}
CONDITIONS = ("HTTP_IF_MATCH", "HTTP_IF_NONE_MATCH")
# The server errors S3 answers when it is struggling.
SERVER_ERRORS = (("InternalError", 500, "We encountered an internal error. Please try again."),
                 ("ServiceUnavailable", 503, "Please reduce your request rate."))
_writes = threading.Lock()
# What a request's policy conditions see: the emulator stands in for S3's HTTPS endpoint.
REQUEST_CONTEXT = {"aws:securetransport": "true"}


def _bucket_and_key(environ):
    # The key as the client encoded it (PATH_INFO is decoded as Latin-1).
    path = environ.get("RAW_URI", "").split("?", 1)[0] or environ.get("PATH_INFO", "")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    return bucket, key


def action(environ):
    method = environ["REQUEST_METHOD"]
    bucket, key = _bucket_and_key(environ)
    query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    sub = next((k for k in query if k in SUBRESOURCES), None)
    if not bucket:
        return "ListBuckets" if method == "GET" else f"{method} /"
    configurations, actions = (OBJECT_CONFIGURATIONS, OBJECT_ACTIONS) if key else (BUCKET_CONFIGURATIONS, BUCKET_ACTIONS)
    name = actions.get((method, sub))
    if name is None and sub in configurations and method in VERBS:
        name = VERBS[method] + configurations[sub]
    if name is None:
        return f"{method} /{{bucket}}{'/{key}' if key else ''}{'?' + sub if sub else ''}"
    if "HTTP_X_AMZ_COPY_SOURCE" in environ:
        name = COPIES.get(name, name)
    return name


def error(start_response, method, code, message, status, **details):
    """S3's error document (no body for HEAD, as S3 sends none); `details` are extra
    elements such as Key or Condition."""
    request_id = uuid.uuid4().hex[:16].upper()
    host_id = base64.b64encode(os.urandom(48)).decode()
    extra = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in details.items())
    body = b"" if method == "HEAD" else (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>{extra}"
        f"<RequestId>{request_id}</RequestId><HostId>{host_id}</HostId></Error>").encode()
    start_response(f"{status} {HTTPStatus(status).phrase}", [
        ("Content-Type", "application/xml"), ("Content-Length", str(len(body))),
        ("x-amz-request-id", request_id), ("x-amz-id-2", host_id)])
    return [body]


def is_conditional_write(action_name, environ):
    return action_name in CONDITIONAL_WRITES and any(h in environ for h in CONDITIONS)


# Reads whose XML moto wraps in `<ActionResponse>` where S3 answers with the
# configuration's own root element (the SDKs check the root).
ROOTS = {"GetBucketVersioning": "VersioningConfiguration"}


def _with_root(app, action_name, environ, start_response):
    captured = {}

    def capture(status, headers, exc_info=None):
        captured["status"], captured["headers"], captured["exc_info"] = status, headers, exc_info
        return lambda _data: None

    body = b"".join(app(environ, capture))
    wrong, right = f"{action_name}Response".encode(), ROOTS[action_name].encode()
    if captured["status"].startswith("200") and wrong in body:
        body = body.replace(b"<" + wrong, b"<" + right, 1).replace(b"</" + wrong + b">", b"</" + right + b">", 1)
    headers = [(k, str(len(body)) if k.lower() == "content-length" else v) for k, v in captured["headers"]]
    start_response(captured["status"], headers, captured["exc_info"])
    return [body]


def serve(app, action_name, environ, start_response):
    """moto's answer, all of it: a conditional write's preconditions are evaluated and
    the write is done under one lock that every write of an object takes."""
    if action_name in ROOTS:
        return _with_root(app, action_name, environ, start_response)
    if action_name not in WRITES:
        return list(app(environ, start_response))
    with _writes:
        refusal = _refusal(action_name, environ) if is_conditional_write(action_name, environ) else None
        if refusal is not None:
            code, message, status, details = refusal
            return error(start_response, environ["REQUEST_METHOD"], code, message, status, **details)
        # The conditions held: moto writes without checking them again its own way.
        unconditional = {k: v for k, v in environ.items() if k not in CONDITIONS}
        return list(app(unconditional, start_response))


def _refusal(action_name, environ):
    """(code, message, status, details) of S3's refusal of this conditional write, or
    None when its conditions hold (or the bucket is missing: moto says so)."""
    if_match, if_none_match = environ.get("HTTP_IF_MATCH"), environ.get("HTTP_IF_NONE_MATCH")
    deleting = action_name == "DeleteObject"
    if not deleting and if_none_match not in (None, "*"):
        return ("NotImplemented", "A header you provided implies functionality that is not implemented",
                501, {"Header": "If-None-Match"})
    bucket, key = _bucket_and_key(environ)
    try:
        etag = _current_etag(environ, bucket, key)
    except S3ClientError:
        return None
    precondition_failed = ("PreconditionFailed", "At least one of the pre-conditions you specified did not hold", 412)
    if if_match is not None:
        if etag is None:
            return "NoSuchKey", "The specified key does not exist.", 404, {"Key": key}
        if if_match.strip() != "*" and _bare(if_match) != _bare(etag):
            return *precondition_failed, {"Condition": "If-Match"}
    if not deleting and if_none_match == "*" and etag is not None:
        return *precondition_failed, {"Condition": "If-None-Match"}
    return None


def _current_etag(environ, bucket, key):
    """The ETag of the key's current version, None when there is none (or it is a
    delete marker); moto's account and partition rules pick the backend."""
    m = re.search(r"Credential=([^/]+)/[^/]+/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    access_key, region = m.groups() if m else ("", "")
    account = os.environ.get("MOTO_ACCOUNT_ID") or environ.get("HTTP_X_MOTO_ACCOUNT_ID") or get_account_id_from(access_key)
    current = s3_backends[account][get_partition(region)].get_bucket(bucket).keys.get(key)
    return current.etag if isinstance(current, FakeKey) else None


def _bare(etag):
    return etag.strip().removeprefix("W/").strip('"')


def install():
    """Bucket policies judge `Bool` conditions on the keys in REQUEST_CONTEXT as S3
    would. moto takes a condition operator it does not know (all but StringEquals) as
    met, and a condition not met as a denial whatever the statement's effect, so the
    usual `Deny` when `aws:SecureTransport` is false denied every object request."""

    def get_permission(self, action, resource):
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(self.policy)
        statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
        applying = []
        for statement in statements:
            met = _condition_met(statement["Condition"]) if "Condition" in statement else None
            if met is False:
                continue  # the statement is not about this request
            if met:
                statement = {k: v for k, v in statement.items() if k != "Condition"}
            applying.append(statement)
        return IAMPolicy(json.dumps({**policy, "Statement": applying})).is_action_permitted(action, resource)

    FakeBucket.get_permission = get_permission


def _condition_met(condition):
    """Whether a statement's Condition holds for a request to the emulator; None when
    it names an operator or a key the emulator does not model (moto judges it)."""
    for operator, keys in condition.items():
        if operator != "Bool" or any(k.lower() not in REQUEST_CONTEXT for k in keys):
            return None
    return all(REQUEST_CONTEXT[k.lower()] in [str(v).lower() for v in (want if isinstance(want, list) else [want])]
               for keys in condition.values() for k, want in keys.items())
