//! `deploy import`: record an existing AWS resource at one of the spec's addresses.

use anstream::println;

use super::common::{aws_providers, load_full, Outcome};
use super::{ImportArgs, Settings};
use crate::model::Address;
use crate::ops;

pub(super) async fn run(s: &Settings, a: ImportArgs) -> Outcome {
    let (_, desired) = load_full(s)?;
    let backend = s.backend()?;
    let providers = aws_providers(&desired.region).await?;
    let done = ops::import::import(
        &backend,
        &desired,
        &providers,
        &Address::new(a.address),
        &a.id,
    )
    .await?;
    println!("Imported {} ({}) as {}.", done.id, done.kind, done.address);
    let child = if done.kind == crate::model::Kind::UserPool {
        "app client"
    } else {
        "rule"
    };
    for (address, id) in &done.rules {
        println!("Imported its {child} {id} as {address}.");
    }
    if !done.unmatched_rules.is_empty() {
        println!(
            "Its rules {} are not in the spec: deploy leaves them as they are (they are not recorded).",
            done.unmatched_rules.join(", ")
        );
    }
    println!(
        "State of `{}` is now serial {}. Run `deploy plan -e {}` to see how it differs from the spec.",
        desired.environment, done.serial, desired.environment
    );
    Ok(0)
}
