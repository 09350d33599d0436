//! `cognito`: app client names and their auth flows.

use super::Checker;
use crate::spec::values::is_slug;
use crate::spec::yaml::escape;

impl Checker<'_> {
    pub(super) fn cognito(&mut self) {
        let Some(c) = &self.spec.cognito else { return };
        for name in c.clients.keys() {
            if !is_slug(name) {
                self.key_err(
                    &format!("/cognito/clients/{}", escape(name)),
                    format!("client name `{name}` must be lowercase letters, digits and hyphens"),
                );
            }
        }
        for (name, client) in &c.clients {
            if client.auth_flows.is_empty() {
                self.err(
                    &format!("/cognito/clients/{}", escape(name)),
                    "a client needs at least one auth flow",
                )
                .hint("for example `auth_flows: [user_password, refresh_token]`");
            }
        }
    }
}
