//! Snapshots of rendered plans, human and JSON.

use std::sync::Arc;

use deploy::engine::{Config, EventSink, RetryPolicy};
use deploy::ops;
use deploy::plan::Plan;
use deploy::provider::memory::MemoryCloud;
use deploy::state::Backend;

fn plain(s: &str) -> String {
    anstream::adapter::strip_str(s).to_string()
}

fn quiet() -> EventSink {
    Arc::new(|_: &deploy::engine::Event| {})
}

fn serial_config() -> Config {
    Config {
        parallelism: 1,
        retry: RetryPolicy {
            base: std::time::Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        wait_scale: 0.0,
        ..Config::default()
    }
}

#[tokio::test]
async fn plan_of_a_new_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (_, desired) = deploy::plan::load_desired(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/environments/dev.yaml"
    )))
    .unwrap();
    let mut plan = ops::plan(
        &Backend::local(dir.path()),
        &desired,
        None,
        &serial_config(),
        &quiet(),
        &[],
    )
    .await
    .unwrap()
    .plan;
    ops::attach_cost(&mut plan, Some(&desired), None, &[]);
    insta::assert_snapshot!(
        "new_environment_human",
        plain(&deploy::render::plan(&plan, false))
    );
    insta::assert_json_snapshot!("new_environment_json", plan);
    insta::assert_snapshot!(
        "new_environment_markdown",
        deploy::render::markdown::plan(&plan, false)
    );
}

/// dev applied to an in-memory cloud, in a temp dir of its own.
struct Applied {
    dir: tempfile::TempDir,
    backend: Backend,
    cloud: Arc<MemoryCloud>,
    providers: deploy::provider::Providers,
}

async fn applied_dev() -> Applied {
    let dir = tempfile::tempdir().unwrap();
    for f in ["base.yaml", "dev.yaml"] {
        std::fs::copy(
            format!("{}/environments/{f}", env!("CARGO_MANIFEST_DIR")),
            dir.path().join(f),
        )
        .unwrap();
    }
    let backend = Backend::local(dir.path().join("state"));
    let cloud = MemoryCloud::new();
    let providers = cloud.providers();
    let a = Applied {
        dir,
        backend,
        cloud,
        providers,
    };
    let plan = a.replan().await;
    ops::apply(
        &a.backend,
        &plan,
        a.providers.clone(),
        serial_config(),
        quiet(),
        false,
    )
    .await
    .unwrap();
    a
}

impl Applied {
    /// `base.yaml` with `edit` applied.
    fn edit(&self, edit: impl Fn(String) -> String) {
        let p = self.dir.path().join("base.yaml");
        std::fs::write(&p, edit(std::fs::read_to_string(&p).unwrap())).unwrap();
    }

    /// The plan of the spec as it is now, with its cost.
    async fn replan(&self) -> Plan {
        let spec = self.dir.path().join("dev.yaml");
        let (_, desired) = deploy::plan::load_desired(&spec).unwrap();
        let planned = ops::plan(
            &self.backend,
            &desired,
            Some(&self.providers),
            &serial_config(),
            &quiet(),
            &[],
        )
        .await
        .unwrap();
        let mut plan = planned.plan;
        ops::attach_cost(&mut plan, Some(&desired), planned.state.as_ref(), &[]);
        plan.state_lineage = None;
        // How many writes an apply makes depends on how its steps' writes were grouped.
        plan.state_serial = 0;
        plan
    }
}

/// Applies dev, then changes it every way a plan can show: an update, a replace in
/// each order (one losing data), a delete, and drift.
async fn changed_environment() -> Plan {
    let a = applied_dev().await;
    a.edit(|base| {
        base.replace("memory_mb: 512", "memory_mb: 1024")
            .replace("a: 10.0.2.0/24", "a: 10.0.5.0/24")
            .replace("schedules:\n  preload-questions:\n    expression: rate(6 hours)\n    function: preloader\n    # A new environment gets its questions now, not six hours after it was created.\n    run_after_apply: true\n", "")
    });
    a.cloud
        .tamper("function.preloader", "timeout_s", serde_json::json!(30));
    a.replan().await
}

#[tokio::test]
async fn plan_with_every_kind_of_change() {
    let plan = changed_environment().await;
    insta::assert_snapshot!(
        "every_change_human",
        plain(&deploy::render::plan(&plan, false))
    );
    insta::assert_snapshot!(
        "every_change_human_allowed",
        plain(&deploy::render::plan(&plan, true))
            .lines()
            .next()
            .unwrap()
            .to_string()
    );
    insta::assert_json_snapshot!("every_change_json", plan);
    // The pull-request comment: the data-loss replace is called out as refused.
    insta::assert_snapshot!(
        "every_change_markdown",
        deploy::render::markdown::plan(&plan, false)
    );
}

#[tokio::test]
async fn plan_markdown_of_an_update_and_of_no_changes() {
    let a = applied_dev().await;
    let settled = a.replan().await;
    insta::assert_snapshot!(
        "no_changes_markdown",
        deploy::render::markdown::plan(&settled, false)
    );
    a.edit(|base| base.replace("memory_mb: 512", "memory_mb: 1024"));
    let update = a.replan().await;
    insta::assert_snapshot!(
        "update_markdown",
        deploy::render::markdown::plan(&update, false)
    );
}
