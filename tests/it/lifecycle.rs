//! Engine lifecycle against the in-memory cloud: create, no-op, update, replace
//! ordering, data-loss guards, destroy order, partial failure, crash recovery, and a
//! throttling, lagging cloud.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deploy::engine::{Config, Event, EventSink, Report, RetryPolicy};
use deploy::model::{Action, Address, Kind};
use deploy::ops::{self, OpsError};
use deploy::plan::Plan;
use deploy::provider::memory::{Call, Fault, MemoryCloud, Op};
use deploy::provider::{ErrorClass, ProviderError};
use deploy::state::Backend;

const BASE: &str = include_str!("../../environments/base.yaml");
const DEV: &str = include_str!("../../environments/dev.yaml");

struct Harness {
    dir: tempfile::TempDir,
    cloud: Arc<MemoryCloud>,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Harness {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("base.yaml"), BASE).unwrap();
        std::fs::write(dir.path().join("dev.yaml"), DEV).unwrap();
        Self {
            dir,
            cloud: MemoryCloud::new(),
            events: Arc::default(),
        }
    }

    fn spec(&self) -> PathBuf {
        self.dir.path().join("dev.yaml")
    }

    /// Appends YAML to the dev file (later keys override through a second file).
    fn edit(&self, extra: &str) {
        let path = self.dir.path().join("dev.yaml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(extra);
        std::fs::write(path, text).unwrap();
    }

    fn replace_in(&self, file: &str, from: &str, to: &str) {
        let path = self.dir.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{from} not in {file}");
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }

    fn backend(&self) -> Backend {
        Backend::local(self.dir.path().join("state"))
    }

    fn config() -> Config {
        Config {
            parallelism: 10,
            retry: RetryPolicy {
                base: Duration::from_millis(1),
                max_delay: Duration::from_millis(5),
                max_attempts: 50,
                max_elapsed: Duration::from_secs(30),
            },
            // Polls of a few milliseconds; a wait times out after ~1.5 s of wall time,
            // which a loaded machine running tests in parallel still leaves room for.
            wait_scale: 0.005,
            ..Config::default()
        }
    }

    /// Stops the run as a first Ctrl-C does, once an event `when` accepts was seen.
    fn stop_when(
        &self,
        config: &Config,
        when: impl Fn(&Event) -> bool + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        let interrupt = config.interrupt.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            while !events.lock().unwrap().iter().any(&when) {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            interrupt.stop();
        })
    }

    fn sink(&self) -> EventSink {
        let events = self.events.clone();
        Arc::new(move |e: &Event| events.lock().unwrap().push(e.clone()))
    }

    async fn plan(&self) -> Plan {
        self.try_plan().await.unwrap_or_else(|e| panic!("{e}"))
    }

    async fn plan_err(&self) -> String {
        match self.try_plan().await {
            Ok(_) => panic!("the plan was made"),
            Err(e) => e.to_string(),
        }
    }

    async fn try_plan(&self) -> Result<Plan, OpsError> {
        let (_, desired) =
            deploy::plan::load_desired(&self.spec()).unwrap_or_else(|d| panic!("{d}"));
        let providers = self.cloud.providers();
        ops::plan(
            &self.backend(),
            &desired,
            Some(&providers),
            &Self::config(),
            &self.sink(),
            &[],
        )
        .await
        .map(|p| p.plan)
    }

    async fn apply_plan(&self, plan: &Plan, allow_data_loss: bool) -> Result<Report, OpsError> {
        ops::apply(
            &self.backend(),
            plan,
            self.cloud.providers(),
            Self::config(),
            self.sink(),
            allow_data_loss,
        )
        .await
        .map(|(_, r)| r)
    }

    async fn apply(&self) -> Report {
        let plan = self.plan().await;
        let report = self.apply_plan(&plan, false).await.unwrap();
        assert!(report.ok(), "{report:?}");
        report
    }

    async fn destroy(&self) -> Report {
        let (_, desired) = deploy::plan::load_desired(&self.spec()).unwrap();
        let providers = self.cloud.providers();
        let plan = ops::plan_destroy(
            &self.backend(),
            &desired.environment,
            &desired.region,
            Some(&providers),
            &Self::config(),
            &self.sink(),
        )
        .await
        .unwrap()
        .plan;
        self.apply_plan(&plan, true).await.unwrap()
    }

    fn desired_count(&self) -> usize {
        deploy::plan::load_desired(&self.spec())
            .unwrap()
            .1
            .resources
            .len()
    }

    /// Live objects per kind must equal desired resources per kind: no duplicates.
    fn assert_no_duplicates(&self) {
        let (_, desired) = deploy::plan::load_desired(&self.spec()).unwrap();
        let mut want: BTreeMap<Kind, usize> = BTreeMap::new();
        for r in desired.resources.values() {
            *want.entry(r.kind).or_default() += 1;
        }
        let mut have: BTreeMap<Kind, usize> = BTreeMap::new();
        for (_, kind, _) in self.cloud.inventory() {
            *have.entry(kind).or_default() += 1;
        }
        assert_eq!(have, want, "live objects per kind differ from the spec");
    }
}

fn action_of(plan: &Plan, address: &str) -> Action {
    plan.changes
        .iter()
        .find(|c| c.address.as_str() == address)
        .unwrap_or_else(|| panic!("{address} not in plan"))
        .action
}

fn changed(plan: &Plan) -> Vec<(String, Action)> {
    plan.changes
        .iter()
        .filter(|c| c.action != Action::NoOp)
        .map(|c| (c.address.to_string(), c.action))
        .collect()
}

/// Index of the first call matching, in the cloud's call log.
fn call_index(calls: &[Call], op: Op, address: &str) -> usize {
    calls
        .iter()
        .position(|c| c.op == op && c.address.as_deref() == Some(address))
        .unwrap_or_else(|| panic!("no {op:?} call for {address}"))
}

#[tokio::test]
async fn create_from_scratch_then_second_plan_is_empty() {
    let h = Harness::new();
    let plan = h.plan().await;
    assert_eq!(plan.summary.create, h.desired_count());
    assert!(plan.changes.iter().all(|c| c.action == Action::Create));
    h.apply().await;
    h.assert_no_duplicates();

    let again = h.plan().await;
    assert!(
        !again.has_changes(),
        "second plan not empty: {:?}",
        changed(&again)
    );
    assert_eq!(again.summary.unchanged, h.desired_count());

    // Dependencies were created before their dependents.
    let calls = h.cloud.calls();
    assert!(
        call_index(&calls, Op::Create, "network.vpc")
            < call_index(&calls, Op::Create, "network.subnet.private-a")
    );
    assert!(
        call_index(&calls, Op::Create, "network.igw")
            < call_index(&calls, Op::Create, "network.nat.a")
    );
    assert!(
        call_index(&calls, Op::Create, "iam.role.api")
            < call_index(&calls, Op::Create, "function.api")
    );
    // The log group exists before the function can write (and make one) itself.
    assert!(
        call_index(&calls, Op::Create, "function.api.logs")
            < call_index(&calls, Op::Create, "function.api")
    );
    assert!(
        call_index(&calls, Op::Create, "valkey.cache")
            < call_index(&calls, Op::Create, "ssm.valkey-endpoint")
    );
}

#[tokio::test]
async fn references_resolve_to_real_values_in_state() {
    let h = Harness::new();
    h.apply().await;
    let state = h.backend().read("dev").unwrap().unwrap();
    let f = &state.resources[&Address::new("function.api")];
    let cache = &state.resources[&Address::new("valkey.cache")];
    assert_eq!(
        f.inputs["environment"]["VALKEY_ENDPOINT"],
        cache.outputs["endpoint"]
    );
    assert_eq!(
        f.inputs["environment"]["VALKEY_PORT"],
        serde_json::json!("6379")
    );
    assert_eq!(
        f.inputs["role_arn"],
        state.resources[&Address::new("iam.role.api")].outputs["arn"]
    );
    assert_eq!(f.inputs["tags"]["deploy:address"], "function.api");
    assert_eq!(f.inputs["tags"]["deploy:environment"], "dev");
}

#[tokio::test]
async fn changing_memory_updates_only_that_function() {
    let h = Harness::new();
    h.apply().await;
    h.replace_in("base.yaml", "memory_mb: 512", "memory_mb: 1024");
    let plan = h.plan().await;
    assert_eq!(
        changed(&plan),
        vec![("function.api".to_string(), Action::Update)]
    );
    let attr = &plan
        .changes
        .iter()
        .find(|c| c.address.as_str() == "function.api")
        .unwrap()
        .attributes;
    assert_eq!(attr.len(), 1);
    assert_eq!(attr[0].path, "memory_mb");
    assert_eq!(attr[0].before, Some(serde_json::json!(512)));
    assert_eq!(attr[0].after, Some(serde_json::json!(1024)));
    h.apply_plan(&plan, false).await.unwrap();
    assert!(!h.plan().await.has_changes());
}

#[tokio::test]
async fn subnet_change_replaces_in_the_right_order_and_needs_the_data_loss_flag() {
    let h = Harness::new();
    h.apply().await;
    h.replace_in("base.yaml", "a: 10.0.2.0/24", "a: 10.0.5.0/24");
    let plan = h.plan().await;
    // The subnet's CIDR is its unique key and it changes: create the new one first.
    assert_eq!(
        action_of(&plan, "network.subnet.private-a"),
        Action::CreateBeforeDelete
    );
    // The cache keeps its name, which must stay unique: delete first, then create.
    let cache = plan
        .changes
        .iter()
        .find(|c| c.address.as_str() == "valkey.cache")
        .unwrap();
    assert_eq!(cache.action, Action::DeleteBeforeCreate);
    assert_eq!(cache.replace_because, vec!["subnet_ids"]);
    assert!(cache.data_loss);

    h.cloud.clear_calls();
    let refused = h.apply_plan(&plan, false).await.unwrap_err();
    assert!(
        matches!(refused, OpsError::Refused(ref m) if m.contains("valkey.cache") && m.contains("--allow-data-loss")),
        "{refused}"
    );
    assert!(h.cloud.calls().is_empty(), "a refused apply makes no call");

    h.cloud.clear_calls();
    let report = h.apply_plan(&plan, true).await.unwrap();
    assert!(report.ok(), "{report:?}");
    let calls = h.cloud.calls();
    let new_subnet = call_index(&calls, Op::Create, "network.subnet.private-a");
    let old_subnet_gone = call_index(&calls, Op::Delete, "network.subnet.private-a");
    let cache_gone = call_index(&calls, Op::Delete, "valkey.cache");
    let cache_back = call_index(&calls, Op::Create, "valkey.cache");
    assert!(
        new_subnet < old_subnet_gone,
        "create-before-delete for the subnet"
    );
    assert!(
        cache_gone < cache_back,
        "delete-before-create for the cache"
    );
    assert!(
        cache_back < old_subnet_gone,
        "the old subnet goes only after the cache moved off it"
    );
    assert!(h.backend().read("dev").unwrap().unwrap().deposed.is_empty());
    h.assert_no_duplicates();
    assert!(!h.plan().await.has_changes());
}

#[tokio::test]
async fn a_security_group_in_use_is_replaced_before_it_is_deleted() {
    let h = Harness::new();
    h.apply().await;
    h.cloud.model_in_use();
    // A new description cannot change in place; the group is in use by the functions
    // and the cache's rules.
    h.replace_in(
        "base.yaml",
        "description: Functions that reach the cache and the internet",
        "description: The functions",
    );
    let plan = h.plan().await;
    assert_eq!(
        action_of(&plan, "security_group.lambda"),
        Action::CreateBeforeDelete
    );
    let group = plan
        .changes
        .iter()
        .find(|c| c.address.as_str() == "security_group.lambda")
        .unwrap();
    assert!(group
        .attributes
        .iter()
        .any(|a| a.path == "name" && a.after == Some(serde_json::json!("trivia-dev-lambda-2"))));
    let report = h.apply_plan(&plan, false).await.unwrap();
    assert!(report.ok(), "{report:?}");
    h.assert_no_duplicates();
    // The suffixed name is the spec's name from now on: nothing more to do.
    let after = h.plan().await;
    assert!(!after.has_changes(), "{:?}", changed(&after));
    // Another replacement takes the next suffix.
    h.replace_in(
        "base.yaml",
        "description: The functions",
        "description: Functions",
    );
    let plan = h.plan().await;
    let group = plan
        .changes
        .iter()
        .find(|c| c.address.as_str() == "security_group.lambda")
        .unwrap();
    assert!(group
        .attributes
        .iter()
        .any(|a| a.path == "name" && a.after == Some(serde_json::json!("trivia-dev-lambda-3"))));
    assert!(h.apply_plan(&plan, false).await.unwrap().ok());
    h.assert_no_duplicates();
}

#[tokio::test]
async fn protected_cache_is_never_replaced_even_with_the_flag() {
    let h = Harness::new();
    h.edit("  protect: true\n");
    h.apply().await;
    h.replace_in("base.yaml", "b: 10.0.3.0/24", "b: 10.0.6.0/24");
    let plan = h.plan().await;
    let cache = plan
        .changes
        .iter()
        .find(|c| c.address.as_str() == "valkey.cache")
        .unwrap();
    assert!(cache.protected && cache.action.is_replace());
    h.cloud.clear_calls();
    let err = h.apply_plan(&plan, true).await.unwrap_err();
    assert!(err.to_string().contains("protected"), "{err}");
    assert!(h.cloud.calls().is_empty(), "nothing was touched");
}

#[tokio::test]
async fn removing_a_function_deletes_it_and_its_role_after_its_dependents() {
    let h = Harness::new();
    h.apply().await;
    // Drop the schedule and the preloader function from the spec.
    h.replace_in("base.yaml", "schedules:\n  preload-questions:\n    expression: rate(6 hours)\n    function: preloader\n    # A new environment gets its questions now, not six hours after it was created.\n    run_after_apply: true\n", "");
    let text = std::fs::read_to_string(h.dir.path().join("base.yaml")).unwrap();
    let start = text.find("  preloader:\n").unwrap();
    let end = text[start..].find("\napi:").unwrap() + start;
    std::fs::write(
        h.dir.path().join("base.yaml"),
        format!("{}{}", &text[..start], &text[end + 1..]),
    )
    .unwrap();
    let plan = h.plan().await;
    let mut deleted: Vec<_> = changed(&plan)
        .into_iter()
        .filter(|(_, a)| *a == Action::Delete)
        .map(|(a, _)| a)
        .collect();
    deleted.sort();
    assert_eq!(
        deleted,
        vec![
            "function.preloader",
            "function.preloader.logs",
            "iam.role.preloader",
            "schedule.preload-questions"
        ]
    );
    h.cloud.clear_calls();
    h.apply_plan(&plan, false).await.unwrap();
    let calls = h.cloud.calls();
    assert!(
        call_index(&calls, Op::Delete, "schedule.preload-questions")
            < call_index(&calls, Op::Delete, "function.preloader")
    );
    assert!(
        call_index(&calls, Op::Delete, "function.preloader")
            < call_index(&calls, Op::Delete, "iam.role.preloader")
    );
    // The log group goes after the function, which could otherwise write to it again.
    assert!(
        call_index(&calls, Op::Delete, "function.preloader")
            < call_index(&calls, Op::Delete, "function.preloader.logs")
    );
    h.assert_no_duplicates();
}

#[tokio::test]
async fn destroy_walks_the_graph_in_reverse_and_leaves_nothing() {
    let h = Harness::new();
    h.apply().await;
    h.cloud.clear_calls();
    let report = h.destroy().await;
    assert!(report.ok(), "{report:?}");
    assert!(
        h.cloud.inventory().is_empty(),
        "left behind: {:?}",
        h.cloud.inventory()
    );
    let calls = h.cloud.calls();
    let del = |a| call_index(&calls, Op::Delete, a);
    assert!(del("function.api") < del("iam.role.api"));
    assert!(del("function.api") < del("security_group.lambda"));
    assert!(del("valkey.cache") < del("network.subnet.private-a"));
    assert!(del("network.nat.a") < del("network.igw"));
    assert!(del("network.subnet.private-a") < del("network.vpc"));
    // Roles last: Lambda needs them to release the ENIs that hold groups and subnets.
    assert!(del("security_group.lambda") < del("iam.role.api"));
    assert!(del("network.subnet.private-b") < del("iam.role.preloader"));
    let state = h.backend().read("dev").unwrap().unwrap();
    assert!(state.is_empty());
    // A second destroy has nothing to do and succeeds.
    assert!(h.destroy().await.ok());
}

#[tokio::test]
async fn resources_already_gone_count_as_deleted() {
    let h = Harness::new();
    h.apply().await;
    h.cloud.remove_out_of_band("ssm.valkey-port");
    let report = h.destroy().await;
    assert!(report.ok(), "{report:?}");
    assert!(h.cloud.inventory().is_empty());
}

#[tokio::test]
async fn a_failed_branch_skips_its_dependents_and_independent_branches_finish() {
    let h = Harness::new();
    h.cloud.set_fault(|c: &Call| {
        if c.op == Op::Create && c.address.as_deref() == Some("iam.role.api") {
            Fault::Fail(
                ProviderError::fatal("MalformedPolicyDocument: nope")
                    .with_code("MalformedPolicyDocument"),
            )
        } else {
            Fault::None
        }
    });
    let plan = h.plan().await;
    let report = h.apply_plan(&plan, false).await.unwrap();
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0.as_str(), "iam.role.api");
    let skipped: Vec<&str> = report.skipped.iter().map(|(a, _, _)| a.as_str()).collect();
    assert!(
        skipped.contains(&"function.api") && skipped.contains(&"api.rest_api"),
        "{skipped:?}"
    );
    assert!(report
        .skipped
        .iter()
        .all(|(_, _, cause)| cause.as_str() == "iam.role.api"));
    // Independent branches completed.
    for done in [
        "valkey.cache",
        "function.preloader",
        "cognito.user_pool",
        "ssm.valkey-endpoint",
    ] {
        assert!(
            report.completed.iter().any(|(a, _)| a.as_str() == done),
            "{done} should have finished"
        );
    }
    // Each skipped resource is reported exactly once.
    let skipped_events = h
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(
            |e| matches!(e, Event::Skipped { address, .. } if address.as_str() == "function.api"),
        )
        .count();
    assert_eq!(skipped_events, 1);

    h.cloud.set_fault(|_: &Call| Fault::None);
    h.apply().await;
    h.assert_no_duplicates();
    assert!(!h.plan().await.has_changes());
}

#[tokio::test]
async fn a_crash_after_any_step_then_a_rerun_converges_without_duplicates() {
    // Count the mutating calls of a clean run.
    let probe = Harness::new();
    probe.apply().await;
    let total = probe
        .cloud
        .calls()
        .iter()
        .filter(|c| c.op.mutates())
        .count();
    assert!(total >= probe.desired_count());

    let mut adopted_runs = 0;
    for crash_at in 0..total {
        let h = Harness::new();
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        h.cloud.set_fault(move |c: &Call| {
            if c.op.mutates() && s.fetch_add(1, Ordering::SeqCst) == crash_at {
                Fault::CrashAfter
            } else {
                Fault::None
            }
        });
        let plan = h.plan().await;
        let crashed = tokio::select! {
            r = h.apply_plan(&plan, false) => { r.unwrap(); false }
            _ = h.cloud.crashed() => true,
        };
        assert!(crashed, "run {crash_at} should have crashed");
        // A killed process leaves its lock behind; break it as a user would.
        h.backend().unlock("dev").unwrap();
        h.events.lock().unwrap().clear();

        h.cloud.set_fault(|_: &Call| Fault::None);
        h.apply().await;
        h.assert_no_duplicates();
        let after = h.plan().await;
        assert!(
            !after.has_changes(),
            "crash at {crash_at}: {:?}",
            changed(&after)
        );
        if h.events
            .lock()
            .unwrap()
            .iter()
            .any(|e| matches!(e, Event::Adopted { .. }))
        {
            adopted_runs += 1;
        }
    }
    // Every crash right after a create leaves an intent that the rerun resolves by
    // adopting the resource (creates are most of the mutating calls).
    assert!(
        adopted_runs >= probe.desired_count(),
        "adopted in {adopted_runs} of {total} runs"
    );
}

#[tokio::test]
async fn creates_whose_response_was_lost_are_found_not_made_twice() {
    // The first create of every resource happens, but its answer is lost (a 5xx or a
    // timeout after the cloud acted); a conflict answer is as ambiguous.
    let h = Harness::new();
    let seen = Arc::new(Mutex::new(std::collections::BTreeSet::new()));
    let s = seen.clone();
    h.cloud.set_fault(move |c: &Call| {
        let first = c.op == Op::Create && s.lock().unwrap().insert(c.address.clone());
        match (first, c.kind) {
            (false, _) => Fault::None,
            (true, Kind::SecurityGroup) => Fault::LoseResponse(
                ProviderError::new(ErrorClass::Conflict, "concurrent modification")
                    .with_code("ConcurrentModificationException"),
            ),
            // The object was made, then one of the create's later calls (settings,
            // a default rule) was throttled.
            (true, Kind::Subnet | Kind::RouteTable) => Fault::LoseResponse(
                ProviderError::new(ErrorClass::Throttled, "Rate exceeded")
                    .with_code("RequestLimitExceeded"),
            ),
            (true, _) => Fault::LoseResponse(
                ProviderError::new(ErrorClass::Retryable, "We encountered an internal error")
                    .with_code("InternalError"),
            ),
        }
    });
    h.apply().await;
    h.assert_no_duplicates();
    assert!(!h.plan().await.has_changes());
    let adopted = h
        .events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Adopted { .. }))
        .count();
    // Every kind but the NAT gateway (whose client token makes a repeat harmless) is
    // looked up and adopted instead of created again.
    let nat = h
        .cloud
        .inventory()
        .iter()
        .filter(|(_, k, _)| *k == Kind::NatGateway)
        .count();
    assert_eq!(adopted, h.desired_count() - nat);
}

#[tokio::test]
async fn a_name_taken_before_any_ambiguity_is_an_error_not_an_adoption() {
    let h = Harness::new();
    h.cloud.set_fault(|c: &Call| {
        if c.op == Op::Create && c.kind == Kind::IamRole {
            Fault::Fail(
                ProviderError::new(ErrorClass::Fatal, "Role with name x already exists.")
                    .with_code("EntityAlreadyExists"),
            )
        } else {
            Fault::None
        }
    });
    let plan = h.plan().await;
    let report = h.apply_plan(&plan, false).await.unwrap();
    assert!(!report.ok());
    assert!(report
        .failed
        .iter()
        .all(|(_, _, e)| e.contains("EntityAlreadyExists")));
    assert!(!h
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::Adopted { .. })));
}

#[tokio::test]
async fn an_interrupted_apply_stops_starting_steps_releases_the_lock_and_resumes() {
    let h = Harness::new();
    // The cache takes long to settle: the interrupt comes while it is being waited for
    // and while other steps are still to start.
    h.cloud.set_lag(|k: Kind| {
        if k == Kind::ServerlessCache {
            1_000_000
        } else {
            0
        }
    });
    let plan = h.plan().await;
    let config = Harness::config();
    let stopper = h.stop_when(
        &config,
        |e| matches!(e, Event::Waiting { address, .. } if address.as_str() == "valkey.cache"),
    );
    let (state, report) = tokio::time::timeout(
        Duration::from_secs(30),
        ops::apply(
            &h.backend(),
            &plan,
            h.cloud.providers(),
            config,
            h.sink(),
            false,
        ),
    )
    .await
    .expect("an interrupted apply returns promptly")
    .unwrap();
    stopper.await.unwrap();
    assert!(report.was_interrupted(), "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    // The cache was created and is recorded as pending; what depends on it never
    // started.
    let cache = state
        .resources
        .iter()
        .find(|(a, _)| a.as_str() == "valkey.cache")
        .map(|(_, r)| r)
        .expect("the cache is recorded");
    assert!(cache.pending);
    let undone: Vec<&str> = report.interrupted.iter().map(|(a, _)| a.as_str()).collect();
    assert!(undone.contains(&"valkey.cache"), "{undone:?}");
    assert!(undone.contains(&"ssm.valkey-endpoint"), "{undone:?}");
    assert!(!h.events.lock().unwrap().iter().any(|e| matches!(
        e,
        Event::Started { address, .. } if address.as_str() == "ssm.valkey-endpoint"
    )));
    // The lock is released: the rerun needs no unlock, and converges.
    assert!(h.backend().lock_info("dev").unwrap().is_none());
    h.cloud.set_lag(|_: Kind| 0);
    h.cloud.finish_pending();
    h.apply().await;
    h.assert_no_duplicates();
    assert!(!h.plan().await.has_changes());
}

#[tokio::test]
async fn an_interrupt_cuts_a_throttled_steps_backoff_short() {
    let h = Harness::new();
    // Every create of the VPC is throttled, and the backoff between attempts is long:
    // without the interrupt this step would retry for ten minutes.
    h.cloud.set_fault(|c: &Call| {
        if c.op == Op::Create && c.kind == Kind::Vpc {
            Fault::Fail(
                ProviderError::new(ErrorClass::Throttled, "Rate exceeded")
                    .with_code("RequestLimitExceeded"),
            )
        } else {
            Fault::None
        }
    });
    let plan = h.plan().await;
    let mut config = Harness::config();
    config.retry = RetryPolicy {
        base: Duration::from_secs(30),
        max_delay: Duration::from_secs(60),
        max_attempts: 50,
        max_elapsed: Duration::from_secs(600),
    };
    let stopper = h.stop_when(
        &config,
        |e| matches!(e, Event::Retrying { address, .. } if address.as_str() == "network.vpc"),
    );
    let (_, report) = tokio::time::timeout(
        Duration::from_secs(10),
        ops::apply(
            &h.backend(),
            &plan,
            h.cloud.providers(),
            config,
            h.sink(),
            false,
        ),
    )
    .await
    .expect("the backoff is cut short")
    .unwrap();
    stopper.await.unwrap();
    assert!(
        report.failed.is_empty(),
        "left undone, not failed: {report:?}"
    );
    let undone: Vec<&str> = report.interrupted.iter().map(|(a, _)| a.as_str()).collect();
    assert!(undone.contains(&"network.vpc"), "{undone:?}");
    assert!(h.backend().lock_info("dev").unwrap().is_none());
    h.cloud.set_fault(|_: &Call| Fault::None);
    h.apply().await;
    h.assert_no_duplicates();
}

#[tokio::test]
async fn a_throttling_lagging_cloud_still_converges() {
    let h = Harness::new();
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    h.cloud.set_fault(move |c: &Call| {
        let i = n2.fetch_add(1, Ordering::SeqCst);
        match i % 7 {
            0 => Fault::Fail(
                ProviderError::new(ErrorClass::Throttled, "Rate exceeded")
                    .with_code("RequestLimitExceeded"),
            ),
            3 if c.op != Op::Read => Fault::Fail(
                ProviderError::new(ErrorClass::Retryable, "Service unavailable")
                    .with_code("ServiceUnavailable"),
            ),
            _ => Fault::None,
        }
    });
    h.cloud.set_lag(|k: Kind| match k {
        Kind::ServerlessCache => 5,
        Kind::NatGateway => 3,
        _ => 1,
    });
    h.apply().await;
    h.assert_no_duplicates();
    assert!(!h.plan().await.has_changes());
    let events = h.events.lock().unwrap();
    assert!(events.iter().any(|e| matches!(e, Event::Retrying { .. })));
    assert!(events.iter().any(
        |e| matches!(e, Event::Waiting { address, .. } if address.as_str() == "valkey.cache")
    ));
}

#[tokio::test]
async fn drift_is_shown_and_repaired() {
    let h = Harness::new();
    h.apply().await;
    h.cloud
        .tamper("function.api", "memory_mb", serde_json::json!(128));
    let plan = h.plan().await;
    let c = plan
        .changes
        .iter()
        .find(|c| c.address.as_str() == "function.api")
        .unwrap();
    assert_eq!(c.action, Action::Update);
    assert_eq!(c.drift.len(), 1);
    assert_eq!(c.drift[0].path, "memory_mb");
    assert_eq!(c.drift[0].after, Some(serde_json::json!(128)));
    assert_eq!(plan.summary.drifted, 1);
    h.apply_plan(&plan, false).await.unwrap();
    assert!(!h.plan().await.has_changes());
}

#[tokio::test]
async fn a_resource_deleted_out_of_band_is_recreated() {
    let h = Harness::new();
    h.apply().await;
    h.cloud.remove_out_of_band("schedule.preload-questions");
    let plan = h.plan().await;
    let c = plan
        .changes
        .iter()
        .find(|c| c.address.as_str() == "schedule.preload-questions")
        .unwrap();
    assert_eq!(c.action, Action::Create);
    assert_eq!(c.reason.as_deref(), Some("deleted outside deploy"));
    h.apply_plan(&plan, false).await.unwrap();
    h.assert_no_duplicates();
}

#[tokio::test]
async fn a_saved_plan_is_refused_once_the_state_moved() {
    let h = Harness::new();
    let stale = h.plan().await;
    h.apply().await;
    let err = h.apply_plan(&stale, false).await.unwrap_err();
    assert!(matches!(err, OpsError::StalePlan { .. }), "{err}");
    assert!(err.to_string().contains("deploy plan"));
}

#[tokio::test]
async fn target_limits_the_plan_to_a_resource_and_its_dependencies() {
    let h = Harness::new();
    let (_, desired) = deploy::plan::load_desired(&h.spec()).unwrap();
    let planned = ops::plan(
        &h.backend(),
        &desired,
        None,
        &Harness::config(),
        &h.sink(),
        &[Address::new("ssm.valkey-endpoint")],
    )
    .await
    .unwrap();
    let mut addrs: Vec<&str> = planned
        .plan
        .changes
        .iter()
        .map(|c| c.address.as_str())
        .collect();
    addrs.sort();
    assert!(
        addrs.contains(&"ssm.valkey-endpoint")
            && addrs.contains(&"valkey.cache")
            && addrs.contains(&"network.vpc")
    );
    assert!(
        !addrs.contains(&"function.api") && !addrs.contains(&"ssm.valkey-port"),
        "{addrs:?}"
    );
    let bad = ops::plan(
        &h.backend(),
        &desired,
        None,
        &Harness::config(),
        &h.sink(),
        &[Address::new("ssm.valkey-endpont")],
    )
    .await;
    assert!(
        matches!(bad, Err(OpsError::Plan(ref m)) if m.contains("did you mean `ssm.valkey-endpoint`"))
    );
}

/// Applies the dev spec into `state_dir` against a fresh in-memory cloud, one step at a
/// time so ids are deterministic.
pub fn apply_dev_into(state_dir: &std::path::Path) {
    let h = Harness::new();
    let (_, desired) = deploy::plan::load_desired(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("environments/dev.yaml"),
    )
    .unwrap();
    let backend = Backend::local(state_dir);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let providers = h.cloud.providers();
        let mut config = Harness::config();
        config.parallelism = 1;
        let plan = ops::plan(
            &backend,
            &desired,
            Some(&providers),
            &config,
            &h.sink(),
            &[],
        )
        .await
        .unwrap()
        .plan;
        let (_, report) = ops::apply(&backend, &plan, providers, config, h.sink(), false)
            .await
            .unwrap();
        assert!(report.ok());
    });
}

#[tokio::test]
async fn turning_protection_off_updates_only_the_protected_tag_and_then_destroy_works() {
    let h = Harness::new();
    h.edit("  protect: true\n");
    h.apply().await;
    let state = h.backend().read("dev").unwrap().unwrap();
    assert!(state.resources[&Address::new("valkey.cache")].protect);

    h.replace_in("dev.yaml", "  protect: true\n", "  protect: false\n");
    let plan = h.plan().await;
    assert_eq!(
        changed(&plan),
        vec![("valkey.cache".to_string(), Action::Update)]
    );
    h.cloud.clear_calls();
    let tags = plan
        .changes
        .iter()
        .find(|c| c.address.as_str() == "valkey.cache")
        .unwrap();
    let paths: Vec<&str> = tags.attributes.iter().map(|a| a.path.as_str()).collect();
    assert_eq!(
        paths,
        vec!["tags", "protect"],
        "only the deploy:protected tag and the record change"
    );
    h.apply_plan(&plan, false).await.unwrap();
    let writes: Vec<(Op, Option<String>)> = h
        .cloud
        .calls()
        .iter()
        .filter(|c| c.op.mutates())
        .map(|c| (c.op, c.address.clone()))
        .collect();
    assert_eq!(
        writes,
        vec![(Op::Update, Some("valkey.cache".to_string()))],
        "one in-place update (the tag), nothing replaced"
    );
    assert!(
        !h.backend().read("dev").unwrap().unwrap().resources[&Address::new("valkey.cache")].protect
    );
    assert!(!h.plan().await.has_changes());
    assert!(h.destroy().await.ok());
    assert!(h.cloud.inventory().is_empty());
}

#[tokio::test]
async fn a_crash_at_any_point_of_a_replacement_then_a_rerun_converges() {
    let probe = Harness::new();
    probe.apply().await;
    probe.replace_in("base.yaml", "a: 10.0.2.0/24", "a: 10.0.5.0/24");
    probe.cloud.clear_calls();
    let plan = probe.plan().await;
    probe.apply_plan(&plan, true).await.unwrap();
    let total = probe
        .cloud
        .calls()
        .iter()
        .filter(|c| c.op.mutates())
        .count();
    assert!(total >= 6, "the replacement makes {total} writes");

    for crash_at in 0..total {
        let h = Harness::new();
        h.apply().await;
        h.replace_in("base.yaml", "a: 10.0.2.0/24", "a: 10.0.5.0/24");
        let seen = Arc::new(AtomicUsize::new(0));
        let s = seen.clone();
        h.cloud.set_fault(move |c: &Call| {
            if c.op.mutates() && s.fetch_add(1, Ordering::SeqCst) == crash_at {
                Fault::CrashAfter
            } else {
                Fault::None
            }
        });
        let plan = h.plan().await;
        tokio::select! {
            r = h.apply_plan(&plan, true) => panic!("run {crash_at} should have crashed: {:?}", r.map(|r| r.ok())),
            _ = h.cloud.crashed() => {}
        }
        h.backend().unlock("dev").unwrap();
        h.cloud.set_fault(|_: &Call| Fault::None);
        let plan = h.plan().await;
        let report = h.apply_plan(&plan, true).await.unwrap();
        assert!(report.ok(), "crash at {crash_at}: {report:?}");
        h.assert_no_duplicates();
        let state = h.backend().read("dev").unwrap().unwrap();
        assert!(
            state.deposed.is_empty() && state.intents.is_empty(),
            "crash at {crash_at}: leftovers in state"
        );
        let after = h.plan().await;
        assert!(
            !after.has_changes(),
            "crash at {crash_at}: {:?}",
            changed(&after)
        );
    }
}

#[tokio::test]
async fn a_public_subnet_change_moves_the_nat_gateway_without_a_cycle() {
    let h = Harness::new();
    h.apply().await;
    h.cloud.model_in_use();
    h.replace_in("base.yaml", "a: 10.0.1.0/24", "a: 10.0.7.0/24");
    let plan = h.plan().await;
    assert_eq!(
        action_of(&plan, "network.subnet.public-a"),
        Action::CreateBeforeDelete
    );
    // The gateway keeps its Elastic IP, which one gateway holds at a time: the old
    // one goes first (routes to it go blackhole for a few minutes).
    assert_eq!(
        action_of(&plan, "network.nat.a"),
        Action::DeleteBeforeCreate
    );

    h.cloud.clear_calls();
    let report = h.apply_plan(&plan, false).await.unwrap();
    assert!(report.ok(), "{report:?}");
    let calls = h.cloud.calls();
    let new_subnet = call_index(&calls, Op::Create, "network.subnet.public-a");
    let old_nat_gone = call_index(&calls, Op::Delete, "network.nat.a");
    let new_nat = call_index(&calls, Op::Create, "network.nat.a");
    let private_routes = call_index(&calls, Op::Update, "network.route_table.private-a");
    let association = call_index(&calls, Op::Update, "network.route_table.public");
    let old_subnet_gone = call_index(&calls, Op::Delete, "network.subnet.public-a");
    assert!(new_subnet < new_nat && old_nat_gone < new_nat);
    assert!(new_nat < private_routes, "routes move to the new gateway");
    assert!(old_nat_gone < old_subnet_gone && association < old_subnet_gone);
    assert_eq!(h.cloud.count(Kind::NatGateway), 1);
    h.assert_no_duplicates();
    assert!(!h.plan().await.has_changes());
}

#[tokio::test]
async fn a_subnet_range_that_overlaps_one_leaving_is_refused_at_plan_time() {
    let h = Harness::new();
    h.apply().await;
    // Narrowed in place: the new range lies inside the current one.
    h.replace_in("base.yaml", "a: 10.0.2.0/24", "a: 10.0.2.0/25");
    let err = h.plan_err().await;
    assert!(
        err.contains("network.subnet.private-a cannot be made")
            && err.contains("overlaps its current range 10.0.2.0/24")
            && err.contains("two applies"),
        "{err}"
    );
    // Moved to another AZ under the same range: the new subnet needs the old one gone.
    h.replace_in("base.yaml", "a: 10.0.2.0/25", "c: 10.0.2.0/24");
    let err = h.plan_err().await;
    assert!(
        err.contains("network.subnet.private-c cannot be made")
            && err.contains("of network.subnet.private-a, which this plan deletes"),
        "{err}"
    );
    // A free range is fine.
    h.replace_in("base.yaml", "c: 10.0.2.0/24", "c: 10.0.9.0/24");
    let report = h.apply_plan(&h.plan().await, true).await.unwrap();
    assert!(report.ok(), "{report:?}");
}

#[tokio::test]
async fn without_state_what_is_tagged_with_the_environment_is_adopted_not_made_again() {
    let h = Harness::new();
    h.apply().await;
    let total = h.cloud.inventory().len();
    // A teammate without the state file, or a lost one.
    std::fs::remove_file(h.backend().state_location("dev")).unwrap();
    h.events.lock().unwrap().clear();
    let plan = h.plan().await;
    let creates: Vec<String> = changed(&plan)
        .into_iter()
        .filter(|(_, a)| *a == Action::Create || a.is_replace())
        .map(|(a, _)| a)
        .collect();
    assert!(creates.is_empty(), "nothing is made again: {creates:?}");
    let adopted = h
        .events
        .lock()
        .unwrap()
        .iter()
        .find_map(|e| match e {
            Event::FoundWithoutState {
                adopted, others, ..
            } => Some((adopted.len(), *others)),
            _ => None,
        })
        .expect("the plan says what it found");
    // Everything, app clients too (found by name within their pool, as they carry no
    // tags to list them by).
    assert_eq!(adopted, (total, 0));
    assert!(h
        .backend()
        .read("dev")
        .unwrap()
        .unwrap()
        .resources
        .keys()
        .any(|a| a.as_str().starts_with("cognito.client.")));
    h.apply_plan(&plan, false).await.unwrap();
    h.assert_no_duplicates();
    assert!(!h.plan().await.has_changes());
}

#[tokio::test]
async fn without_state_in_a_new_environment_nothing_is_adopted() {
    let h = Harness::new();
    let plan = h.plan().await;
    assert!(changed(&plan).iter().all(|(_, a)| *a == Action::Create));
    assert!(!h
        .events
        .lock()
        .unwrap()
        .iter()
        .any(|e| matches!(e, Event::FoundWithoutState { .. })));
}
