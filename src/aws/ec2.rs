//! EC2 networking: VPC, subnets, internet gateway, Elastic IPs, NAT gateways, route
//! tables, security groups and their rules.
//!
//! Every kind is read through one describe call with filters, so refresh, batched
//! refresh, lookup by tags and waiting share one code path per kind; describes use
//! id filters rather than id lists, because an id list fails whole when one id is gone.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, Filter, IpPermission, IpRange, ResourceType, Tag,
    TagSpecification, UserIdGroupPair, VpcAttributeName,
};
use serde_json::{json, Value};

use super::{classify, eventually, identity_tags, str_of, tag_changes, tags_of, Clients};
use crate::model::{Attrs, Kind};
use crate::provider::{
    Deletion, ErrorClass, Observed, Provider, ProviderError, Providers, Readiness, Target,
};

/// What a describe says about one resource.
pub(super) enum Seen {
    Ready(Observed),
    Pending(String, Observed),
    Failed(String),
}

impl Seen {
    fn observed(self) -> Option<Observed> {
        match self {
            Seen::Ready(o) | Seen::Pending(_, o) => Some(o),
            Seen::Failed(_) => None,
        }
    }
}

/// One EC2 resource kind.
#[async_trait]
pub(super) trait Ec2Kind: Send + Sync + 'static {
    /// The describe filter that selects by id (`vpc-id`).
    const ID_FILTER: &'static str;
    /// The create call takes a client token (see [`Provider::create_is_idempotent`]).
    const IDEMPOTENT_CREATE: bool = false;
    async fn describe(&self, c: &Clients, filters: Vec<Filter>)
        -> Result<Vec<Seen>, ProviderError>;
    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: &Attrs,
        token: &str,
    ) -> Result<String, ProviderError>;
    /// Changes other than tags.
    async fn update(
        &self,
        _c: &Clients,
        _id: &str,
        _before: &Attrs,
        _after: &Attrs,
    ) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn delete(
        &self,
        c: &Clients,
        id: &str,
        inputs: &Attrs,
    ) -> Result<Deletion, ProviderError>;
}

pub(super) struct Ec2<K> {
    c: Arc<Clients>,
    kind: K,
}

/// The availability zones this account can use in the clients' region. Zone letters
/// differ by region and account (ap-northeast-1 has no `b`; us-west-1 shows each
/// account two of its three), so a spec's letters are checked against them at plan
/// time rather than failing a subnet create halfway through an apply.
pub async fn zones(c: &Clients) -> Result<Vec<String>, ProviderError> {
    let out = c
        .ec2
        .describe_availability_zones()
        .filters(filter("zone-type", ["availability-zone".to_string()]))
        .send()
        .await
        .map_err(classify)?;
    Ok(out
        .availability_zones()
        .iter()
        .filter(|z| {
            z.state()
                .is_none_or(|s| *s == aws_sdk_ec2::types::AvailabilityZoneState::Available)
        })
        .filter_map(|z| z.zone_name().map(str::to_string))
        .collect())
}

fn filter(name: &str, values: impl IntoIterator<Item = String>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().collect()))
        .build()
}

fn tag_spec(rt: ResourceType, tags: &BTreeMap<String, String>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(rt)
        .set_tags(Some(
            tags.iter()
                .map(|(k, v)| Tag::builder().key(k).value(v).build())
                .collect(),
        ))
        .build()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// Inputs as seen, with the tags and the `name` carried by the Name tag.
fn seen_inputs(mut inputs: Attrs, tags: &[Tag]) -> Attrs {
    let tags = tag_map(tags);
    if let Some(name) = tags.get("Name") {
        inputs.entry("name".into()).or_insert_with(|| json!(name));
    }
    inputs.insert("tags".into(), json!(tags));
    inputs
}

fn observed(id: &str, inputs: Attrs, outputs: Attrs) -> Observed {
    let mut outputs = outputs;
    outputs.insert("id".into(), json!(id));
    Observed {
        id: id.to_string(),
        inputs,
        outputs,
    }
}

fn missing(what: &str) -> ProviderError {
    ProviderError::new(ErrorClass::Retryable, format!("AWS returned no {what}"))
}

#[async_trait]
impl<K: Ec2Kind> Provider for Ec2<K> {
    async fn read(&self, id: &str) -> Result<Option<Observed>, ProviderError> {
        let seen = self
            .kind
            .describe(&self.c, vec![filter(K::ID_FILTER, [id.to_string()])])
            .await?;
        Ok(seen.into_iter().next().and_then(Seen::observed))
    }

    fn batches_reads(&self) -> bool {
        true
    }

    async fn read_many(
        &self,
        ids: &[String],
    ) -> Result<BTreeMap<String, Option<Observed>>, ProviderError> {
        let mut out: BTreeMap<String, Option<Observed>> =
            ids.iter().map(|i| (i.clone(), None)).collect();
        // EC2 accepts up to 200 filter values.
        for chunk in ids.chunks(200) {
            for o in self
                .kind
                .describe(&self.c, vec![filter(K::ID_FILTER, chunk.to_vec())])
                .await?
                .into_iter()
                .filter_map(Seen::observed)
            {
                out.insert(o.id.clone(), Some(o));
            }
        }
        Ok(out)
    }

    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError> {
        let filters = identity_tags(target)
            .into_iter()
            .map(|(k, v)| filter(&format!("tag:{k}"), [v]))
            .collect();
        Ok(self
            .kind
            .describe(&self.c, filters)
            .await?
            .into_iter()
            .filter_map(Seen::observed)
            .collect())
    }

    async fn list(&self, tags: &BTreeMap<String, String>) -> Result<Vec<Observed>, ProviderError> {
        let filters = tags
            .iter()
            .map(|(k, v)| filter(&format!("tag:{k}"), [v.clone()]))
            .collect();
        Ok(self
            .kind
            .describe(&self.c, filters)
            .await?
            .into_iter()
            .filter_map(Seen::observed)
            .collect())
    }

    fn create_is_idempotent(&self) -> bool {
        K::IDEMPOTENT_CREATE
    }

    async fn create(
        &self,
        target: &Target<'_>,
        inputs: &Attrs,
        client_token: &str,
    ) -> Result<Observed, ProviderError> {
        let _ = target;
        let id = self
            .kind
            .create(&self.c, &tags_of(inputs), inputs, client_token)
            .await?;
        Ok(observed(&id, inputs.clone(), Attrs::new()))
    }

    async fn update(
        &self,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        let tags = tag_changes(before, after);
        let gone: Vec<Tag> = tags
            .removed
            .iter()
            .map(|k| Tag::builder().key(k).build())
            .collect();
        let set: Vec<Tag> = tags
            .set
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        if !gone.is_empty() {
            self.c
                .ec2
                .delete_tags()
                .resources(id)
                .set_tags(Some(gone))
                .send()
                .await
                .map_err(classify)?;
        }
        if !set.is_empty() {
            self.c
                .ec2
                .create_tags()
                .resources(id)
                .set_tags(Some(set))
                .send()
                .await
                .map_err(classify)?;
        }
        self.kind.update(&self.c, id, before, after).await?;
        Ok(observed(id, after.clone(), Attrs::new()))
    }

    async fn delete(&self, id: &str, inputs: &Attrs) -> Result<Deletion, ProviderError> {
        self.kind.delete(&self.c, id, inputs).await
    }

    async fn wait(&self, id: &str) -> Result<Readiness, ProviderError> {
        let seen = self
            .kind
            .describe(&self.c, vec![filter(K::ID_FILTER, [id.to_string()])])
            .await?;
        match seen.into_iter().next() {
            Some(Seen::Ready(o)) => Ok(Readiness::Ready(o)),
            Some(Seen::Pending(status, _)) => Ok(Readiness::Pending(status)),
            Some(Seen::Failed(why)) => Ok(Readiness::Failed(why)),
            None => Err(ProviderError::not_found(format!("{id} is not visible yet"))),
        }
    }
}

pub(super) fn register(c: &Arc<Clients>, p: &mut Providers) {
    fn add<K: Ec2Kind>(p: &mut Providers, kind: Kind, c: &Arc<Clients>, k: K) {
        p.insert(
            kind,
            Arc::new(Ec2 {
                c: c.clone(),
                kind: k,
            }),
        );
    }
    add(p, Kind::Vpc, c, Vpc);
    add(p, Kind::Subnet, c, Subnet);
    add(p, Kind::InternetGateway, c, InternetGateway);
    add(p, Kind::ElasticIp, c, ElasticIp);
    add(p, Kind::NatGateway, c, NatGateway);
    add(p, Kind::RouteTable, c, RouteTable);
    add(p, Kind::SecurityGroup, c, SecurityGroup);
    add(p, Kind::SecurityGroupRule, c, SecurityGroupRule);
}

fn bool_of(inputs: &Attrs, key: &str) -> bool {
    inputs.get(key).and_then(Value::as_bool).unwrap_or(false)
}

fn flag(v: bool) -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(v).build()
}

struct Vpc;

#[async_trait]
impl Ec2Kind for Vpc {
    const ID_FILTER: &'static str = "vpc-id";

    async fn describe(
        &self,
        c: &Clients,
        filters: Vec<Filter>,
    ) -> Result<Vec<Seen>, ProviderError> {
        let out = c
            .ec2
            .describe_vpcs()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(classify)?;
        let mut seen = Vec::new();
        for v in out.vpcs() {
            let Some(id) = v.vpc_id() else { continue };
            // DNS settings are not in DescribeVpcs: one attribute per call, both at
            // once, so a change made outside deploy shows as drift.
            let attribute = |a: VpcAttributeName| {
                c.ec2
                    .describe_vpc_attribute()
                    .vpc_id(id)
                    .attribute(a)
                    .send()
            };
            let (support, hostnames) = tokio::join!(
                attribute(VpcAttributeName::EnableDnsSupport),
                attribute(VpcAttributeName::EnableDnsHostnames)
            );
            // Right after a create the attribute calls may not see the VPC yet: its
            // settings are then unknown (left out), not "off".
            let known = |r: Result<_, ProviderError>| match r {
                Ok(v) => Ok(Some(v)),
                Err(e) if e.class == ErrorClass::NotFound => Ok(None),
                Err(e) => Err(e),
            };
            let support = known(support.map_err(classify))?
                .map(|o| o.enable_dns_support().and_then(|b| b.value()));
            let hostnames = known(hostnames.map_err(classify))?
                .map(|o| o.enable_dns_hostnames().and_then(|b| b.value()));
            let mut attrs = Attrs::from([("cidr_block".into(), json!(v.cidr_block()))]);
            if let Some(support) = support {
                attrs.insert("enable_dns_support".into(), json!(support));
            }
            if let Some(hostnames) = hostnames {
                attrs.insert("enable_dns_hostnames".into(), json!(hostnames));
            }
            let inputs = seen_inputs(attrs, v.tags());
            let arn = format!(
                "arn:aws:ec2:{}:{}:vpc/{id}",
                c.region,
                v.owner_id().unwrap_or_default()
            );
            let o = observed(id, inputs, Attrs::from([("arn".into(), json!(arn))]));
            seen.push(match v.state().map(|s| s.as_str()) {
                Some("available") => Seen::Ready(o),
                other => Seen::Pending(other.unwrap_or("pending").to_string(), o),
            });
        }
        Ok(seen)
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let out = c
            .ec2
            .create_vpc()
            .cidr_block(str_of(inputs, "cidr_block")?)
            .tag_specifications(tag_spec(ResourceType::Vpc, tags))
            .customize()
            .config_override(once!(aws_sdk_ec2))
            .send()
            .await
            .map_err(classify)?;
        let id = out
            .vpc()
            .and_then(|v| v.vpc_id())
            .ok_or_else(|| missing("VPC id"))?
            .to_string();
        self.update(c, &id, &Attrs::new(), inputs).await?;
        Ok(id)
    }

    async fn update(
        &self,
        c: &Clients,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<(), ProviderError> {
        // One attribute per call, as the API requires.
        for (key, hostnames) in [
            ("enable_dns_support", false),
            ("enable_dns_hostnames", true),
        ] {
            if before.get(key) != after.get(key) {
                let call = c.ec2.modify_vpc_attribute().vpc_id(id);
                let call = if hostnames {
                    call.enable_dns_hostnames(flag(bool_of(after, key)))
                } else {
                    call.enable_dns_support(flag(bool_of(after, key)))
                };
                call.send().await.map_err(classify)?;
            }
        }
        Ok(())
    }

    async fn delete(
        &self,
        c: &Clients,
        id: &str,
        _inputs: &Attrs,
    ) -> Result<Deletion, ProviderError> {
        c.ec2
            .delete_vpc()
            .vpc_id(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::Done)
    }
}

struct Subnet;

#[async_trait]
impl Ec2Kind for Subnet {
    const ID_FILTER: &'static str = "subnet-id";

    async fn describe(
        &self,
        c: &Clients,
        filters: Vec<Filter>,
    ) -> Result<Vec<Seen>, ProviderError> {
        let out = c
            .ec2
            .describe_subnets()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .subnets()
            .iter()
            .filter_map(|s| {
                let id = s.subnet_id()?;
                let inputs = seen_inputs(
                    Attrs::from([
                        ("vpc_id".into(), json!(s.vpc_id())),
                        ("cidr_block".into(), json!(s.cidr_block())),
                        ("availability_zone".into(), json!(s.availability_zone())),
                        (
                            "map_public_ip_on_launch".into(),
                            json!(s.map_public_ip_on_launch().unwrap_or(false)),
                        ),
                    ]),
                    s.tags(),
                );
                let arn = s.subnet_arn().map(str::to_string).unwrap_or_default();
                let o = observed(id, inputs, Attrs::from([("arn".into(), json!(arn))]));
                Some(match s.state().map(|x| x.as_str()) {
                    Some("available") => Seen::Ready(o),
                    other => Seen::Pending(other.unwrap_or("pending").to_string(), o),
                })
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let out = c
            .ec2
            .create_subnet()
            .vpc_id(str_of(inputs, "vpc_id")?)
            .cidr_block(str_of(inputs, "cidr_block")?)
            .availability_zone(str_of(inputs, "availability_zone")?)
            .tag_specifications(tag_spec(ResourceType::Subnet, tags))
            .customize()
            .config_override(once!(aws_sdk_ec2))
            .send()
            .await
            .map_err(classify)?;
        let id = out
            .subnet()
            .and_then(|s| s.subnet_id())
            .ok_or_else(|| missing("subnet id"))?
            .to_string();
        if bool_of(inputs, "map_public_ip_on_launch") {
            let none = Attrs::new();
            eventually(|| self.update(c, &id, &none, inputs)).await?;
        }
        Ok(id)
    }

    async fn update(
        &self,
        c: &Clients,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<(), ProviderError> {
        if before.get("map_public_ip_on_launch") != after.get("map_public_ip_on_launch") {
            c.ec2
                .modify_subnet_attribute()
                .subnet_id(id)
                .map_public_ip_on_launch(flag(bool_of(after, "map_public_ip_on_launch")))
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        c: &Clients,
        id: &str,
        _inputs: &Attrs,
    ) -> Result<Deletion, ProviderError> {
        c.ec2
            .delete_subnet()
            .subnet_id(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::Done)
    }
}

struct InternetGateway;

#[async_trait]
impl Ec2Kind for InternetGateway {
    const ID_FILTER: &'static str = "internet-gateway-id";

    async fn describe(
        &self,
        c: &Clients,
        filters: Vec<Filter>,
    ) -> Result<Vec<Seen>, ProviderError> {
        let out = c
            .ec2
            .describe_internet_gateways()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .internet_gateways()
            .iter()
            .filter_map(|g| {
                let id = g.internet_gateway_id()?;
                let vpc = g.attachments().first().and_then(|a| a.vpc_id());
                let inputs = seen_inputs(Attrs::from([("vpc_id".into(), json!(vpc))]), g.tags());
                Some(Seen::Ready(observed(id, inputs, Attrs::new())))
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let out = c
            .ec2
            .create_internet_gateway()
            .tag_specifications(tag_spec(ResourceType::InternetGateway, tags))
            .customize()
            .config_override(once!(aws_sdk_ec2))
            .send()
            .await
            .map_err(classify)?;
        let id = out
            .internet_gateway()
            .and_then(|g| g.internet_gateway_id())
            .ok_or_else(|| missing("internet gateway id"))?
            .to_string();
        let vpc = str_of(inputs, "vpc_id")?;
        eventually(|| async {
            c.ec2
                .attach_internet_gateway()
                .internet_gateway_id(&id)
                .vpc_id(vpc)
                .send()
                .await
                .map_err(classify)
        })
        .await?;
        Ok(id)
    }

    async fn update(
        &self,
        c: &Clients,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<(), ProviderError> {
        if before.get("vpc_id") != after.get("vpc_id") {
            if let Some(old) = before.get("vpc_id").and_then(Value::as_str) {
                c.ec2
                    .detach_internet_gateway()
                    .internet_gateway_id(id)
                    .vpc_id(old)
                    .send()
                    .await
                    .map_err(classify)?;
            }
            c.ec2
                .attach_internet_gateway()
                .internet_gateway_id(id)
                .vpc_id(str_of(after, "vpc_id")?)
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        c: &Clients,
        id: &str,
        _inputs: &Attrs,
    ) -> Result<Deletion, ProviderError> {
        let seen = self
            .describe(c, vec![filter(Self::ID_FILTER, [id.to_string()])])
            .await?;
        let attached = seen
            .into_iter()
            .next()
            .and_then(Seen::observed)
            .and_then(|o| {
                o.inputs
                    .get("vpc_id")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            });
        if let Some(vpc) = attached {
            // Fails while NAT gateways' public addresses are still mapped: a conflict to wait out.
            c.ec2
                .detach_internet_gateway()
                .internet_gateway_id(id)
                .vpc_id(vpc)
                .send()
                .await
                .map_err(classify)?;
        }
        c.ec2
            .delete_internet_gateway()
            .internet_gateway_id(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::Done)
    }
}

struct ElasticIp;

#[async_trait]
impl Ec2Kind for ElasticIp {
    const ID_FILTER: &'static str = "allocation-id";

    async fn describe(
        &self,
        c: &Clients,
        filters: Vec<Filter>,
    ) -> Result<Vec<Seen>, ProviderError> {
        let out = c
            .ec2
            .describe_addresses()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .addresses()
            .iter()
            .filter_map(|a| {
                let id = a.allocation_id()?;
                let inputs = seen_inputs(
                    Attrs::from([("domain".into(), json!(a.domain().map(|d| d.as_str())))]),
                    a.tags(),
                );
                Some(Seen::Ready(observed(
                    id,
                    inputs,
                    Attrs::from([("public_ip".into(), json!(a.public_ip()))]),
                )))
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        _inputs: &Attrs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let out = c
            .ec2
            .allocate_address()
            .domain(DomainType::Vpc)
            .tag_specifications(tag_spec(ResourceType::ElasticIp, tags))
            .customize()
            .config_override(once!(aws_sdk_ec2))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .allocation_id()
            .ok_or_else(|| missing("allocation id"))?
            .to_string())
    }

    async fn delete(
        &self,
        c: &Clients,
        id: &str,
        _inputs: &Attrs,
    ) -> Result<Deletion, ProviderError> {
        match c
            .ec2
            .release_address()
            .allocation_id(id)
            .send()
            .await
            .map_err(classify)
        {
            Ok(_) => Ok(Deletion::Done),
            // Still held by a NAT gateway being deleted: wait it out.
            Err(e)
                if matches!(
                    e.code.as_deref(),
                    Some("InvalidNetworkInterfaceID.NotFound" | "InvalidIPAddress.InUse")
                ) =>
            {
                Err(ProviderError {
                    class: ErrorClass::Conflict,
                    ..e
                })
            }
            // EC2 also answers AuthFailure while the address is still attached to a
            // NAT gateway being deleted; otherwise it is what it says: these
            // credentials may not release it.
            Err(e) if e.code.as_deref() == Some("AuthFailure") => {
                if still_associated(c, id).await? {
                    Err(ProviderError {
                        class: ErrorClass::Conflict,
                        ..e
                    })
                } else {
                    Err(ProviderError::fatal(format!(
                        "AWS refused to release elastic IP {id} (AuthFailure: {}), and nothing holds the address: the credentials are not allowed to release it\n  hint: grant ec2:ReleaseAddress on it, or check that the address belongs to this account",
                        e.message
                    ))
                    .with_code("AuthFailure"))
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether an elastic IP is still attached to a network interface (a NAT gateway's
/// until the gateway is deleted).
async fn still_associated(c: &Clients, allocation: &str) -> Result<bool, ProviderError> {
    let out = c
        .ec2
        .describe_addresses()
        .allocation_ids(allocation)
        .send()
        .await
        .map_err(classify)?;
    Ok(out
        .addresses()
        .iter()
        .any(|a| a.association_id().is_some() || a.network_interface_id().is_some()))
}

struct NatGateway;

#[async_trait]
impl Ec2Kind for NatGateway {
    const ID_FILTER: &'static str = "nat-gateway-id";
    const IDEMPOTENT_CREATE: bool = true;

    async fn describe(
        &self,
        c: &Clients,
        filters: Vec<Filter>,
    ) -> Result<Vec<Seen>, ProviderError> {
        let out = c
            .ec2
            .describe_nat_gateways()
            .set_filter(Some(filters))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .nat_gateways()
            .iter()
            .filter_map(|n| {
                let id = n.nat_gateway_id()?;
                let allocation = n
                    .nat_gateway_addresses()
                    .first()
                    .and_then(|a| a.allocation_id());
                let inputs = seen_inputs(
                    Attrs::from([
                        ("subnet_id".into(), json!(n.subnet_id())),
                        ("allocation_id".into(), json!(allocation)),
                    ]),
                    n.tags(),
                );
                let o = observed(id, inputs, Attrs::new());
                // Deleted gateways stay listed for a while: they are gone.
                Some(match n.state().map(|s| s.as_str()) {
                    Some("available") => Seen::Ready(o),
                    Some("deleted") => return None,
                    Some("failed") => Seen::Failed(
                        n.failure_message()
                            .unwrap_or("the NAT gateway failed")
                            .to_string(),
                    ),
                    other => Seen::Pending(other.unwrap_or("pending").to_string(), o),
                })
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: &Attrs,
        token: &str,
    ) -> Result<String, ProviderError> {
        let out = c
            .ec2
            .create_nat_gateway()
            .subnet_id(str_of(inputs, "subnet_id")?)
            .allocation_id(str_of(inputs, "allocation_id")?)
            .client_token(token)
            .tag_specifications(tag_spec(ResourceType::Natgateway, tags))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .nat_gateway()
            .and_then(|n| n.nat_gateway_id())
            .ok_or_else(|| missing("NAT gateway id"))?
            .to_string())
    }

    async fn delete(
        &self,
        c: &Clients,
        id: &str,
        _inputs: &Attrs,
    ) -> Result<Deletion, ProviderError> {
        c.ec2
            .delete_nat_gateway()
            .nat_gateway_id(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::InProgress)
    }
}

struct RouteTable;

fn routes_of(inputs: &Attrs) -> Vec<(String, Option<String>, Option<String>)> {
    inputs
        .get("routes")
        .and_then(Value::as_array)
        .map(|rs| {
            rs.iter()
                .filter_map(|r| {
                    Some((
                        r.get("destination")?.as_str()?.to_string(),
                        r.get("gateway_id")
                            .and_then(Value::as_str)
                            .map(String::from),
                        r.get("nat_gateway_id")
                            .and_then(Value::as_str)
                            .map(String::from),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn subnets_of(inputs: &Attrs) -> Vec<String> {
    inputs
        .get("subnet_ids")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

impl RouteTable {
    async fn set_route(
        &self,
        c: &Clients,
        id: &str,
        route: &(String, Option<String>, Option<String>),
        replace: bool,
    ) -> Result<(), ProviderError> {
        let (dest, gateway, nat) = route;
        if replace {
            c.ec2
                .replace_route()
                .route_table_id(id)
                .destination_cidr_block(dest)
                .set_gateway_id(gateway.clone())
                .set_nat_gateway_id(nat.clone())
                .send()
                .await
                .map_err(classify)?;
        } else {
            c.ec2
                .create_route()
                .route_table_id(id)
                .destination_cidr_block(dest)
                .set_gateway_id(gateway.clone())
                .set_nat_gateway_id(nat.clone())
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn associations(
        &self,
        c: &Clients,
        id: &str,
    ) -> Result<Vec<(String, String)>, ProviderError> {
        let out = c
            .ec2
            .describe_route_tables()
            .filters(filter("route-table-id", [id.to_string()]))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .route_tables()
            .iter()
            .flat_map(|t| t.associations())
            .filter(|a| !a.main().unwrap_or(false))
            .filter_map(|a| {
                Some((
                    a.subnet_id()?.to_string(),
                    a.route_table_association_id()?.to_string(),
                ))
            })
            .collect())
    }
}

#[async_trait]
impl Ec2Kind for RouteTable {
    const ID_FILTER: &'static str = "route-table-id";

    async fn describe(
        &self,
        c: &Clients,
        filters: Vec<Filter>,
    ) -> Result<Vec<Seen>, ProviderError> {
        let out = c
            .ec2
            .describe_route_tables()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .route_tables()
            .iter()
            .filter_map(|t| {
                let id = t.route_table_id()?;
                let routes: Vec<Value> = t
                    .routes()
                    .iter()
                    .filter(|r| r.gateway_id() != Some("local"))
                    .filter_map(|r| {
                        let mut v = serde_json::Map::new();
                        v.insert("destination".into(), json!(r.destination_cidr_block()?));
                        if let Some(g) = r.gateway_id() {
                            v.insert("gateway_id".into(), json!(g));
                        }
                        if let Some(n) = r.nat_gateway_id() {
                            v.insert("nat_gateway_id".into(), json!(n));
                        }
                        Some(Value::Object(v))
                    })
                    .collect();
                let subnets: Vec<&str> = t
                    .associations()
                    .iter()
                    .filter(|a| !a.main().unwrap_or(false))
                    .filter_map(|a| a.subnet_id())
                    .collect();
                let inputs = seen_inputs(
                    Attrs::from([
                        ("vpc_id".into(), json!(t.vpc_id())),
                        ("routes".into(), json!(routes)),
                        ("subnet_ids".into(), json!(subnets)),
                    ]),
                    t.tags(),
                );
                Some(Seen::Ready(observed(id, inputs, Attrs::new())))
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let out = c
            .ec2
            .create_route_table()
            .vpc_id(str_of(inputs, "vpc_id")?)
            .tag_specifications(tag_spec(ResourceType::RouteTable, tags))
            .customize()
            .config_override(once!(aws_sdk_ec2))
            .send()
            .await
            .map_err(classify)?;
        let id = out
            .route_table()
            .and_then(|t| t.route_table_id())
            .ok_or_else(|| missing("route table id"))?
            .to_string();
        // A new table has no routes or associations yet: no need to look.
        for r in routes_of(inputs) {
            eventually(|| self.set_route(c, &id, &r, false)).await?;
        }
        for subnet in subnets_of(inputs) {
            eventually(|| async {
                c.ec2
                    .associate_route_table()
                    .route_table_id(&id)
                    .subnet_id(&subnet)
                    .send()
                    .await
                    .map_err(classify)
            })
            .await?;
        }
        Ok(id)
    }

    async fn update(
        &self,
        c: &Clients,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<(), ProviderError> {
        let (old, new) = (routes_of(before), routes_of(after));
        for r in &new {
            match old.iter().find(|o| o.0 == r.0) {
                None => self.set_route(c, id, r, false).await?,
                Some(o) if o != r => self.set_route(c, id, r, true).await?,
                Some(_) => {}
            }
        }
        for o in old.iter().filter(|o| !new.iter().any(|r| r.0 == o.0)) {
            c.ec2
                .delete_route()
                .route_table_id(id)
                .destination_cidr_block(&o.0)
                .send()
                .await
                .map_err(classify)?;
        }
        let wanted = subnets_of(after);
        let current = self.associations(c, id).await?;
        for s in wanted
            .iter()
            .filter(|s| !current.iter().any(|(cs, _)| cs == *s))
        {
            c.ec2
                .associate_route_table()
                .route_table_id(id)
                .subnet_id(s)
                .send()
                .await
                .map_err(classify)?;
        }
        for (_, assoc) in current.iter().filter(|(cs, _)| !wanted.contains(cs)) {
            c.ec2
                .disassociate_route_table()
                .association_id(assoc)
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        c: &Clients,
        id: &str,
        _inputs: &Attrs,
    ) -> Result<Deletion, ProviderError> {
        for (_, assoc) in self.associations(c, id).await? {
            c.ec2
                .disassociate_route_table()
                .association_id(assoc)
                .send()
                .await
                .map_err(classify)?;
        }
        c.ec2
            .delete_route_table()
            .route_table_id(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::Done)
    }
}

struct SecurityGroup;

#[async_trait]
impl Ec2Kind for SecurityGroup {
    const ID_FILTER: &'static str = "group-id";

    async fn describe(
        &self,
        c: &Clients,
        filters: Vec<Filter>,
    ) -> Result<Vec<Seen>, ProviderError> {
        let out = c
            .ec2
            .describe_security_groups()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .security_groups()
            .iter()
            .filter_map(|g| {
                let id = g.group_id()?;
                let inputs = seen_inputs(
                    Attrs::from([
                        ("name".into(), json!(g.group_name())),
                        ("description".into(), json!(g.description())),
                        ("vpc_id".into(), json!(g.vpc_id())),
                    ]),
                    g.tags(),
                );
                let arn = format!(
                    "arn:aws:ec2:{}:{}:security-group/{id}",
                    c.region,
                    g.owner_id().unwrap_or_default()
                );
                Some(Seen::Ready(observed(
                    id,
                    inputs,
                    Attrs::from([("arn".into(), json!(arn))]),
                )))
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let out = c
            .ec2
            .create_security_group()
            .group_name(str_of(inputs, "name")?)
            .description(str_of(inputs, "description")?)
            .vpc_id(str_of(inputs, "vpc_id")?)
            .tag_specifications(tag_spec(ResourceType::SecurityGroup, tags))
            .customize()
            .config_override(once!(aws_sdk_ec2))
            .send()
            .await
            .map_err(classify)?;
        let id = out
            .group_id()
            .ok_or_else(|| missing("security group id"))?
            .to_string();
        if bool_of(inputs, "revoke_default_egress") {
            // New groups allow all egress; the spec states its own.
            let all = IpPermission::builder()
                .ip_protocol("-1")
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build();
            eventually(|| async {
                c.ec2
                    .revoke_security_group_egress()
                    .group_id(&id)
                    .ip_permissions(all.clone())
                    .send()
                    .await
                    .map_err(classify)
            })
            .await?;
        }
        Ok(id)
    }

    async fn delete(
        &self,
        c: &Clients,
        id: &str,
        _inputs: &Attrs,
    ) -> Result<Deletion, ProviderError> {
        c.ec2
            .delete_security_group()
            .group_id(id)
            .send()
            .await
            .map_err(classify)?;
        Ok(Deletion::Done)
    }
}

struct SecurityGroupRule;

fn permission(inputs: &Attrs) -> Result<IpPermission, ProviderError> {
    let protocol = str_of(inputs, "protocol")?;
    let mut p = IpPermission::builder().ip_protocol(protocol);
    if protocol != "-1" {
        let port = |k: &str| inputs.get(k).and_then(Value::as_i64).map(|v| v as i32);
        p = p
            .set_from_port(port("from_port"))
            .set_to_port(port("to_port"));
    }
    let description = inputs
        .get("description")
        .and_then(Value::as_str)
        .map(String::from);
    match (
        inputs.get("cidr").and_then(Value::as_str),
        inputs.get("peer_group_id").and_then(Value::as_str),
    ) {
        (Some(cidr), _) => {
            p = p.ip_ranges(
                IpRange::builder()
                    .cidr_ip(cidr)
                    .set_description(description)
                    .build(),
            )
        }
        (None, Some(group)) => {
            p = p.user_id_group_pairs(
                UserIdGroupPair::builder()
                    .group_id(group)
                    .set_description(description)
                    .build(),
            )
        }
        (None, None) => return Err(ProviderError::fatal("a rule needs a cidr or a peer group")),
    }
    Ok(p.build())
}

#[async_trait]
impl Ec2Kind for SecurityGroupRule {
    const ID_FILTER: &'static str = "security-group-rule-id";

    async fn describe(
        &self,
        c: &Clients,
        filters: Vec<Filter>,
    ) -> Result<Vec<Seen>, ProviderError> {
        let out = c
            .ec2
            .describe_security_group_rules()
            .set_filters(Some(filters))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .security_group_rules()
            .iter()
            .filter_map(|r| {
                let id = r.security_group_rule_id()?;
                let mut inputs = Attrs::from([
                    ("group_id".into(), json!(r.group_id())),
                    (
                        "direction".into(),
                        json!(if r.is_egress().unwrap_or(false) {
                            "egress"
                        } else {
                            "ingress"
                        }),
                    ),
                    ("protocol".into(), json!(r.ip_protocol())),
                ]);
                if r.ip_protocol() != Some("-1") {
                    inputs.insert("from_port".into(), json!(r.from_port()));
                    inputs.insert("to_port".into(), json!(r.to_port()));
                }
                inputs.insert("cidr".into(), json!(r.cidr_ipv4()));
                inputs.insert(
                    "peer_group_id".into(),
                    json!(r.referenced_group_info().and_then(|g| g.group_id())),
                );
                if let Some(d) = r.description() {
                    inputs.insert("description".into(), json!(d));
                }
                Some(Seen::Ready(observed(
                    id,
                    seen_inputs(inputs, r.tags()),
                    Attrs::new(),
                )))
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: &Attrs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let group = str_of(inputs, "group_id")?;
        let perm = permission(inputs)?;
        let spec = tag_spec(ResourceType::SecurityGroupRule, tags);
        let rules = if str_of(inputs, "direction")? == "egress" {
            c.ec2
                .authorize_security_group_egress()
                .group_id(group)
                .ip_permissions(perm)
                .tag_specifications(spec)
                .customize()
                .config_override(once!(aws_sdk_ec2))
                .send()
                .await
                .map_err(classify)?
                .security_group_rules()
                .to_vec()
        } else {
            c.ec2
                .authorize_security_group_ingress()
                .group_id(group)
                .ip_permissions(perm)
                .tag_specifications(spec)
                .customize()
                .config_override(once!(aws_sdk_ec2))
                .send()
                .await
                .map_err(classify)?
                .security_group_rules()
                .to_vec()
        };
        Ok(rules
            .first()
            .and_then(|r| r.security_group_rule_id())
            .ok_or_else(|| missing("security group rule id"))?
            .to_string())
    }

    /// Only the description changes in place; the rule is found by its permission,
    /// which carries the new description.
    async fn update(
        &self,
        c: &Clients,
        _id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<(), ProviderError> {
        if before.get("description") == after.get("description") {
            return Ok(());
        }
        let group = str_of(after, "group_id")?;
        let perm = permission(after)?;
        if str_of(after, "direction")? == "egress" {
            c.ec2
                .update_security_group_rule_descriptions_egress()
                .group_id(group)
                .ip_permissions(perm)
                .send()
                .await
                .map_err(classify)?;
        } else {
            c.ec2
                .update_security_group_rule_descriptions_ingress()
                .group_id(group)
                .ip_permissions(perm)
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn delete(
        &self,
        c: &Clients,
        id: &str,
        inputs: &Attrs,
    ) -> Result<Deletion, ProviderError> {
        let group = str_of(inputs, "group_id")?;
        let result = if str_of(inputs, "direction")? == "egress" {
            c.ec2
                .revoke_security_group_egress()
                .group_id(group)
                .security_group_rule_ids(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        } else {
            c.ec2
                .revoke_security_group_ingress()
                .group_id(group)
                .security_group_rule_ids(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        };
        match result {
            Ok(()) => Ok(Deletion::Done),
            // The rule's group is already gone, and the rule with it.
            Err(e) if e.class == ErrorClass::NotFound => Ok(Deletion::Done),
            Err(e) => Err(e),
        }
    }
}
