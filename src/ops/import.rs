//! `deploy import`: an AWS resource made outside deploy is recorded at the spec's
//! address, as the cloud describes it, so the next plan shows only how it differs
//! from the spec. A security group brings its rules along (they are separate
//! addresses), so the next plan does not try to add rules it already has.

use std::collections::BTreeMap;

use serde_json::Value;

use super::OpsError;
use crate::engine;
use crate::model::{Address, Attrs, Kind};
use crate::plan::desired::{Desired, Resource};
use crate::provider::{Observed, Providers};
use crate::state::{Backend, ResourceState, State};

/// What an import recorded.
#[derive(Debug)]
pub struct Imported {
    pub address: Address,
    pub kind: Kind,
    pub id: String,
    /// What came with it: the rules of a security group matched to the spec's rules,
    /// the app clients of a user pool found by their spec names.
    pub rules: Vec<(Address, String)>,
    /// The group's rules the spec does not have (the next plan deletes nothing it
    /// does not record: they stay, unmanaged).
    pub unmatched_rules: Vec<String>,
    pub serial: u64,
}

fn refuse(message: String) -> OpsError {
    OpsError::Refused(message)
}

fn tags_of(o: &Observed) -> BTreeMap<String, String> {
    o.inputs
        .get("tags")
        .and_then(Value::as_object)
        .map(|t| {
            t.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

async fn read(providers: &Providers, kind: Kind, id: &str) -> Result<Option<Observed>, OpsError> {
    let p = providers
        .get(kind)
        .map_err(|e| OpsError::Cloud(e.to_string()))?;
    engine::retry(&engine::RetryPolicy::default(), || p.read(id), |_, _, _| {})
        .await
        .map_err(|e| OpsError::Cloud(format!("cannot read {kind} `{id}`: {e}")))
}

/// Records the resource `id` at `address` (one of `desired`'s), under the lock.
/// Refuses, changing nothing, when the address is not the spec's or already recorded,
/// when nothing has that id, when it is recorded at another address, or when its
/// `deploy:*` tags say it belongs to another environment or project.
pub async fn import(
    backend: &Backend,
    desired: &Desired,
    providers: &Providers,
    address: &Address,
    id: &str,
) -> Result<Imported, OpsError> {
    let environment = &desired.environment;
    let Some(res) = desired.resources.get(address) else {
        let hint = crate::spec::diag::did_you_mean(
            address.as_str(),
            desired.resources.keys().map(Address::as_str),
        )
        .map(|s| format!("\n  hint: did you mean `{s}`?"))
        .unwrap_or_else(|| "\n  hint: `deploy plan` lists the spec's addresses".into());
        return Err(refuse(format!(
            "`{address}` is not an address in the spec of `{environment}`; nothing was imported{hint}"
        )));
    };
    let _lock = backend.lock(environment, "import")?;
    let mut state = backend
        .read(environment)?
        .unwrap_or_else(|| State::new(&desired.project, environment));
    if let Some(r) = state.resources.get(address) {
        return Err(refuse(format!(
            "`{address}` is already recorded (id `{}`); nothing was imported\n  hint: `deploy state rm {address}` first to record another resource there",
            r.id
        )));
    }
    if let Some((other, _)) = state
        .resources
        .iter()
        .find(|(_, r)| r.kind == res.kind && r.id == id)
    {
        return Err(refuse(format!(
            "{} `{id}` is already recorded at `{other}`; nothing was imported\n  hint: `deploy state mv {other} {address}` renames it instead",
            res.kind
        )));
    }
    let Some(found) = read(providers, res.kind, id).await? else {
        return Err(refuse(format!(
            "there is no {} `{id}` in {} (AWS says it does not exist); nothing was imported",
            res.kind, desired.region
        )));
    };
    let tags = tags_of(&found);
    for (key, ours) in [
        ("deploy:environment", environment),
        ("deploy:project", &desired.project),
    ] {
        if let Some(theirs) = tags.get(key).filter(|t| *t != ours) {
            return Err(refuse(format!(
                "{} `{id}` is tagged {key}={theirs}: it belongs to another {}, not `{ours}`; nothing was imported\n  hint: import it where it belongs, or remove its deploy:* tags first if it really moved",
                res.kind,
                key.trim_start_matches("deploy:")
            )));
        }
    }
    state.resources.insert(address.clone(), record(res, &found));
    let (rules, unmatched_rules) = match res.kind {
        Kind::SecurityGroup => {
            adopt_rules(desired, providers, &mut state, address, &found.id).await?
        }
        Kind::UserPool => (
            super::adopt_app_clients(&mut state, desired, providers).await?,
            Vec::new(),
        ),
        _ => (Vec::new(), Vec::new()),
    };
    backend.write(&mut state)?;
    Ok(Imported {
        address: address.clone(),
        kind: res.kind,
        id: found.id,
        rules,
        unmatched_rules,
        serial: state.serial,
    })
}

fn record(res: &Resource, found: &Observed) -> ResourceState {
    ResourceState {
        kind: res.kind,
        id: found.id.clone(),
        inputs: found.inputs.clone(),
        outputs: found.outputs.clone(),
        depends_on: res.depends_on.clone(),
        protect: res.protect,
        pending: false,
    }
}

/// Records the spec's rules of the group `address` that the group already has in AWS.
/// A rule whose peer group is not recorded yet cannot be matched and is left to the
/// plan (it creates it; import the peer group first to avoid that).
async fn adopt_rules(
    desired: &Desired,
    providers: &Providers,
    state: &mut State,
    address: &Address,
    group_id: &str,
) -> Result<(Vec<(Address, String)>, Vec<String>), OpsError> {
    let p = providers
        .get(Kind::SecurityGroupRule)
        .map_err(|e| OpsError::Cloud(e.to_string()))?;
    let existing = engine::retry(
        &engine::RetryPolicy::default(),
        || p.within(group_id),
        |_, _, _| {},
    )
    .await
    .map_err(|e| OpsError::Cloud(format!("cannot list the rules of `{group_id}`: {e}")))?;
    let resolve = |inputs: &Attrs| -> Option<Attrs> {
        let lookup = |r: &crate::model::Reference| -> Option<Value> {
            let rec = state.resources.get(&r.address)?;
            if r.attribute == "id" {
                Some(Value::String(rec.id.clone()))
            } else {
                rec.outputs
                    .get(&r.attribute)
                    .or_else(|| rec.inputs.get(&r.attribute))
                    .cloned()
            }
        };
        inputs
            .iter()
            .map(|(k, v)| Some((k.clone(), crate::model::substitute(v, &lookup)?)))
            .collect()
    };
    let same = |a: &Attrs, b: &Attrs| {
        crate::kinds::network::RULE_IDENTITY.iter().all(|k| {
            let norm = |v: Option<&Value>| match v {
                None | Some(Value::Null) => Value::Null,
                Some(Value::Number(n)) => Value::String(n.to_string()),
                Some(v) => v.clone(),
            };
            // An all-protocols rule has no ports.
            if (*k == "from_port" || *k == "to_port")
                && a.get("protocol").and_then(Value::as_str) == Some("-1")
            {
                return true;
            }
            norm(a.get(*k)) == norm(b.get(*k))
        })
    };
    let wanted: Vec<(Address, Resource, Attrs)> = desired
        .resources
        .values()
        .filter(|r| r.kind == Kind::SecurityGroupRule && r.depends_on.contains(address))
        .filter(|r| !state.resources.contains_key(&r.address))
        .filter_map(|r| Some((r.address.clone(), r.clone(), resolve(&r.inputs)?)))
        .filter(|(_, _, inputs)| inputs.get("group_id").and_then(Value::as_str) == Some(group_id))
        .collect();
    let mut matched = Vec::new();
    let mut unmatched = Vec::new();
    for rule in &existing {
        match wanted.iter().find(|(a, _, inputs)| {
            same(inputs, &rule.inputs) && !matched.iter().any(|(m, _)| m == a)
        }) {
            Some((a, res, _)) => {
                state.resources.insert(a.clone(), record(res, rule));
                matched.push((a.clone(), rule.id.clone()));
            }
            None => unmatched.push(rule.id.clone()),
        }
    }
    Ok((matched, unmatched))
}
