//! `deploy cost`: the environment's monthly AWS bill, resource by resource.

use anstream::{print, println};
use serde_json::json;

use super::common::{load_full, Failure, Outcome};
use super::{CostArgs, Settings};
use crate::ops;
use crate::render;

pub(super) fn run(s: &Settings, a: CostArgs) -> Outcome {
    let (_, desired) = load_full(s)?;
    let mut assumptions = desired.cost_assumptions;
    for (flag, value, target) in [
        (
            "--requests-per-day",
            a.requests_per_day,
            &mut assumptions.requests_per_day,
        ),
        (
            "--kb-per-request",
            a.kb_per_request,
            &mut assumptions.kb_per_request,
        ),
        (
            "--nat-gb-per-month",
            a.nat_gb_per_month,
            &mut assumptions.nat_gb_per_month,
        ),
        (
            "--function-duration-ms",
            a.function_duration_ms,
            &mut assumptions.function_duration_ms,
        ),
    ] {
        if let Some(v) = value {
            if !v.is_finite() || v < 0.0 {
                return Err(Failure::new(format!(
                    "{flag} must be a number of zero or more, not {v}"
                )));
            }
            *target = v;
        }
    }
    let estimate = ops::estimate_desired(&desired, &assumptions);
    let priced: Vec<crate::cost::Priced> = desired
        .resources
        .values()
        .map(|r| crate::cost::Priced {
            address: &r.address,
            kind: r.kind,
            inputs: &r.inputs,
            outputs: None,
        })
        .collect();
    let warnings = crate::cost::warnings(
        &desired.environment,
        &priced,
        &ops::sibling_resources(&s.siblings_dir(), &desired.environment),
    );
    if a.json {
        let mut v = serde_json::to_value(&estimate).expect("estimate serializes");
        v["warnings"] = json!(warnings);
        println!(
            "{}",
            serde_json::to_string_pretty(&v).expect("estimate serializes")
        );
    } else {
        print!("{}", render::estimate(&estimate, &warnings));
    }
    Ok(0)
}
