//! Refills every category's question cache from the source (falling back to the
//! bundled bank). The Lambda handler of the schedule when `AWS_LAMBDA_RUNTIME_API` is
//! set; otherwise runs once and prints what it did as JSON.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use trivia::config::{Config, Mode};
use trivia::questions::{Loader, OpenTdb, CATEGORIES};

async fn preload(loader: &Loader) -> serde_json::Value {
    let mut out = serde_json::Map::new();
    for c in CATEGORIES {
        let r = match loader.fill(&c, true).await {
            Ok(load) => serde_json::to_value(load).expect("load serializes"),
            Err(e) => serde_json::json!({"outcome": "failed", "error": e.to_string()}),
        };
        out.insert(c.id.into(), r);
    }
    serde_json::Value::Object(out)
}

#[tokio::main]
async fn main() {
    let config = match Config::from_lookup(|k| {
        // The preloader never checks tokens.
        match k {
            "COGNITO_ISSUER" => Some("https://unused.invalid".into()),
            "COGNITO_CLIENT_ID" => Some("unused".into()),
            _ => std::env::var(k).ok(),
        }
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trivia-preloader: {e}");
            std::process::exit(2);
        }
    };
    trivia::install_tls_provider();
    let store = trivia::store::Store::new(config.valkey.clone());
    let source = config
        .question_source
        .as_deref()
        .map(|url| std::sync::Arc::new(OpenTdb::new(url)));
    let loader = Loader::new(store, source);
    match config.mode {
        Mode::Lambda => {
            let handler = lambda_runtime::service_fn(
                |e: lambda_runtime::LambdaEvent<serde_json::Value>| {
                    let loader = loader.clone();
                    async move {
                        // What started this run (a schedule's `Scheduled Event`, a manual
                        // invoke), in the function's log.
                        println!(
                            "{}",
                            serde_json::json!({
                                "event": e.payload.get("detail-type").cloned().unwrap_or(serde_json::Value::Null),
                                "source": e.payload.get("source").cloned().unwrap_or(serde_json::Value::Null),
                                "resources": e.payload.get("resources").cloned().unwrap_or(serde_json::Value::Null),
                            })
                        );
                        Ok::<_, lambda_runtime::Error>(preload(&loader).await)
                    }
                },
            );
            if let Err(e) = lambda_runtime::run(handler).await {
                eprintln!("trivia-preloader: {e}");
                std::process::exit(1);
            }
        }
        Mode::Local { .. } => {
            let report = preload(&loader).await;
            let failed = report
                .as_object()
                .is_some_and(|m| m.values().any(|v| v["outcome"] == "failed"));
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("report serializes")
            );
            std::process::exit(if failed { 1 } else { 0 });
        }
    }
}
