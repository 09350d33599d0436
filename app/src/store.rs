//! The Valkey connection: created once per process and reused across requests and
//! invocations. Cluster-aware (ElastiCache Serverless is always cluster mode), TLS when
//! configured, with timeouts. If the server is down at start or goes away later, calls
//! fail fast with [`StoreError`] and the connection is re-established when it is back.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, TlsCertificates, Value};
use tokio::sync::Mutex;

use crate::config::{ClusterMode, Valkey};

#[derive(Debug, thiserror::Error)]
#[error("the cache is unavailable: {0}")]
pub struct StoreError(pub String);

impl From<redis::RedisError> for StoreError {
    fn from(e: redis::RedisError) -> Self {
        StoreError(e.to_string())
    }
}

/// A live connection, single-node or cluster.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        0
    }
}

/// The process's shared handle to Valkey.
#[derive(Clone)]
pub struct Store {
    config: Arc<Valkey>,
    conn: Arc<Mutex<Option<Conn>>>,
}

impl Store {
    /// A handle that connects on first use, so the process starts (and reports an
    /// unhealthy cache) even when Valkey is not up yet.
    pub fn new(config: Valkey) -> Self {
        Self {
            config: Arc::new(config),
            conn: Arc::new(Mutex::new(None)),
        }
    }

    /// The shared connection, connecting if needed.
    pub async fn conn(&self) -> Result<Conn, StoreError> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = tokio::time::timeout(self.config.timeout * 3, connect(&self.config))
            .await
            .map_err(|_| {
                StoreError(format!(
                    "connecting to {}:{} timed out",
                    self.config.endpoint, self.config.port
                ))
            })??;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Whether connections to Valkey use TLS.
    pub fn tls(&self) -> bool {
        self.config.tls
    }

    /// Round-trip latency of a PING.
    pub async fn ping(&self) -> Result<Duration, StoreError> {
        let mut c = self.conn().await?;
        let started = std::time::Instant::now();
        let _: String = redis::cmd("PING").query_async(&mut c).await?;
        Ok(started.elapsed())
    }
}

fn url(v: &Valkey) -> String {
    let scheme = if v.tls { "rediss" } else { "redis" };
    format!("{scheme}://{}:{}", v.endpoint, v.port)
}

fn certificates(v: &Valkey) -> Result<Option<TlsCertificates>, StoreError> {
    match &v.ca_file {
        Some(path) => {
            let pem = std::fs::read(path)
                .map_err(|e| StoreError(format!("reading {}: {e}", path.display())))?;
            Ok(Some(TlsCertificates {
                client_tls: None,
                root_cert: Some(pem),
            }))
        }
        None => Ok(None),
    }
}

async fn connect(v: &Valkey) -> Result<Conn, StoreError> {
    let certs = certificates(v)?;
    let client = match certs.clone() {
        Some(c) if v.tls => redis::Client::build_with_tls(url(v), c)?,
        _ => redis::Client::open(url(v))?,
    };
    let cluster = match v.cluster {
        ClusterMode::On => true,
        ClusterMode::Off => false,
        ClusterMode::Detect => {
            let mut probe =
                tokio::time::timeout(v.timeout, client.get_multiplexed_async_connection())
                    .await
                    .map_err(|_| StoreError("connection timed out".into()))??;
            let info: String = redis::cmd("INFO")
                .arg("cluster")
                .query_async(&mut probe)
                .await?;
            info.lines().any(|l| l.trim() == "cluster_enabled:1")
        }
    };
    if cluster {
        let mut b = ClusterClientBuilder::new(vec![url(v)])
            .connection_timeout(v.timeout)
            .response_timeout(v.timeout)
            .retries(2);
        if let Some(c) = certs.filter(|_| v.tls) {
            b = b.certs(c);
        }
        let conn = b.build()?.get_async_connection().await?;
        Ok(Conn::Cluster(conn))
    } else {
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(v.timeout)
            .set_response_timeout(v.timeout)
            .set_number_of_retries(1);
        Ok(Conn::Single(
            ConnectionManager::new_with_config(client, cfg).await?,
        ))
    }
}
