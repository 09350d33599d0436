//! Executes plans and refreshes state. Walks the step graph with bounded concurrency,
//! retries throttling and transient errors with exponential backoff and full jitter,
//! waits for resources to settle with timeouts and progress events, and writes state
//! after every completed step. It never prints: it emits [`Event`]s.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::graph::{walk, Graph, NodeId};
use crate::model::{substitute, Action, Address, Attrs, Kind, Reference};
use crate::plan::{Actual, Change, Plan};
use crate::provider::{
    Deletion, ErrorClass, Observed, Provider, ProviderError, Providers, Readiness, Target,
};
use crate::state::{Intent, ResourceState, State, StateError};

/// Knobs of a run.
#[derive(Debug, Clone)]
pub struct Config {
    /// Steps in flight at once (`--parallelism`).
    pub parallelism: usize,
    pub retry: RetryPolicy,
    /// Multiplies every kind's poll interval and wait timeout (tests shrink them).
    pub wait_scale: f64,
    /// Set by Ctrl-C or SIGTERM: no new step starts, and steps waiting for a resource
    /// to settle stop waiting (it is recorded as pending, and the next run waits).
    pub interrupt: Arc<Interrupt>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            parallelism: 10,
            retry: RetryPolicy::default(),
            wait_scale: 1.0,
            interrupt: Arc::default(),
        }
    }
}

/// A request to stop a run early, and what is still in flight when it comes.
#[derive(Debug, Default)]
pub struct Interrupt {
    stopping: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
    in_flight: Mutex<BTreeMap<Address, StepOp>>,
}

impl Interrupt {
    /// Stops starting steps and waking waiters; steps in a provider call finish it.
    pub fn stop(&self) {
        self.stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Resolves once `stop` was called.
    pub async fn stopped(&self) {
        loop {
            let woken = self.notify.notified();
            if self.is_stopping() {
                return;
            }
            woken.await;
        }
    }

    /// Steps that started and have not ended yet.
    pub fn in_flight(&self) -> Vec<(Address, StepOp)> {
        self.in_flight
            .lock()
            .expect("in-flight lock")
            .iter()
            .map(|(a, op)| (a.clone(), *op))
            .collect()
    }

    /// Sleeps for `d`, or less if the run is being stopped; says whether it was.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => self.is_stopping(),
            _ = self.stopped() => true,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_delay: Duration,
    pub max_attempts: u32,
    /// Stop retrying once this much time went by, whatever the attempt count.
    pub max_elapsed: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
            max_attempts: 12,
            max_elapsed: Duration::from_secs(300),
        }
    }
}

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepOp {
    Create,
    Update,
    Delete,
}

impl StepOp {
    pub fn as_str(self) -> &'static str {
        match self {
            StepOp::Create => "create",
            StepOp::Update => "update",
            StepOp::Delete => "delete",
        }
    }
}

/// Progress reports; the CLI renders them.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        address: Address,
        op: StepOp,
    },
    Finished {
        address: Address,
        op: StepOp,
        elapsed: Duration,
    },
    Failed {
        address: Address,
        op: StepOp,
        error: String,
    },
    Skipped {
        address: Address,
        op: StepOp,
        because: Address,
    },
    Retrying {
        address: Address,
        attempt: u32,
        delay: Duration,
        error: String,
    },
    Waiting {
        address: Address,
        status: String,
        elapsed: Duration,
    },
    Adopted {
        address: Address,
        id: String,
    },
    Refreshed {
        address: Address,
        found: bool,
    },
    /// The environment's lock was taken from a holder that is gone.
    LockTakenOver {
        message: String,
    },
    /// The environment had no state, yet resources tagged with it exist: those the
    /// spec names were recorded; `others` are tagged with it but not in the spec.
    FoundWithoutState {
        environment: String,
        adopted: Vec<Address>,
        others: usize,
    },
}

pub type EventSink = Arc<dyn Fn(&Event) + Send + Sync>;

/// Called with the state after every step; must make it durable.
pub type Persist = Box<dyn FnMut(&mut State) -> Result<(), StateError> + Send>;

/// How an apply ended.
#[derive(Debug, Default)]
pub struct Report {
    pub completed: Vec<(Address, StepOp)>,
    pub failed: Vec<(Address, StepOp, String)>,
    pub skipped: Vec<(Address, StepOp, Address)>,
    /// Left undone because the run was interrupted: not started, or stopped while
    /// waiting for the resource to settle (recorded as pending).
    pub interrupted: Vec<(Address, StepOp)>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.failed.is_empty() && self.skipped.is_empty() && self.interrupted.is_empty()
    }

    pub fn was_interrupted(&self) -> bool {
        !self.interrupted.is_empty()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("{0}")]
    State(#[from] StateError),
    #[error("refreshing {address} failed: {error}")]
    Refresh {
        address: Address,
        error: ProviderError,
    },
    #[error("the plan's steps form a cycle: {0}")]
    Cycle(String),
    /// The last steps' outcomes could not be written (what they made is found again by
    /// its tags on the next run).
    #[error("{0}; run the same command again: what the last steps made is found by its tags")]
    Persist(String),
}

#[derive(Debug, Clone)]
struct Step {
    address: Address,
    op: StepOp,
    /// Acts on the deposed (old) object rather than the current one.
    deposed: bool,
    /// Create-before-delete: the current object becomes deposed first.
    depose_first: bool,
}

struct Shared {
    state: Mutex<State>,
    /// Writes state; run off the async workers (a remote store blocks for a round trip).
    persist: Arc<Mutex<Persist>>,
    /// Group commit: changes made so far (`changed`), the most that a write has made
    /// durable (`written`), and one writer at a time.
    changed: std::sync::atomic::AtomicU64,
    written: std::sync::atomic::AtomicU64,
    writer: tokio::sync::Mutex<()>,
    /// Wakes the background writer of [`Shared::save_soon`]'s changes.
    dirty: tokio::sync::Notify,
    closing: std::sync::atomic::AtomicBool,
    providers: Providers,
    config: Config,
    events: EventSink,
    /// The plan's changes to current objects, by address.
    changes: BTreeMap<Address, Change>,
    /// Intents earlier runs left (creates that may have happened): looked up before
    /// creating again.
    earlier: BTreeMap<Address, Intent>,
    /// Creates whose intent this run declared before its first step, and those of them
    /// that started: a declared create that never started is known not to have happened.
    declared: BTreeSet<Address>,
    started: Mutex<BTreeSet<Address>>,
}

impl Shared {
    fn emit(&self, e: Event) {
        (self.events)(&e)
    }

    /// Applies `f` to the state and returns once a write holding the change is done:
    /// for what must be durable before the step goes on (an intent before its create,
    /// an object deposed before its replacement is made). Steps finishing while a
    /// write is under way are written together by the next one (group commit), and
    /// the state is not held while it is written: with a remote store a write is a
    /// round trip, and one per step in a row would make the steps wait on each other.
    async fn save(&self, f: impl FnOnce(&mut State)) -> Result<(), StepError> {
        let mine = self.change(f);
        self.flush_to(mine).await
    }

    /// Applies `f` (a step's outcome) to the state and has it written in the
    /// background, without waiting: the step's dependents go on at once. Every later
    /// [`Shared::save`] writes it too, and the run's end waits for it. Were the process
    /// to die first, what the step did is found again as after any crash: a create by
    /// its intent and tags, an update or delete by the next refresh.
    fn save_soon(&self, f: impl FnOnce(&mut State)) {
        self.change(f);
        self.dirty.notify_one();
    }

    fn change(&self, f: impl FnOnce(&mut State)) -> u64 {
        let mut state = self.state.lock().expect("state lock");
        f(&mut state);
        self.changed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1
    }

    /// Writes the state unless a write already holds change number `mine`.
    async fn flush_to(&self, mine: u64) -> Result<(), StepError> {
        use std::sync::atomic::Ordering::SeqCst;
        let _writer = self.writer.lock().await;
        if self.written.load(SeqCst) >= mine {
            return Ok(());
        }
        let (mut snapshot, upto) = {
            let state = self.state.lock().expect("state lock");
            (state.clone(), self.changed.load(SeqCst))
        };
        let persist = self.persist.clone();
        let written = tokio::task::spawn_blocking(move || {
            let result = (persist.lock().expect("persist lock"))(&mut snapshot);
            result.map(|()| snapshot.serial)
        })
        .await
        .map_err(|e| StepError(format!("writing state: {e}")))?
        .map_err(|e| StepError(format!("writing state: {e}")))?;
        self.state.lock().expect("state lock").serial = written;
        self.written.store(upto, SeqCst);
        Ok(())
    }

    /// Writes every change made so far.
    async fn flush(&self) -> Result<(), StepError> {
        self.flush_to(self.changed.load(std::sync::atomic::Ordering::SeqCst))
            .await
    }

    /// [`unaccounted_in`] the run's state.
    fn unaccounted(&self, kind: Kind, found: Vec<Observed>) -> Option<Observed> {
        unaccounted_in(&self.state.lock().expect("state lock"), kind, found)
    }

    fn adopted(&self, address: &Address, found: &Observed) {
        self.emit(Event::Adopted {
            address: address.clone(),
            id: found.id.clone(),
        });
    }

    fn provider(&self, address: &Address) -> Result<Arc<dyn Provider>, StepError> {
        let kind = self
            .changes
            .get(address)
            .map(|c| c.kind)
            .ok_or_else(|| StepError(format!("{address} is not in the plan")))?;
        self.providers
            .get(kind)
            .map_err(|e| StepError(e.to_string()))
    }

    /// Runs a provider call, retrying throttling and transient errors.
    async fn call<T, F, Fut>(&self, address: &Address, f: F) -> Result<T, ProviderError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, ProviderError>>,
    {
        let interrupt = Some(&*self.config.interrupt);
        retry_or_stop(&self.config.retry, interrupt, f, |attempt, delay, error| {
            self.emit(Event::Retrying {
                address: address.clone(),
                attempt,
                delay,
                error: error.to_string(),
            })
        })
        .await
    }
}

/// Retries `f` on retryable errors with exponential backoff and full jitter.
pub async fn retry<T, F, Fut>(
    policy: &RetryPolicy,
    f: F,
    on_retry: impl FnMut(u32, Duration, &ProviderError),
) -> Result<T, ProviderError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    retry_or_stop(policy, None, f, on_retry).await
}

/// The error a step returns when an interrupt cut its waiting short: the step is
/// reported as left undone, not as failed.
fn stopped() -> ProviderError {
    ProviderError::new(ErrorClass::Fatal, STOPPED_WAITING)
}

/// [`retry`], giving up between attempts once `interrupt` says the run is stopping:
/// backoff after throttling can add minutes, and Ctrl-C must not wait them out.
async fn retry_or_stop<T, F, Fut>(
    policy: &RetryPolicy,
    interrupt: Option<&Interrupt>,
    f: F,
    mut on_retry: impl FnMut(u32, Duration, &ProviderError),
) -> Result<T, ProviderError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let started = Instant::now();
    let mut attempt = 0u32;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e)
                if e.is_retryable()
                    && attempt + 1 < policy.max_attempts
                    && started.elapsed() < policy.max_elapsed =>
            {
                attempt += 1;
                let delay = backoff_delay(policy, attempt);
                on_retry(attempt, delay, &e);
                match interrupt {
                    Some(i) if i.sleep(delay).await => return Err(stopped()),
                    Some(_) => {}
                    None => tokio::time::sleep(delay).await,
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Exponential backoff with jitter for the `attempt`th retry.
fn backoff_delay(policy: &RetryPolicy, attempt: u32) -> Duration {
    let ceiling = policy
        .base
        .saturating_mul(1u32 << attempt.min(16))
        .min(policy.max_delay);
    ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
}

#[derive(Debug)]
struct StepError(String);

/// How a step that did not complete ended.
enum StepEnd {
    Failed(String),
    Interrupted,
}

/// The marker `settle` returns when the run is stopped while it waits.
const STOPPED_WAITING: &str = "\u{0}stopped waiting";

impl From<ProviderError> for StepError {
    fn from(e: ProviderError) -> Self {
        StepError(e.to_string())
    }
}

/// Reads the actual state of every recorded resource: one batched describe per kind
/// where the provider can, otherwise one read per resource, in parallel.
pub async fn refresh(
    state: &State,
    providers: &Providers,
    config: &Config,
    events: &EventSink,
) -> Result<Actual, EngineError> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(config.parallelism.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    let mut by_kind: BTreeMap<crate::model::Kind, Vec<(Address, String)>> = BTreeMap::new();
    for (address, r) in &state.resources {
        by_kind
            .entry(r.kind)
            .or_default()
            .push((address.clone(), r.id.clone()));
    }
    for (kind, members) in by_kind {
        let provider = providers.get(kind).map_err(|error| EngineError::Refresh {
            address: members[0].0.clone(),
            error,
        })?;
        // One group per batched kind, else one group per resource.
        let groups: Vec<Vec<(Address, String)>> = if provider.batches_reads() {
            vec![members]
        } else {
            members.into_iter().map(|m| vec![m]).collect()
        };
        for group in groups {
            let (provider, sem, policy, events) = (
                provider.clone(),
                semaphore.clone(),
                config.retry.clone(),
                events.clone(),
            );
            tasks.spawn(async move {
                let _permit = sem.acquire_owned().await.expect("semaphore never closes");
                let ids: Vec<String> = group.iter().map(|(_, id)| id.clone()).collect();
                let first = group[0].0.clone();
                let result = retry(
                    &policy,
                    // Absent resources read as `None`; a not-found *error* right
                    // after a create is eventual consistency, so it is retried.
                    || async {
                        provider.read_many(&ids).await.map_err(|e| match e.class {
                            ErrorClass::NotFound => ProviderError {
                                class: ErrorClass::Retryable,
                                ..e
                            },
                            _ => e,
                        })
                    },
                    |attempt, delay, e| {
                        events(&Event::Retrying {
                            address: first.clone(),
                            attempt,
                            delay,
                            error: e.to_string(),
                        })
                    },
                )
                .await;
                (group, result)
            });
        }
    }
    let mut actual = Actual::new();
    while let Some(joined) = tasks.join_next().await {
        let (group, result) = joined.expect("refresh task does not panic");
        match result {
            Ok(mut found) => {
                for (address, id) in group {
                    let seen = found.remove(&id).flatten();
                    events(&Event::Refreshed {
                        address: address.clone(),
                        found: seen.is_some(),
                    });
                    actual.insert(address, seen);
                }
            }
            Err(error) => {
                return Err(EngineError::Refresh {
                    address: group[0].0.clone(),
                    error,
                });
            }
        }
    }
    Ok(actual)
}

/// The first of `found` that `state` does not already account for: the deposed half of
/// a replacement carries the same address tag, so it is not a candidate. Ids are
/// compared within the kind: a role and a function may share a name.
fn unaccounted_in(state: &State, kind: Kind, found: Vec<Observed>) -> Option<Observed> {
    let known = |id: &str| {
        state
            .resources
            .values()
            .chain(state.deposed.values())
            .any(|r| r.kind == kind && r.id == id)
    };
    found.into_iter().find(|o| !known(&o.id))
}

/// Resolves intents left by interrupted creates: looks each resource up by its tags
/// (and name) and records it if it exists, so plans see it and destroy deletes it.
/// Returns how many were adopted; intents whose resource does not exist are dropped.
pub async fn adopt_intents(
    state: &mut State,
    providers: &Providers,
    config: &Config,
    events: &EventSink,
) -> Result<usize, EngineError> {
    let mut adopted = 0;
    let mut looking: Vec<(Address, Intent)> =
        std::mem::take(&mut state.intents).into_iter().collect();
    // A create that was in flight when the process died may land moments after a
    // rerun starts looking: while any intent is recent, those not found yet are looked
    // for again, a few times, before they are taken to mean "never created". The
    // rounds cover all of them at once (a run that died may leave many).
    let recent = |i: &Intent| {
        humantime::parse_rfc3339(&i.started_at)
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age < Duration::from_secs(300))
    };
    for round in 0..6 {
        if round > 0 {
            looking.retain(|(_, i)| recent(i));
            if looking.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        let mut missing = Vec::new();
        for (address, intent) in looking {
            let provider = providers
                .get(intent.kind)
                .map_err(|error| EngineError::Refresh {
                    address: address.clone(),
                    error,
                })?;
            let target = Target {
                address: &address,
                name: intent.name.clone(),
                tags: intent.tags.clone(),
                inputs: None,
            };
            let found = retry(&config.retry, || provider.find(&target), |_, _, _| {})
                .await
                .map_err(|error| EngineError::Refresh {
                    address: address.clone(),
                    error,
                })?;
            let Some(o) = unaccounted_in(state, intent.kind, found) else {
                missing.push((address, intent));
                continue;
            };
            events(&Event::Adopted {
                address: address.clone(),
                id: o.id.clone(),
            });
            state.resources.insert(
                address.clone(),
                ResourceState {
                    kind: intent.kind,
                    id: o.id,
                    inputs: o.inputs,
                    outputs: o.outputs,
                    depends_on: intent.depends_on.clone(),
                    protect: false,
                    // Not known to be ready: the next apply waits for it.
                    pending: true,
                },
            );
            adopted += 1;
        }
        looking = missing;
    }
    Ok(adopted)
}

/// Carries out a plan against `state`, writing it through `persist` after every step.
/// Returns the final state and what happened to each step.
pub async fn apply(
    plan: &Plan,
    state: State,
    persist: Persist,
    providers: Providers,
    config: Config,
    events: EventSink,
) -> Result<(State, Report), EngineError> {
    let (graph, steps) = step_graph(plan, &state)?;
    let earlier = state.intents.clone();
    let declared = declare_intents(plan, &state);
    let shared = Arc::new(Shared {
        declared: declared.keys().cloned().collect(),
        started: Mutex::default(),
        earlier,
        state: Mutex::new(state),
        persist: Arc::new(Mutex::new(persist)),
        changed: Default::default(),
        written: Default::default(),
        writer: tokio::sync::Mutex::new(()),
        dirty: tokio::sync::Notify::new(),
        closing: Default::default(),
        providers,
        config: config.clone(),
        events,
        // Creates and updates act on the current object; a deposed object's delete
        // (same address) works from state alone.
        changes: plan
            .changes
            .iter()
            .filter(|c| !c.deposed)
            .map(|c| (c.address.clone(), c.clone()))
            .collect(),
    });
    // One write before the first step records the intent of every create it can name
    // now, instead of one write per create in its critical path (a round trip each
    // with state in S3). A create is sent only once its intent is durable either way.
    if !declared.is_empty() {
        shared
            .save(|s| s.intents.extend(declared))
            .await
            .map_err(|e| EngineError::Persist(e.0))?;
    }
    // Writes what steps finished (`save_soon`) while the others go on; a failed write
    // is tried again by the next one.
    let writer = {
        let shared = shared.clone();
        tokio::spawn(async move {
            loop {
                shared.dirty.notified().await;
                if shared.closing.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let _ = shared.flush().await;
            }
        })
    };
    let interrupt = config.interrupt.clone();
    let walked = walk(&graph, config.parallelism, |id| {
        let shared = shared.clone();
        let step = steps[id].clone();
        let interrupt = interrupt.clone();
        async move {
            if interrupt.is_stopping() {
                return Err(StepEnd::Interrupted);
            }
            let started = Instant::now();
            shared.emit(Event::Started {
                address: step.address.clone(),
                op: step.op,
            });
            interrupt
                .in_flight
                .lock()
                .expect("in-flight lock")
                .insert(step.address.clone(), step.op);
            let result = run_step(&shared, &step).await;
            interrupt
                .in_flight
                .lock()
                .expect("in-flight lock")
                .remove(&step.address);
            match result {
                Ok(()) => {
                    shared.emit(Event::Finished {
                        address: step.address.clone(),
                        op: step.op,
                        elapsed: started.elapsed(),
                    });
                    Ok(())
                }
                // Also wrapped in a provider error's context (`create x: …`).
                Err(StepError(error)) if error.contains(STOPPED_WAITING) => {
                    Err(StepEnd::Interrupted)
                }
                Err(StepError(error)) => {
                    shared.emit(Event::Failed {
                        address: step.address.clone(),
                        op: step.op,
                        error: error.clone(),
                    });
                    Err(StepEnd::Failed(error))
                }
            }
        }
    })
    .await;
    let mut report = Report {
        completed: walked
            .succeeded
            .iter()
            .map(|&i| (steps[i].address.clone(), steps[i].op))
            .collect(),
        ..Report::default()
    };
    let mut stopped_at = std::collections::BTreeSet::new();
    for (i, end) in walked.failed {
        match end {
            StepEnd::Failed(e) => report
                .failed
                .push((steps[i].address.clone(), steps[i].op, e)),
            StepEnd::Interrupted => {
                stopped_at.insert(i);
                report
                    .interrupted
                    .push((steps[i].address.clone(), steps[i].op));
            }
        }
    }
    for &(i, cause) in &walked.skipped {
        // Behind a step the interrupt stopped, a step is undone for the same reason.
        if stopped_at.contains(&cause) {
            stopped_at.insert(i);
            report
                .interrupted
                .push((steps[i].address.clone(), steps[i].op));
            continue;
        }
        shared.emit(Event::Skipped {
            address: steps[i].address.clone(),
            op: steps[i].op,
            because: steps[cause].address.clone(),
        });
        report.skipped.push((
            steps[i].address.clone(),
            steps[i].op,
            steps[cause].address.clone(),
        ));
    }
    // Creates declared but never started did not happen: their intents go.
    {
        let started = shared.started.lock().expect("started lock");
        let mut state = shared.state.lock().expect("state lock");
        for address in shared.declared.difference(&started) {
            state.intents.remove(address);
        }
    }
    shared.save_soon(|_| {});
    shared
        .closing
        .store(true, std::sync::atomic::Ordering::SeqCst);
    shared.dirty.notify_one();
    let _ = writer.await;
    shared
        .flush()
        .await
        .map_err(|e| EngineError::Persist(e.0))?;
    let shared = Arc::try_unwrap(shared).ok().expect("all steps finished");
    Ok((shared.state.into_inner().expect("state lock"), report))
}

/// Steps and their order. Creates and updates follow the spec's edges; deletes of old
/// objects wait for their old dependents' deletes; the old half of a
/// create-before-delete waits until its dependents moved to the new one.
fn step_graph(plan: &Plan, state: &State) -> Result<(Graph<()>, Vec<Step>), EngineError> {
    let mut g: Graph<()> = Graph::new();
    let mut steps: Vec<Step> = Vec::new();
    let mut add = |g: &mut Graph<()>, step: Step| -> NodeId {
        steps.push(step);
        g.add(())
    };
    let mut forward: BTreeMap<&Address, NodeId> = BTreeMap::new();
    let mut delete_current: BTreeMap<&Address, NodeId> = BTreeMap::new();
    let mut delete_deposed: BTreeMap<&Address, NodeId> = BTreeMap::new();
    let step = |address: &Address, op, deposed, depose_first| Step {
        address: address.clone(),
        op,
        deposed,
        depose_first,
    };
    for c in &plan.changes {
        let a = &c.address;
        match c.action {
            Action::NoOp => {}
            Action::Create => {
                forward.insert(a, add(&mut g, step(a, StepOp::Create, false, false)));
            }
            Action::Update => {
                forward.insert(a, add(&mut g, step(a, StepOp::Update, false, false)));
            }
            Action::DeleteBeforeCreate => {
                let d = add(&mut g, step(a, StepOp::Delete, false, false));
                let n = add(&mut g, step(a, StepOp::Create, false, false));
                g.depend(n, d);
                delete_current.insert(a, d);
                forward.insert(a, n);
            }
            Action::CreateBeforeDelete => {
                let n = add(&mut g, step(a, StepOp::Create, false, true));
                let d = add(&mut g, step(a, StepOp::Delete, true, false));
                g.depend(d, n);
                forward.insert(a, n);
                delete_deposed.insert(a, d);
            }
            Action::Delete if c.deposed => {
                delete_deposed.insert(a, add(&mut g, step(a, StepOp::Delete, true, false)));
            }
            Action::Delete => {
                delete_current.insert(a, add(&mut g, step(a, StepOp::Delete, false, false)));
            }
        }
    }
    for c in &plan.changes {
        if let Some(&n) = forward.get(&c.address) {
            for d in &c.depends_on {
                if let Some(&m) = forward.get(d) {
                    g.depend(n, m);
                }
            }
        }
    }
    // Old objects go after the old objects that depended on them.
    let recorded = state.resources.iter().chain(state.deposed.iter());
    let mut old_dependents: BTreeMap<&Address, Vec<&Address>> = BTreeMap::new();
    for (a, r) in recorded {
        for d in &r.depends_on {
            old_dependents.entry(d).or_default().push(a);
        }
    }
    for (x, &d) in delete_current.iter().chain(delete_deposed.iter()) {
        for y in old_dependents.get(x).into_iter().flatten() {
            for m in [delete_current.get(y), delete_deposed.get(y)]
                .into_iter()
                .flatten()
            {
                if *m != d {
                    g.depend(d, *m);
                }
            }
        }
    }
    // Execution roles go last: Lambda needs its role to clean up the network
    // interfaces that block deleting security groups and subnets.
    let kind_of = |a: &Address| {
        plan.changes
            .iter()
            .find(|c| &c.address == a)
            .map(|c| c.kind)
    };
    let blockers: Vec<NodeId> = delete_current
        .iter()
        .chain(delete_deposed.iter())
        .filter(|(a, _)| {
            matches!(
                kind_of(a),
                Some(crate::model::Kind::SecurityGroup | crate::model::Kind::Subnet)
            )
        })
        .map(|(_, &n)| n)
        .collect();
    for (a, &d) in delete_current.iter().chain(delete_deposed.iter()) {
        if kind_of(a) == Some(crate::model::Kind::IamRole) {
            for &b in &blockers {
                g.depend(d, b);
            }
        }
    }
    // The deposed half of a replacement goes once the new dependents are in place.
    for (x, &d) in &delete_deposed {
        for c in plan.changes.iter().filter(|c| c.depends_on.contains(*x)) {
            if let Some(&n) = forward.get(&c.address) {
                g.depend(d, n);
            }
        }
    }
    if let Err(cycle) = g.topological() {
        let names: Vec<String> = cycle
            .iter()
            .map(|&i| format!("{} {}", steps[i].op.as_str(), steps[i].address))
            .collect();
        return Err(EngineError::Cycle(names.join(" → ")));
    }
    Ok((g, steps))
}

/// Resolves references from what `state` records (outputs first, then inputs).
pub(crate) fn lookup_in(state: &State) -> impl Fn(&Reference) -> Option<Value> + '_ {
    move |r: &Reference| {
        let res = state.resources.get(&r.address)?;
        res.outputs
            .get(&r.attribute)
            .or_else(|| res.inputs.get(&r.attribute))
            .cloned()
    }
}

/// The change's inputs with every reference resolved from the current state.
fn resolved_inputs(shared: &Shared, change: &Change) -> Result<Attrs, StepError> {
    let after = change
        .after
        .as_ref()
        .ok_or_else(|| StepError(format!("{} has no desired inputs", change.address)))?;
    let state = shared.state.lock().expect("state lock");
    let lookup = lookup_in(&state);
    after
        .iter()
        .map(|(k, v)| match substitute(v, &lookup) {
            Some(x) => Ok((k.clone(), crate::model::stringify(change.kind, k, x))),
            None => Err(StepError(format!(
                "`{k}` of {} refers to a value that does not exist yet: {}",
                change.address,
                crate::model::references(v)
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        })
        .collect()
}

/// The intents of the plan's creates that can be named before any step runs: plain
/// creates (a replacement that deletes first would find its old object while that is
/// still going) with no earlier intent, whose name and tags refer to nothing that is
/// still to be made.
fn declare_intents(plan: &Plan, state: &State) -> BTreeMap<Address, Intent> {
    let lookup = lookup_in(state);
    let resolve = |change: &Change, key: &str| -> Option<Option<Value>> {
        match change.after.as_ref()?.get(key) {
            None => Some(None),
            Some(v) => {
                substitute(v, &lookup).map(|x| Some(crate::model::stringify(change.kind, key, x)))
            }
        }
    };
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    plan.changes
        .iter()
        .filter(|c| {
            !c.deposed
                && matches!(c.action, Action::Create | Action::CreateBeforeDelete)
                && !state.intents.contains_key(&c.address)
        })
        .filter_map(|c| {
            let name = resolve(c, "name")?;
            let tags = resolve(c, "tags")?;
            let mut attrs = Attrs::new();
            attrs.extend(tags.map(|t| ("tags".to_string(), t)));
            let intent = Intent {
                kind: c.kind,
                client_token: uuid::Uuid::new_v4().to_string(),
                started_at: now.clone(),
                name: name.as_ref().and_then(|v| v.as_str()).map(String::from),
                tags: tags_of(&attrs),
                depends_on: c.depends_on.clone(),
            };
            Some((c.address.clone(), intent))
        })
        .collect()
}

fn tags_of(inputs: &Attrs) -> BTreeMap<String, String> {
    inputs
        .get("tags")
        .and_then(|t| serde_json::from_value(t.clone()).ok())
        .unwrap_or_default()
}

async fn run_step(shared: &Shared, step: &Step) -> Result<(), StepError> {
    match step.op {
        StepOp::Create => create(shared, step).await,
        StepOp::Update => update(shared, step).await,
        StepOp::Delete => delete(shared, step).await,
    }
}

fn record(change: &Change, inputs: &Attrs, observed: &Observed, pending: bool) -> ResourceState {
    ResourceState {
        kind: change.kind,
        id: observed.id.clone(),
        inputs: inputs.clone(),
        outputs: observed.outputs.clone(),
        depends_on: change.depends_on.clone(),
        protect: change.protected,
        pending,
    }
}

async fn create(shared: &Shared, step: &Step) -> Result<(), StepError> {
    let change = &shared.changes[&step.address];
    let address = &step.address;
    let provider = shared.provider(address)?;
    let inputs = resolved_inputs(shared, change)?;
    let target = Target {
        address,
        name: inputs
            .get("name")
            .and_then(|v| v.as_str())
            .map(String::from),
        tags: tags_of(&inputs),
        inputs: Some(&inputs),
    };

    if step.depose_first {
        shared
            .save(|s| {
                if let Some(old) = s.resources.remove(address) {
                    s.deposed.insert(address.clone(), old);
                }
            })
            .await?;
    }

    shared
        .started
        .lock()
        .expect("started lock")
        .insert(address.clone());
    // A create interrupted earlier may have happened: look before creating again.
    let prior = shared.earlier.get(address).cloned();
    let adopted = match &prior {
        Some(_) => {
            let found = shared.call(address, || provider.find(&target)).await?;
            shared.unaccounted(change.kind, found)
        }
        None => None,
    };
    let made = match adopted {
        Some(found) => {
            shared.adopted(address, &found);
            Made::Found(found)
        }
        None => {
            let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
            // Declared before the first step (and so already durable) as it is now.
            let declared = prior
                .is_none()
                .then(|| {
                    let state = shared.state.lock().expect("state lock");
                    state.intents.get(address).cloned()
                })
                .flatten()
                .filter(|i| i.name == target.name && i.tags == target.tags);
            let token = match declared {
                Some(declared) => {
                    // When it really started, for how long a rerun keeps looking.
                    shared.save_soon(|s| {
                        if let Some(i) = s.intents.get_mut(address) {
                            i.started_at = now;
                        }
                    });
                    declared.client_token
                }
                None => {
                    let token = prior
                        .map(|i| i.client_token)
                        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
                    let intent = Intent {
                        kind: change.kind,
                        client_token: token.clone(),
                        started_at: now,
                        name: target.name.clone(),
                        tags: target.tags.clone(),
                        depends_on: change.depends_on.clone(),
                    };
                    shared
                        .save(|s| {
                            s.intents.insert(address.clone(), intent);
                        })
                        .await?;
                    token
                }
            };
            create_resolving_ambiguity(
                shared,
                change.kind,
                provider.as_ref(),
                &target,
                &inputs,
                &token,
            )
            .await?
        }
    };
    let observed = match made {
        Made::New(o) => o,
        // Found rather than made here: it may be half-configured (the create's
        // follow-up calls did not all run, and what the cloud reports may not show
        // it), so it is always brought to the inputs; updates are idempotent.
        Made::Found(found) => {
            // Just created and found by a list call: the object's own API may not
            // see it yet (eventual consistency), so "not found" is waited out. Each
            // attempt starts from a fresh read, since a failed attempt may have done
            // part of its work; what the cloud does not report is taken to be as the
            // inputs say.
            let since = Instant::now();
            let patient = |e: ProviderError| {
                if e.class == ErrorClass::NotFound && since.elapsed() < Duration::from_secs(60) {
                    ProviderError {
                        class: ErrorClass::Retryable,
                        ..e
                    }
                } else {
                    e
                }
            };
            shared
                .call(address, || async {
                    let now = provider
                        .read(&found.id)
                        .await
                        .map_err(patient)?
                        .unwrap_or_else(|| found.clone());
                    let mut before = inputs.clone();
                    before.extend(now.inputs);
                    provider
                        .update(&found.id, &before, &inputs)
                        .await
                        .map_err(patient)
                })
                .await?
        }
    };
    shared.save_soon(|s| {
        s.intents.remove(address);
        s.resources
            .insert(address.clone(), record(change, &inputs, &observed, true));
    });
    settle(shared, change, provider.as_ref(), &inputs, &observed.id).await
}

/// How a create step got its object.
enum Made {
    New(Observed),
    /// An earlier attempt's object, found by its address tag.
    Found(Observed),
}

/// Creates a resource whose create call may not be repeated blindly. A failure worth
/// retrying (timeout, 5xx, conflict, or throttling of one of the create's later calls)
/// may hide a create that happened: unless the provider's create is idempotent, the
/// resource is looked up by its address tag before the next attempt, and adopted if it
/// is there. An "already exists" after such an attempt is the first attempt's object;
/// on a first attempt it is someone else's, and fatal.
async fn create_resolving_ambiguity(
    shared: &Shared,
    kind: Kind,
    provider: &dyn Provider,
    target: &Target<'_>,
    inputs: &Attrs,
    token: &str,
) -> Result<Made, ProviderError> {
    let address = target.address;
    if provider.create_is_idempotent() {
        return shared
            .call(address, || provider.create(target, inputs, token))
            .await
            .map(Made::New);
    }
    let policy = &shared.config.retry;
    let started = Instant::now();
    let mut attempt = 0u32;
    let mut maybe_created = false;
    loop {
        let e = match provider.create(target, inputs, token).await {
            Ok(o) => return Ok(Made::New(o)),
            Err(e) => e,
        };
        let repeat = e.is_retryable() || (maybe_created && e.is_already_exists());
        if !repeat || attempt + 1 >= policy.max_attempts || started.elapsed() >= policy.max_elapsed
        {
            if maybe_created {
                if let Some(found) = shared.unaccounted(kind, provider.find(target).await?) {
                    shared.adopted(address, &found);
                    return Ok(Made::Found(found));
                }
            }
            return Err(e);
        }
        // A throttled call did nothing, but a create is often several calls (the
        // object, then its settings): a throttle on a later one leaves the object
        // made. So any failure worth retrying means "look first".
        maybe_created |= e.is_retryable() || e.is_already_exists();
        attempt += 1;
        let delay = backoff_delay(policy, attempt);
        shared.emit(Event::Retrying {
            address: address.clone(),
            attempt,
            delay,
            error: e.to_string(),
        });
        // Stopped: the intent stays recorded, so the next run looks before creating.
        if shared.config.interrupt.sleep(delay).await {
            return Err(stopped());
        }
        if maybe_created {
            let found = shared.call(address, || provider.find(target)).await?;
            if let Some(found) = shared.unaccounted(kind, found) {
                shared.adopted(address, &found);
                return Ok(Made::Found(found));
            }
        }
    }
}

async fn update(shared: &Shared, step: &Step) -> Result<(), StepError> {
    let change = &shared.changes[&step.address];
    let address = &step.address;
    let provider = shared.provider(address)?;
    let inputs = resolved_inputs(shared, change)?;
    let current = shared
        .state
        .lock()
        .expect("state lock")
        .resources
        .get(address)
        .cloned()
        .ok_or_else(|| {
            StepError(format!(
                "{address} is not in the state any more; plan again"
            ))
        })?;
    // Drift means AWS differs from the record even when the record matches the spec.
    if current.inputs != inputs || !change.drift.is_empty() {
        // What AWS has now: the record, with what refresh saw drift to.
        let mut before = current.inputs.clone();
        for d in &change.drift {
            if let Some(v) = &d.after {
                before.insert(d.path.clone(), v.clone());
            }
        }
        let o = shared
            .call(address, || provider.update(&current.id, &before, &inputs))
            .await?;
        shared.save_soon(|s| {
            s.resources
                .insert(address.clone(), record(change, &inputs, &o, true));
        });
        return settle(shared, change, provider.as_ref(), &inputs, &o.id).await;
    }
    if current.pending {
        return settle(shared, change, provider.as_ref(), &inputs, &current.id).await;
    }
    // Only state-side attributes (protection) changed.
    shared.save_soon(|s| {
        if let Some(r) = s.resources.get_mut(address) {
            r.protect = change.protected;
        }
    });
    Ok(())
}

/// The next poll delay: soon at first, doubling up to the kind's interval, as AWS's own
/// waiters do (most resources settle in seconds; some take many minutes).
fn backoff(max: Duration, polls: &mut u32) -> Duration {
    let first = Duration::from_millis(250).min(max);
    let d = first.saturating_mul(1 << (*polls).min(10)).min(max);
    *polls += 1;
    d
}

/// Polls until the resource is ready, then records it as settled.
async fn settle(
    shared: &Shared,
    change: &Change,
    provider: &dyn Provider,
    inputs: &Attrs,
    id: &str,
) -> Result<(), StepError> {
    let address = &change.address;
    let limits = change.kind.wait_limits();
    let poll = limits.poll.mul_f64(shared.config.wait_scale);
    let timeout = limits.timeout.mul_f64(shared.config.wait_scale);
    let started = Instant::now();
    let mut last_status: String;
    let mut polls = 0u32;
    let ready = loop {
        match shared.call(address, || provider.wait(id)).await {
            Ok(Readiness::Ready(o)) => break o,
            Ok(Readiness::Failed(why)) => {
                return Err(StepError(format!(
                    "{address} ended in a failed state: {why}"
                )))
            }
            Ok(Readiness::Pending(status)) => last_status = status,
            // Right after a create, AWS may not list the resource yet.
            Err(e) if e.class == ErrorClass::NotFound && started.elapsed() < timeout => {
                last_status = "not visible yet".into()
            }
            Err(e) => return Err(e.into()),
        }
        let elapsed = started.elapsed();
        if elapsed >= timeout {
            return Err(StepError(format!(
                "timed out after {} waiting for {address} to become ready (last status: {last_status})",
                humantime::format_duration(Duration::from_secs(timeout.as_secs()))
            )));
        }
        shared.emit(Event::Waiting {
            address: address.clone(),
            status: last_status.clone(),
            elapsed,
        });
        // Stopped while waiting: the resource stays recorded as pending (the create or
        // update is done), and the next run waits for it.
        if shared
            .config
            .interrupt
            .sleep(backoff(poll, &mut polls))
            .await
        {
            return Err(StepError(STOPPED_WAITING.into()));
        }
    };
    shared.save_soon(|s| {
        s.resources
            .insert(address.clone(), record(change, inputs, &ready, false));
    });
    Ok(())
}

async fn delete(shared: &Shared, step: &Step) -> Result<(), StepError> {
    let address = &step.address;
    let current = {
        let s = shared.state.lock().expect("state lock");
        if step.deposed {
            s.deposed.get(address).cloned()
        } else {
            s.resources.get(address).cloned()
        }
    };
    let Some(current) = current else {
        return Ok(());
    };
    let provider = shared
        .providers
        .get(current.kind)
        .map_err(|e| StepError(e.to_string()))?;
    // A delete blocked by dependents (Lambda ENIs on a security group or subnet, a
    // NAT's address on an internet gateway) is waited out, visibly, up to the kind's
    // timeout.
    let limits = current.kind.wait_limits();
    let (poll, patience) = (
        limits.poll.mul_f64(shared.config.wait_scale),
        limits.timeout.mul_f64(shared.config.wait_scale),
    );
    let blocked_since = Instant::now();
    let outcome = loop {
        match shared
            .call(address, || provider.delete(&current.id, &current.inputs))
            .await
        {
            Ok(d) => break d,
            Err(e) if e.class == ErrorClass::NotFound => break Deletion::Done,
            Err(e) if e.class == ErrorClass::Conflict && blocked_since.elapsed() < patience => {
                shared.emit(Event::Waiting {
                    address: address.clone(),
                    status: format!("blocked ({e})"),
                    elapsed: blocked_since.elapsed(),
                });
                if shared
                    .config
                    .interrupt
                    .sleep(poll.max(Duration::from_millis(10)))
                    .await
                {
                    return Err(StepError(STOPPED_WAITING.into()));
                }
            }
            Err(e) => return Err(e.into()),
        }
    };
    if outcome == Deletion::InProgress {
        let limits = current.kind.wait_limits();
        let poll = limits.poll.mul_f64(shared.config.wait_scale);
        let timeout = limits.timeout.mul_f64(shared.config.wait_scale);
        let started = Instant::now();
        loop {
            match shared.call(address, || provider.deleted(&current.id)).await {
                Ok(true) => break,
                Err(e) if e.class == ErrorClass::NotFound => break,
                Ok(false) => {}
                Err(e) => return Err(e.into()),
            }
            if started.elapsed() >= timeout {
                return Err(StepError(format!(
                    "timed out waiting for {address} to be deleted"
                )));
            }
            shared.emit(Event::Waiting {
                address: address.clone(),
                status: "deleting".into(),
                elapsed: started.elapsed(),
            });
            // Stopped: the delete was accepted; the next run's refresh finds it gone
            // or still deleting, and waits.
            if shared.config.interrupt.sleep(poll).await {
                return Err(StepError(STOPPED_WAITING.into()));
            }
        }
    }
    shared.save_soon(|s| {
        if step.deposed {
            s.deposed.remove(address);
        } else {
            s.resources.remove(address);
        }
        s.intents.remove(address);
    });
    Ok(())
}
