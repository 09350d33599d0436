//! The smoke checks' view of AWS, through the SDK clients.

use std::collections::BTreeMap;

use super::{Cache, Identity, Parameters, Schedules};
use crate::aws::Clients;

impl Identity for Clients {
    async fn create_user(
        &self,
        pool: &str,
        username: &str,
        display_name: &str,
        password: &str,
    ) -> Result<(), String> {
        crate::aws::cognito::temporary_user(self, pool, username, display_name, password).await
    }

    async fn sign_in(
        &self,
        client: &str,
        username: &str,
        password: &str,
    ) -> Result<String, String> {
        crate::aws::cognito::sign_in(self, client, username, password).await
    }

    async fn delete_user(&self, pool: &str, username: &str) -> Result<(), String> {
        crate::aws::cognito::delete_user(self, pool, username).await
    }
}

impl Schedules for Clients {
    async fn rule_status(&self, rule: &str) -> Result<(bool, Vec<String>), String> {
        crate::aws::events::rule_status(self, rule).await
    }
}

impl Parameters for Clients {
    async fn values(&self, names: &[String]) -> Result<BTreeMap<String, String>, String> {
        crate::aws::ssm::values(self, names).await
    }
}

impl Cache for Clients {
    async fn endpoint(&self, cache: &str) -> Result<(String, i32), String> {
        crate::aws::elasticache::endpoint(self, cache).await
    }
}
