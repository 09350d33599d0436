"""User pools keep what can only be set at creation when they are updated, as Cognito's
UpdateUserPool does."""

import unittest

from .support import Emulator


class UserPoolUpdates(unittest.TestCase):
    def test_an_update_keeps_username_attributes_and_configuration(self):
        with Emulator() as em:
            idp = em.client("cognito-idp")
            pool = idp.create_user_pool(PoolName="players", UsernameAttributes=["email"],
                                        UsernameConfiguration={"CaseSensitive": False})["UserPool"]["Id"]
            idp.update_user_pool(UserPoolId=pool, Policies={"PasswordPolicy": {"MinimumLength": 12}},
                                 DeletionProtection="ACTIVE")
            described = idp.describe_user_pool(UserPoolId=pool)["UserPool"]
            self.assertEqual(described["UsernameAttributes"], ["email"])
            self.assertEqual(described["UsernameConfiguration"], {"CaseSensitive": False})
            self.assertEqual(described["Policies"]["PasswordPolicy"]["MinimumLength"], 12)
            self.assertEqual(described["DeletionProtection"], "ACTIVE")


if __name__ == "__main__":
    unittest.main()
