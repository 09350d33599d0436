//! The ElastiCache Serverless (Valkey) cache.

use serde::{Deserialize, Serialize};

use super::{Inputs, Outputs};
use crate::model::Kind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerlessCacheInputs {
    pub name: String,
    pub engine: String,
    pub major_engine_version: String,
    pub max_storage_gb: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_storage_gb: Option<u32>,
    pub max_ecpu_per_second: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ecpu_per_second: Option<u64>,
    pub snapshot_retention_limit: u32,
    /// `HH:MM` UTC.
    pub daily_snapshot_time: String,
    pub subnet_ids: Vec<String>,
    pub security_group_ids: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerlessCacheOutputs {
    pub id: String,
    pub arn: String,
    pub endpoint: String,
    pub port: u16,
    pub reader_endpoint: String,
    pub reader_port: u16,
}

impl Outputs for ServerlessCacheOutputs {
    const NAMES: &'static [&'static str] = &[
        "id",
        "arn",
        "endpoint",
        "port",
        "reader_endpoint",
        "reader_port",
    ];
    fn example() -> Self {
        Self {
            id: "trivia-dev-cache".into(),
            arn: "arn:aws:elasticache:us-east-1:123456789012:serverlesscache:trivia-dev-cache"
                .into(),
            endpoint: "trivia-dev-cache-x.serverless.use1.cache.amazonaws.com".into(),
            port: 6379,
            reader_endpoint: "trivia-dev-cache-x.serverless.use1.cache.amazonaws.com".into(),
            reader_port: 6380,
        }
    }
}

impl Inputs for ServerlessCacheInputs {
    const KIND: Kind = Kind::ServerlessCache;
    // Subnets are create-only on a serverless cache: moving it loses its data.
    const REPLACE_ON: &'static [&'static str] = &["name", "engine", "subnet_ids"];
    const UNIQUE_ON: &'static [&'static str] = &["name"];
    const STATEFUL: bool = true;
    type Outputs = ServerlessCacheOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-cache".into(),
            engine: "valkey".into(),
            major_engine_version: "8".into(),
            max_storage_gb: 5,
            min_storage_gb: Some(1),
            max_ecpu_per_second: 5000,
            min_ecpu_per_second: Some(1000),
            snapshot_retention_limit: 1,
            daily_snapshot_time: "04:00".into(),
            subnet_ids: vec!["subnet-1".into(), "subnet-2".into()],
            security_group_ids: vec!["sg-1".into()],
        }
    }
}
