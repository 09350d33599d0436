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

use super::{classify, eventually, identity_tags, retag, str_of, tags_from, tags_of, Clients};
use crate::kinds::network::{
    ElasticIpInputs, ElasticIpOutputs, InternetGatewayInputs, NatGatewayInputs, Route,
    RouteTableInputs, SecurityGroupInputs, SecurityGroupRuleInputs, SubnetInputs, VpcInputs,
};
use crate::kinds::{ArnOutputs, IdOutputs, Inputs, Outputs};
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
    /// The describe filter that selects by parent (`group-id` for rules), if any.
    const PARENT_FILTER: Option<&'static str> = None;
    /// The kind's typed inputs, which create and update take apart.
    type Inputs: Inputs;
    async fn describe(&self, c: &Clients, filters: Vec<Filter>)
        -> Result<Vec<Seen>, ProviderError>;
    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: Self::Inputs,
        token: &str,
    ) -> Result<String, ProviderError>;
    /// Changes other than tags, to `after`. `before` is what AWS has (the record with
    /// what refresh saw), left as attributes: each kind reads it as its struct.
    async fn update(
        &self,
        _c: &Clients,
        _id: &str,
        _before: &Attrs,
        _after: Self::Inputs,
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
        .set_tags(Some(tag_list(tags)))
        .build()
}

fn tag_list(tags: &BTreeMap<String, String>) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Inputs as seen, with the tags and the `name` carried by the Name tag.
fn seen_inputs(mut inputs: Attrs, tags: &[Tag]) -> Attrs {
    let tags = tags_from(
        tags.iter()
            .filter_map(|t| Some((t.key()?, t.value().unwrap_or_default()))),
    );
    if let Some(name) = tags.get("Name") {
        inputs.entry("name".into()).or_insert_with(|| json!(name));
    }
    inputs.insert("tags".into(), json!(tags));
    inputs
}

/// Inputs as seen, built from the kind's struct, which `inputs` makes given the name.
/// The name is the Name tag's; without one it is left out, not invented.
fn seen_typed<I: Inputs>(tags: &[Tag], inputs: impl FnOnce(String) -> I) -> Attrs {
    let name = tags
        .iter()
        .find(|t| t.key() == Some("Name"))
        .map(|t| t.value().unwrap_or_default().to_string());
    let mut attrs = inputs(name.clone().unwrap_or_default()).to_attrs();
    if name.is_none() {
        attrs.remove("name");
    }
    seen_inputs(attrs, tags)
}

fn observed(id: &str, inputs: Attrs, outputs: impl Outputs) -> Observed {
    Observed {
        id: id.to_string(),
        inputs,
        outputs: outputs.to_attrs(),
    }
}

/// Outputs of a kind known by its id alone.
fn id_only(id: &str) -> IdOutputs {
    IdOutputs { id: id.to_string() }
}

fn arn_outputs(id: &str, arn: String) -> ArnOutputs {
    ArnOutputs {
        id: id.to_string(),
        arn,
    }
}

fn missing(what: &str) -> ProviderError {
    ProviderError::new(ErrorClass::Retryable, format!("AWS returned no {what}"))
}

impl<K: Ec2Kind> Ec2<K> {
    /// What the describe call selects with `filters`, less what failed.
    async fn seen(&self, filters: Vec<Filter>) -> Result<Vec<Observed>, ProviderError> {
        let seen = self.kind.describe(&self.c, filters).await?;
        Ok(seen.into_iter().filter_map(Seen::observed).collect())
    }

    /// The resources that carry every one of `tags`.
    async fn tagged(
        &self,
        tags: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Vec<Observed>, ProviderError> {
        let tags: Vec<(String, String)> = tags.into_iter().collect();
        let filters = tags
            .iter()
            .map(|(k, v)| filter(&format!("tag:{k}"), [v.clone()]))
            .collect();
        let seen = self.seen(filters).await?;
        Ok(seen
            .into_iter()
            .filter(|o| o.carries(tags.iter().map(|(k, v)| (k, v))))
            .collect())
    }
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
                .seen(vec![filter(K::ID_FILTER, chunk.to_vec())])
                .await?
            {
                out.insert(o.id.clone(), Some(o));
            }
        }
        Ok(out)
    }

    async fn find(&self, target: &Target<'_>) -> Result<Vec<Observed>, ProviderError> {
        self.tagged(identity_tags(target)).await
    }

    async fn list(&self, tags: &BTreeMap<String, String>) -> Result<Vec<Observed>, ProviderError> {
        self.tagged(tags.clone()).await
    }

    async fn within(&self, parent: &str) -> Result<Vec<Observed>, ProviderError> {
        match K::PARENT_FILTER {
            Some(f) => self.seen(vec![filter(f, [parent.to_string()])]).await,
            None => Err(ProviderError::fatal(
                "this kind of resource is not listed within a parent",
            )),
        }
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
            .create(
                &self.c,
                &tags_of(inputs),
                K::Inputs::from_attrs(inputs)?,
                client_token,
            )
            .await?;
        Ok(observed(&id, inputs.clone(), id_only(&id)))
    }

    async fn update(
        &self,
        id: &str,
        before: &Attrs,
        after: &Attrs,
    ) -> Result<Observed, ProviderError> {
        let typed = K::Inputs::from_attrs(after)?;
        let ec2 = &self.c.ec2;
        retag(
            before,
            after,
            |keys| async move {
                ec2.delete_tags()
                    .resources(id)
                    .set_tags(Some(
                        keys.iter().map(|k| Tag::builder().key(k).build()).collect(),
                    ))
                    .send()
                    .await
                    .map_err(classify)
                    .map(drop)
            },
            |tags| async move {
                ec2.create_tags()
                    .resources(id)
                    .set_tags(Some(tag_list(&tags)))
                    .send()
                    .await
                    .map_err(classify)
                    .map(drop)
            },
        )
        .await?;
        self.kind.update(&self.c, id, before, typed).await?;
        Ok(observed(id, after.clone(), id_only(id)))
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

fn flag(v: bool) -> AttributeBooleanValue {
    AttributeBooleanValue::builder().value(v).build()
}

struct Vpc;

/// Sets a VPC's DNS settings that are given, one attribute per call as the API
/// requires: support first, then hostnames.
async fn set_dns(
    c: &Clients,
    id: &str,
    support: Option<bool>,
    hostnames: Option<bool>,
) -> Result<(), ProviderError> {
    for (value, is_hostnames) in [(support, false), (hostnames, true)] {
        let Some(v) = value else { continue };
        let call = c.ec2.modify_vpc_attribute().vpc_id(id);
        let call = if is_hostnames {
            call.enable_dns_hostnames(flag(v))
        } else {
            call.enable_dns_support(flag(v))
        };
        call.send().await.map_err(classify)?;
    }
    Ok(())
}

#[async_trait]
impl Ec2Kind for Vpc {
    const ID_FILTER: &'static str = "vpc-id";
    type Inputs = VpcInputs;

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
            // Attributes, not `VpcInputs`: the DNS settings may be unknown (left out).
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
            let o = observed(id, inputs, arn_outputs(id, arn));
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
        inputs: VpcInputs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let VpcInputs {
            name: _, // carried by the Name tag
            cidr_block,
            enable_dns_hostnames,
            enable_dns_support,
        } = inputs;
        let out = c
            .ec2
            .create_vpc()
            .cidr_block(cidr_block)
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
        // Both settings, as the spec says, over a new VPC's defaults.
        set_dns(c, &id, Some(enable_dns_support), Some(enable_dns_hostnames)).await?;
        Ok(id)
    }

    async fn update(
        &self,
        c: &Clients,
        id: &str,
        before: &Attrs,
        after: VpcInputs,
    ) -> Result<(), ProviderError> {
        // Settings a read right after create could not see count as changed.
        let old = VpcInputs::from_recorded(before).ok();
        let VpcInputs {
            name: _,       // the Name tag, changed with the tags
            cidr_block: _, // a new block is a new VPC
            enable_dns_hostnames,
            enable_dns_support,
        } = after;
        let changed = |was: Option<bool>, is: bool| (was != Some(is)).then_some(is);
        set_dns(
            c,
            id,
            changed(
                old.as_ref().map(|o| o.enable_dns_support),
                enable_dns_support,
            ),
            changed(
                old.as_ref().map(|o| o.enable_dns_hostnames),
                enable_dns_hostnames,
            ),
        )
        .await
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

async fn map_public_ips(c: &Clients, id: &str, on: bool) -> Result<(), ProviderError> {
    c.ec2
        .modify_subnet_attribute()
        .subnet_id(id)
        .map_public_ip_on_launch(flag(on))
        .send()
        .await
        .map_err(classify)
        .map(drop)
}

#[async_trait]
impl Ec2Kind for Subnet {
    const ID_FILTER: &'static str = "subnet-id";
    type Inputs = SubnetInputs;

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
                let inputs = seen_typed(s.tags(), |name| SubnetInputs {
                    name,
                    vpc_id: s.vpc_id().unwrap_or_default().to_string(),
                    cidr_block: s.cidr_block().unwrap_or_default().to_string(),
                    availability_zone: s.availability_zone().unwrap_or_default().to_string(),
                    map_public_ip_on_launch: s.map_public_ip_on_launch().unwrap_or(false),
                });
                let arn = s.subnet_arn().map(str::to_string).unwrap_or_default();
                let o = observed(id, inputs, arn_outputs(id, arn));
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
        inputs: SubnetInputs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let SubnetInputs {
            name: _, // carried by the Name tag
            vpc_id,
            cidr_block,
            availability_zone,
            map_public_ip_on_launch,
        } = inputs;
        let out = c
            .ec2
            .create_subnet()
            .vpc_id(vpc_id)
            .cidr_block(cidr_block)
            .availability_zone(availability_zone)
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
        if map_public_ip_on_launch {
            eventually(|| map_public_ips(c, &id, true)).await?;
        }
        Ok(id)
    }

    async fn update(
        &self,
        c: &Clients,
        id: &str,
        before: &Attrs,
        after: SubnetInputs,
    ) -> Result<(), ProviderError> {
        let old = SubnetInputs::from_recorded(before).ok();
        let SubnetInputs {
            name: _, // the Name tag, changed with the tags
            // These three replace the subnet.
            vpc_id: _,
            cidr_block: _,
            availability_zone: _,
            map_public_ip_on_launch,
        } = after;
        if old.map(|o| o.map_public_ip_on_launch) != Some(map_public_ip_on_launch) {
            map_public_ips(c, id, map_public_ip_on_launch).await?;
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
    type Inputs = InternetGatewayInputs;

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
                // Attributes, not `InternetGatewayInputs`: a detached gateway's VPC
                // is null.
                let inputs = seen_inputs(Attrs::from([("vpc_id".into(), json!(vpc))]), g.tags());
                Some(Seen::Ready(observed(id, inputs, id_only(id))))
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: InternetGatewayInputs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let InternetGatewayInputs {
            name: _, // carried by the Name tag
            vpc_id,
        } = inputs;
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
        eventually(|| async {
            c.ec2
                .attach_internet_gateway()
                .internet_gateway_id(&id)
                .vpc_id(&vpc_id)
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
        after: InternetGatewayInputs,
    ) -> Result<(), ProviderError> {
        let InternetGatewayInputs {
            name: _, // the Name tag, changed with the tags
            vpc_id,
        } = after;
        // A detached gateway reads `vpc_id: null`, which does not fit the struct:
        // attached to nothing, so nothing to detach.
        let old = InternetGatewayInputs::from_attrs(before)
            .ok()
            .map(|b| b.vpc_id);
        if old.as_ref() != Some(&vpc_id) {
            if let Some(old) = old {
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
                .vpc_id(vpc_id)
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
    type Inputs = ElasticIpInputs;

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
                let inputs = seen_typed(a.tags(), |name| ElasticIpInputs {
                    name,
                    domain: a.domain().map(|d| d.as_str()).unwrap_or_default().into(),
                });
                let outputs = ElasticIpOutputs {
                    id: id.to_string(),
                    public_ip: a.public_ip().unwrap_or_default().to_string(),
                };
                Some(Seen::Ready(observed(id, inputs, outputs)))
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: ElasticIpInputs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let ElasticIpInputs {
            name: _,   // carried by the Name tag
            domain: _, // always `vpc`, the only domain left
        } = inputs;
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
    type Inputs = NatGatewayInputs;

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
                // Attributes, not `NatGatewayInputs`: a gateway without an address
                // yet reads `allocation_id: null`.
                let inputs = seen_inputs(
                    Attrs::from([
                        ("subnet_id".into(), json!(n.subnet_id())),
                        ("allocation_id".into(), json!(allocation)),
                    ]),
                    n.tags(),
                );
                let o = observed(id, inputs, id_only(id));
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
        inputs: NatGatewayInputs,
        token: &str,
    ) -> Result<String, ProviderError> {
        let NatGatewayInputs {
            name: _, // carried by the Name tag
            subnet_id,
            allocation_id,
        } = inputs;
        let out = c
            .ec2
            .create_nat_gateway()
            .subnet_id(subnet_id)
            .allocation_id(allocation_id)
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

impl RouteTable {
    async fn set_route(
        &self,
        c: &Clients,
        id: &str,
        route: &Route,
        replace: bool,
    ) -> Result<(), ProviderError> {
        let Route {
            destination: dest,
            gateway_id: gateway,
            nat_gateway_id: nat,
        } = route;
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
    type Inputs = RouteTableInputs;

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
                let routes = t
                    .routes()
                    .iter()
                    .filter(|r| r.gateway_id() != Some("local"))
                    .filter_map(|r| {
                        Some(Route {
                            destination: r.destination_cidr_block()?.to_string(),
                            gateway_id: r.gateway_id().map(String::from),
                            nat_gateway_id: r.nat_gateway_id().map(String::from),
                        })
                    })
                    .collect();
                let subnet_ids = t
                    .associations()
                    .iter()
                    .filter(|a| !a.main().unwrap_or(false))
                    .filter_map(|a| a.subnet_id().map(String::from))
                    .collect();
                let inputs = seen_typed(t.tags(), |name| RouteTableInputs {
                    name,
                    vpc_id: t.vpc_id().unwrap_or_default().to_string(),
                    routes,
                    subnet_ids,
                });
                Some(Seen::Ready(observed(id, inputs, id_only(id))))
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: RouteTableInputs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let RouteTableInputs {
            name: _, // carried by the Name tag
            vpc_id,
            routes,
            subnet_ids,
        } = inputs;
        let out = c
            .ec2
            .create_route_table()
            .vpc_id(vpc_id)
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
        for r in routes {
            eventually(|| self.set_route(c, &id, &r, false)).await?;
        }
        for subnet in subnet_ids {
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
        after: RouteTableInputs,
    ) -> Result<(), ProviderError> {
        let old = RouteTableInputs::from_recorded(before)?.routes;
        let RouteTableInputs {
            name: _,   // the Name tag, changed with the tags
            vpc_id: _, // a new VPC is a new table
            routes: new,
            subnet_ids: wanted,
        } = after;
        let same = |a: &Route, b: &Route| a.destination == b.destination;
        for r in &new {
            match old.iter().find(|o| same(o, r)) {
                None => self.set_route(c, id, r, false).await?,
                Some(o) if o != r => self.set_route(c, id, r, true).await?,
                Some(_) => {}
            }
        }
        for o in old.iter().filter(|o| !new.iter().any(|r| same(r, o))) {
            c.ec2
                .delete_route()
                .route_table_id(id)
                .destination_cidr_block(&o.destination)
                .send()
                .await
                .map_err(classify)?;
        }
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
    type Inputs = SecurityGroupInputs;

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
                // Attributes, not `SecurityGroupInputs`: whether the default egress
                // rule was revoked at create is not something AWS reports.
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
                Some(Seen::Ready(observed(id, inputs, arn_outputs(id, arn))))
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: SecurityGroupInputs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let SecurityGroupInputs {
            name,
            description,
            vpc_id,
            revoke_default_egress,
        } = inputs;
        let out = c
            .ec2
            .create_security_group()
            .group_name(name)
            .description(description)
            .vpc_id(vpc_id)
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
        if revoke_default_egress {
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

/// `$then` on the egress call of a pair when `$egress`, else on the ingress one: the
/// SDK gives each its own builder type, so the two cannot share a variable.
macro_rules! by_direction {
    ($egress:expr, $ec2:expr, $out:ident, $in:ident, |$call:ident| $then:expr) => {
        if $egress {
            let $call = $ec2.$out();
            $then
        } else {
            let $call = $ec2.$in();
            $then
        }
    };
}

/// A rule's group, whether it is an egress rule, and its permission (which carries
/// its description).
fn permission(
    rule: SecurityGroupRuleInputs,
) -> Result<(String, bool, IpPermission), ProviderError> {
    let SecurityGroupRuleInputs {
        group_id,
        direction,
        protocol,
        from_port,
        to_port,
        cidr,
        peer_group_id,
        description,
    } = rule;
    let mut p = IpPermission::builder().ip_protocol(&protocol);
    if protocol != "-1" {
        p = p
            .from_port(i32::from(from_port))
            .to_port(i32::from(to_port));
    }
    match (cidr, peer_group_id) {
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
    Ok((group_id, direction == "egress", p.build()))
}

#[async_trait]
impl Ec2Kind for SecurityGroupRule {
    const ID_FILTER: &'static str = "security-group-rule-id";
    const PARENT_FILTER: Option<&'static str> = Some("group-id");
    type Inputs = SecurityGroupRuleInputs;

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
                // Attributes, not `SecurityGroupRuleInputs`: an all-protocols rule
                // has no ports, and a rule without a description none.
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
                    id_only(id),
                )))
            })
            .collect())
    }

    async fn create(
        &self,
        c: &Clients,
        tags: &BTreeMap<String, String>,
        inputs: SecurityGroupRuleInputs,
        _token: &str,
    ) -> Result<String, ProviderError> {
        let (group, egress, perm) = permission(inputs)?;
        let spec = tag_spec(ResourceType::SecurityGroupRule, tags);
        let rules = by_direction!(
            egress,
            c.ec2,
            authorize_security_group_egress,
            authorize_security_group_ingress,
            |call| call
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
        );
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
        after: SecurityGroupRuleInputs,
    ) -> Result<(), ProviderError> {
        let old = SecurityGroupRuleInputs::from_recorded(before).ok();
        if old.is_some_and(|o| o.description == after.description) {
            return Ok(());
        }
        let (group, egress, perm) = permission(after)?;
        by_direction!(
            egress,
            c.ec2,
            update_security_group_rule_descriptions_egress,
            update_security_group_rule_descriptions_ingress,
            |call| call
                .group_id(group)
                .ip_permissions(perm)
                .send()
                .await
                .map_err(classify)
                .map(drop)
        )
    }

    async fn delete(
        &self,
        c: &Clients,
        id: &str,
        inputs: &Attrs,
    ) -> Result<Deletion, ProviderError> {
        // The recorded inputs, read as attributes as before: only the group and the
        // direction matter here.
        let group = str_of(inputs, "group_id")?;
        let result = by_direction!(
            str_of(inputs, "direction")? == "egress",
            c.ec2,
            revoke_security_group_egress,
            revoke_security_group_ingress,
            |call| call
                .group_id(group)
                .security_group_rule_ids(id)
                .send()
                .await
                .map(|_| ())
                .map_err(classify)
        );
        match result {
            Ok(()) => Ok(Deletion::Done),
            // The rule's group is already gone, and the rule with it.
            Err(e) if e.class == ErrorClass::NotFound => Ok(Deletion::Done),
            Err(e) => Err(e),
        }
    }
}
