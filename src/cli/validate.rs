//! `deploy validate`: check a spec without calling AWS; every problem is reported as
//! FILE:LINE:COL.

use anstream::{eprint, print, println};
use serde_json::{json, Value};

use super::common::Outcome;
use super::{Settings, ValidateArgs, ValidateFormat};
use crate::render;
use crate::spec::Diagnostics;

fn diagnostics_json(d: &Diagnostics) -> Value {
    Value::Array(
        d.0.iter()
            .map(|x| json!({"file": x.pos.file, "line": x.pos.line, "column": x.pos.col, "message": x.message, "hint": x.hint}))
            .collect(),
    )
}

pub(super) fn run(s: &Settings, a: ValidateArgs) -> Outcome {
    let as_json = a.json || a.format == ValidateFormat::Json;
    let path = s.spec_path()?;
    match crate::plan::load_desired(path) {
        Ok((_, d)) => {
            if as_json {
                println!(
                    "{}",
                    json!({"valid": true, "file": path, "environment": d.environment, "resources": d.resources.len()})
                );
            } else {
                println!(
                    "{} is valid: {} resources in `{}`.",
                    path.display(),
                    d.resources.len(),
                    d.environment
                );
            }
            Ok(0)
        }
        Err(d) => {
            if as_json {
                println!(
                    "{}",
                    json!({"valid": false, "file": path, "problems": diagnostics_json(&d)})
                );
            } else {
                if a.format == ValidateFormat::Github {
                    print!("{}", render::github::diagnostics(&d));
                }
                eprint!("{}", render::diagnostics(&d));
            }
            Ok(1)
        }
    }
}
