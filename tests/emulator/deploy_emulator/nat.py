"""NAT gateways that behave like AWS's: `pending` for a while after create, `deleting`
for a while after delete, then `deleted` (and still listed); CreateNatGateway idempotent
by ClientToken; DescribeNatGateways filtering by `tag:<key>` and `tag-key` as well."""

import time

from moto.ec2.models.nat_gateways import NatGateway

from . import timing


def install():
    def get_state(self):
        now = time.monotonic()
        raw = self.__dict__.get("_state", "available")
        born = self.__dict__.setdefault("_born", now)
        if raw == "available" and now - born < timing.seconds("nat_pending"):
            return "pending"
        if raw == "deleted" and now - self.__dict__.get("_deleted_at", 0) < timing.seconds("nat_delete"):
            return "deleting"
        return raw

    def set_state(self, value):
        if value == "deleted":
            self.__dict__["_deleted_at"] = time.monotonic()
        self.__dict__.setdefault("_born", time.monotonic())
        self.__dict__["_state"] = value

    NatGateway.state = property(get_state, set_state)

    # CreateNatGateway is idempotent by ClientToken on AWS: a repeat with the same token
    # (a retry after a lost response) returns the first call's gateway. moto ignores it.
    from moto.core.responses import ActionResult
    from moto.ec2.responses.nat_gateways import NatGateways
    from moto.ec2.utils import add_tag_specification

    created = {}

    def create_nat_gateway(self):
        token = self._get_param("ClientToken")
        key = (self.current_account, self.region, token)
        if token and key in created:
            gateway = self.ec2_backend.nat_gateways.get(created[key])
            if gateway is not None:
                return ActionResult({"NatGateway": gateway})
        gateway = self.ec2_backend.create_nat_gateway(
            subnet_id=self._get_param("SubnetId"),
            allocation_id=self._get_param("AllocationId"),
            tags=add_tag_specification(self._get_param("TagSpecifications", [])),
            connectivity_type=self._get_param("ConnectivityType"),
        )
        if token:
            created[key] = gateway.id
        return ActionResult({"NatGateway": gateway})

    NatGateways.create_nat_gateway = create_nat_gateway

    # DescribeNatGateways filters by `tag:<key>` and `tag-key` on AWS (besides
    # nat-gateway-id, state, subnet-id and vpc-id, which moto honours); moto ignores the
    # tag filters and lists every gateway. Values within a filter are OR'd (with `*` and
    # `?` wildcards), filters AND'd; `tag:<key>` needs the tag present with a listed value.
    from moto.ec2.models.nat_gateways import NatGatewayBackend
    from moto.ec2.utils import tag_filter_matches

    original_describe = NatGatewayBackend.describe_nat_gateways

    def describe_nat_gateways(self, filters, nat_gateway_ids):
        filters = filters or {}
        by_tag = {name: values for name, values in filters.items() if name == "tag-key" or name.startswith("tag:")}
        rest = {name: values for name, values in filters.items() if name not in by_tag}
        gateways = original_describe(self, rest or None, nat_gateway_ids)
        return [g for g in gateways
                if all(tag_filter_matches(g, name, values) for name, values in by_tag.items())]

    NatGatewayBackend.describe_nat_gateways = describe_nat_gateways
