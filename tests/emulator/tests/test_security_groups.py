"""Security group rule descriptions as EC2 keeps them: reported for rules that refer to
another group, and changed in place by UpdateSecurityGroupRuleDescriptions*."""

import unittest

from .support import Emulator


class RuleDescriptions(unittest.TestCase):
    def test_a_group_peer_rules_description_is_reported_and_updated_in_place(self):
        with Emulator() as em:
            ec2 = em.client("ec2")
            vpc = ec2.create_vpc(CidrBlock="10.7.0.0/16")["Vpc"]["VpcId"]
            a = ec2.create_security_group(GroupName="a", Description="a", VpcId=vpc)["GroupId"]
            b = ec2.create_security_group(GroupName="b", Description="b", VpcId=vpc)["GroupId"]

            def permission(description):
                return [{"IpProtocol": "tcp", "FromPort": 6379, "ToPort": 6380,
                         "UserIdGroupPairs": [{"GroupId": b, "Description": description}]}]

            rule = ec2.authorize_security_group_ingress(GroupId=a, IpPermissions=permission("Valkey"))["SecurityGroupRules"][0]
            rule_id = rule["SecurityGroupRuleId"]

            def described():
                rules = ec2.describe_security_group_rules(Filters=[{"Name": "security-group-rule-id", "Values": [rule_id]}])
                return [r.get("Description") for r in rules["SecurityGroupRules"]]

            self.assertEqual(described(), ["Valkey"])
            ec2.update_security_group_rule_descriptions_ingress(GroupId=a, IpPermissions=permission("Valkey over TLS"))
            self.assertEqual(described(), ["Valkey over TLS"])
            # Still one rule, and re-authorizing the same peer is still a duplicate.
            with self.assertRaises(Exception) as dup:
                ec2.authorize_security_group_ingress(GroupId=a, IpPermissions=permission("again"))
            self.assertIn("Duplicate", str(dup.exception))

    def test_a_cidr_rules_description_is_updated_in_place(self):
        with Emulator() as em:
            ec2 = em.client("ec2")
            vpc = ec2.create_vpc(CidrBlock="10.6.0.0/16")["Vpc"]["VpcId"]
            g = ec2.create_security_group(GroupName="g", Description="g", VpcId=vpc)["GroupId"]
            perm = lambda d: [{"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": d}]}]
            rule_id = ec2.authorize_security_group_egress(GroupId=g, IpPermissions=perm("old"))["SecurityGroupRules"][0]["SecurityGroupRuleId"]
            ec2.update_security_group_rule_descriptions_egress(GroupId=g, IpPermissions=perm("new"))
            rules = ec2.describe_security_group_rules(Filters=[{"Name": "security-group-rule-id", "Values": [rule_id]}])["SecurityGroupRules"]
            self.assertEqual([r.get("Description") for r in rules], ["new"])


if __name__ == "__main__":
    unittest.main()
