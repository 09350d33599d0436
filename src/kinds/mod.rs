//! Every resource kind's typed inputs and outputs, with what planning needs to know
//! about them declared next to the fields: which inputs force a replacement, which must
//! be unique, which the service stores as strings, whether the resource holds data.
//!
//! The planner builds these structs from the spec and providers take them apart
//! (exhaustively, so a field a provider ignores does not compile). The plan, the diff
//! and the state keep the generic attribute view ([`Attrs`]) the structs convert to
//! and from; `tags` stay outside the structs, as every kind has them.

pub mod api;
pub mod cache;
pub mod functions;
pub mod iam;
pub mod identity;
pub mod network;
pub mod parameters;
pub mod schedules;

use std::fmt::Debug;

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::model::{Attrs, Kind};
use crate::provider::ProviderError;

/// A kind's inputs: what the spec decides about one resource.
pub trait Inputs: Serialize + DeserializeOwned + Debug + Clone + PartialEq + Send + Sync {
    const KIND: Kind;
    /// Inputs AWS cannot change in place: a change replaces the resource.
    const REPLACE_ON: &'static [&'static str];
    /// Inputs that must be unique in the account (or VPC). If a replacement keeps
    /// them, the old resource must go before the new one can exist.
    const UNIQUE_ON: &'static [&'static str] = &[];
    /// Inputs the service stores as strings: references resolved into them become
    /// strings (a port published to SSM is `"6379"`), so plans compare like with like.
    const STRING_INPUTS: &'static [&'static str] = &[];
    /// Whether replacing or deleting it loses data (cache contents, user accounts).
    const STATEFUL: bool = false;

    /// Attributes AWS assigns, known only after apply.
    type Outputs: Outputs;

    /// A value with every field filled in (optional ones too): the round-trip tests
    /// use it, and [`Inputs::from_recorded`] learns the field names from it.
    fn example() -> Self;

    /// The attribute view the plan renders and the state stores (without `tags`).
    fn to_attrs(&self) -> Attrs {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m.into_iter().collect(),
            _ => unreachable!("inputs are structs"),
        }
    }

    /// The inputs back from their attribute view; `tags` are left aside.
    fn from_attrs(attrs: &Attrs) -> Result<Self, ProviderError> {
        let map: serde_json::Map<String, Value> = attrs
            .iter()
            .filter(|(k, _)| k.as_str() != "tags")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        serde_json::from_value(Value::Object(map))
            .map_err(|e| ProviderError::fatal(format!("{} inputs do not fit: {e}", Self::KIND)))
    }

    /// Inputs as recorded in state or read back from AWS (an update's `before`, a
    /// delete's inputs): keys this version does not know (written by an earlier one)
    /// are left out rather than refused. The planner's own inputs go through the
    /// strict [`Inputs::from_attrs`].
    fn from_recorded(attrs: &Attrs) -> Result<Self, ProviderError> {
        let known = Self::example().to_attrs();
        let kept: Attrs = attrs
            .iter()
            .filter(|(k, _)| known.contains_key(k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Self::from_attrs(&kept)
    }
}

/// Whether any of `keys` differs between `before` (recorded, or read back from AWS)
/// and `after` (planned). A key `before` lacks counts as changed: reads do not see
/// every input (a function's crate, a rule's lost target), and sending a value again
/// is safe where skipping a needed change is not.
pub fn changed(before: &Attrs, after: &Attrs, keys: &[&str]) -> bool {
    keys.iter().any(|k| before.get(*k) != after.get(*k))
}

/// A kind's outputs: what AWS assigned.
pub trait Outputs: Serialize + DeserializeOwned + Debug + Clone + PartialEq {
    /// Their names, for references and "known after apply".
    const NAMES: &'static [&'static str];

    fn example() -> Self;

    fn to_attrs(&self) -> Attrs {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m.into_iter().collect(),
            _ => unreachable!("outputs are structs"),
        }
    }
}

/// Outputs of kinds that are known by their id alone.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdOutputs {
    pub id: String,
}

impl Outputs for IdOutputs {
    const NAMES: &'static [&'static str] = &["id"];
    fn example() -> Self {
        Self {
            id: "id-0001".into(),
        }
    }
}

/// Outputs of kinds known by an id and an ARN.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArnOutputs {
    pub id: String,
    pub arn: String,
}

impl Outputs for ArnOutputs {
    const NAMES: &'static [&'static str] = &["id", "arn"];
    fn example() -> Self {
        Self {
            id: "id-0001".into(),
            arn: "arn:aws:service:us-east-1:123456789012:thing/id-0001".into(),
        }
    }
}

/// Runs `$body` with `$T` bound to the inputs type of `$kind`.
macro_rules! with_inputs {
    ($kind:expr, $T:ident => $body:expr) => {
        match $kind {
            Kind::Vpc => {
                type $T = network::VpcInputs;
                $body
            }
            Kind::Subnet => {
                type $T = network::SubnetInputs;
                $body
            }
            Kind::InternetGateway => {
                type $T = network::InternetGatewayInputs;
                $body
            }
            Kind::ElasticIp => {
                type $T = network::ElasticIpInputs;
                $body
            }
            Kind::NatGateway => {
                type $T = network::NatGatewayInputs;
                $body
            }
            Kind::RouteTable => {
                type $T = network::RouteTableInputs;
                $body
            }
            Kind::SecurityGroup => {
                type $T = network::SecurityGroupInputs;
                $body
            }
            Kind::SecurityGroupRule => {
                type $T = network::SecurityGroupRuleInputs;
                $body
            }
            Kind::ServerlessCache => {
                type $T = cache::ServerlessCacheInputs;
                $body
            }
            Kind::SsmParameter => {
                type $T = parameters::SsmParameterInputs;
                $body
            }
            Kind::IamRole => {
                type $T = iam::IamRoleInputs;
                $body
            }
            Kind::LambdaFunction => {
                type $T = functions::LambdaFunctionInputs;
                $body
            }
            Kind::LogGroup => {
                type $T = functions::LogGroupInputs;
                $body
            }
            Kind::UserPool => {
                type $T = identity::UserPoolInputs;
                $body
            }
            Kind::UserPoolClient => {
                type $T = identity::UserPoolClientInputs;
                $body
            }
            Kind::RestApi => {
                type $T = api::RestApiInputs;
                $body
            }
            Kind::ScheduleRule => {
                type $T = schedules::ScheduleRuleInputs;
                $body
            }
        }
    };
}

/// What [`Inputs`] declares, for a kind known only at run time.
#[derive(Debug, Clone, Copy)]
pub struct Declared {
    pub replace_on: &'static [&'static str],
    pub unique_on: &'static [&'static str],
    pub string_inputs: &'static [&'static str],
    pub stateful: bool,
    pub outputs: &'static [&'static str],
}

pub fn declared(kind: Kind) -> Declared {
    fn of<T: Inputs>() -> Declared {
        Declared {
            replace_on: T::REPLACE_ON,
            unique_on: T::UNIQUE_ON,
            string_inputs: T::STRING_INPUTS,
            stateful: T::STATEFUL,
            outputs: <T::Outputs as Outputs>::NAMES,
        }
    }
    with_inputs!(kind, T => of::<T>())
}

/// Whether `attrs` (a planned or recorded resource's inputs) fit `kind`'s struct and
/// come back unchanged: nothing the planner sets is unknown to the provider.
pub fn check_round_trip(kind: Kind, attrs: &Attrs) -> Result<(), String> {
    fn of<T: Inputs>(attrs: &Attrs) -> Result<(), String> {
        let typed = T::from_attrs(attrs).map_err(|e| e.to_string())?;
        let mut back = typed.to_attrs();
        if let Some(tags) = attrs.get("tags") {
            back.insert("tags".into(), tags.clone());
        }
        if &back == attrs {
            Ok(())
        } else {
            Err(format!(
                "{} inputs change on a round trip: {attrs:?} became {back:?}",
                T::KIND
            ))
        }
    }
    with_inputs!(kind, T => of::<T>(attrs))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T: Inputs>() {
        let example = T::example();
        let attrs = example.to_attrs();
        assert_eq!(T::from_attrs(&attrs).unwrap(), example, "{}", T::KIND);
        let outputs = <T::Outputs as Outputs>::example();
        let keys: Vec<String> = outputs.to_attrs().into_keys().collect();
        let mut names: Vec<String> = <T::Outputs as Outputs>::NAMES
            .iter()
            .map(|s| s.to_string())
            .collect();
        names.sort();
        assert_eq!(keys, names, "{} outputs name their fields", T::KIND);
        // What is declared about the inputs names real fields.
        for key in T::REPLACE_ON
            .iter()
            .chain(T::UNIQUE_ON)
            .chain(T::STRING_INPUTS)
        {
            assert!(
                attrs.contains_key(*key),
                "{}: `{key}` is declared but is no field",
                T::KIND
            );
        }
        // An unknown field is an error, not ignored; in recorded inputs it is left out.
        let mut extra = attrs.clone();
        extra.insert("surprise".into(), Value::Bool(true));
        assert!(T::from_attrs(&extra).is_err(), "{}", T::KIND);
        assert_eq!(T::from_recorded(&extra).unwrap(), example, "{}", T::KIND);
    }

    #[test]
    fn every_kind_round_trips_through_its_attribute_view() {
        for kind in Kind::ALL {
            with_inputs!(kind, T => round_trip::<T>());
        }
    }

    /// What the planner makes of every environment of this repository fits the
    /// kinds' structs exactly: no input the planner sets is unknown to the struct
    /// (and so to the provider that takes it apart).
    #[test]
    fn the_planners_inputs_fit_their_kinds_exactly() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("environments");
        let mut seen = std::collections::BTreeSet::new();
        for env in crate::spec::list_environments(&dir) {
            let path = crate::spec::resolve(&env, &dir);
            let (_, mut desired) = crate::plan::load_desired(&path)
                .unwrap_or_else(|d| panic!("{env}: {}", crate::render::diagnostics(&d)));
            desired.set_code("api", "c2hhMjU2");
            for r in desired.resources.values() {
                check_round_trip(r.kind, &r.inputs)
                    .unwrap_or_else(|e| panic!("{env} {}: {e}", r.address));
                seen.insert(r.kind);
            }
        }
        assert_eq!(
            seen.len(),
            Kind::ALL.len(),
            "every kind is planned somewhere"
        );
    }

    #[test]
    fn a_key_before_lacks_counts_as_changed() {
        let after = network::SubnetInputs::example().to_attrs();
        let mut before = after.clone();
        assert!(!changed(
            &before,
            &after,
            &["map_public_ip_on_launch", "name"]
        ));
        before.remove("map_public_ip_on_launch");
        assert!(changed(&before, &after, &["map_public_ip_on_launch"]));
        assert!(!changed(&before, &after, &["name"]));
    }

    #[test]
    fn tags_stay_outside_the_structs() {
        let mut attrs = network::SubnetInputs::example().to_attrs();
        attrs.insert("tags".into(), serde_json::json!({"Name": "x"}));
        assert!(check_round_trip(Kind::Subnet, &attrs).is_ok());
    }
}
