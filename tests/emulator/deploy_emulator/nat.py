"""NAT gateways that behave like AWS's: `pending` for a while after create, `deleting`
for a while after delete, then `deleted` (and still listed)."""

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
