//! The environment spec as typed values, and the JSON Schema derived from them.
//!
//! Field docs become schema descriptions, which editors show on hover. Ranges that are
//! AWS limits live here so the schema and the validator agree; rules that involve more
//! than one field live in `validate`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One environment of a project: the network, the cache, identity, functions, API and
/// schedules, deployed together.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// Project name; the first part of every physical name (`{project}-{environment}-…`).
    #[serde(default)]
    pub project: String,
    /// Environment name (`dev`, `prod`, `pr-42`); the second part of every physical name.
    #[serde(default)]
    pub environment: String,
    /// AWS region, e.g. `us-east-1`.
    #[serde(default)]
    pub region: String,
    /// A spec file this one builds on, relative to this file. Maps merge key by key
    /// (this file wins); lists are replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extends: Option<String>,
    /// Tags added to every resource, besides the `deploy:*` tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// VPC, subnets, internet and NAT gateways, route tables.
    #[serde(default)]
    pub network: Network,
    /// Security groups by logical name, with rules that reference CIDRs or other groups.
    #[serde(default)]
    pub security_groups: BTreeMap<String, SecurityGroup>,
    /// The ElastiCache Serverless cache (engine `valkey`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Valkey")]
    pub valkey: Option<Valkey>,
    /// The Cognito user pool and its app clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Cognito")]
    pub cognito: Option<Cognito>,
    /// Lambda functions by logical name; each gets its own execution role.
    #[serde(default)]
    pub functions: BTreeMap<String, Function>,
    /// The API Gateway REST API in front of the functions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Api")]
    pub api: Option<Api>,
    /// EventBridge schedules by logical name.
    #[serde(default)]
    pub schedules: BTreeMap<String, Schedule>,
    /// The functions' log groups (`/aws/lambda/NAME`), which deploy creates before the
    /// functions so that Lambda never makes one that keeps logs forever.
    #[serde(default)]
    pub logs: Logs,
    /// Traffic assumed by cost estimates (`deploy cost`, the plan's footer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "crate::cost::Assumptions")]
    pub cost: Option<crate::cost::Assumptions>,
    /// Marks a short-lived environment (`deploy env create`): every resource is tagged
    /// `deploy:ephemeral` and `deploy:expires-at`; destroy needs no data-loss flag;
    /// `deploy gc` destroys it once expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Ephemeral")]
    pub ephemeral: Option<Ephemeral>,
    /// How the checks after every apply (`deploy smoke`) reach the environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Smoke")]
    pub smoke: Option<Smoke>,
    /// Where the environment's state and lock are kept: `.deploy/state/` unless set.
    /// A team shares an environment through S3 (`deploy backend bootstrap` makes the
    /// bucket); `--state-url` overrides it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "StateSection")]
    pub state: Option<StateSection>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateSection {
    /// State in `s3://BUCKET/PREFIX/ENV.json`, written with conditional requests, and
    /// the lock beside it in `ENV.lock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "S3State")]
    pub s3: Option<S3State>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3State {
    /// The bucket (versioned, see `deploy backend bootstrap`).
    pub bucket: String,
    /// The folder in the bucket, e.g. `trivia` (no leading or trailing `/`).
    #[serde(default)]
    pub prefix: String,
    /// The bucket's region, when it is not the environment's.
    #[serde(default)]
    pub region: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ephemeral {
    /// When it may be destroyed by `deploy gc`, RFC 3339 UTC (`2026-11-23T12:00:00Z`).
    pub expires_at: String,
    /// When `deploy env create` made it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Smoke {
    /// Require the health route to report a TLS connection to Valkey (ElastiCache
    /// Serverless only accepts TLS, and so does the local cloud's cache).
    #[serde(default = "default_true")]
    pub require_tls: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The VPC's IPv4 block, e.g. `10.0.0.0/16`.
    #[serde(default)]
    pub vpc_cidr: String,
    /// Public subnets by availability-zone letter (`a: 10.0.1.0/24`).
    #[serde(default)]
    pub public_subnets: BTreeMap<String, String>,
    /// Private subnets by availability-zone letter (`a: 10.0.2.0/24`).
    #[serde(default)]
    pub private_subnets: BTreeMap<String, String>,
    /// NAT gateways for the private subnets: one shared, one per AZ, or none.
    #[serde(default)]
    pub nat: NatMode,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NatMode {
    /// One NAT gateway in the first public subnet's AZ, shared by all private subnets.
    #[default]
    Single,
    /// One NAT gateway per AZ that has both a public and a private subnet.
    PerAz,
    /// No NAT gateway: private subnets have no route to the internet.
    None,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroup {
    /// The group's name in AWS (default `PROJECT-ENV-KEY`). A group's name cannot
    /// change in place: after renaming its key in the spec, set this to the old name
    /// and run `deploy state mv security_group.OLD security_group.NEW` to keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Shown in the AWS console.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Inbound rules. None means no inbound traffic.
    #[serde(default)]
    pub ingress: Vec<Rule>,
    /// Outbound rules. When omitted, AWS's default allow-all egress is kept; when
    /// given, it is removed and exactly these rules apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<Vec<Rule>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// A port (`443`) or an inclusive range (`"6379-6380"`).
    #[schemars(schema_with = "ports_schema")]
    pub ports: serde_json::Value,
    /// Protocol; `all` ignores ports.
    #[serde(default)]
    pub protocol: Protocol,
    /// The peer as an IPv4 block. Give exactly one of `cidr` and `group`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<String>,
    /// The peer as another security group of this spec, by logical name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

fn ports_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "A port (443) or an inclusive range (\"6379-6380\").",
        "type": ["integer", "string"]
    })
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
    All,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::All => "all",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Valkey {
    /// Valkey major engine version.
    #[serde(default = "default_engine_version")]
    #[schemars(range(min = 7, max = 8))]
    pub engine_version: u8,
    /// Maximum data storage in GB (AWS allows 1–5000).
    #[schemars(range(min = 1, max = 5000))]
    pub max_storage_gb: u32,
    /// Minimum data storage in GB, reserved and billed even when idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5000))]
    pub min_storage_gb: Option<u32>,
    /// Maximum ElastiCache Processing Units per second (AWS allows 1,000–15,000,000).
    #[schemars(range(min = 1000, max = 15000000))]
    pub max_ecpu_per_second: u64,
    /// Minimum ECPU per second, reserved and billed even when idle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1000, max = 15000000))]
    pub min_ecpu_per_second: Option<u64>,
    /// Days to keep automatic snapshots (0 turns them off; AWS allows 0–35).
    #[serde(default)]
    #[schemars(range(max = 35))]
    pub snapshot_retention_days: u32,
    /// Daily snapshot start, `HH:MM` in UTC.
    #[serde(default = "default_snapshot_time")]
    pub daily_snapshot_time: String,
    /// Which subnets the cache lives in: `private` (every private subnet).
    #[serde(default = "default_private")]
    pub subnets: SubnetSet,
    /// Security groups of this spec, by logical name.
    #[serde(default)]
    pub security_groups: Vec<String>,
    /// SSM path under which the endpoint and port are published
    /// (`/trivia-dev/valkey` → `/trivia-dev/valkey/endpoint`, `…/port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_to_ssm: Option<String>,
    /// Refuse any plan that would replace or delete the cache.
    #[serde(default)]
    pub protect: bool,
}

fn default_engine_version() -> u8 {
    8
}

fn default_snapshot_time() -> String {
    "03:00".into()
}

fn default_private() -> SubnetSet {
    SubnetSet::Private
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SubnetSet {
    #[default]
    Private,
    Public,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cognito {
    #[serde(default)]
    pub user_pool: UserPool,
    /// App clients by logical name.
    #[serde(default)]
    pub clients: BTreeMap<String, CognitoClient>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPool {
    /// Minimum password length (6–99).
    #[serde(default = "default_password_length")]
    #[schemars(range(min = 6, max = 99))]
    pub password_min_length: u8,
    /// What users sign in with besides a username. Changing it replaces the pool.
    #[serde(default = "default_username_attributes")]
    pub username_attributes: Vec<UsernameAttribute>,
    /// Whether usernames are case sensitive. Changing it replaces the pool.
    #[serde(default)]
    pub case_sensitive: bool,
    /// AWS-side deletion protection (DeleteUserPool fails while it is on).
    #[serde(default)]
    pub deletion_protection: bool,
    /// Refuse any plan that would replace or delete the pool.
    #[serde(default)]
    pub protect: bool,
}

impl Default for UserPool {
    fn default() -> Self {
        Self {
            password_min_length: default_password_length(),
            username_attributes: default_username_attributes(),
            case_sensitive: false,
            deletion_protection: false,
            protect: false,
        }
    }
}

fn default_password_length() -> u8 {
    8
}

fn default_username_attributes() -> Vec<UsernameAttribute> {
    vec![UsernameAttribute::Email]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UsernameAttribute {
    Email,
    PhoneNumber,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CognitoClient {
    /// Allowed authentication flows.
    #[serde(default)]
    pub auth_flows: Vec<AuthFlow>,
    /// Whether the client has a secret. Create-only: changing it replaces the client.
    #[serde(default)]
    pub generate_secret: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuthFlow {
    UserPassword,
    RefreshToken,
    UserSrp,
    AdminUserPassword,
    CustomAuth,
}

impl AuthFlow {
    /// The Cognito `ExplicitAuthFlows` value.
    pub fn aws_name(self) -> &'static str {
        match self {
            AuthFlow::UserPassword => "ALLOW_USER_PASSWORD_AUTH",
            AuthFlow::RefreshToken => "ALLOW_REFRESH_TOKEN_AUTH",
            AuthFlow::UserSrp => "ALLOW_USER_SRP_AUTH",
            AuthFlow::AdminUserPassword => "ALLOW_ADMIN_USER_PASSWORD_AUTH",
            AuthFlow::CustomAuth => "ALLOW_CUSTOM_AUTH",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Function {
    /// Workspace directory of the crate that holds the binary (`app`).
    #[serde(rename = "crate")]
    pub krate: String,
    /// The binary target shipped as `bootstrap`.
    pub bin: String,
    #[serde(default)]
    pub architecture: Architecture,
    /// Memory in MB (128–10240).
    #[serde(default = "default_memory")]
    #[schemars(range(min = 128, max = 10240))]
    pub memory_mb: u32,
    /// Timeout in seconds (1–900).
    #[serde(default = "default_timeout")]
    #[schemars(range(min = 1, max = 900))]
    pub timeout_s: u32,
    /// Run inside the VPC, in these subnets with these security groups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "FunctionVpc")]
    pub vpc: Option<FunctionVpc>,
    /// Environment variables; values may reference other resources (`${valkey.endpoint}`).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
}

fn default_memory() -> u32 {
    128
}

fn default_timeout() -> u32 {
    3
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    #[default]
    X86_64,
    Arm64,
}

impl Architecture {
    pub fn as_str(self) -> &'static str {
        match self {
            Architecture::X86_64 => "x86_64",
            Architecture::Arm64 => "arm64",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FunctionVpc {
    #[serde(default = "default_private")]
    pub subnets: SubnetSet,
    /// Security groups of this spec, by logical name.
    pub security_groups: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Logs {
    /// Days CloudWatch Logs keeps each event: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150,
    /// 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653.
    #[serde(default = "default_retention")]
    pub retention_days: u32,
}

impl Default for Logs {
    fn default() -> Self {
        Self {
            retention_days: default_retention(),
        }
    }
}

fn default_retention() -> u32 {
    14
}

/// The retention periods CloudWatch Logs accepts.
pub const LOG_RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Api {
    /// The stage the API is deployed to; part of the invoke URL.
    #[serde(default = "default_stage")]
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Cors")]
    pub cors: Option<Cors>,
    pub routes: Vec<Route>,
}

fn default_stage() -> String {
    "v1".into()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Cors {
    pub allow_origins: Vec<String>,
    #[serde(default = "default_cors_headers")]
    pub allow_headers: Vec<String>,
    /// How long browsers may cache a preflight answer. Preflights reach the function,
    /// so 0 would double the invocations of every cross-origin call.
    #[serde(default = "default_cors_max_age")]
    #[schemars(range(max = 86400))]
    pub max_age_s: u32,
}

fn default_cors_max_age() -> u32 {
    600
}

fn default_cors_headers() -> Vec<String> {
    vec!["Authorization".into(), "Content-Type".into()]
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub method: Method,
    /// Path, starting with `/`; `{name}` marks a path parameter.
    pub path: String,
    /// The function that serves the route, by logical name.
    pub function: String,
    /// Who may call it: anyone, or users of the Cognito pool (the default).
    #[serde(default)]
    pub auth: Auth,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "UPPERCASE")]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Any,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Any => "ANY",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Auth {
    None,
    #[default]
    Cognito,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// `rate(6 hours)` or a six-field `cron(…)` in UTC.
    pub expression: String,
    /// The function to trigger, by logical name.
    pub function: String,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Also invoke the function once, asynchronously, right after the apply that
    /// creates the rule, so a new environment does not wait a whole period for its
    /// first run (e.g. questions preloaded now rather than in six hours).
    #[serde(default)]
    pub run_after_apply: bool,
}

fn default_true() -> bool {
    true
}

/// The JSON Schema of a whole spec: what the merged document is validated against.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Spec)).expect("schema serializes")
}

/// The schema editors check each file against (`deploy schema`): a file that
/// `extends` another legitimately leaves out required keys, which the file it extends
/// provides, so it is checked with every `required` dropped; shapes, types and
/// unknown keys are checked all the same.
pub fn editor_schema() -> serde_json::Value {
    use serde_json::{json, Map, Value};
    fn strip_required(v: &mut Value) {
        match v {
            Value::Object(m) => {
                m.remove("required");
                m.values_mut().for_each(strip_required);
            }
            Value::Array(a) => a.iter_mut().for_each(strip_required),
            _ => {}
        }
    }
    fn rename_refs(v: &mut Value) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get_mut("$ref") {
                    if let Some(name) = r.strip_prefix("#/$defs/") {
                        *r = format!("#/$defs/Partial{name}");
                    }
                }
                m.values_mut().for_each(rename_refs);
            }
            Value::Array(a) => a.iter_mut().for_each(rename_refs),
            _ => {}
        }
    }
    let full = json_schema();
    let body = |s: &Value| -> Value {
        let mut b = s.as_object().cloned().unwrap_or_default();
        for k in ["$schema", "$defs", "title", "description"] {
            b.remove(k);
        }
        Value::Object(b)
    };
    let mut defs = Map::new();
    if let Some(d) = full.get("$defs").and_then(Value::as_object) {
        for (name, def) in d {
            defs.insert(name.clone(), def.clone());
            let mut partial = def.clone();
            strip_required(&mut partial);
            rename_refs(&mut partial);
            defs.insert(format!("Partial{name}"), partial);
        }
    }
    let mut partial_root = body(&full);
    strip_required(&mut partial_root);
    rename_refs(&mut partial_root);
    defs.insert("Spec".into(), body(&full));
    defs.insert("PartialSpec".into(), partial_root);
    json!({
        "$schema": full["$schema"],
        "title": full["title"],
        "description": "An environment spec of deploy. A file with `extends` may leave out what the file it extends provides.",
        "$defs": defs,
        "if": {"required": ["extends"]},
        "then": {"$ref": "#/$defs/PartialSpec"},
        "else": {"$ref": "#/$defs/Spec"},
    })
}
