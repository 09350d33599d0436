"""Security group rules that keep their descriptions as EC2 does: a rule that refers to
another group carries its description in the group pair, which moto neither reports
(DescribeSecurityGroupRules) nor matches when UpdateSecurityGroupRuleDescriptions*
changes it."""

from moto.ec2.models.security_groups import SecurityGroupRule


def install():
    def description(self):
        return self.ip_range.get("Description") or (self.source_group or {}).get("Description")

    SecurityGroupRule.description = property(description)

    original_eq = SecurityGroupRule.__eq__

    def without_description(pair):
        return {k: v for k, v in (pair or {}).items() if k != "Description"}

    def equal(self, other):
        # A rule is the same rule whatever its description says (EC2 matches rules
        # by protocol, ports and peer when it updates descriptions).
        if not isinstance(other, SecurityGroupRule):
            return NotImplemented
        if without_description(self.source_group) != without_description(other.source_group):
            return False
        saved = (self.source_group, other.source_group)
        try:
            self.source_group, other.source_group = without_description(self.source_group), without_description(other.source_group)
            return original_eq(self, other)
        finally:
            self.source_group, other.source_group = saved

    SecurityGroupRule.__eq__ = equal
