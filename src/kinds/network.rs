//! The network: VPC, subnets, gateways, route tables, security groups and their rules.

use serde::{Deserialize, Serialize};

use super::{ArnOutputs, IdOutputs, Inputs, Outputs};
use crate::model::Kind;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VpcInputs {
    pub name: String,
    pub cidr_block: String,
    pub enable_dns_hostnames: bool,
    pub enable_dns_support: bool,
}

impl Inputs for VpcInputs {
    const KIND: Kind = Kind::Vpc;
    const REPLACE_ON: &'static [&'static str] = &["cidr_block"];
    type Outputs = ArnOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-vpc".into(),
            cidr_block: "10.0.0.0/16".into(),
            enable_dns_hostnames: true,
            enable_dns_support: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubnetInputs {
    pub name: String,
    pub vpc_id: String,
    pub cidr_block: String,
    pub availability_zone: String,
    pub map_public_ip_on_launch: bool,
}

impl Inputs for SubnetInputs {
    const KIND: Kind = Kind::Subnet;
    const REPLACE_ON: &'static [&'static str] = &["vpc_id", "cidr_block", "availability_zone"];
    const UNIQUE_ON: &'static [&'static str] = &["cidr_block"];
    type Outputs = ArnOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-private-a".into(),
            vpc_id: "vpc-1".into(),
            cidr_block: "10.0.2.0/24".into(),
            availability_zone: "us-east-1a".into(),
            map_public_ip_on_launch: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InternetGatewayInputs {
    pub name: String,
    pub vpc_id: String,
}

impl Inputs for InternetGatewayInputs {
    const KIND: Kind = Kind::InternetGateway;
    // Attached and detached in place.
    const REPLACE_ON: &'static [&'static str] = &[];
    type Outputs = IdOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-igw".into(),
            vpc_id: "vpc-1".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticIpInputs {
    pub name: String,
    pub domain: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticIpOutputs {
    pub id: String,
    pub public_ip: String,
}

impl Outputs for ElasticIpOutputs {
    const NAMES: &'static [&'static str] = &["id", "public_ip"];
    fn example() -> Self {
        Self {
            id: "eipalloc-1".into(),
            public_ip: "203.0.113.7".into(),
        }
    }
}

impl Inputs for ElasticIpInputs {
    const KIND: Kind = Kind::ElasticIp;
    const REPLACE_ON: &'static [&'static str] = &[];
    type Outputs = ElasticIpOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-nat-a".into(),
            domain: "vpc".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatGatewayInputs {
    pub name: String,
    pub subnet_id: String,
    pub allocation_id: String,
}

impl Inputs for NatGatewayInputs {
    const KIND: Kind = Kind::NatGateway;
    const REPLACE_ON: &'static [&'static str] = &["subnet_id", "allocation_id"];
    // An Elastic IP is associated with one NAT gateway at a time: a gateway made
    // beside the old one with the same address fails.
    const UNIQUE_ON: &'static [&'static str] = &["allocation_id"];
    type Outputs = IdOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-nat-a".into(),
            subnet_id: "subnet-1".into(),
            allocation_id: "eipalloc-1".into(),
        }
    }
}

/// One route of a route table: to an internet gateway or a NAT gateway.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub destination: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_gateway_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTableInputs {
    pub name: String,
    pub vpc_id: String,
    pub routes: Vec<Route>,
    pub subnet_ids: Vec<String>,
}

impl Inputs for RouteTableInputs {
    const KIND: Kind = Kind::RouteTable;
    const REPLACE_ON: &'static [&'static str] = &["vpc_id"];
    type Outputs = IdOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-private-a".into(),
            vpc_id: "vpc-1".into(),
            routes: vec![Route {
                destination: "0.0.0.0/0".into(),
                gateway_id: None,
                nat_gateway_id: Some("nat-1".into()),
            }],
            subnet_ids: vec!["subnet-1".into()],
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupInputs {
    pub name: String,
    pub description: String,
    pub vpc_id: String,
    /// The spec lists egress rules: the default allow-all egress rule goes.
    pub revoke_default_egress: bool,
}

impl Inputs for SecurityGroupInputs {
    const KIND: Kind = Kind::SecurityGroup;
    const REPLACE_ON: &'static [&'static str] = &["name", "description", "vpc_id"];
    const UNIQUE_ON: &'static [&'static str] = &["name"];
    type Outputs = ArnOutputs;
    fn example() -> Self {
        Self {
            name: "trivia-dev-lambda".into(),
            description: "trivia-dev lambda".into(),
            vpc_id: "vpc-1".into(),
            revoke_default_egress: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityGroupRuleInputs {
    pub group_id: String,
    /// `ingress` or `egress`.
    pub direction: String,
    /// `tcp`, `udp`, `icmp` or `-1` (all).
    pub protocol: String,
    pub from_port: u16,
    pub to_port: u16,
    /// The peer: a CIDR block or another group (exactly one is set).
    pub cidr: Option<String>,
    pub peer_group_id: Option<String>,
    /// Changes in place (`UpdateSecurityGroupRuleDescriptions…`).
    pub description: Option<String>,
}

/// The rule attributes that say which rule it is (not its description).
pub(crate) const RULE_IDENTITY: &[&str] = &[
    "group_id",
    "direction",
    "protocol",
    "from_port",
    "to_port",
    "cidr",
    "peer_group_id",
];

impl Inputs for SecurityGroupRuleInputs {
    const KIND: Kind = Kind::SecurityGroupRule;
    const REPLACE_ON: &'static [&'static str] = RULE_IDENTITY;
    // EC2 refuses a second rule with the same group, direction, ports and peer.
    const UNIQUE_ON: &'static [&'static str] = RULE_IDENTITY;
    type Outputs = IdOutputs;
    fn example() -> Self {
        Self {
            group_id: "sg-1".into(),
            direction: "ingress".into(),
            protocol: "tcp".into(),
            from_port: 6379,
            to_port: 6380,
            cidr: None,
            peer_group_id: Some("sg-2".into()),
            description: Some("functions to the cache".into()),
        }
    }
}
