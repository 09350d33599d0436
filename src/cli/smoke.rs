//! `deploy smoke`: check the live environment end to end.

use anstream::{print, println};

use super::common::{deployed, Outcome};
use super::{Settings, SmokeArgs};
use crate::ops::rollout::run_smoke;
use crate::render;

pub(super) async fn run(s: &Settings, a: SmokeArgs) -> Outcome {
    let (loaded, state, clients) = deployed(s).await?;
    let report = run_smoke(&loaded.spec, &state, &clients, a.url).await;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        );
    } else {
        print!("{}", render::smoke(&report));
    }
    Ok(if report.ok { 0 } else { 1 })
}
