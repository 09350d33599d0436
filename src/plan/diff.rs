//! The plan value and how it is computed: desired (spec) vs recorded (state) vs actual
//! (refresh). Per resource: the action, the attributes that change, what forces a
//! replacement, drift, and whether data would be lost.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::desired::{graph_of, Desired, Resource};
use crate::model::{substitute, Action, Address, Attrs, Kind, Reference};
use crate::provider::Observed;
use crate::state::{ResourceState, State};

/// Saved-plan format this build writes.
pub const PLAN_FORMAT: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    Apply,
    Destroy,
}

/// A plan: rendered for humans, printed as JSON, saved and applied exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: u32,
    pub operation: Operation,
    pub project: String,
    pub environment: String,
    pub region: String,
    /// The state this plan was computed against; applying refuses if it moved.
    pub state_lineage: Option<Uuid>,
    pub state_serial: u64,
    /// Whether actual state was read from the cloud.
    pub refreshed: bool,
    /// The AWS account the credentials belong to, when they were checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub targets: Vec<Address>,
    pub summary: Summary,
    /// Every resource considered, dependencies first; deletes last.
    pub changes: Vec<Change>,
    /// The environment's monthly estimate before and after.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<crate::cost::Delta>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub create: usize,
    pub update: usize,
    pub replace: usize,
    pub delete: usize,
    pub unchanged: usize,
    /// Resources whose actual state differs from what was recorded.
    pub drifted: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub address: Address,
    pub kind: Kind,
    pub action: Action,
    /// Why, in words ("not in state", "removed from the spec", "deleted outside deploy").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Attribute-level changes (before → after); `after: null` with `known_after_apply`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attributes: Vec<AttrChange>,
    /// Attributes that force the replacement.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace_because: Vec<String>,
    /// Differences between recorded and actual state found by refresh.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub drift: Vec<AttrChange>,
    /// Replacing or deleting this resource loses data (cache contents, users).
    #[serde(default)]
    pub data_loss: bool,
    /// The spec says `protect: true`: a replace or delete is refused outright.
    #[serde(default)]
    pub protected: bool,
    /// Desired inputs, references unresolved (resolved at apply time from state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Attrs>,
    #[serde(default)]
    pub depends_on: BTreeSet<Address>,
    /// This change deletes the old half of an interrupted create-before-delete.
    #[serde(default)]
    pub deposed: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttrChange {
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    #[serde(default)]
    pub known_after_apply: bool,
    #[serde(default)]
    pub forces_replacement: bool,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        self.changes.iter().any(|c| c.action != Action::NoOp)
    }

    /// Changes refused because they would lose data or touch a protected resource:
    /// (change, whether `--allow-data-loss` would let it through).
    pub fn refusals(&self, allow_data_loss: bool) -> Vec<(&Change, bool)> {
        self.changes
            .iter()
            .filter(|c| c.action.is_replace() || c.action == Action::Delete)
            .filter_map(|c| {
                if c.protected {
                    Some((c, false))
                } else if c.data_loss && !allow_data_loss {
                    Some((c, true))
                } else {
                    None
                }
            })
            .collect()
    }

    fn summarize(&mut self) {
        let mut s = Summary::default();
        for c in &self.changes {
            match c.action {
                Action::NoOp => s.unchanged += 1,
                Action::Create => s.create += 1,
                Action::Update => s.update += 1,
                Action::DeleteBeforeCreate | Action::CreateBeforeDelete => s.replace += 1,
                Action::Delete => s.delete += 1,
            }
            if !c.drift.is_empty() {
                s.drifted += 1;
            }
        }
        self.summary = s;
    }
}

/// What refresh found for each recorded resource (`None`: gone).
pub type Actual = BTreeMap<Address, Option<Observed>>;

/// Everything a plan is computed from.
pub struct Inputs<'a> {
    pub desired: &'a Desired,
    pub state: Option<&'a State>,
    /// `None` for `--no-refresh`.
    pub actual: Option<&'a Actual>,
    pub targets: &'a [Address],
}

/// Computes the plan to make the world match the spec.
pub fn plan(inp: Inputs<'_>) -> Result<Plan, String> {
    let desired = inp.desired;
    let empty = State::new(&desired.project, &desired.environment);
    let state = inp.state.unwrap_or(&empty);

    let scope = target_scope(desired, inp.targets)?;
    let mut changes: Vec<Change> = Vec::new();
    // Per address: the action chosen and the resolved desired inputs (for references
    // to inputs of other resources).
    let mut decided: BTreeMap<Address, (Action, BTreeMap<String, Option<Value>>)> = BTreeMap::new();

    for address in &desired.order {
        if !scope.as_ref().is_none_or(|s| s.contains(address)) {
            continue;
        }
        let res = &desired.resources[address];
        let recorded = state.resources.get(address);
        let (current, drift, gone_reason) =
            current_view(recorded, inp.actual.map(|a| a.get(address)));
        let mut resolved = resolve_inputs(res, desired, &decided, state, inp.actual);
        let mut change = Change {
            address: address.clone(),
            kind: res.kind,
            action: Action::NoOp,
            reason: None,
            attributes: Vec::new(),
            replace_because: Vec::new(),
            drift,
            data_loss: false,
            protected: res.protect,
            after: Some(res.inputs.clone()),
            depends_on: res.depends_on.clone(),
            deposed: false,
        };
        match current {
            None => {
                change.action = Action::Create;
                change.reason = Some(gone_reason.unwrap_or_else(|| {
                    if state.intents.contains_key(address) {
                        "an earlier create was interrupted; it will be adopted if it exists".into()
                    } else {
                        "not in state".into()
                    }
                }));
                change.attributes = resolved
                    .iter()
                    .map(|(k, v)| AttrChange {
                        path: k.clone(),
                        before: None,
                        after: v.clone(),
                        known_after_apply: v.is_none(),
                        forces_replacement: false,
                    })
                    .collect();
            }
            Some(cur) => {
                // A security group that was replaced before carries a suffix
                // (`trivia-dev-lambda-2`): that is still the spec's name.
                let suffixed = (res.kind == Kind::SecurityGroup)
                    .then(|| group_names(cur.get("name"), resolved.get("name")))
                    .flatten();
                if let Some((current, wanted, n)) = &suffixed {
                    if *n > 1 || current == wanted {
                        set_name(&mut resolved, &mut change, current);
                    }
                }
                for (k, v) in &resolved {
                    let before = cur.get(k).cloned();
                    let same = matches!((&before, v), (Some(b), Some(a)) if b == a)
                        || (before.is_none() && v == &Some(Value::Null));
                    if same {
                        continue;
                    }
                    let forces = res.kind.replace_on().contains(&k.as_str());
                    change.attributes.push(AttrChange {
                        path: k.clone(),
                        before,
                        after: v.clone(),
                        known_after_apply: v.is_none(),
                        forces_replacement: forces,
                    });
                    if forces {
                        change.replace_because.push(k.clone());
                    }
                }
                change.action = if !change.replace_because.is_empty() {
                    let keeps_unique = res.kind.unique_on().iter().any(|u| {
                        res.inputs.contains_key(*u)
                            && !change.replace_because.iter().any(|r| r == u)
                    });
                    match &suffixed {
                        // Deleting a group first would wait on every function and
                        // cache still in it: the replacement takes the next suffix
                        // (names are unique per VPC), dependents move to it, then
                        // the old one goes.
                        Some((current, wanted, n)) if keeps_unique => {
                            let next = format!("{wanted}-{}", n + 1);
                            change.attributes.push(AttrChange {
                                path: "name".into(),
                                before: Some(Value::String(current.clone())),
                                after: Some(Value::String(next.clone())),
                                known_after_apply: false,
                                forces_replacement: false,
                            });
                            set_name(&mut resolved, &mut change, &next);
                            Action::CreateBeforeDelete
                        }
                        _ if keeps_unique => Action::DeleteBeforeCreate,
                        _ => Action::CreateBeforeDelete,
                    }
                } else if !change.attributes.is_empty() {
                    Action::Update
                } else {
                    Action::NoOp
                };
                if change.action.is_replace() {
                    change.data_loss = res.kind.stateful();
                    change.reason = Some(format!(
                        "{} cannot change in place",
                        change.replace_because.join(", ")
                    ));
                } else if change.action == Action::Update && !change.drift.is_empty() {
                    change.reason = Some("repairs drift".into());
                } else if change.action == Action::NoOp && recorded.is_some_and(|r| r.pending) {
                    change.action = Action::Update;
                    change.reason =
                        Some("an earlier run stopped before it was ready; wait for it".into());
                } else if let Some(r) = recorded.filter(|r| r.protect != res.protect) {
                    // Recorded so destroy and later plans honour it; AWS is not called.
                    if change.action == Action::NoOp {
                        change.action = Action::Update;
                        change.reason = Some("protection changes (recorded in state only)".into());
                    }
                    change.attributes.push(AttrChange {
                        path: "protect".into(),
                        before: Some(Value::Bool(r.protect)),
                        after: Some(Value::Bool(res.protect)),
                        known_after_apply: false,
                        forces_replacement: false,
                    });
                }
            }
        }
        decided.insert(address.clone(), (change.action, resolved));
        changes.push(change);
    }

    // Recorded resources the spec no longer has, dependents first.
    let doomed: BTreeMap<Address, ResourceState> = state
        .resources
        .iter()
        .filter(|(a, _)| !desired.resources.contains_key(*a))
        .filter(|(a, _)| inp.targets.is_empty() || inp.targets.contains(a))
        .map(|(a, r)| (a.clone(), r.clone()))
        .collect();
    changes.extend(delete_changes(
        &doomed,
        inp.actual,
        false,
        "removed from the spec",
    ));
    let deposed: BTreeMap<Address, ResourceState> = state.deposed.clone();
    changes.extend(delete_changes(
        &deposed,
        inp.actual,
        true,
        "old object left by an interrupted replacement",
    ));

    subnets_can_move(&changes, state)?;

    let mut plan = Plan {
        format: PLAN_FORMAT,
        operation: Operation::Apply,
        project: desired.project.clone(),
        environment: desired.environment.clone(),
        region: desired.region.clone(),
        state_lineage: inp.state.map(|s| s.lineage),
        state_serial: inp.state.map(|s| s.serial).unwrap_or(0),
        refreshed: inp.actual.is_some(),
        account: None,
        targets: inp.targets.to_vec(),
        summary: Summary::default(),
        changes,
        cost: None,
    };
    plan.summarize();
    Ok(plan)
}

/// New subnets are made before old ones go, so functions, the cache and NAT
/// gateways can move to them first (EC2 refuses to delete a subnet with network
/// interfaces in it). A new range that overlaps one leaving in the same plan (a
/// replacement's old range, or a removed subnet's) could only be made after that
/// subnet is deleted, which waits on everything in it: refused at plan time.
fn subnets_can_move(changes: &[Change], state: &State) -> Result<(), String> {
    let cidr = |attrs: Option<&Attrs>| {
        attrs
            .and_then(|a| a.get("cidr_block"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<ipnet::Ipv4Net>().ok())
    };
    let subnets = || changes.iter().filter(|c| c.kind == Kind::Subnet);
    let leaving: Vec<(&Address, ipnet::Ipv4Net)> = subnets()
        .filter(|c| c.action.is_replace() || c.action == Action::Delete)
        .filter_map(|c| {
            let recorded = state.resources.get(&c.address);
            cidr(recorded.map(|r| &r.inputs)).map(|n| (&c.address, n))
        })
        .collect();
    for c in subnets().filter(|c| c.action.is_replace() || c.action == Action::Create) {
        let Some(new) = cidr(c.after.as_ref()) else {
            continue;
        };
        let Some((old_address, old)) = leaving
            .iter()
            .find(|(_, old)| old.contains(&new.network()) || new.contains(&old.network()))
        else {
            continue;
        };
        let how = if *old_address == &c.address {
            format!("its new range {new} overlaps its current range {old}")
        } else {
            format!("its range {new} overlaps {old} of {old_address}, which this plan deletes")
        };
        return Err(format!(
            "{} cannot be made: {how}, so it could only be made after that subnet is \
             deleted, and EC2 refuses that while functions, the cache or a NAT gateway \
             still have network interfaces in it.\n  \
             hint: move it in two applies: first to a range that overlaps no subnet of the \
             VPC (e.g. a free /24), apply; then to the range you want, and apply again",
            c.address
        ));
    }
    Ok(())
}

/// The plan that deletes everything recorded, dependents first.
pub fn plan_destroy(
    project: &str,
    environment: &str,
    region: &str,
    state: Option<&State>,
    actual: Option<&Actual>,
) -> Plan {
    let mut changes = Vec::new();
    if let Some(s) = state {
        changes.extend(delete_changes(
            &s.resources,
            actual,
            false,
            "destroying the environment",
        ));
        changes.extend(delete_changes(
            &s.deposed,
            actual,
            true,
            "old object left by an interrupted replacement",
        ));
    }
    let mut plan = Plan {
        format: PLAN_FORMAT,
        operation: Operation::Destroy,
        project: project.into(),
        environment: environment.into(),
        region: region.into(),
        state_lineage: state.map(|s| s.lineage),
        state_serial: state.map(|s| s.serial).unwrap_or(0),
        refreshed: actual.is_some(),
        account: None,
        targets: Vec::new(),
        summary: Summary::default(),
        changes,
        cost: None,
    };
    plan.summarize();
    plan
}

fn delete_changes(
    resources: &BTreeMap<Address, ResourceState>,
    actual: Option<&Actual>,
    deposed: bool,
    reason: &str,
) -> Vec<Change> {
    // Reverse dependency order among the doomed.
    let as_desired: BTreeMap<Address, Resource> = resources
        .iter()
        .map(|(a, r)| {
            (
                a.clone(),
                Resource {
                    address: a.clone(),
                    kind: r.kind,
                    inputs: Attrs::new(),
                    depends_on: r.depends_on.clone(),
                    protect: r.protect,
                },
            )
        })
        .collect();
    let (g, _) = graph_of(&as_desired);
    let mut order: Vec<Address> = match g.topological() {
        Ok(o) => o.into_iter().map(|i| g.node(i).clone()).collect(),
        Err(_) => resources.keys().cloned().collect(),
    };
    order.reverse();
    order
        .into_iter()
        .map(|a| {
            let r = &resources[&a];
            let gone = !deposed && matches!(actual.map(|x| x.get(&a)), Some(Some(None)));
            Change {
                address: a.clone(),
                kind: r.kind,
                action: Action::Delete,
                reason: Some(if gone {
                    "already deleted outside deploy; only the record goes".into()
                } else {
                    reason.to_string()
                }),
                attributes: Vec::new(),
                replace_because: Vec::new(),
                drift: Vec::new(),
                data_loss: r.kind.stateful() && !gone,
                protected: r.protect && !gone,
                after: None,
                depends_on: r.depends_on.clone(),
                deposed,
            }
        })
        .collect()
}

/// The resource as it is now (actual if refreshed, else recorded), its drift, and why
/// it is missing when it is.
/// A security group's current name, the spec's name for it, and the suffix number the
/// current one carries (1 for none), when the current name is the spec's, suffixed or
/// not.
fn group_names(
    current: Option<&Value>,
    wanted: Option<&Option<Value>>,
) -> Option<(String, String, u32)> {
    let current = current?.as_str()?;
    let wanted = wanted?.as_ref()?.as_str()?;
    if current == wanted {
        return Some((current.into(), wanted.into(), 1));
    }
    let n = current
        .strip_prefix(wanted)?
        .strip_prefix('-')?
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 1)?;
    Some((current.into(), wanted.into(), n))
}

fn set_name(resolved: &mut BTreeMap<String, Option<Value>>, change: &mut Change, name: &str) {
    resolved.insert("name".into(), Some(Value::String(name.into())));
    if let Some(after) = change.after.as_mut() {
        after.insert("name".into(), Value::String(name.into()));
    }
}

fn current_view(
    recorded: Option<&ResourceState>,
    actual: Option<Option<&Option<Observed>>>,
) -> (Option<Attrs>, Vec<AttrChange>, Option<String>) {
    match (recorded, actual) {
        (None, _) => (None, Vec::new(), None),
        (Some(r), None) => (Some(r.inputs.clone()), Vec::new(), None),
        (Some(r), Some(None)) => (Some(r.inputs.clone()), Vec::new(), None),
        (Some(_), Some(Some(None))) => (
            None,
            vec![AttrChange {
                path: "(resource)".into(),
                before: Some(Value::String("exists".into())),
                after: Some(Value::String("deleted".into())),
                known_after_apply: false,
                forces_replacement: false,
            }],
            Some("deleted outside deploy".into()),
        ),
        (Some(r), Some(Some(Some(obs)))) => {
            let drift = r
                .inputs
                .iter()
                .filter_map(|(k, v)| {
                    let now = obs.inputs.get(k);
                    (now.is_some() && now != Some(v)).then(|| AttrChange {
                        path: k.clone(),
                        before: Some(v.clone()),
                        after: now.cloned(),
                        known_after_apply: false,
                        forces_replacement: false,
                    })
                })
                .collect();
            // Compare the desired state against what is really there, falling back to
            // the record for attributes the provider does not report.
            let mut cur = r.inputs.clone();
            cur.extend(
                obs.inputs
                    .iter()
                    .filter(|(k, _)| r.inputs.contains_key(*k))
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            (Some(cur), drift, None)
        }
    }
}

/// Desired inputs with references replaced by values known now; `None` where the
/// value is only known after apply.
fn resolve_inputs(
    res: &Resource,
    desired: &Desired,
    decided: &BTreeMap<Address, (Action, BTreeMap<String, Option<Value>>)>,
    state: &State,
    actual: Option<&Actual>,
) -> BTreeMap<String, Option<Value>> {
    let lookup = |r: &Reference| -> Option<Value> {
        let kind = desired.resources.get(&r.address)?.kind;
        let decision = decided.get(&r.address);
        if kind.outputs().contains(&r.attribute.as_str()) {
            // Outputs survive an update; a create or replace makes new ones.
            if decision.is_some_and(|(a, _)| !matches!(a, Action::NoOp | Action::Update)) {
                return None;
            }
            let observed = actual
                .and_then(|a| a.get(&r.address))
                .and_then(Option::as_ref);
            match observed {
                Some(o) => o.outputs.get(&r.attribute).cloned(),
                None => state
                    .resources
                    .get(&r.address)?
                    .outputs
                    .get(&r.attribute)
                    .cloned(),
            }
        } else {
            match decision {
                Some((_, resolved)) => resolved.get(&r.attribute).cloned().flatten(),
                None => state
                    .resources
                    .get(&r.address)?
                    .inputs
                    .get(&r.attribute)
                    .cloned(),
            }
        }
    };
    res.inputs
        .iter()
        .map(|(k, v)| {
            let resolved = substitute(v, &lookup).map(|x| crate::model::stringify(res.kind, k, x));
            (k.clone(), resolved)
        })
        .collect()
}

/// With `--target`, the targeted resources and everything they depend on.
fn target_scope(
    desired: &Desired,
    targets: &[Address],
) -> Result<Option<BTreeSet<Address>>, String> {
    if targets.is_empty() {
        return Ok(None);
    }
    let (g, ids) = graph_of(&desired.resources);
    let mut roots = Vec::new();
    for t in targets {
        // A target may name a resource or a prefix of addresses (`network`, `function.api`).
        let matched: Vec<usize> = ids
            .iter()
            .filter(|(a, _)| a.as_str() == t.as_str() || a.as_str().starts_with(&format!("{t}.")))
            .map(|(_, &i)| i)
            .collect();
        if matched.is_empty() {
            let hint = crate::spec::diag::did_you_mean(
                t.as_str(),
                desired.resources.keys().map(Address::as_str),
            )
            .map(|s| format!(" (did you mean `{s}`?)"))
            .unwrap_or_default();
            return Err(format!(
                "--target `{t}` matches no resource of this environment{hint}"
            ));
        }
        roots.extend(matched);
    }
    Ok(Some(
        g.closure(roots)
            .into_iter()
            .map(|i| g.node(i).clone())
            .collect(),
    ))
}
