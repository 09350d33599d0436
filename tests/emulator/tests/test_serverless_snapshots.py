"""ElastiCache Serverless snapshots in the emulator: the final snapshot of
DeleteServerlessCache's FinalSnapshotName, CreateServerlessCacheSnapshot,
DescribeServerlessCacheSnapshots (filters, pagination, faults),
DeleteServerlessCacheSnapshot and tags by ARN, with AWS's element names and errors."""

import time
import unittest
import xml.etree.ElementTree as ET

from botocore.exceptions import ClientError

from .support import ACCOUNT, REGION, Emulator

NS = "{http://elasticache.amazonaws.com/doc/2015-02-02/}"


def error_of(call, *args, **kwargs):
    """(code, HTTP status) of the ClientError a call raises."""
    try:
        call(*args, **kwargs)
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{call.__name__} did not fail")


class ServerlessSnapshotTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.emulator = Emulator().start()
        cls.elasticache = cls.emulator.client("elasticache")
        # For the tests that only take snapshots (a cache takes ~3 s to become available).
        cls.elasticache.create_serverless_cache(ServerlessCacheName="shared", Engine="valkey")

    @classmethod
    def tearDownClass(cls):
        cls.emulator.stop()

    def until(self, what, check, timeout=20):
        """check()'s first truthy value, polled every 0.1 s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(f"{what} did not happen within {timeout} s")

    def create_cache(self, name):
        self.elasticache.create_serverless_cache(ServerlessCacheName=name, Engine="valkey", MajorEngineVersion="8")
        return self.wait_available(name)

    def wait_available(self, name):
        def available():
            cache = self.elasticache.describe_serverless_caches(ServerlessCacheName=name)["ServerlessCaches"][0]
            return cache if cache["Status"] == "available" else None
        return self.until(f"cache {name} available", available)

    def snapshots(self, **filters):
        return self.elasticache.describe_serverless_cache_snapshots(**filters)["ServerlessCacheSnapshots"]

    def snapshot_status(self, name):
        return self.snapshots(ServerlessCacheSnapshotName=name)[0]["Status"]

    def test_final_snapshot_from_delete_lives_and_dies(self):
        self.create_cache("final-cache")
        deleted = self.elasticache.delete_serverless_cache(ServerlessCacheName="final-cache",
                                                           FinalSnapshotName="final-cache-final")
        self.assertEqual(deleted["ServerlessCache"]["Status"], "deleting")

        by_cache = self.snapshots(ServerlessCacheName="final-cache")
        self.assertEqual([s["ServerlessCacheSnapshotName"] for s in by_cache], ["final-cache-final"])
        snapshot = by_cache[0]
        self.assertEqual(snapshot["Status"], "creating")
        self.assertEqual(snapshot["ARN"],
                         f"arn:aws:elasticache:{REGION}:{ACCOUNT}:serverlesscachesnapshot:final-cache-final")
        self.assertEqual(snapshot["SnapshotType"], "manual")
        self.assertEqual(snapshot["ServerlessCacheConfiguration"],
                         {"ServerlessCacheName": "final-cache", "Engine": "valkey", "MajorEngineVersion": "8"})
        self.assertLess(abs(time.time() - snapshot["CreateTime"].timestamp()), 60)
        self.assertTrue(snapshot["BytesUsedForCache"].isdigit())

        by_name = self.snapshots(ServerlessCacheSnapshotName="final-cache-final")
        self.assertEqual([s["ARN"] for s in by_name], [snapshot["ARN"]])
        self.until("the final snapshot available", lambda: self.snapshot_status("final-cache-final") == "available")
        # The cache goes; its final snapshot stays, still found by the cache's name.
        self.until("the cache gone", lambda: self.cache_gone("final-cache"))
        self.assertEqual(len(self.snapshots(ServerlessCacheName="final-cache")), 1)

        gone = self.elasticache.delete_serverless_cache_snapshot(ServerlessCacheSnapshotName="final-cache-final")
        self.assertEqual(gone["ServerlessCacheSnapshot"]["ServerlessCacheSnapshotName"], "final-cache-final")
        self.assertEqual(gone["ServerlessCacheSnapshot"]["Status"], "deleting")
        self.until("the snapshot gone", lambda: self.snapshot_gone("final-cache-final"))
        self.assertEqual(error_of(self.elasticache.describe_serverless_cache_snapshots,
                                  ServerlessCacheSnapshotName="final-cache-final"),
                         ("ServerlessCacheSnapshotNotFoundFault", 404))
        self.assertEqual(error_of(self.elasticache.delete_serverless_cache_snapshot,
                                  ServerlessCacheSnapshotName="final-cache-final"),
                         ("ServerlessCacheSnapshotNotFoundFault", 404))
        # Neither the cache nor a snapshot of it is left.
        self.assertEqual(error_of(self.elasticache.describe_serverless_cache_snapshots, ServerlessCacheName="final-cache"),
                         ("ServerlessCacheNotFoundFault", 404))

    def cache_gone(self, name):
        try:
            self.elasticache.describe_serverless_caches(ServerlessCacheName=name)
        except ClientError as e:
            return e.response["Error"]["Code"] == "ServerlessCacheNotFoundFault"
        return False

    def snapshot_gone(self, name):
        try:
            self.assertEqual(self.snapshot_status(name), "deleting")
        except ClientError as e:
            return e.response["Error"]["Code"] == "ServerlessCacheSnapshotNotFoundFault"
        return False

    def test_duplicate_final_snapshot_name_fails_and_keeps_the_cache(self):
        self.create_cache("dup-one")
        self.create_cache("dup-two")
        self.elasticache.delete_serverless_cache(ServerlessCacheName="dup-one", FinalSnapshotName="dup-final")
        self.assertEqual(error_of(self.elasticache.delete_serverless_cache, ServerlessCacheName="dup-two",
                                  FinalSnapshotName="dup-final"),
                         ("ServerlessCacheSnapshotAlreadyExistsFault", 400))
        cache = self.elasticache.describe_serverless_caches(ServerlessCacheName="dup-two")["ServerlessCaches"][0]
        self.assertEqual(cache["Status"], "available")
        self.assertEqual(self.snapshots(ServerlessCacheName="dup-two"), [])
        self.assertEqual(error_of(self.elasticache.create_serverless_cache_snapshot, ServerlessCacheName="dup-two",
                                  ServerlessCacheSnapshotName="dup-final"),
                         ("ServerlessCacheSnapshotAlreadyExistsFault", 400))
        self.elasticache.delete_serverless_cache(ServerlessCacheName="dup-two")

    def test_pagination_with_max_results_one(self):
        self.create_cache("paged")
        for name in ("paged-a", "paged-b"):
            made = self.elasticache.create_serverless_cache_snapshot(ServerlessCacheName="paged",
                                                                     ServerlessCacheSnapshotName=name)
            self.assertEqual(made["ServerlessCacheSnapshot"]["Status"], "creating")
            self.assertEqual(made["ServerlessCacheSnapshot"]["ServerlessCacheSnapshotName"], name)
        first = self.elasticache.describe_serverless_cache_snapshots(ServerlessCacheName="paged", MaxResults=1)
        self.assertEqual(len(first["ServerlessCacheSnapshots"]), 1)
        self.assertIn("NextToken", first)
        second = self.elasticache.describe_serverless_cache_snapshots(ServerlessCacheName="paged", MaxResults=1,
                                                                      NextToken=first["NextToken"])
        self.assertEqual(len(second["ServerlessCacheSnapshots"]), 1)
        self.assertNotIn("NextToken", second)
        names = [s["ServerlessCacheSnapshotName"]
                 for s in first["ServerlessCacheSnapshots"] + second["ServerlessCacheSnapshots"]]
        self.assertEqual(names, ["paged-a", "paged-b"])
        # boto3's paginator (NextToken in, NextToken out) walks the same pages.
        pages = self.elasticache.get_paginator("describe_serverless_cache_snapshots").paginate(
            ServerlessCacheName="paged", PaginationConfig={"PageSize": 1})
        self.assertEqual([s["ServerlessCacheSnapshotName"] for p in pages for s in p["ServerlessCacheSnapshots"]],
                         ["paged-a", "paged-b"])
        self.assertEqual(error_of(self.elasticache.describe_serverless_cache_snapshots, MaxResults=51)[0],
                         "InvalidParameterValue")

    def test_create_and_describe_faults_and_filters(self):
        self.assertEqual(error_of(self.elasticache.create_serverless_cache_snapshot, ServerlessCacheName="nowhere",
                                  ServerlessCacheSnapshotName="nowhere-snap"),
                         ("ServerlessCacheNotFoundFault", 404))
        self.assertEqual(error_of(self.elasticache.describe_serverless_cache_snapshots, ServerlessCacheName="nowhere"),
                         ("ServerlessCacheNotFoundFault", 404))
        self.assertEqual(error_of(self.elasticache.describe_serverless_cache_snapshots,
                                  ServerlessCacheSnapshotName="nowhere-snap"),
                         ("ServerlessCacheSnapshotNotFoundFault", 404))
        self.elasticache.create_serverless_cache(ServerlessCacheName="young", Engine="valkey")
        self.assertEqual(error_of(self.elasticache.create_serverless_cache_snapshot, ServerlessCacheName="young",
                                  ServerlessCacheSnapshotName="too-early"),
                         ("InvalidServerlessCacheStateFault", 400))
        self.wait_available("young")
        self.elasticache.create_serverless_cache_snapshot(ServerlessCacheName="young", ServerlessCacheSnapshotName="young-1")
        self.assertEqual(error_of(self.elasticache.delete_serverless_cache_snapshot,
                                  ServerlessCacheSnapshotName="young-1"),
                         ("InvalidServerlessCacheSnapshotStateFault", 400))
        self.assertEqual([s["ServerlessCacheSnapshotName"]
                          for s in self.snapshots(ServerlessCacheName="young", SnapshotType="manual")], ["young-1"])
        self.assertEqual(self.snapshots(ServerlessCacheName="young", SnapshotType="automated"), [])
        self.assertIn("young-1", [s["ServerlessCacheSnapshotName"] for s in self.snapshots()])

    def test_tags_by_arn(self):
        self.wait_available("shared")
        made = self.elasticache.create_serverless_cache_snapshot(
            ServerlessCacheName="shared", ServerlessCacheSnapshotName="tagged-snap",
            Tags=[{"Key": "team", "Value": "core"}])["ServerlessCacheSnapshot"]
        arn = made["ARN"]
        self.assertEqual(self.elasticache.list_tags_for_resource(ResourceName=arn)["TagList"],
                         [{"Key": "team", "Value": "core"}])
        self.elasticache.add_tags_to_resource(ResourceName=arn, Tags=[{"Key": "env", "Value": "test"}])
        self.elasticache.remove_tags_from_resource(ResourceName=arn, TagKeys=["team"])
        self.assertEqual(self.elasticache.list_tags_for_resource(ResourceName=arn)["TagList"],
                         [{"Key": "env", "Value": "test"}])

    def test_xml_has_the_model_element_names(self):
        """What the Rust SDK's query-XML parser reads: the Result wrapper, the list's
        ServerlessCacheSnapshot members, the nested configuration."""
        self.wait_available("shared")
        self.elasticache.create_serverless_cache_snapshot(ServerlessCacheName="shared",
                                                          ServerlessCacheSnapshotName="xml-snap")
        bodies = []

        def keep(http_response, **_):
            bodies.append(http_response.content)
        event = "after-call.elasticache.DescribeServerlessCacheSnapshots"
        self.elasticache.meta.events.register(event, keep)
        self.addCleanup(self.elasticache.meta.events.unregister, event, keep)
        self.snapshots(ServerlessCacheSnapshotName="xml-snap", MaxResults=1)
        root = ET.fromstring(bodies[0])
        self.assertEqual(root.tag, f"{NS}DescribeServerlessCacheSnapshotsResponse")
        members = root.findall(f"{NS}DescribeServerlessCacheSnapshotsResult/{NS}ServerlessCacheSnapshots/"
                               f"{NS}ServerlessCacheSnapshot")
        self.assertEqual(len(members), 1)
        self.assertEqual(members[0].findtext(f"{NS}ServerlessCacheSnapshotName"), "xml-snap")
        self.assertEqual(members[0].findtext(f"{NS}ServerlessCacheConfiguration/{NS}ServerlessCacheName"), "shared")


if __name__ == "__main__":
    unittest.main()
