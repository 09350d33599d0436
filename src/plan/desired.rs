//! The desired state: every spec element expanded into concrete resources with stable
//! addresses, physical names, tags, inputs and dependency edges (explicit ones plus one
//! per `${…}` reference).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::graph::Graph;
use crate::kinds::api::{ApiRoute, Cors, RestApiInputs};
use crate::kinds::cache::ServerlessCacheInputs;
use crate::kinds::functions::{FunctionCode, LambdaFunctionInputs, LogGroupInputs, Variables};
use crate::kinds::iam::IamRoleInputs;
use crate::kinds::identity::{UserPoolClientInputs, UserPoolInputs};
use crate::kinds::network::{
    ElasticIpInputs, InternetGatewayInputs, NatGatewayInputs, Route, RouteTableInputs,
    SecurityGroupInputs, SecurityGroupRuleInputs, SubnetInputs, VpcInputs,
};
use crate::kinds::parameters::SsmParameterInputs;
use crate::kinds::schedules::ScheduleRuleInputs;
use crate::kinds::Inputs;
use crate::model::{reference_texts, Address, Attrs, Kind};
use crate::spec::diag::did_you_mean;
use crate::spec::model::{NatMode, Rule, SubnetSet, UsernameAttribute};
use crate::spec::values::parse_ports;
use crate::spec::yaml::escape;
use crate::spec::{Diagnostic, Diagnostics, LoadedSpec};

/// The settings through which a function behind the API learns `api.cors` (read by
/// the app's configuration); the spec's `env` may not set them itself.
pub const CORS_ORIGINS: &str = "CORS_ALLOW_ORIGINS";
pub const CORS_HEADERS: &str = "CORS_ALLOW_HEADERS";
pub const CORS_MAX_AGE: &str = "CORS_MAX_AGE_S";

/// One resource as the spec wants it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resource {
    pub address: Address,
    pub kind: Kind,
    /// Inputs, possibly holding canonical references `${address.attribute}`.
    pub inputs: Attrs,
    pub depends_on: BTreeSet<Address>,
    /// `protect: true` in the spec: replace and delete are refused outright.
    #[serde(default)]
    pub protect: bool,
}

/// The desired resources of one environment, in dependency order.
#[derive(Debug, Clone)]
pub struct Desired {
    pub project: String,
    pub environment: String,
    pub region: String,
    pub resources: BTreeMap<Address, Resource>,
    /// Addresses with dependencies first.
    pub order: Vec<Address>,
    /// Traffic assumed by cost estimates.
    pub cost_assumptions: crate::cost::Assumptions,
}

impl Desired {
    /// Records the built code of `function` (its zip's `CodeSha256`): a function whose
    /// live code has another hash gets its code updated. Without a build the recorded
    /// code is kept.
    pub fn set_code(&mut self, function: &str, code_sha256: &str) {
        if let Some(r) = self
            .resources
            .get_mut(&Address::new(format!("function.{function}")))
        {
            r.inputs.insert("code_sha256".into(), json!(code_sha256));
        }
    }
}

/// What to build for each function of a spec.
pub fn build_requests(spec: &crate::spec::model::Spec) -> Vec<crate::artifact::Request> {
    spec.functions
        .iter()
        .map(|(name, f)| crate::artifact::Request {
            function: name.clone(),
            krate: f.krate.clone(),
            bin: f.bin.clone(),
            architecture: f.architecture.as_str().to_string(),
        })
        .collect()
}

/// Shorthands accepted in references, e.g. `${valkey.endpoint}`.
const ALIASES: &[(&str, &str)] = &[("valkey", "valkey.cache")];

struct Builder<'a> {
    loaded: &'a LoadedSpec,
    resources: BTreeMap<Address, Resource>,
    /// Where each reference was written, for error positions.
    reference_sites: Vec<(Address, String)>,
}

impl Builder<'_> {
    fn prefix(&self) -> String {
        format!(
            "{}-{}",
            self.loaded.spec.project, self.loaded.spec.environment
        )
    }

    fn add<I: Inputs>(&mut self, address: String, inputs: I, explicit: &[String]) -> Address {
        let kind = I::KIND;
        let mut inputs = inputs.to_attrs();
        let address = Address::new(address);
        let spec = &self.loaded.spec;
        let mut tags: BTreeMap<String, String> = spec.tags.clone();
        tags.insert("deploy:project".into(), spec.project.clone());
        tags.insert("deploy:environment".into(), spec.environment.clone());
        tags.insert("deploy:address".into(), address.to_string());
        if let Some(e) = &spec.ephemeral {
            tags.insert("deploy:ephemeral".into(), "true".into());
            tags.insert("deploy:expires-at".into(), e.expires_at.clone());
        }
        if let Some(Value::String(name)) = inputs.get("name") {
            tags.insert("Name".into(), name.clone());
        } else {
            tags.insert(
                "Name".into(),
                format!("{}-{}", self.prefix(), address.as_str().replace('.', "-")),
            );
        }
        inputs.insert("tags".into(), json!(tags));
        let depends_on = explicit.iter().map(|a| Address::new(a.clone())).collect();
        self.resources.insert(
            address.clone(),
            Resource {
                address: address.clone(),
                kind,
                inputs,
                depends_on,
                protect: false,
            },
        );
        address
    }
}

/// A reference to another resource's attribute, resolved at apply time.
fn r(address: &str, attr: &str) -> String {
    format!("${{{address}.{attr}}}")
}

/// Expands a validated spec. Reports unknown references and dependency cycles.
pub fn expand(loaded: &LoadedSpec) -> Result<Desired, Diagnostics> {
    let spec = &loaded.spec;
    let mut b = Builder {
        loaded,
        resources: BTreeMap::new(),
        reference_sites: Vec::new(),
    };
    let prefix = b.prefix();
    let net = &spec.network;
    let az = |letter: &str| format!("{}{letter}", spec.region);

    // Network.
    let has_vpc = !net.vpc_cidr.is_empty();
    if has_vpc {
        b.add(
            "network.vpc".into(),
            VpcInputs {
                name: format!("{prefix}-vpc"),
                cidr_block: net.vpc_cidr.clone(),
                enable_dns_hostnames: true,
                enable_dns_support: true,
            },
            &[],
        );
        for (set, map, public) in [
            ("public", &net.public_subnets, true),
            ("private", &net.private_subnets, false),
        ] {
            for (letter, cidr) in map {
                b.add(
                    format!("network.subnet.{set}-{letter}"),
                    SubnetInputs {
                        name: format!("{prefix}-{set}-{letter}"),
                        vpc_id: r("network.vpc", "id"),
                        cidr_block: cidr.clone(),
                        availability_zone: az(letter),
                        map_public_ip_on_launch: public,
                    },
                    &[],
                );
            }
        }
    }
    let has_igw = has_vpc && !net.public_subnets.is_empty();
    if has_igw {
        b.add(
            "network.igw".into(),
            InternetGatewayInputs {
                name: format!("{prefix}-igw"),
                vpc_id: r("network.vpc", "id"),
            },
            &[],
        );
        let public_ids: Vec<String> = net
            .public_subnets
            .keys()
            .map(|l| r(&format!("network.subnet.public-{l}"), "id"))
            .collect();
        b.add(
            "network.route_table.public".into(),
            RouteTableInputs {
                name: format!("{prefix}-public"),
                vpc_id: r("network.vpc", "id"),
                routes: vec![Route {
                    destination: "0.0.0.0/0".into(),
                    gateway_id: Some(r("network.igw", "id")),
                    nat_gateway_id: None,
                }],
                subnet_ids: public_ids,
            },
            &[],
        );
    }
    // NAT gateways, by the AZ letter they live in.
    let nat_azs: Vec<String> = match (net.nat, has_igw) {
        (NatMode::None, _) | (_, false) => Vec::new(),
        (NatMode::Single, true) => net.public_subnets.keys().take(1).cloned().collect(),
        (NatMode::PerAz, true) => net
            .private_subnets
            .keys()
            .filter(|l| net.public_subnets.contains_key(*l))
            .cloned()
            .collect(),
    };
    for letter in &nat_azs {
        b.add(
            format!("network.eip.{letter}"),
            ElasticIpInputs {
                name: format!("{prefix}-nat-{letter}"),
                domain: "vpc".into(),
            },
            &[],
        );
        // The NAT gateway needs the internet gateway attached first (else it fails with
        // Gateway.NotAttached), though it does not reference it.
        b.add(
            format!("network.nat.{letter}"),
            NatGatewayInputs {
                name: format!("{prefix}-nat-{letter}"),
                subnet_id: r(&format!("network.subnet.public-{letter}"), "id"),
                allocation_id: r(&format!("network.eip.{letter}"), "id"),
            },
            &["network.igw".into()],
        );
    }
    if has_vpc {
        for letter in net.private_subnets.keys() {
            let nat = if nat_azs.contains(letter) {
                Some(letter.clone())
            } else {
                nat_azs.first().cloned()
            };
            let routes: Vec<Route> = nat
                .map(|n| Route {
                    destination: "0.0.0.0/0".into(),
                    gateway_id: None,
                    nat_gateway_id: Some(r(&format!("network.nat.{n}"), "id")),
                })
                .into_iter()
                .collect();
            b.add(
                format!("network.route_table.private-{letter}"),
                RouteTableInputs {
                    name: format!("{prefix}-private-{letter}"),
                    vpc_id: r("network.vpc", "id"),
                    routes,
                    subnet_ids: vec![r(&format!("network.subnet.private-{letter}"), "id")],
                },
                &[],
            );
        }
    }

    // Security groups, then their rules as separate resources: groups whose rules
    // reference each other would otherwise form a cycle.
    for (name, sg) in &spec.security_groups {
        let description = sg
            .description
            .clone()
            .unwrap_or_else(|| format!("{prefix} {name}"));
        b.add(
            format!("security_group.{name}"),
            SecurityGroupInputs {
                name: sg
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{prefix}-{name}")),
                description,
                vpc_id: r("network.vpc", "id"),
                revoke_default_egress: sg.egress.is_some(),
            },
            &[],
        );
        let egress = sg.egress.as_deref().unwrap_or(&[]);
        for (direction, rules) in [("ingress", sg.ingress.as_slice()), ("egress", egress)] {
            for rule in rules {
                let (address, inputs) = rule_resource(name, direction, rule);
                b.add(address, inputs, &[]);
            }
        }
    }
    let group_ids = |names: &[String]| -> Vec<String> {
        names
            .iter()
            .map(|g| r(&format!("security_group.{g}"), "id"))
            .collect()
    };
    let subnet_ids = |set: SubnetSet| -> Vec<String> {
        let (label, map) = match set {
            SubnetSet::Private => ("private", &net.private_subnets),
            SubnetSet::Public => ("public", &net.public_subnets),
        };
        map.keys()
            .map(|l| r(&format!("network.subnet.{label}-{l}"), "id"))
            .collect()
    };

    // The cache and its SSM parameters.
    if let Some(cache) = &spec.valkey {
        let inputs = ServerlessCacheInputs {
            name: format!("{prefix}-cache"),
            engine: "valkey".into(),
            major_engine_version: cache.engine_version.to_string(),
            max_storage_gb: cache.max_storage_gb,
            min_storage_gb: cache.min_storage_gb,
            max_ecpu_per_second: cache.max_ecpu_per_second,
            min_ecpu_per_second: cache.min_ecpu_per_second,
            snapshot_retention_limit: cache.snapshot_retention_days,
            daily_snapshot_time: cache.daily_snapshot_time.clone(),
            subnet_ids: subnet_ids(cache.subnets),
            security_group_ids: group_ids(&cache.security_groups),
        };
        let a = b.add("valkey.cache".into(), inputs, &[]);
        b.resources.get_mut(&a).expect("just added").protect = cache.protect;
        if let Some(path) = &cache.publish_to_ssm {
            for (what, attr) in [("endpoint", "endpoint"), ("port", "port")] {
                b.add(
                    format!("ssm.valkey-{what}"),
                    SsmParameterInputs {
                        name: format!("{path}/{what}"),
                        kind: "String".into(),
                        value: r("valkey.cache", attr),
                    },
                    &[],
                );
            }
        }
    }

    // Identity.
    if let Some(cognito) = &spec.cognito {
        let pool = &cognito.user_pool;
        let a = b.add(
            "cognito.user_pool".into(),
            UserPoolInputs {
                name: format!("{prefix}-users"),
                password_min_length: pool.password_min_length,
                username_attributes: pool
                    .username_attributes
                    .iter()
                    .map(|u| match u {
                        UsernameAttribute::Email => "email".to_string(),
                        UsernameAttribute::PhoneNumber => "phone_number".to_string(),
                    })
                    .collect(),
                case_sensitive: pool.case_sensitive,
                deletion_protection: pool.deletion_protection,
            },
            &[],
        );
        b.resources.get_mut(&a).expect("just added").protect = pool.protect;
        for (name, client) in &cognito.clients {
            b.add(
                format!("cognito.client.{name}"),
                UserPoolClientInputs {
                    name: format!("{prefix}-{name}"),
                    user_pool_id: r("cognito.user_pool", "id"),
                    explicit_auth_flows: client
                        .auth_flows
                        .iter()
                        .map(|f| f.aws_name().to_string())
                        .collect(),
                    generate_secret: client.generate_secret,
                    // Sign-in and recovery answer alike whether the user exists or not.
                    prevent_user_existence_errors: "ENABLED".into(),
                },
                &[],
            );
        }
    }

    // Functions and their execution roles.
    for (name, f) in &spec.functions {
        let env_pointer = format!("/functions/{}/env", escape(name));
        let mut env = Variables::default();
        let mut ssm_reads: BTreeSet<String> = BTreeSet::new();
        for (k, v) in &f.env {
            let pointer = format!("{env_pointer}/{}", escape(k));
            let canonical = canonicalize(v, &pointer, &mut b.reference_sites);
            for (_, text) in reference_texts(&canonical) {
                if let Some(p) = text
                    .strip_prefix("ssm.")
                    .and_then(|t| t.rsplit_once('.'))
                    .map(|(p, _)| p)
                {
                    ssm_reads.insert(p.to_string());
                }
            }
            env.insert(k.clone(), canonical);
        }
        // A function behind the API answers its CORS preflights and sets the headers
        // on its responses, as the spec's `api.cors` says.
        if let Some(cors) = spec
            .api
            .as_ref()
            .filter(|api| api.routes.iter().any(|rt| rt.function == *name))
            .and_then(|api| api.cors.as_ref())
        {
            env.insert(CORS_ORIGINS.into(), cors.allow_origins.join(","));
            env.insert(CORS_HEADERS.into(), cors.allow_headers.join(","));
            env.insert(CORS_MAX_AGE.into(), cors.max_age_s.to_string());
        }
        let mut statements = Vec::new();
        if !ssm_reads.is_empty() {
            let arns: Vec<String> = ssm_reads
                .iter()
                .map(|p| r(&format!("ssm.{p}"), "arn"))
                .collect();
            statements.push(json!({"Effect": "Allow", "Action": ["ssm:GetParameter", "ssm:GetParameters"], "Resource": arns}));
        }
        let managed = if f.vpc.is_some() {
            "arn:aws:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
        } else {
            "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
        };
        let role = b.add(
            format!("iam.role.{name}"),
            IamRoleInputs {
                name: format!("{prefix}-{name}"),
                assume_role_policy: json!({
                    "Version": "2012-10-17",
                    "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]
                }),
                managed_policy_arns: vec![managed.into()],
                inline_policy: (!statements.is_empty())
                    .then(|| json!({"Version": "2012-10-17", "Statement": statements})),
            },
            &[],
        );
        let (vpc_subnets, vpc_groups) = match &f.vpc {
            Some(v) => (subnet_ids(v.subnets), group_ids(&v.security_groups)),
            None => (Vec::new(), Vec::new()),
        };
        // Its log group first, with the spec's retention: a function that starts
        // before its group exists makes one that keeps logs forever.
        let logs = b.add(
            format!("function.{name}.logs"),
            LogGroupInputs {
                name: crate::aws::logs::function_group(&format!("{prefix}-{name}")),
                retention_days: spec.logs.retention_days,
            },
            &[],
        );
        b.add(
            format!("function.{name}"),
            LambdaFunctionInputs {
                name: format!("{prefix}-{name}"),
                role_arn: r(role.as_str(), "arn"),
                runtime: "provided.al2023".into(),
                handler: "bootstrap".into(),
                architecture: f.architecture.as_str().into(),
                memory_mb: f.memory_mb,
                timeout_s: f.timeout_s,
                subnet_ids: vpc_subnets,
                security_group_ids: vpc_groups,
                environment: env,
                code: FunctionCode {
                    krate: f.krate.clone(),
                    bin: f.bin.clone(),
                },
                // Set by `Desired::set_code` once the code is built.
                code_sha256: None,
                alias: "live".into(),
                // The alias serves what $LATEST holds. A run that died between an
                // update and its publish leaves it behind, which reads as false.
                published: true,
            },
            &[logs.to_string()],
        );
    }

    // The REST API.
    if let Some(api) = &spec.api {
        let routes: Vec<ApiRoute> = api
            .routes
            .iter()
            .map(|rt| ApiRoute {
                method: rt.method.as_str().into(),
                path: rt.path.clone(),
                function_arn: r(&format!("function.{}", rt.function), "alias_arn"),
                auth: match rt.auth {
                    crate::spec::model::Auth::None => "none",
                    crate::spec::model::Auth::Cognito => "cognito",
                }
                .into(),
            })
            .collect();
        let uses_cognito = api
            .routes
            .iter()
            .any(|rt| rt.auth == crate::spec::model::Auth::Cognito);
        let cors = api.cors.as_ref().map(|c| Cors {
            allow_origins: c.allow_origins.clone(),
            allow_headers: c.allow_headers.clone(),
            max_age_s: c.max_age_s,
        });
        b.add(
            "api.rest_api".into(),
            RestApiInputs {
                name: format!("{prefix}-api"),
                stage: api.stage.clone(),
                cors,
                routes,
                authorizer_pool_arn: uses_cognito.then(|| r("cognito.user_pool", "arn")),
            },
            &[],
        );
    }

    for (name, s) in &spec.schedules {
        b.add(
            format!("schedule.{name}"),
            ScheduleRuleInputs {
                name: format!("{prefix}-{name}"),
                expression: s.expression.clone(),
                enabled: s.enabled,
                target_arn: r(&format!("function.{}", s.function), "alias_arn"),
            },
            &[],
        );
    }

    finish(b)
}

fn rule_resource(group: &str, direction: &str, rule: &Rule) -> (String, SecurityGroupRuleInputs) {
    let (from, to) = parse_ports(&rule.ports).unwrap_or((0, 0));
    let proto = rule.protocol.as_str();
    let ports = if rule.protocol == crate::spec::model::Protocol::All {
        "all".to_string()
    } else if from == to {
        format!("{proto}-{from}")
    } else {
        format!("{proto}-{from}-{to}")
    };
    let (peer_label, cidr, peer) = match (&rule.cidr, &rule.group) {
        (Some(c), _) => (format!("cidr-{c}"), Some(c.clone()), None),
        (None, Some(g)) => (
            format!("sg-{g}"),
            None,
            Some(r(&format!("security_group.{g}"), "id")),
        ),
        (None, None) => ("none".into(), None, None),
    };
    let address = format!("security_group.{group}.{direction}.{ports}-{peer_label}");
    let inputs = SecurityGroupRuleInputs {
        group_id: r(&format!("security_group.{group}"), "id"),
        direction: direction.into(),
        protocol: if proto == "all" { "-1" } else { proto }.into(),
        from_port: from,
        to_port: to,
        cidr,
        peer_group_id: peer,
        description: rule.description.clone(),
    };
    (address, inputs)
}

/// Rewrites shorthand references (`${valkey.endpoint}`) to canonical ones
/// (`${valkey.cache.endpoint}`), remembering where each was written.
fn canonicalize(value: &str, pointer: &str, sites: &mut Vec<(Address, String)>) -> String {
    let mut out = String::new();
    let mut last = 0;
    for (range, text) in reference_texts(value) {
        out.push_str(&value[last..range.start]);
        let mut canonical = text.trim().to_string();
        for (short, full) in ALIASES {
            if let Some(rest) = canonical.strip_prefix(&format!("{short}.")) {
                if !rest.contains('.') {
                    canonical = format!("{full}.{rest}");
                }
            }
        }
        sites.push((Address::new(canonical.clone()), pointer.to_string()));
        out.push_str(&format!("${{{canonical}}}"));
        last = range.end;
    }
    out.push_str(&value[last..]);
    out
}

fn finish(mut b: Builder<'_>) -> Result<Desired, Diagnostics> {
    // Protected resources say so in their tags too, so a sweep by tags refuses them
    // even without the spec or the state.
    for r in b.resources.values_mut().filter(|r| r.protect) {
        if let Some(Value::Object(tags)) = r.inputs.get_mut("tags") {
            tags.insert("deploy:protected".into(), json!("true"));
        }
    }
    let mut diags = Diagnostics::default();
    let sources = &b.loaded.sources;

    // Check every reference written in the spec.
    for (text, pointer) in &b.reference_sites {
        let text = text.as_str();
        let Some((addr, attr)) = text.rsplit_once('.') else {
            diags.push(Diagnostic::new(
                sources.value(pointer),
                format!("`${{{text}}}` is not a reference of the form `${{ADDRESS.ATTRIBUTE}}`"),
            ));
            continue;
        };
        match b.resources.get(&Address::new(addr)) {
            None => {
                let hint = did_you_mean(addr, b.resources.keys().map(Address::as_str))
                    .map(|s| format!("did you mean `{s}`?"))
                    .unwrap_or_else(|| "`deploy plan --no-refresh` lists every address".into());
                diags.push(
                    Diagnostic::new(
                        sources.value(pointer),
                        format!(
                            "`${{{text}}}` refers to `{addr}`, which this spec does not define"
                        ),
                    )
                    .hint(hint),
                );
            }
            Some(res) => {
                let known: Vec<&str> = res
                    .kind
                    .outputs()
                    .iter()
                    .copied()
                    .chain(res.inputs.keys().map(String::as_str))
                    .collect();
                if !known.contains(&attr) {
                    let hint = did_you_mean(attr, known.iter().copied())
                        .map(|s| format!("did you mean `{s}`?"))
                        .unwrap_or_else(|| {
                            format!("`{addr}` has: {}", res.kind.outputs().join(", "))
                        });
                    diags.push(
                        Diagnostic::new(
                            sources.value(pointer),
                            format!("`{addr}` has no attribute `{attr}`"),
                        )
                        .hint(hint),
                    );
                }
            }
        }
    }
    if !diags.is_empty() {
        return Err(diags.finish());
    }

    // Edges: explicit ones plus one per reference.
    let addresses: Vec<Address> = b.resources.keys().cloned().collect();
    for res in b.resources.values_mut() {
        let refs =
            crate::model::references(&Value::Object(res.inputs.clone().into_iter().collect()));
        for rf in refs {
            if rf.address != res.address {
                res.depends_on.insert(rf.address);
            }
        }
        res.depends_on
            .retain(|d| addresses.binary_search(d).is_ok());
    }
    let (graph, ids) = graph_of(&b.resources);
    let order = match graph.topological() {
        Ok(order) => order.into_iter().map(|i| graph.node(i).clone()).collect(),
        Err(cycle) => {
            let path: Vec<String> = cycle.iter().map(|&i| graph.node(i).to_string()).collect();
            let first = graph.node(cycle[0]);
            let pointer = b
                .reference_sites
                .iter()
                .find(|(t, _)| {
                    t.as_str()
                        .starts_with(&format!("{}.", graph.node(cycle[1])))
                })
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| pointer_of(first));
            let _ = ids;
            diags.push(
                Diagnostic::new(
                    sources.value(&pointer),
                    format!("dependency cycle: {}", path.join(" → ")),
                )
                .hint("a resource cannot depend on itself through references; remove one of them"),
            );
            return Err(diags);
        }
    };
    let spec = &b.loaded.spec;
    Ok(Desired {
        project: spec.project.clone(),
        environment: spec.environment.clone(),
        region: spec.region.clone(),
        resources: b.resources,
        order,
        cost_assumptions: spec.cost.unwrap_or_default(),
    })
}

/// The spec pointer a resource came from, roughly, for diagnostics without a better one.
fn pointer_of(a: &Address) -> String {
    let parts: Vec<&str> = a.as_str().split('.').collect();
    match parts.as_slice() {
        ["function", name, ..] => format!("/functions/{}", escape(name)),
        [first, second, ..] => format!("/{first}/{}", escape(second)),
        _ => String::new(),
    }
}

/// A graph of the resources by their `depends_on` edges.
pub fn graph_of(
    resources: &BTreeMap<Address, Resource>,
) -> (Graph<Address>, BTreeMap<Address, usize>) {
    let mut g = Graph::new();
    let ids: BTreeMap<Address, usize> = resources
        .keys()
        .map(|a| (a.clone(), g.add(a.clone())))
        .collect();
    for res in resources.values() {
        for d in &res.depends_on {
            if let Some(&to) = ids.get(d) {
                g.depend(ids[&res.address], to);
            }
        }
    }
    (g, ids)
}
