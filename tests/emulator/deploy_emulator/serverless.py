"""ElastiCache Serverless for moto: create, describe, modify, delete and tags, with a
real lifecycle (creating -> available, modifying, deleting) and endpoints served by a
real Valkey (cluster mode, like ElastiCache Serverless) started for each cache, behind
`cache_front`'s TLS listeners."""

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


_caches = {}  # (account, region) -> {name: ServerlessCache}
_deleting = {}  # (account, region, name) -> (deadline, cache)
_lock = threading.Lock()


def _store(resp):
    return _caches.setdefault((resp.current_account, resp.region), {})


def _reap(resp):
    now = time.monotonic()
    for key, (deadline, cache) in list(_deleting.items()):
        if now >= deadline:
            cache.stop()
            del _deleting[key]


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
        cache.status = "deleting"
        del _store(self)[cache.name]
        _deleting[(self.current_account, self.region, cache.name)] = (time.monotonic() + timing.seconds("cache_delete"), cache)
        return ActionResult({"ServerlessCache": cache.view()})


def _serverless_by_arn(arn):
    for caches in _caches.values():
        for c in caches.values():
            if c.arn == arn:
                return c
    return None


def install():
    for fn in (create_serverless_cache, describe_serverless_caches, modify_serverless_cache, delete_serverless_cache):
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
