//! Ctrl-C and SIGTERM during an apply or destroy: the first stops the run gently, the
//! second abandons the steps still in flight.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anstream::eprintln;

use crate::engine::{Interrupt, StepOp};
use crate::model::Address;

/// Ctrl-C and SIGTERM while an apply or destroy runs. The first stops the run: no new
/// step starts, waits stop (their resources stay recorded as pending), and steps in a
/// provider call finish it, which is named every 10 s. The second abandons those.
/// Once the run is over, a signal ends the process as usual.
pub(super) struct Signals {
    abandon: Arc<tokio::sync::Notify>,
    interrupt: Arc<Interrupt>,
    running: Arc<AtomicBool>,
}

impl Signals {
    pub(super) fn watch(interrupt: Arc<Interrupt>) -> Self {
        use tokio::signal::unix::{signal, SignalKind};
        let this = Signals {
            abandon: Arc::default(),
            interrupt,
            running: Arc::new(AtomicBool::new(true)),
        };
        let (abandon, interrupt, running) = (
            this.abandon.clone(),
            this.interrupt.clone(),
            this.running.clone(),
        );
        tokio::spawn(async move {
            let (Ok(mut int), Ok(mut term)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
            ) else {
                return;
            };
            let mut seen = 0;
            loop {
                let name = tokio::select! {
                    _ = int.recv() => "Ctrl-C",
                    _ = term.recv() => "SIGTERM",
                };
                if !running.load(Ordering::SeqCst) {
                    std::process::exit(130);
                }
                seen += 1;
                if seen > 1 {
                    abandon.notify_one();
                    continue;
                }
                interrupt.stop();
                let in_flight = interrupt.in_flight();
                eprintln!(
                    "\n{name}: stopping. No new step starts; {} step(s) in flight finish their current call (Ctrl-C again abandons them).",
                    in_flight.len()
                );
                let (interrupt, running) = (interrupt.clone(), running.clone());
                tokio::spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_secs(10)).await;
                        if !running.load(Ordering::SeqCst) {
                            return;
                        }
                        let names: Vec<String> = interrupt
                            .in_flight()
                            .iter()
                            .map(|(a, op)| format!("{a} ({})", op.as_str()))
                            .collect();
                        if !names.is_empty() {
                            eprintln!(
                                "still finishing: {} — an AWS call in progress; stopping it midway could leave a resource half-made",
                                names.join(", ")
                            );
                        }
                    }
                });
            }
        });
        this
    }

    /// Resolves with the steps in flight when a second signal abandons them.
    pub(super) async fn abandoned(&self) -> Vec<(Address, StepOp)> {
        self.abandon.notified().await;
        self.interrupt.in_flight()
    }

    /// The run is over: a signal now ends the process.
    pub(super) fn done(&self) {
        self.running.store(false, Ordering::SeqCst);
    }
}
