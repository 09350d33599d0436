//! `deploy local`: start, stop and ask after the local cloud.

use anstream::{eprintln, print, println};

use super::common::{Failure, Outcome};
use super::LocalCommand;

pub(super) async fn run(c: LocalCommand) -> Outcome {
    match c {
        LocalCommand::Start(a) => {
            let mut args = Vec::new();
            if a.hostile {
                args.push("--hostile".to_string());
            }
            for (flag, value) in [
                ("--profile", a.profile.clone()),
                ("--scale", a.scale.map(|v| v.to_string())),
                ("--latency-ms", a.latency_ms.map(|v| v.to_string())),
                ("--schedule-scale", a.schedule_scale.map(|v| v.to_string())),
                ("--seed", a.seed.map(|v| v.to_string())),
                ("--lose-responses", a.lose_responses.map(|v| v.to_string())),
            ] {
                if let Some(v) = value {
                    args.extend([flag.to_string(), v]);
                }
            }
            let running = crate::local::start(a.port, &args, &mut |line| eprintln!("{line}"))
                .await
                .map_err(|e| Failure::new(e.to_string()))?;
            eprintln!(
                "The local cloud runs on {} (pid {}, log {}). Aim deploy and AWS SDKs at it with:",
                running.endpoint,
                running.pid,
                running.log.display()
            );
            print!("{}", running.exports());
            Ok(0)
        }
        LocalCommand::Stop(a) => {
            let said = crate::local::stop(a.port)
                .await
                .map_err(|e| Failure::new(e.to_string()))?;
            eprintln!("{said}");
            Ok(0)
        }
        LocalCommand::Status(a) => match crate::local::status(a.port).await {
            Some(text) => {
                println!("{text}");
                Ok(0)
            }
            None => {
                println!("The local cloud is not running on port {}.", a.port);
                Ok(3)
            }
        },
    }
}
