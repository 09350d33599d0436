//! The API: a Lambda behind API Gateway when `AWS_LAMBDA_RUNTIME_API` is set, otherwise
//! an HTTP server on 127.0.0.1:$PORT (default 3000).
#![allow(clippy::print_stderr)]

use trivia::config::{Config, Mode};

#[tokio::main]
async fn main() {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("trivia-api: {e}");
            std::process::exit(2);
        }
    };
    let app = trivia::router(trivia::AppState::new(&config));
    let result = match config.mode {
        Mode::Lambda => {
            use tower::ServiceExt;
            let app = app.layer(axum::middleware::from_fn(trivia::access_log));
            lambda_http::run(app.map_request(trivia::strip_stage))
                .await
                .map_err(|e| e.to_string())
        }
        Mode::Local { port } => serve(app, port).await,
    };
    if let Err(e) = result {
        eprintln!("trivia-api: {e}");
        std::process::exit(1);
    }
}

async fn serve(app: axum::Router, port: u16) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    eprintln!("trivia-api: serving on http://127.0.0.1:{port}");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .map_err(|e| e.to_string())
}
