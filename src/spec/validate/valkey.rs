//! `valkey`: the cache name once prefixed, its subnets and groups, limits, SSM path.

use super::{Checker, Subnets};
use crate::spec::model::SubnetSet;
use crate::spec::values::{is_hh_mm, ssm_path};

impl Checker<'_> {
    pub(super) fn valkey(&mut self, subnets: &Subnets) {
        let Some(cache) = &self.spec.valkey else {
            return;
        };
        let name = format!("{}-cache", self.prefix());
        if name.len() > 40 {
            self.err(
                "/project",
                format!(
                    "the cache name `{name}` is {} characters; ElastiCache allows at most 40",
                    name.len()
                ),
            )
            .hint("shorten `project` or `environment`");
        }
        if name.contains("--") {
            self.err(
                "/valkey",
                format!("the cache name `{name}` contains `--`, which ElastiCache refuses"),
            );
        }
        let chosen = match cache.subnets {
            SubnetSet::Private => &subnets.private,
            SubnetSet::Public => &subnets.public,
        };
        if chosen.len() < 2 && !self.spec.network.vpc_cidr.is_empty() {
            let set = if cache.subnets == SubnetSet::Private {
                "private"
            } else {
                "public"
            };
            self.err(
                "/valkey/subnets",
                format!(
                    "the cache needs at least two {set} subnets in distinct AZs; the spec has {}",
                    chosen.len()
                ),
            )
            .hint(format!(
                "add another entry under `network.{set}_subnets`, e.g. `b: 10.0.3.0/24`"
            ));
        }
        if let Some(min) = cache.min_storage_gb {
            if min > cache.max_storage_gb {
                self.err(
                    "/valkey/min_storage_gb",
                    format!(
                        "minimum storage {min} GB is above the maximum {} GB",
                        cache.max_storage_gb
                    ),
                );
            }
        }
        if let Some(min) = cache.min_ecpu_per_second {
            if min > cache.max_ecpu_per_second {
                self.err(
                    "/valkey/min_ecpu_per_second",
                    format!(
                        "minimum ECPU/s {min} is above the maximum {}",
                        cache.max_ecpu_per_second
                    ),
                );
            }
        }
        if !is_hh_mm(&cache.daily_snapshot_time) {
            self.err(
                "/valkey/daily_snapshot_time",
                format!(
                    "`{}` is not a time of day as HH:MM (UTC)",
                    cache.daily_snapshot_time
                ),
            )
            .hint("for example `03:00`");
        }
        self.check_groups("/valkey/security_groups", &cache.security_groups);
        if cache.security_groups.is_empty() {
            self.err(
                "/valkey",
                "the cache has no `security_groups`; AWS would put it in the VPC's default group",
            )
            .hint("name a group whose ingress admits your functions on 6379-6380");
        }
        if let Some(path) = &cache.publish_to_ssm {
            if let Err(why) = ssm_path(path) {
                self.err("/valkey/publish_to_ssm", why)
                    .hint("for example `/trivia-dev/valkey`");
            }
        }
    }
}
