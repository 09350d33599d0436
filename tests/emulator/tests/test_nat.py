"""DescribeNatGateways filters as EC2 applies them: `tag:<key>` and `tag-key` (which
moto ignores, listing every gateway) alongside the ones moto honours; values within a
filter OR'd, filters AND'd."""

import unittest

from .support import Emulator


def tags(**pairs):
    return [{"ResourceType": "natgateway", "Tags": [{"Key": k.replace("_", ":"), "Value": v} for k, v in pairs.items()]}]


class DescribeFilters(unittest.TestCase):
    def test_tag_and_tag_key_filters_select_only_the_matching_gateways(self):
        with Emulator() as em:
            ec2 = em.client("ec2")
            vpc = ec2.create_vpc(CidrBlock="10.5.0.0/16")["Vpc"]["VpcId"]
            subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.5.1.0/24")["Subnet"]["SubnetId"]

            def gateway(tag_specifications=None):
                eip = ec2.allocate_address(Domain="vpc")["AllocationId"]
                extra = {"TagSpecifications": tag_specifications} if tag_specifications else {}
                return ec2.create_nat_gateway(SubnetId=subnet, AllocationId=eip, **extra)["NatGateway"]["NatGatewayId"]

            a = gateway(tags(deploy_environment="a", deploy_app="shop"))
            b = gateway(tags(deploy_environment="b"))
            untagged = gateway()

            def ids(*filters):
                found = ec2.describe_nat_gateways(Filters=[{"Name": n, "Values": v} for n, v in filters])
                return sorted(g["NatGatewayId"] for g in found["NatGateways"])

            self.assertEqual(sorted([a, b, untagged]), ids())
            self.assertEqual([a], ids(("tag:deploy:environment", ["a"])))
            self.assertEqual([b], ids(("tag:deploy:environment", ["b"])))
            self.assertEqual([], ids(("tag:deploy:environment", ["c"])))
            # Values OR'd, with EC2's wildcards.
            self.assertEqual(sorted([a, b]), ids(("tag:deploy:environment", ["a", "b"])))
            self.assertEqual(sorted([a, b]), ids(("tag:deploy:environment", ["*"])))
            # The tag's key is matched exactly: another key with the value does not count.
            self.assertEqual([], ids(("tag:deploy:app", ["a"])))
            # tag-key: the tag present, whatever its value.
            self.assertEqual(sorted([a, b]), ids(("tag-key", ["deploy:environment"])))
            self.assertEqual([a], ids(("tag-key", ["deploy:app"])))
            self.assertEqual([a], ids(("tag-key", ["deploy:app", "nothing"])))
            self.assertEqual([], ids(("tag-key", ["nothing"])))
            # Filters AND'd, with each other and with the filters moto already applies.
            self.assertEqual([], ids(("tag:deploy:environment", ["b"]), ("tag-key", ["deploy:app"])))
            self.assertEqual([a], ids(("tag:deploy:environment", ["a", "b"]), ("tag:deploy:app", ["shop"])))
            self.assertEqual([b], ids(("tag:deploy:environment", ["b"]), ("vpc-id", [vpc])))
            self.assertEqual([], ids(("tag:deploy:environment", ["b"]), ("vpc-id", ["vpc-00000000"])))
            self.assertEqual([a], ids(("tag:deploy:environment", ["a", "b"]), ("nat-gateway-id", [a, untagged])))
            self.assertEqual([b], ids(("tag:deploy:environment", ["a", "b"]), ("subnet-id", [subnet]), ("nat-gateway-id", [b])))
            # NatGatewayIds and filters together.
            found = ec2.describe_nat_gateways(NatGatewayIds=[a, b], Filters=[{"Name": "tag:deploy:environment", "Values": ["b"]}])
            self.assertEqual([b], [g["NatGatewayId"] for g in found["NatGateways"]])
            # A gateway's tags are reported with it.
            found = ec2.describe_nat_gateways(Filters=[{"Name": "tag:deploy:environment", "Values": ["a"]}])["NatGateways"]
            self.assertEqual({"deploy:environment": "a", "deploy:app": "shop"}, {t["Key"]: t["Value"] for t in found[0]["Tags"]})


if __name__ == "__main__":
    unittest.main()
