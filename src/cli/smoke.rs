//! `deploy smoke`: check the live environment end to end.

use anstream::{print, println};

use super::common::{deployed, Outcome};
use super::{ReportFormat, Settings, SmokeArgs};
use crate::ops::rollout::run_smoke;
use crate::render;

pub(super) async fn run(s: &Settings, a: SmokeArgs) -> Outcome {
    let (loaded, state, clients) = deployed(s).await?;
    let report = run_smoke(&loaded.spec, &state, &clients, a.url).await;
    match (a.json, a.format) {
        (true, _) | (_, ReportFormat::Json) => println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("report serializes")
        ),
        (_, ReportFormat::Markdown) => print!("{}", render::markdown::smoke(&report)),
        (_, ReportFormat::Text) => print!("{}", render::smoke(&report)),
    }
    Ok(if report.ok { 0 } else { 1 })
}
