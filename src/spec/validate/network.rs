//! `network`: the VPC block, subnets inside it and apart, and where NAT gateways go.

use ipnet::Ipv4Net;

use super::{Checker, Subnets};
use crate::spec::model::NatMode;
use crate::spec::values::parse_cidr;
use crate::spec::yaml::escape;

impl Checker<'_> {
    pub(super) fn network(&mut self) -> Subnets {
        let net = &self.spec.network;
        let mut found = Subnets::default();
        let needs_network = !net.public_subnets.is_empty()
            || !net.private_subnets.is_empty()
            || self.spec.valkey.is_some();
        if net.vpc_cidr.is_empty() {
            if needs_network {
                self.err("/network", "missing `network.vpc_cidr`")
                    .hint("for example `vpc_cidr: 10.0.0.0/16`");
            }
            return found;
        }
        let vpc = match parse_cidr(&net.vpc_cidr) {
            Ok(c) => c,
            Err(why) => {
                self.err(
                    "/network/vpc_cidr",
                    format!("`{}` is not a valid IPv4 CIDR block: {why}", net.vpc_cidr),
                )
                .hint("for example `10.0.0.0/16`");
                return found;
            }
        };
        if !(16..=28).contains(&vpc.prefix_len()) {
            self.err(
                "/network/vpc_cidr",
                format!(
                    "a VPC block must be between /16 and /28, found /{}",
                    vpc.prefix_len()
                ),
            );
        }
        let mut seen: Vec<(String, Ipv4Net, String)> = Vec::new();
        for (set, map) in [
            ("public_subnets", &net.public_subnets),
            ("private_subnets", &net.private_subnets),
        ] {
            for (az, cidr) in map {
                let p = format!("/network/{set}/{}", escape(az));
                // Counted even when its block is wrong, so later checks do not echo it.
                if set == "public_subnets" {
                    found.public.insert(az.clone());
                } else {
                    found.private.insert(az.clone());
                }
                if !(az.len() == 1 && az.chars().all(|c| c.is_ascii_lowercase())) {
                    let example = format!(
                        "`a` means {}a",
                        if self.spec.region.is_empty() {
                            "us-east-1"
                        } else {
                            &self.spec.region
                        }
                    );
                    self.key_err(
                        &p,
                        format!("subnet key `{az}` must be an availability-zone letter"),
                    )
                    .hint(example);
                    continue;
                }
                let net4 = match parse_cidr(cidr) {
                    Ok(c) => c,
                    Err(why) => {
                        self.err(
                            &p,
                            format!("`{cidr}` is not a valid IPv4 CIDR block: {why}"),
                        )
                        .hint("for example `10.0.1.0/24`");
                        continue;
                    }
                };
                if !vpc.contains(&net4) {
                    self.err(&p, format!("subnet {cidr} is outside the VPC block {vpc}"))
                        .hint(format!("pick a block inside {vpc}"));
                    continue;
                }
                if !(16..=28).contains(&net4.prefix_len()) {
                    self.err(
                        &p,
                        format!(
                            "a subnet block must be between /16 and /28, found /{}",
                            net4.prefix_len()
                        ),
                    );
                }
                if let Some((other_p, other, _)) = seen
                    .iter()
                    .find(|(_, o, _)| o.contains(&net4.network()) || net4.contains(&o.network()))
                {
                    let other_at = self.sources.value(other_p);
                    self.err(
                        &p,
                        format!(
                            "subnet {cidr} overlaps {other} ({}:{})",
                            other_at.line, other_at.col
                        ),
                    )
                    .hint("subnets of one VPC must not share addresses");
                    continue;
                }
                seen.push((p, net4, az.clone()));
            }
        }
        match net.nat {
            NatMode::Single if !net.private_subnets.is_empty() && net.public_subnets.is_empty() => {
                self.err(
                    "/network/nat",
                    "a NAT gateway needs a public subnet to live in",
                )
                .hint("add `public_subnets`, or set `nat: none`");
            }
            NatMode::PerAz => {
                for az in net
                    .private_subnets
                    .keys()
                    .filter(|az| !net.public_subnets.contains_key(*az))
                {
                    self.err("/network/nat", format!("`nat: per_az` needs a public subnet in every AZ with a private subnet; AZ `{az}` has none"))
                        .hint(format!("add `public_subnets.{az}`, or use `nat: single`"));
                }
            }
            _ => {}
        }
        found
    }
}
