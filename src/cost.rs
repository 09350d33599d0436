//! Monthly cost estimates: a dated price table, one estimator per billable kind (each
//! stating the basis of its figure), a floor (idle) and a ceiling (the cache at its
//! maximum storage, traffic at the assumed load), and warnings worth a user's attention.
//!
//! Works on (address, kind, inputs) triples, so the same code prices the spec (after a
//! plan) and the recorded state (before it).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{Address, Attrs, Kind};

/// Hours in a billing month, as AWS's own calculators use.
pub const HOURS_PER_MONTH: f64 = 730.0;
const DAYS_PER_MONTH: f64 = HOURS_PER_MONTH / 24.0;
const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3600.0;

/// us-east-1 list prices. Other regions reuse them (with a note in the output).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Prices {
    pub region: &'static str,
    /// When the figures were taken.
    pub taken: &'static str,
    pub valkey_storage_gb_hour: f64,
    /// ElastiCache Serverless meters at least this much storage.
    pub valkey_min_metered_gb: f64,
    pub valkey_per_million_ecpu: f64,
    pub nat_hour: f64,
    pub nat_gb: f64,
    pub public_ipv4_hour: f64,
    pub lambda_per_million_requests: f64,
    pub lambda_gb_second_x86_64: f64,
    pub lambda_gb_second_arm64: f64,
    pub api_rest_per_million: f64,
}

pub const US_EAST_1: Prices = Prices {
    region: "us-east-1",
    taken: "2026-11-21",
    valkey_storage_gb_hour: 0.084,
    valkey_min_metered_gb: 0.1,
    valkey_per_million_ecpu: 0.0023,
    nat_hour: 0.045,
    nat_gb: 0.045,
    public_ipv4_hour: 0.005,
    lambda_per_million_requests: 0.20,
    lambda_gb_second_x86_64: 0.000_016_666_7,
    lambda_gb_second_arm64: 0.000_013_333_4,
    api_rest_per_million: 3.50,
};

/// Traffic the ceiling assumes. Set in the spec's `cost:` section or by flags.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assumptions {
    /// API requests per day.
    #[serde(default = "default_requests")]
    pub requests_per_day: f64,
    /// Cache data moved per request, in KB (1 ECPU ≈ 1 KB).
    #[serde(default = "default_kb")]
    pub kb_per_request: f64,
    /// GB a month through the NAT gateway(s).
    #[serde(default = "default_nat_gb")]
    pub nat_gb_per_month: f64,
    /// Average function run time, in milliseconds.
    #[serde(default = "default_duration")]
    pub function_duration_ms: f64,
}

fn default_requests() -> f64 {
    10_000.0
}
fn default_kb() -> f64 {
    4.0
}
fn default_nat_gb() -> f64 {
    5.0
}
fn default_duration() -> f64 {
    50.0
}

impl Default for Assumptions {
    fn default() -> Self {
        Self {
            requests_per_day: default_requests(),
            kb_per_request: default_kb(),
            nat_gb_per_month: default_nat_gb(),
            function_duration_ms: default_duration(),
        }
    }
}

/// A floor and a ceiling, in USD a month.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Range {
    pub low: f64,
    pub high: f64,
}

impl Range {
    fn flat(v: f64) -> Self {
        Self { low: v, high: v }
    }

    fn add(self, o: Range) -> Range {
        Range {
            low: self.low + o.low,
            high: self.high + o.high,
        }
    }

    /// Rounded to cents, for output.
    fn cents(self) -> Range {
        Range {
            low: cents(self.low),
            high: cents(self.high),
        }
    }
}

fn cents(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub address: Address,
    pub kind: Kind,
    pub monthly_usd: Range,
    /// How the figure was computed.
    pub basis: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub environment: String,
    pub monthly_usd: Range,
    pub items: Vec<Item>,
    pub assumptions: Assumptions,
    /// Where the prices come from, and whether they are the region's own.
    pub prices: String,
}

/// A resource to price: its inputs, and its outputs when it exists (recorded state),
/// so resolved ARNs can be traced back to functions.
pub struct Priced<'a> {
    pub address: &'a Address,
    pub kind: Kind,
    pub inputs: &'a Attrs,
    pub outputs: Option<&'a Attrs>,
}

fn num(inputs: &Attrs, key: &str) -> Option<f64> {
    inputs.get(key).and_then(Value::as_f64)
}

/// Dollars: cents for amounts, up to ten decimals (trimmed) for unit prices.
fn money(v: f64) -> String {
    if v >= 1.0 || v == 0.0 {
        return format!("${v:.2}");
    }
    let s = format!("{v:.10}");
    let s = s.trim_end_matches('0');
    let decimals = s.split('.').nth(1).map_or(0, str::len);
    if decimals < 2 {
        format!("${v:.2}")
    } else {
        format!("${s}")
    }
}

/// `304167.4` → `304,167`.
fn grouped(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Monthly invocations of a schedule expression (cron counts minute × hour matches a
/// day and assumes every day; finer day rules are not modelled).
pub fn invocations_per_month(expression: &str) -> f64 {
    if let Some(inner) = expression
        .strip_prefix("rate(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let mut parts = inner.split_whitespace();
        let n: f64 = parts.next().and_then(|n| n.parse().ok()).unwrap_or(1.0);
        let minutes = match parts.next().unwrap_or("").trim_end_matches('s') {
            "minute" => n,
            "hour" => n * 60.0,
            "day" => n * 1440.0,
            _ => return 0.0,
        };
        return DAYS_PER_MONTH * 1440.0 / minutes;
    }
    if let Some(inner) = expression
        .strip_prefix("cron(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let f: Vec<&str> = inner.split_whitespace().collect();
        if f.len() < 2 {
            return 0.0;
        }
        let count = |field: &str, span: f64| -> f64 {
            field
                .split(',')
                .map(|part| {
                    if part == "*" {
                        span
                    } else if let Some(step) = part
                        .split_once('/')
                        .and_then(|(_, s)| s.parse::<f64>().ok())
                    {
                        (span / step).ceil()
                    } else if let Some((a, b)) = part.split_once('-') {
                        match (a.parse::<f64>(), b.parse::<f64>()) {
                            (Ok(a), Ok(b)) if b >= a => b - a + 1.0,
                            _ => 1.0,
                        }
                    } else {
                        1.0
                    }
                })
                .sum()
        };
        return count(f[0], 60.0) * count(f[1], 24.0) * DAYS_PER_MONTH;
    }
    0.0
}

/// Prices every billable resource of an environment.
pub fn estimate(
    environment: &str,
    region: &str,
    resources: &[Priced<'_>],
    a: &Assumptions,
) -> Estimate {
    let p = US_EAST_1;
    let requests_month = a.requests_per_day * DAYS_PER_MONTH;
    let kb = |x: f64| format!("{x}");
    let function_of = |arn: &str| function_of(arn, resources);

    // API requests spread over functions by how many routes each serves.
    let mut route_share: BTreeMap<String, f64> = BTreeMap::new();
    let mut schedule_runs: BTreeMap<String, f64> = BTreeMap::new();
    for r in resources {
        match r.kind {
            Kind::RestApi => {
                let routes = r
                    .inputs
                    .get("routes")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let total = routes.len().max(1) as f64;
                for route in &routes {
                    if let Some(f) = route
                        .get("function_arn")
                        .and_then(Value::as_str)
                        .and_then(&function_of)
                    {
                        *route_share.entry(f).or_default() += 1.0 / total;
                    }
                }
            }
            Kind::ScheduleRule => {
                if let (Some(expr), Some(f)) = (
                    r.inputs.get("expression").and_then(Value::as_str),
                    r.inputs
                        .get("target_arn")
                        .and_then(Value::as_str)
                        .and_then(&function_of),
                ) {
                    let enabled = r
                        .inputs
                        .get("enabled")
                        .and_then(Value::as_bool)
                        .unwrap_or(true);
                    if enabled {
                        *schedule_runs.entry(f).or_default() += invocations_per_month(expr);
                    }
                }
            }
            _ => {}
        }
    }

    let mut items = Vec::new();
    for r in resources {
        let (range, basis) = match r.kind {
            Kind::NatGateway => {
                let hours = HOURS_PER_MONTH * p.nat_hour;
                let data = a.nat_gb_per_month * p.nat_gb;
                (
                    Range {
                        low: hours,
                        high: hours + data,
                    },
                    format!(
                        "{HOURS_PER_MONTH} h × {}/h; plus {} GB × {}/GB processed at load",
                        money(p.nat_hour),
                        kb(a.nat_gb_per_month),
                        money(p.nat_gb)
                    ),
                )
            }
            Kind::ElasticIp => (
                Range::flat(HOURS_PER_MONTH * p.public_ipv4_hour),
                format!(
                    "public IPv4: {HOURS_PER_MONTH} h × {}/h",
                    money(p.public_ipv4_hour)
                ),
            ),
            Kind::ServerlessCache => {
                let max_gb = num(r.inputs, "max_storage_gb").unwrap_or(1.0);
                let min_gb = num(r.inputs, "min_storage_gb");
                let idle_gb = min_gb.unwrap_or(0.0).max(p.valkey_min_metered_gb);
                let storage = |gb: f64| gb * p.valkey_storage_gb_hour * HOURS_PER_MONTH;
                let min_ecpu = num(r.inputs, "min_ecpu_per_second")
                    .map(|e| e * SECONDS_PER_MONTH)
                    .unwrap_or(0.0);
                let load_ecpu = (requests_month * a.kb_per_request).max(min_ecpu);
                let ecpu = |n: f64| n / 1e6 * p.valkey_per_million_ecpu;
                let floor_note = match min_gb {
                    Some(m) => format!("{m} GB reserved minimum"),
                    None => format!("{} GB metered minimum", p.valkey_min_metered_gb),
                };
                (
                    Range { low: storage(idle_gb) + ecpu(min_ecpu), high: storage(max_gb) + ecpu(load_ecpu) },
                    format!(
                        "storage {floor_note} … {max_gb} GB max × {}/GB-h × {HOURS_PER_MONTH} h; ECPU {:.1} M/month at load × {}/M",
                        money(p.valkey_storage_gb_hour),
                        load_ecpu / 1e6,
                        money(p.valkey_per_million_ecpu)
                    ),
                )
            }
            Kind::LambdaFunction => {
                let name = r
                    .address
                    .as_str()
                    .strip_prefix("function.")
                    .unwrap_or(r.address.as_str())
                    .to_string();
                let invocations = route_share.get(&name).copied().unwrap_or(0.0) * requests_month
                    + schedule_runs.get(&name).copied().unwrap_or(0.0);
                let memory_gb = num(r.inputs, "memory_mb").unwrap_or(128.0) / 1024.0;
                let arm = r.inputs.get("architecture").and_then(Value::as_str) == Some("arm64");
                let gb_s_price = if arm {
                    p.lambda_gb_second_arm64
                } else {
                    p.lambda_gb_second_x86_64
                };
                let gb_s = invocations * memory_gb * a.function_duration_ms / 1000.0;
                let cost = invocations / 1e6 * p.lambda_per_million_requests + gb_s * gb_s_price;
                (
                    Range {
                        low: 0.0,
                        high: cost,
                    },
                    format!(
                        "{} invocations × {}/M + {} GB-s × {} ({}); free tier not deducted",
                        grouped(invocations),
                        money(p.lambda_per_million_requests),
                        grouped(gb_s),
                        money(gb_s_price),
                        if arm { "arm64" } else { "x86_64" }
                    ),
                )
            }
            Kind::RestApi => (
                Range {
                    low: 0.0,
                    high: requests_month / 1e6 * p.api_rest_per_million,
                },
                format!(
                    "{} requests × {}/M (REST)",
                    grouped(requests_month),
                    money(p.api_rest_per_million)
                ),
            ),
            _ => continue,
        };
        items.push(Item {
            address: r.address.clone(),
            kind: r.kind,
            monthly_usd: range.cents(),
            basis,
        });
    }
    let total = items
        .iter()
        .fold(Range::default(), |t, i| t.add(i.monthly_usd))
        .cents();
    let prices = if region == p.region || region.is_empty() {
        format!("{} list prices taken {}", p.region, p.taken)
    } else {
        format!(
            "{} list prices taken {} (no table for {region} yet; prices there differ)",
            p.region, p.taken
        )
    };
    Estimate {
        environment: environment.to_string(),
        monthly_usd: total,
        items,
        assumptions: *a,
        prices,
    }
}

/// The logical function an ARN names: a reference `${function.api.alias_arn}`, or a
/// resolved ARN matched against the functions' recorded outputs.
fn function_of(arn: &str, resources: &[Priced<'_>]) -> Option<String> {
    if let Some(rest) = arn.strip_prefix("${function.") {
        return rest.split('.').next().map(String::from);
    }
    resources
        .iter()
        .filter(|r| r.kind == Kind::LambdaFunction)
        .find(|r| {
            r.outputs
                .is_some_and(|o| o.values().any(|v| v.as_str() == Some(arn)))
        })
        .and_then(|r| {
            r.address
                .as_str()
                .strip_prefix("function.")
                .map(String::from)
        })
}

/// Before and after a plan, in USD a month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delta {
    pub before: Range,
    pub after: Range,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// Warnings about an environment's cost. `siblings` are the project's other
/// environments (name, their estimate inputs) for comparing limits.
pub fn warnings(
    environment: &str,
    resources: &[Priced<'_>],
    siblings: &[(String, Vec<(Kind, Attrs)>)],
) -> Vec<String> {
    let p = US_EAST_1;
    let mut out = Vec::new();
    let production =
        matches!(environment, "prod" | "production") || environment.starts_with("prod-");
    let nats = resources
        .iter()
        .filter(|r| r.kind == Kind::NatGateway)
        .count();
    if nats > 1 && !production {
        let extra = (nats - 1) as f64 * (HOURS_PER_MONTH * (p.nat_hour + p.public_ipv4_hour));
        out.push(format!(
            "`{environment}` runs {nats} NAT gateways (one per AZ); `nat: single` would save about {} a month outside production",
            money(extra)
        ));
    }
    for r in resources.iter().filter(|r| r.kind == Kind::ServerlessCache) {
        let min_gb = num(r.inputs, "min_storage_gb");
        let min_ecpu = num(r.inputs, "min_ecpu_per_second");
        if min_gb.is_some() || min_ecpu.is_some() {
            let idle = min_gb.unwrap_or(0.0) * p.valkey_storage_gb_hour * HOURS_PER_MONTH
                + min_ecpu.unwrap_or(0.0) * SECONDS_PER_MONTH / 1e6 * p.valkey_per_million_ecpu;
            out.push(format!(
                "{} has minimums set; they are billed even when idle: about {} a month",
                r.address,
                money(idle)
            ));
        }
        // Production is meant to be the largest; the others should not outgrow it.
        let limits = if production {
            &[][..]
        } else {
            &[
                ("max_storage_gb", "max storage"),
                ("max_ecpu_per_second", "max ECPU/s"),
            ][..]
        };
        for &(key, label) in limits {
            let Some(mine) = num(r.inputs, key) else {
                continue;
            };
            let others: Vec<(&str, f64)> = siblings
                .iter()
                .filter(|(name, _)| name != environment)
                .flat_map(|(name, res)| {
                    res.iter()
                        .filter(|(k, _)| *k == Kind::ServerlessCache)
                        .filter_map(move |(_, i)| num(i, key).map(|v| (name.as_str(), v)))
                })
                .collect();
            if let Some((name, top)) = others.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)) {
                if mine > 2.0 * top {
                    out.push(format!("{} {label} is {mine}, more than twice the largest sibling (`{name}`: {top})", r.address));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(v: Value) -> Attrs {
        v.as_object().unwrap().clone().into_iter().collect()
    }

    fn one(kind: Kind, inputs: Value, a: &Assumptions) -> Range {
        let addr = Address::new("x.y");
        let inputs = attrs(inputs);
        estimate(
            "dev",
            "us-east-1",
            &[Priced {
                address: &addr,
                kind,
                inputs: &inputs,
                outputs: None,
            }],
            a,
        )
        .monthly_usd
    }

    fn idle() -> Assumptions {
        Assumptions {
            requests_per_day: 0.0,
            nat_gb_per_month: 0.0,
            ..Assumptions::default()
        }
    }

    #[test]
    fn one_nat_gateway_is_32_85_a_month_before_data() {
        let r = one(Kind::NatGateway, json!({}), &idle());
        assert_eq!(
            r,
            Range {
                low: 32.85,
                high: 32.85
            }
        );
        let with_data = one(
            Kind::NatGateway,
            json!({}),
            &Assumptions {
                nat_gb_per_month: 100.0,
                ..idle()
            },
        );
        assert_eq!(with_data.high, 32.85 + 4.5);
    }

    #[test]
    fn valkey_storage_floor_is_the_100_mb_minimum_and_ceiling_the_max() {
        let r = one(Kind::ServerlessCache, json!({"max_storage_gb": 1}), &idle());
        assert_eq!(r.low, 6.13, "0.1 GB × $0.084 × 730 h");
        assert_eq!(r.high, 61.32, "1 GB × $0.084 × 730 h");
    }

    #[test]
    fn valkey_minimums_are_billed_when_idle() {
        let r = one(
            Kind::ServerlessCache,
            json!({"max_storage_gb": 5, "min_storage_gb": 2, "min_ecpu_per_second": 1000}),
            &idle(),
        );
        // 2 GB × 0.084 × 730 = 122.64; 1000 ECPU/s × 2,628,000 s = 2,628 M × $0.0023 = 6.0444
        assert_eq!(r.low, 128.68);
    }

    #[test]
    fn ecpu_follows_the_assumed_load() {
        let a = Assumptions {
            requests_per_day: 100_000.0,
            kb_per_request: 10.0,
            ..idle()
        };
        let r = one(Kind::ServerlessCache, json!({"max_storage_gb": 1}), &a);
        // 100,000 × 30.4167 days × 10 KB = 30.4167 M ECPU × $0.0023 = 0.06996
        assert_eq!(r.high, 61.39);
    }

    #[test]
    fn public_ipv4_is_3_65_a_month() {
        assert_eq!(
            one(Kind::ElasticIp, json!({}), &idle()),
            Range {
                low: 3.65,
                high: 3.65
            }
        );
    }

    #[test]
    fn lambda_and_api_gateway_scale_with_requests() {
        // 1M requests a month to one function behind one route.
        let a = Assumptions {
            requests_per_day: 1e6 / DAYS_PER_MONTH,
            function_duration_ms: 100.0,
            ..idle()
        };
        let api = Address::new("api.rest_api");
        let f = Address::new("function.api");
        let api_inputs = attrs(json!({"routes": [{"function_arn": "${function.api.alias_arn}"}]}));
        let f_inputs = attrs(json!({"memory_mb": 512, "architecture": "x86_64"}));
        let e = estimate(
            "dev",
            "us-east-1",
            &[
                Priced {
                    address: &api,
                    kind: Kind::RestApi,
                    inputs: &api_inputs,
                    outputs: None,
                },
                Priced {
                    address: &f,
                    kind: Kind::LambdaFunction,
                    inputs: &f_inputs,
                    outputs: None,
                },
            ],
            &a,
        );
        let by = |k: Kind| e.items.iter().find(|i| i.kind == k).unwrap().monthly_usd;
        assert_eq!(by(Kind::RestApi).high, 3.50);
        // $0.20 requests + 1M × 0.5 GB × 0.1 s = 50,000 GB-s × $0.0000166667 = $0.83
        assert_eq!(by(Kind::LambdaFunction).high, 1.03);
        assert_eq!(by(Kind::LambdaFunction).low, 0.0);
        // arm64 is cheaper per GB-s.
        let arm = attrs(json!({"memory_mb": 512, "architecture": "arm64"}));
        let e = estimate(
            "dev",
            "us-east-1",
            &[
                Priced {
                    address: &api,
                    kind: Kind::RestApi,
                    inputs: &api_inputs,
                    outputs: None,
                },
                Priced {
                    address: &f,
                    kind: Kind::LambdaFunction,
                    inputs: &arm,
                    outputs: None,
                },
            ],
            &a,
        );
        assert_eq!(
            e.items
                .iter()
                .find(|i| i.kind == Kind::LambdaFunction)
                .unwrap()
                .monthly_usd
                .high,
            0.87
        );
    }

    #[test]
    fn recorded_state_with_resolved_arns_prices_like_the_spec() {
        let a = Assumptions {
            requests_per_day: 1e6 / DAYS_PER_MONTH,
            function_duration_ms: 100.0,
            ..idle()
        };
        let (api, f) = (Address::new("api.rest_api"), Address::new("function.api"));
        let arn = "arn:aws:lambda:us-east-1:1:function:trivia-dev-api:live";
        let api_inputs = attrs(json!({"routes": [{"function_arn": arn}]}));
        let f_inputs = attrs(json!({"memory_mb": 512}));
        let f_outputs = attrs(json!({"alias_arn": arn}));
        let e = estimate(
            "dev",
            "us-east-1",
            &[
                Priced {
                    address: &api,
                    kind: Kind::RestApi,
                    inputs: &api_inputs,
                    outputs: None,
                },
                Priced {
                    address: &f,
                    kind: Kind::LambdaFunction,
                    inputs: &f_inputs,
                    outputs: Some(&f_outputs),
                },
            ],
            &a,
        );
        assert_eq!(
            e.items
                .iter()
                .find(|i| i.kind == Kind::LambdaFunction)
                .unwrap()
                .monthly_usd
                .high,
            1.03
        );
    }

    #[test]
    fn schedules_count_their_invocations() {
        assert!((invocations_per_month("rate(6 hours)") - 4.0 * DAYS_PER_MONTH).abs() < 1e-9);
        assert!((invocations_per_month("rate(1 minute)") - 1440.0 * DAYS_PER_MONTH).abs() < 1e-9);
        assert!((invocations_per_month("cron(0 3 * * ? *)") - DAYS_PER_MONTH).abs() < 1e-9);
        assert!(
            (invocations_per_month("cron(0/15 * * * ? *)") - 4.0 * 24.0 * DAYS_PER_MONTH).abs()
                < 1e-9
        );
    }

    #[test]
    fn money_and_counts_read_naturally() {
        assert_eq!(money(0.005), "$0.005");
        assert_eq!(money(0.0023), "$0.0023");
        assert_eq!(money(0.2), "$0.20");
        assert_eq!(money(0.0000166667), "$0.0000166667");
        assert_eq!(money(32.85), "$32.85");
        assert_eq!(grouped(304167.4), "304,167");
        assert_eq!(grouped(12.0), "12");
    }

    #[test]
    fn free_resources_are_not_listed() {
        let addr = Address::new("network.vpc");
        let inputs = Attrs::new();
        let e = estimate(
            "dev",
            "us-east-1",
            &[Priced {
                address: &addr,
                kind: Kind::Vpc,
                inputs: &inputs,
                outputs: None,
            }],
            &idle(),
        );
        assert!(e.items.is_empty());
        assert_eq!(e.monthly_usd, Range::default());
    }

    #[test]
    fn warns_about_per_az_nat_outside_production_and_cache_minimums_and_outsized_limits() {
        let (n1, n2, c) = (
            Address::new("network.nat.a"),
            Address::new("network.nat.b"),
            Address::new("valkey.cache"),
        );
        let empty = Attrs::new();
        let cache = attrs(json!({"max_storage_gb": 50, "min_ecpu_per_second": 1000}));
        let res = [
            Priced {
                address: &n1,
                kind: Kind::NatGateway,
                inputs: &empty,
                outputs: None,
            },
            Priced {
                address: &n2,
                kind: Kind::NatGateway,
                inputs: &empty,
                outputs: None,
            },
            Priced {
                address: &c,
                kind: Kind::ServerlessCache,
                inputs: &cache,
                outputs: None,
            },
        ];
        let siblings = vec![(
            "prod".to_string(),
            vec![(Kind::ServerlessCache, attrs(json!({"max_storage_gb": 5})))],
        )];
        let w = warnings("dev", &res, &siblings);
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("2 NAT gateways") && w[0].contains("$36.50"));
        assert!(w[1].contains("billed even when idle"));
        assert!(w[2].contains("more than twice the largest sibling (`prod`: 5)"));
        assert!(
            warnings("prod", &res[..2], &[]).is_empty(),
            "per-AZ NAT is expected in production"
        );
        let big_prod = [Priced {
            address: &c,
            kind: Kind::ServerlessCache,
            inputs: &attrs(json!({"max_storage_gb": 50})),
            outputs: None,
        }];
        let small_siblings = vec![(
            "dev".to_string(),
            vec![(Kind::ServerlessCache, attrs(json!({"max_storage_gb": 1})))],
        )];
        assert!(
            warnings("prod", &big_prod, &small_siblings).is_empty(),
            "production may be the largest"
        );
    }
}
