"""ElastiCache Serverless for moto: create, describe, modify, delete and tags, with a
real lifecycle (creating -> available, modifying, deleting) and endpoints served by a
real Valkey (cluster mode, like ElastiCache Serverless) started for each cache, behind
`cache_front`'s TLS listeners. Snapshots too: a final one from DeleteServerlessCache's
FinalSnapshotName, CreateServerlessCacheSnapshot, DescribeServerlessCacheSnapshots
(filters, pagination) and DeleteServerlessCacheSnapshot (creating -> available,
deleting -> gone), tagged by ARN like the caches."""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from datetime import datetime, timezone

from moto.core.responses import ActionResult, EmptyResult
from moto.elasticache import models as ec_models
from moto.elasticache.exceptions import ElastiCacheException
from moto.elasticache.responses import ElastiCacheResponse

from . import cache_front, timing


class ServerlessCacheNotFound(ElastiCacheException):
    code = 404

    def __init__(self, name):
        super().__init__("ServerlessCacheNotFoundFault", f"Serverless cache {name} not found.")


class ServerlessCacheAlreadyExists(ElastiCacheException):
    code = 400

    def __init__(self, name):
        super().__init__("ServerlessCacheAlreadyExistsFault", f"Serverless cache {name} already exists.")


class InvalidServerlessCacheState(ElastiCacheException):
    code = 400

    def __init__(self, name, status):
        super().__init__("InvalidServerlessCacheStateFault", f"Serverless cache {name} is {status}, not available.")


class InvalidParameterCombination(ElastiCacheException):
    code = 400

    def __init__(self, message):
        super().__init__("InvalidParameterCombination", message)


class InvalidParameterValue(ElastiCacheException):
    code = 400

    def __init__(self, message):
        super().__init__("InvalidParameterValue", message)


class ServerlessCacheSnapshotNotFound(ElastiCacheException):
    def __init__(self, name):
        super().__init__("ServerlessCacheSnapshotNotFoundFault", f"Serverless cache snapshot {name} not found.")


class ServerlessCacheSnapshotAlreadyExists(ElastiCacheException):
    def __init__(self, name):
        super().__init__("ServerlessCacheSnapshotAlreadyExistsFault",
                         f"Serverless cache snapshot {name} already exists.")


class InvalidServerlessCacheSnapshotState(ElastiCacheException):
    def __init__(self, name, status):
        super().__init__("InvalidServerlessCacheSnapshotStateFault",
                         f"Serverless cache snapshot {name} is {status}, not available.")


# How long a snapshot takes to be taken and to be deleted, in timing.py's profiles. Set
# here (entries timing.py defines itself win) so that the profiles stay the one mechanism.
for _table, _values in ((timing.REAL, {"snapshot_create": 180.0, "snapshot_delete": 30.0}),
                        (timing.FAST, {"snapshot_create": 0.3, "snapshot_delete": 0.2}),
                        (timing.HOSTILE, {"snapshot_create": 2.0, "snapshot_delete": 1.0})):
    for _key, _value in _values.items():
        _table.setdefault(_key, _value)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Valkey:
    """A cluster-mode valkey-server owning every slot, for one cache's endpoint. It
    announces `client_port` (the front's) in CLUSTER SLOTS/SHARDS/NODES and MOVED, so
    cluster clients come back through the front."""

    def __init__(self, client_port):
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="emulated-cache-")
        binary = os.environ.get("VALKEY_SERVER") or shutil.which("valkey-server") or "valkey-server"
        self.proc = subprocess.Popen(
            [binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no",
             "--dir", self.dir, "--cluster-enabled", "yes", "--cluster-config-file", f"{self.dir}/nodes.conf",
             # The bus port defaults to port + 10000, which fails above 55535.
             "--cluster-port", str(_free_port()),
             "--cluster-announce-client-ipv4", "127.0.0.1", "--cluster-announce-client-port", str(client_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        threading.Thread(target=self._assign_slots, daemon=True).start()

    def _command(self, *args):
        payload = f"*{len(args)}\r\n" + "".join(f"${len(str(a))}\r\n{a}\r\n" for a in args)
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(payload.encode())
            return s.recv(65536).decode(errors="replace")

    def _assign_slots(self):
        for _ in range(200):
            try:
                self._command("CLUSTER", "ADDSLOTSRANGE", "0", "16383")
                return
            except OSError:
                time.sleep(0.05)

    def ready(self):
        """Serving: every slot assigned and the cluster state ok."""
        if not getattr(self, "_ready", False):
            try:
                self._ready = "cluster_state:ok" in self._command("CLUSTER", "INFO")
            except OSError:
                self._ready = False
        return self._ready

    def dataset_bytes(self):
        """The data set's size (INFO's used_memory_dataset), what a snapshot holds."""
        try:
            info = self._command("INFO", "memory")
        except OSError:
            return 0
        for line in info.splitlines():
            if line.startswith("used_memory_dataset:"):
                return int(line.split(":", 1)[1].strip() or 0)
        return 0

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


class ServerlessCache:
    def __init__(self, account, region, params):
        self.account, self.region = account, region
        self.name = params["ServerlessCacheName"].lower()
        self.arn = f"arn:aws:elasticache:{region}:{account}:serverlesscache:{self.name}"
        self.engine = params["Engine"]
        self.major = str(params.get("MajorEngineVersion") or "8")
        self.description = params.get("Description", "")
        self.limits = params.get("CacheUsageLimits") or {}
        self.security_group_ids = list(params.get("SecurityGroupIds") or [])
        self.subnet_ids = list(params.get("SubnetIds") or [])
        self.snapshot_retention = int(params.get("SnapshotRetentionLimit") or 0)
        self.snapshot_time = params.get("DailySnapshotTime") or "03:00"
        self.kms = params.get("KmsKeyId")
        self.tags = {t["Key"]: t["Value"] for t in params.get("Tags") or []}
        self.created = datetime.now(timezone.utc)
        self.status = "creating"
        self.settles_at = time.monotonic() + timing.seconds("cache_create")
        self.front = cache_front.Front(self)
        self.valkey = Valkey(client_port=self.front.ports[cache_front.ENDPOINT_PORT])

    def current_status(self):
        if self.status in ("creating", "modifying") and time.monotonic() >= self.settles_at and self.valkey.ready():
            self.status = "available"
        return self.status

    def stop(self):
        self.front.stop()
        self.valkey.stop()

    def view(self):
        out = {
            "ServerlessCacheName": self.name,
            "Description": self.description,
            "CreateTime": self.created,
            "Status": self.current_status(),
            "Engine": self.engine,
            "MajorEngineVersion": self.major,
            "FullEngineVersion": f"{self.major}.0",
            "CacheUsageLimits": self.limits,
            "SecurityGroupIds": self.security_group_ids,
            "ARN": self.arn,
            "SubnetIds": self.subnet_ids,
            "SnapshotRetentionLimit": self.snapshot_retention,
            "DailySnapshotTime": self.snapshot_time,
        }
        if self.kms:
            out["KmsKeyId"] = self.kms
        if self.status != "creating":
            # Both fronts pipe to the one server; CLUSTER SLOTS names the endpoint's.
            out["Endpoint"] = {"Address": "127.0.0.1", "Port": self.front.ports[cache_front.ENDPOINT_PORT]}
            out["ReaderEndpoint"] = {"Address": "127.0.0.1", "Port": self.front.ports[cache_front.READER_PORT]}
        return out


class ServerlessCacheSnapshot:
    """A manual snapshot of a cache: creating, then available; deleting, then gone."""

    def __init__(self, account, region, name, cache, kms=None, tags=None):
        self.name = name
        self.arn = f"arn:aws:elasticache:{region}:{account}:serverlesscachesnapshot:{name}"
        self.cache_name, self.engine, self.major = cache.name, cache.engine, cache.major
        self.kms = kms or cache.kms
        self.tags = {t["Key"]: t["Value"] for t in tags or []}
        self.created = datetime.now(timezone.utc)
        self.bytes = str(cache.valkey.dataset_bytes())
        self.status = "creating"
        self.settles_at = time.monotonic() + timing.seconds("snapshot_create")
        self.gone_at = None

    def current_status(self):
        if self.status == "creating" and time.monotonic() >= self.settles_at:
            self.status = "available"
        return self.status

    def delete(self):
        self.status = "deleting"
        self.gone_at = time.monotonic() + timing.seconds("snapshot_delete")

    def view(self):
        out = {
            "ServerlessCacheSnapshotName": self.name,
            "ARN": self.arn,
            "SnapshotType": "manual",
            "Status": self.current_status(),
            "CreateTime": self.created,
            "BytesUsedForCache": self.bytes,
            "ServerlessCacheConfiguration": {
                "ServerlessCacheName": self.cache_name,
                "Engine": self.engine,
                "MajorEngineVersion": self.major,
            },
        }
        if self.kms:
            out["KmsKeyId"] = self.kms
        return out


_caches = {}  # (account, region) -> {name: ServerlessCache}
_snapshots = {}  # (account, region) -> {name: ServerlessCacheSnapshot}
_deleting = {}  # (account, region, name) -> (deadline, cache)
_lock = threading.Lock()


def _store(resp):
    return _caches.setdefault((resp.current_account, resp.region), {})


def _snapshot_store(resp):
    return _snapshots.setdefault((resp.current_account, resp.region), {})


def _reap(resp):
    now = time.monotonic()
    for key, (deadline, cache) in list(_deleting.items()):
        if now >= deadline:
            cache.stop()
            del _deleting[key]
    for snapshots in _snapshots.values():
        for name, snapshot in list(snapshots.items()):
            if snapshot.gone_at is not None and now >= snapshot.gone_at:
                del snapshots[name]


def _new_snapshot(resp, name, cache, kms=None, tags=None):
    """Takes snapshot `name` of `cache` (available), unless the name is taken."""
    if not name:
        raise InvalidParameterValue("The snapshot name must not be empty.")
    if name in _snapshot_store(resp):
        raise ServerlessCacheSnapshotAlreadyExists(name)
    snapshot = ServerlessCacheSnapshot(resp.current_account, resp.region, name, cache, kms, tags)
    _snapshot_store(resp)[name] = snapshot
    return snapshot


def _find(resp, name):
    _reap(resp)
    name = (name or "").lower()
    cache = _store(resp).get(name)
    if cache is None:
        gone = _deleting.get((resp.current_account, resp.region, name))
        if gone:
            return gone[1]
        raise ServerlessCacheNotFound(name)
    return cache


def _validate_limits(limits):
    storage = (limits or {}).get("DataStorage") or {}
    ecpu = (limits or {}).get("ECPUPerSecond") or {}
    for key in ("Maximum", "Minimum"):
        if key in storage and not 1 <= int(storage[key]) <= 5000:
            raise InvalidParameterValue(f"DataStorage {key} must be between 1 and 5000 GB.")
        if key in ecpu and not 1000 <= int(ecpu[key]) <= 15000000:
            raise InvalidParameterValue(f"ECPUPerSecond {key} must be between 1000 and 15000000.")


def create_serverless_cache(self):
    params = self._get_params()
    with _lock:
        name = params["ServerlessCacheName"].lower()
        if name in _store(self) or (self.current_account, self.region, name) in _deleting:
            raise ServerlessCacheAlreadyExists(name)
        if params.get("Engine") not in ("valkey", "redis", "memcached"):
            raise InvalidParameterValue("Engine must be valkey, redis or memcached.")
        _validate_limits(params.get("CacheUsageLimits"))
        cache = ServerlessCache(self.current_account, self.region, params)
        _store(self)[cache.name] = cache
        return ActionResult({"ServerlessCache": cache.view()})


def describe_serverless_caches(self):
    params = self._get_params()
    with _lock:
        name = params.get("ServerlessCacheName")
        if name:
            caches = [_find(self, name)]
        else:
            _reap(self)
            caches = list(_store(self).values()) + [c for (a, r, _), (_, c) in _deleting.items() if (a, r) == (self.current_account, self.region)]
        return ActionResult({"ServerlessCaches": [c.view() for c in caches]})


def modify_serverless_cache(self):
    params = self._get_params()
    with _lock:
        cache = _find(self, params["ServerlessCacheName"])
        if cache.current_status() != "available":
            raise InvalidServerlessCacheState(cache.name, cache.status)
        limits = params.get("CacheUsageLimits")
        if limits:
            _validate_limits(limits)
            changed = [k for k in ("DataStorage", "ECPUPerSecond") if k in limits and limits[k] != cache.limits.get(k)]
            if len(changed) > 1:
                raise InvalidParameterCombination("Modify one usage limit (DataStorage or ECPUPerSecond) per request.")
            cache.limits = {**cache.limits, **limits}
        if "Description" in params:
            cache.description = params["Description"]
        if "SecurityGroupIds" in params:
            cache.security_group_ids = list(params["SecurityGroupIds"])
        if "SnapshotRetentionLimit" in params:
            cache.snapshot_retention = int(params["SnapshotRetentionLimit"])
        if "DailySnapshotTime" in params:
            cache.snapshot_time = params["DailySnapshotTime"]
        if "MajorEngineVersion" in params:
            if int(params["MajorEngineVersion"]) < int(cache.major):
                raise InvalidParameterCombination("The engine version can only be upgraded.")
            cache.major = str(params["MajorEngineVersion"])
        cache.status = "modifying"
        cache.settles_at = time.monotonic() + timing.seconds("cache_modify")
        return ActionResult({"ServerlessCache": cache.view()})


def delete_serverless_cache(self):
    params = self._get_params()
    with _lock:
        cache = _find(self, params["ServerlessCacheName"])
        if cache.status == "deleting":
            raise InvalidServerlessCacheState(cache.name, "deleting")
        if cache.current_status() != "available":
            raise InvalidServerlessCacheState(cache.name, cache.status)
        final = params.get("FinalSnapshotName")
        if final is not None:
            _new_snapshot(self, final, cache)
        cache.status = "deleting"
        del _store(self)[cache.name]
        _deleting[(self.current_account, self.region, cache.name)] = (time.monotonic() + timing.seconds("cache_delete"), cache)
        return ActionResult({"ServerlessCache": cache.view()})


def create_serverless_cache_snapshot(self):
    params = self._get_params()
    with _lock:
        cache = _find(self, params.get("ServerlessCacheName"))
        if cache.status == "deleting" or cache.current_status() != "available":
            raise InvalidServerlessCacheState(cache.name, cache.status)
        snapshot = _new_snapshot(self, params.get("ServerlessCacheSnapshotName"), cache,
                                 params.get("KmsKeyId"), params.get("Tags"))
        return ActionResult({"ServerlessCacheSnapshot": snapshot.view()})


def _page_token(snapshot):
    key = json.dumps([snapshot.created.isoformat(), snapshot.name])
    return base64.urlsafe_b64encode(key.encode()).decode()


def describe_serverless_cache_snapshots(self):
    """All of the account's snapshots in the region, oldest first, or those of one cache
    (its own or, once it is gone, its final ones), one snapshot or one type; pages of
    MaxResults (1 to 50, 50 by default) resumed by NextToken."""
    params = self._get_params()
    with _lock:
        _reap(self)
        snapshots = sorted(_snapshot_store(self).values(), key=lambda s: (s.created, s.name))
        cache_name = params.get("ServerlessCacheName")
        if cache_name:
            cache_name = cache_name.lower()
            snapshots = [s for s in snapshots if s.cache_name == cache_name]
            if not snapshots:
                _find(self, cache_name)  # ServerlessCacheNotFoundFault when there is no such cache
        name = params.get("ServerlessCacheSnapshotName")
        if name:
            if name not in _snapshot_store(self):
                raise ServerlessCacheSnapshotNotFound(name)
            snapshots = [s for s in snapshots if s.name == name]
        kind = params.get("SnapshotType")
        if kind:
            if kind not in ("automated", "manual"):
                raise InvalidParameterValue("SnapshotType must be automated or manual.")
            if kind == "automated":
                snapshots = []  # the emulator takes manual snapshots only
        try:
            limit = int(params.get("MaxResults") or 50)
        except ValueError:
            raise InvalidParameterValue("MaxResults must be an integer.") from None
        if not 1 <= limit <= 50:
            raise InvalidParameterValue("MaxResults must be between 1 and 50.")
        token = params.get("NextToken")
        if token:
            try:
                created, after = json.loads(base64.urlsafe_b64decode(token.encode()))
                start = (datetime.fromisoformat(created), after)
            except (ValueError, TypeError):
                raise InvalidParameterValue(f"Invalid NextToken: {token}") from None
            snapshots = [s for s in snapshots if (s.created, s.name) >= start]
        page, rest = snapshots[:limit], snapshots[limit:]
        result = {"ServerlessCacheSnapshots": [s.view() for s in page]}
        if rest:
            result["NextToken"] = _page_token(rest[0])
        return ActionResult(result)


def delete_serverless_cache_snapshot(self):
    params = self._get_params()
    with _lock:
        _reap(self)
        name = params.get("ServerlessCacheSnapshotName")
        snapshot = _snapshot_store(self).get(name)
        if snapshot is None:
            raise ServerlessCacheSnapshotNotFound(name)
        if snapshot.current_status() != "available":
            raise InvalidServerlessCacheSnapshotState(name, snapshot.status)
        snapshot.delete()
        return ActionResult({"ServerlessCacheSnapshot": snapshot.view()})


def _serverless_by_arn(arn):
    """The cache or snapshot (not yet gone) an ARN names, or None."""
    now = time.monotonic()
    for resources in list(_caches.values()) + list(_snapshots.values()):
        for r in resources.values():
            if r.arn == arn and (getattr(r, "gone_at", None) is None or now < r.gone_at):
                return r
    return None


def install():
    for fn in (create_serverless_cache, describe_serverless_caches, modify_serverless_cache, delete_serverless_cache,
               create_serverless_cache_snapshot, describe_serverless_cache_snapshots,
               delete_serverless_cache_snapshot):
        setattr(ElastiCacheResponse, fn.__name__, fn)

    original_list = ElastiCacheResponse.list_tags_for_resource
    original_add = ElastiCacheResponse.add_tags_to_resource
    original_remove = ElastiCacheResponse.remove_tags_from_resource

    def list_tags(self):
        cache = _serverless_by_arn(self._get_param("ResourceName"))
        if cache is None:
            return original_list(self)
        return ActionResult({"TagList": [{"Key": k, "Value": v} for k, v in cache.tags.items()]})

    def add_tags(self):
        cache = _serverless_by_arn(self._get_param("ResourceName"))
        if cache is None:
            return original_add(self)
        for t in self._get_param("Tags", []):
            cache.tags[t["Key"]] = t["Value"]
        return ActionResult({"TagList": [{"Key": k, "Value": v} for k, v in cache.tags.items()]})

    def remove_tags(self):
        cache = _serverless_by_arn(self._get_param("ResourceName"))
        if cache is None:
            return original_remove(self)
        for k in self._get_param("TagKeys", []):
            cache.tags.pop(k, None)
        return ActionResult({"TagList": [{"Key": k, "Value": v} for k, v in cache.tags.items()]})

    ElastiCacheResponse.list_tags_for_resource = list_tags
    ElastiCacheResponse.add_tags_to_resource = add_tags
    ElastiCacheResponse.remove_tags_from_resource = remove_tags


def shutdown():
    for caches in _caches.values():
        for c in caches.values():
            c.stop()
    for _, c in _deleting.values():
        c.stop()
