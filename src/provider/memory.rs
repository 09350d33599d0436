//! An in-memory cloud for engine tests. Its behaviour under test is set with closures:
//! each call can be made to fail with any error class, throttle, lag (stay pending for
//! a number of polls) or "crash" — stop the whole run at that point, as if the process
//! had been killed, after the cloud has done its part.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::Notify;

use super::{
    Deletion, ErrorClass, Observed, Provider, ProviderError, Providers, Readiness, Target,
};
use crate::model::{Attrs, Kind};

/// One call into the cloud, as the fault closure sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: Op,
    pub kind: Kind,
    /// The `deploy:address` of the resource, when the cloud knows it.
    pub address: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Read,
    Find,
    List,
    Create,
    Update,
    Delete,
    Wait,
}

impl Op {
    pub fn mutates(self) -> bool {
        matches!(self, Op::Create | Op::Update | Op::Delete)
    }
}

/// What the fault closure decides for a call.
#[derive(Debug, Clone, Default)]
pub enum Fault {
    #[default]
    None,
    /// Fail before doing anything.
    Fail(ProviderError),
    /// Do the work, then stop the run (the result never reaches the engine).
    CrashAfter,
    /// Do the work, then fail with this error: the response was lost on the way back
    /// (a timeout or a 5xx after the cloud acted).
    LoseResponse(ProviderError),
}

/// What happens once the cloud has done a call's work.
enum After {
    Answer,
    Crash,
    Lose(ProviderError),
}

impl After {
    /// Crashes or loses the response as decided; otherwise hands back `value`.
    async fn deliver<T>(self, cloud: &MemoryCloud, value: T) -> Result<T, ProviderError> {
        match self {
            After::Answer => Ok(value),
            After::Crash => cloud.crash().await,
            After::Lose(e) => Err(e),
        }
    }
}

type FaultFn = dyn Fn(&Call) -> Fault + Send + Sync;
type LagFn = dyn Fn(Kind) -> u32 + Send + Sync;

#[derive(Debug, Clone)]
struct Object {
    kind: Kind,
    address: String,
    tags: BTreeMap<String, String>,
    inputs: Attrs,
    outputs: Attrs,
    /// Polls of `wait` left before it reports ready.
    pending_polls: u32,
}

/// The shared in-memory cloud.
pub struct MemoryCloud {
    objects: Mutex<BTreeMap<String, Object>>,
    next_id: AtomicU64,
    fault: Mutex<Arc<FaultFn>>,
    lag: Mutex<Arc<LagFn>>,
    calls: Mutex<Vec<Call>>,
    crashed: Notify,
    client_tokens: Mutex<BTreeMap<String, String>>,
    in_use: std::sync::atomic::AtomicBool,
}

impl Default for MemoryCloud {
    fn default() -> Self {
        Self {
            objects: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
            fault: Mutex::new(Arc::new(|_: &Call| Fault::None)),
            lag: Mutex::new(Arc::new(|_: Kind| 0)),
            calls: Mutex::new(Vec::new()),
            crashed: Notify::new(),
            client_tokens: Mutex::new(BTreeMap::new()),
            in_use: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

impl MemoryCloud {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Providers for every kind, all backed by this cloud.
    pub fn providers(self: &Arc<Self>) -> Providers {
        let mut p = Providers::new();
        for kind in Kind::ALL {
            p.insert(
                kind,
                Arc::new(MemoryProvider {
                    kind,
                    cloud: self.clone(),
                }),
            );
        }
        p
    }

    /// Sets the closure that decides each call's fault.
    pub fn set_fault(&self, f: impl Fn(&Call) -> Fault + Send + Sync + 'static) {
        *self.fault.lock().unwrap() = Arc::new(f);
    }

    /// Sets how many `wait` polls a new or updated resource of each kind stays pending.
    pub fn set_lag(&self, f: impl Fn(Kind) -> u32 + Send + Sync + 'static) {
        *self.lag.lock().unwrap() = Arc::new(f);
    }

    /// From now on, deleting an object that another object's inputs name fails with
    /// `DependencyViolation`, as EC2 refuses to delete a security group or subnet a
    /// function or cache still uses.
    pub fn model_in_use(&self) {
        self.in_use.store(true, Ordering::SeqCst);
    }

    /// Everything still settling becomes ready (time passed in the cloud).
    pub fn finish_pending(&self) {
        for o in self.objects.lock().unwrap().values_mut() {
            o.pending_polls = 0;
        }
    }

    /// Resolves when a call crashed the run.
    pub async fn crashed(&self) {
        self.crashed.notified().await
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn clear_calls(&self) {
        self.calls.lock().unwrap().clear();
    }

    /// Number of live objects of `kind`.
    pub fn count(&self, kind: Kind) -> usize {
        self.objects
            .lock()
            .unwrap()
            .values()
            .filter(|o| o.kind == kind)
            .count()
    }

    /// Every live object as (address tag, kind, id).
    pub fn inventory(&self) -> Vec<(String, Kind, String)> {
        self.objects
            .lock()
            .unwrap()
            .iter()
            .map(|(id, o)| (o.address.clone(), o.kind, id.clone()))
            .collect()
    }

    /// Changes an input behind the tool's back, as a console user would.
    pub fn tamper(&self, address: &str, key: &str, value: serde_json::Value) {
        let mut objects = self.objects.lock().unwrap();
        let o = objects
            .values_mut()
            .find(|o| o.address == address)
            .expect("tampered object exists");
        o.inputs.insert(key.into(), value);
    }

    /// Deletes an object behind the tool's back.
    pub fn remove_out_of_band(&self, address: &str) {
        self.objects
            .lock()
            .unwrap()
            .retain(|_, o| o.address != address);
    }

    async fn enter(
        &self,
        op: Op,
        kind: Kind,
        address: Option<String>,
    ) -> Result<After, ProviderError> {
        let call = Call { op, kind, address };
        self.calls.lock().unwrap().push(call.clone());
        let f = self.fault.lock().unwrap().clone();
        match f(&call) {
            Fault::None => Ok(After::Answer),
            Fault::Fail(e) => Err(e),
            Fault::CrashAfter => Ok(After::Crash),
            Fault::LoseResponse(e) => Ok(After::Lose(e)),
        }
    }

    /// After the cloud did its part of a crashing call: signal and never return.
    async fn crash(&self) -> ! {
        self.crashed.notify_waiters();
        self.crashed.notify_one();
        std::future::pending::<()>().await;
        unreachable!("a crashed call never resumes")
    }

    fn address_of(&self, id: &str) -> Option<String> {
        self.objects
            .lock()
            .unwrap()
            .get(id)
            .map(|o| o.address.clone())
    }
}

fn outputs_for(kind: Kind, id: &str, inputs: &Attrs) -> Attrs {
    let mut out = Attrs::new();
    out.insert("id".into(), id.into());
    let name = inputs.get("name").and_then(|v| v.as_str()).unwrap_or(id);
    let arn = format!(
        "arn:aws:memory:us-east-1:000000000000:{}/{name}",
        kind.as_str()
    );
    for key in kind.outputs() {
        let v = match *key {
            "id" => continue,
            "arn" | "execution_arn" => arn.clone().into(),
            "alias_arn" => format!("{arn}:live").into(),
            "endpoint" | "reader_endpoint" => format!("{name}.serverless.memory.cache").into(),
            "port" => 6379.into(),
            "reader_port" => 6380.into(),
            "version" => 1.into(),
            "invoke_url" => format!("https://{id}.execute-api.memory/v1/").into(),
            "issuer" => format!("https://cognito-idp.memory/{id}").into(),
            "jwks_url" => format!("https://cognito-idp.memory/{id}/.well-known/jwks.json").into(),
            "public_ip" => "203.0.113.10".into(),
            other => format!("{other}-{id}").into(),
        };
        out.insert(key.to_string(), v);
    }
    out
}

/// One kind's view of the memory cloud.
pub struct MemoryProvider {
    kind: Kind,
    cloud: Arc<MemoryCloud>,
}

impl MemoryProvider {
    fn observed(&self, id: &str, o: &Object) -> Observed {
        let mut inputs = o.inputs.clone();
        inputs.insert(
            "tags".into(),
            serde_json::to_value(&o.tags).expect("tags serialize"),
        );
        Observed {
            id: id.into(),
            inputs,
            outputs: o.outputs.clone(),
        }
    }
}

#[async_trait]
impl Provider for MemoryProvider {
    async fn read(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        self.cloud
            .enter(Op::Read, self.kind, self.cloud.address_of(id))
            .await?;
        let objects = self.cloud.objects.lock().unwrap();
        Ok(objects
            .get(id)
            .filter(|o| o.kind == self.kind)
            .map(|o| self.observed(id, o)))
    }

    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError> {
        self.cloud
            .enter(Op::Find, self.kind, Some(target.address.to_string()))
            .await?;
        let objects = self.cloud.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|(_, o)| {
                o.kind == self.kind
                    && o.tags.get("deploy:address").map(String::as_str)
                        == Some(target.address.as_str())
            })
            .map(|(id, o)| self.observed(id, o))
            .collect())
    }

    async fn list(&self, want: &BTreeMap<String, String>) -> Result<Vec<Observed>, ProviderError> {
        self.cloud.enter(Op::List, self.kind, None).await?;
        // As on AWS: app clients carry no tags, so a listing by tags finds none.
        if self.kind == Kind::UserPoolClient {
            return Ok(Vec::new());
        }
        let objects = self.cloud.objects.lock().unwrap();
        Ok(objects
            .iter()
            .filter(|(_, o)| {
                o.kind == self.kind && want.iter().all(|(k, v)| o.tags.get(k) == Some(v))
            })
            .map(|(id, o)| self.observed(id, o))
            .collect())
    }

    fn create_is_idempotent(&self) -> bool {
        self.kind == Kind::NatGateway
    }

    async fn create(
        &self,
        target: &Target<'_>,
        inputs: &Attrs,
        client_token: &str,
    ) -> Result<Observed, ProviderError> {
        let then = self
            .cloud
            .enter(Op::Create, self.kind, Some(target.address.to_string()))
            .await?;
        let observed = {
            // A repeated client token returns the first create's resource, as
            // CreateNatGateway does; most AWS create calls take no token.
            let honours_token = self.kind == Kind::NatGateway;
            if let Some(id) = self
                .cloud
                .client_tokens
                .lock()
                .unwrap()
                .get(client_token)
                .cloned()
                .filter(|_| honours_token)
            {
                let objects = self.cloud.objects.lock().unwrap();
                if let Some(o) = objects.get(&id) {
                    return Ok(self.observed(&id, o));
                }
            }
            let mut objects = self.cloud.objects.lock().unwrap();
            if let Some(name) = inputs.get("name").filter(|_| {
                !self.kind.unique_on().is_empty() && self.kind.unique_on().contains(&"name")
            }) {
                if objects
                    .values()
                    .any(|o| o.kind == self.kind && o.inputs.get("name") == Some(name))
                {
                    return Err(ProviderError::new(
                        ErrorClass::Fatal,
                        format!("a {} named {name} already exists", self.kind),
                    )
                    .with_code("AlreadyExists"));
                }
            }
            // EC2: an Elastic IP belongs to one NAT gateway at a time.
            if let Some(eip) = inputs
                .get("allocation_id")
                .filter(|_| self.kind == Kind::NatGateway)
            {
                if objects.values().any(|o| {
                    o.kind == Kind::NatGateway && o.inputs.get("allocation_id") == Some(eip)
                }) {
                    return Err(ProviderError::new(
                        ErrorClass::Fatal,
                        format!("Resource {eip} is already associated"),
                    )
                    .with_code("Resource.AlreadyAssociated"));
                }
            }
            let id = format!(
                "{}-{:04}",
                self.kind.as_str(),
                self.cloud.next_id.fetch_add(1, Ordering::SeqCst)
            );
            let mut clean = inputs.clone();
            clean.remove("tags");
            let o = Object {
                kind: self.kind,
                address: target.address.to_string(),
                tags: target.tags.clone(),
                outputs: outputs_for(self.kind, &id, &clean),
                inputs: clean,
                pending_polls: (self.cloud.lag.lock().unwrap())(self.kind),
            };
            let observed = self.observed(&id, &o);
            objects.insert(id.clone(), o);
            self.cloud
                .client_tokens
                .lock()
                .unwrap()
                .insert(client_token.into(), id);
            observed
        };
        then.deliver(&self.cloud, observed).await
    }

    async fn update(
        &self,
        id: &str,
        _before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        let then = self
            .cloud
            .enter(Op::Update, self.kind, self.cloud.address_of(id))
            .await?;
        let observed = {
            let mut objects = self.cloud.objects.lock().unwrap();
            let lag = (self.cloud.lag.lock().unwrap())(self.kind);
            let o = objects.get_mut(id).ok_or_else(|| {
                ProviderError::not_found(format!("{} {id} does not exist", self.kind))
            })?;
            let mut clean = after.clone();
            if let Some(tags) = clean.remove("tags") {
                o.tags = serde_json::from_value(tags).unwrap_or_default();
            }
            o.inputs = clean;
            o.pending_polls = lag;
            self.observed(id, o)
        };
        then.deliver(&self.cloud, observed).await
    }

    async fn delete(&self, id: &str, _inputs: &Attrs) -> Result<Deletion, ProviderError> {
        let then = self
            .cloud
            .enter(Op::Delete, self.kind, self.cloud.address_of(id))
            .await?;
        // A NAT gateway routes still name can be deleted (the routes go blackhole).
        if self.cloud.in_use.load(Ordering::SeqCst) && self.kind != Kind::NatGateway {
            let objects = self.cloud.objects.lock().unwrap();
            let quoted = format!("\"{id}\"");
            if let Some((user, _)) = objects.iter().find(|(other, o)| {
                *other != id
                    && serde_json::to_string(&o.inputs)
                        .unwrap_or_default()
                        .contains(&quoted)
            }) {
                return Err(ProviderError::new(
                    ErrorClass::Conflict,
                    format!("resource {id} has a dependent object ({user})"),
                )
                .with_code("DependencyViolation"));
            }
        }
        let existed = self.cloud.objects.lock().unwrap().remove(id).is_some();
        then.deliver(&self.cloud, ()).await?;
        if existed {
            Ok(Deletion::Done)
        } else {
            Err(ProviderError::not_found(format!(
                "{} {id} does not exist",
                self.kind
            )))
        }
    }

    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError> {
        self.cloud
            .enter(Op::Wait, self.kind, self.cloud.address_of(id))
            .await?;
        let mut objects = self.cloud.objects.lock().unwrap();
        let o = objects.get_mut(id).ok_or_else(|| {
            ProviderError::not_found(format!("{} {id} does not exist", self.kind))
        })?;
        if o.pending_polls > 0 {
            o.pending_polls -= 1;
            return Ok(Readiness::Pending("creating".into()));
        }
        let o = o.clone();
        Ok(Readiness::Ready(self.observed(id, &o)))
    }
}
