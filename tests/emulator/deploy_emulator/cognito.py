"""User pools whose UpdateUserPool behaves like Cognito's: attributes that can only be
set at creation (username attributes and configuration, aliases, the schema) survive an
update. moto rebuilds the whole configuration from the update's parameters, which drops
them; Cognito resets only the updatable settings the call leaves out."""

from moto.cognitoidp.models import CognitoIdpUserPool

CREATE_ONLY = ("UsernameAttributes", "AliasAttributes", "UsernameConfiguration", "Schema")


def install():
    original = CognitoIdpUserPool.update_extended_config

    def update_extended_config(self, extended_config):
        kept = {k: self.extended_config[k] for k in CREATE_ONLY
                if k in getattr(self, "extended_config", {}) and k not in (extended_config or {})}
        original(self, extended_config)
        self.extended_config.update(kept)

    CognitoIdpUserPool.update_extended_config = update_extended_config
