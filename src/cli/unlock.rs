//! `deploy unlock`: break a lock left behind by a run that died.

use anstream::println;

use super::common::Outcome;
use super::Settings;

pub(super) fn run(s: &Settings) -> Outcome {
    let environment = s.env_name()?;
    match s.backend()?.unlock(&environment)? {
        Some(l) => println!(
            "Released the lock on `{environment}` held by {}@{} (pid {}, `{}`).",
            l.owner, l.host, l.pid, l.operation
        ),
        None => println!("`{environment}` was not locked."),
    }
    Ok(0)
}
