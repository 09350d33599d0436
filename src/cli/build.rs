//! `deploy build`: the functions' code for Lambda (release, checked, reproducible zips).

use anstream::println;

use super::common::{build_code, load_full, Outcome};
use super::{BuildArgs, Settings};

pub(super) fn run(s: &Settings, a: BuildArgs) -> Outcome {
    let (loaded, _) = load_full(s)?;
    let (_, built) = build_code(s, &loaded, a.function.as_deref())?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&built).expect("artifacts serialize")
        );
    } else {
        for b in &built {
            println!(
                "{:<12} {:>10} bytes  {}  {}",
                b.function,
                b.bytes,
                b.code_sha256,
                b.path.display()
            );
        }
    }
    Ok(0)
}
