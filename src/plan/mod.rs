//! Plans: the desired state from a spec, diffed against recorded and actual state.

pub mod desired;
pub mod diff;

pub use diff::{plan, plan_destroy, Actual, AttrChange, Change, Inputs, Operation, Plan, Summary};

use std::path::Path;

use crate::spec::{Diagnostics, LoadedSpec};

/// Reads and validates a spec and expands it into resources, reporting every problem
/// found along the way (schema, semantics, references, cycles) at once.
pub fn load_desired(path: &Path) -> Result<(LoadedSpec, desired::Desired), Diagnostics> {
    let (loaded, mut diags) = crate::spec::check(path);
    let Some(loaded) = loaded else {
        return Err(diags);
    };
    match desired::expand(&loaded) {
        Ok(d) if diags.is_empty() => Ok((loaded, d)),
        Ok(_) => Err(diags),
        Err(more) => {
            diags.0.extend(more.0);
            Err(diags.finish())
        }
    }
}
