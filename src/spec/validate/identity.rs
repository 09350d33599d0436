//! Who and where: `project`, `environment`, `region`, `tags`, `ephemeral`, and where
//! the state is kept (`state`).

use super::Checker;
use crate::spec::diag::did_you_mean;
use crate::spec::values::{is_region, is_slug, KNOWN_REGIONS};
use crate::spec::yaml::escape;

impl Checker<'_> {
    pub(super) fn identity(&mut self) {
        for (key, value) in [
            ("project", &self.spec.project),
            ("environment", &self.spec.environment),
        ] {
            if value.is_empty() {
                self.err("", format!("missing required key `{key}`"))
                    .hint(format!(
                        "add `{key}: NAME` (lowercase letters, digits and hyphens)"
                    ));
            } else if !is_slug(value) {
                self.err(&format!("/{key}"), format!("`{key}` must be lowercase letters, digits and single hyphens, starting with a letter; found `{value}`"))
                    .hint("AWS resource names are built from it, and several services accept only this form");
            }
        }
        if let Some(e) = &self.spec.ephemeral {
            if humantime::parse_rfc3339(&e.expires_at).is_err() {
                self.err(
                    "/ephemeral/expires_at",
                    format!("`{}` is not an RFC 3339 UTC time", e.expires_at),
                )
                .hint("for example `2026-11-23T12:00:00Z`");
            }
        }
        let region = &self.spec.region;
        if region.is_empty() {
            self.err("", "missing required key `region`")
                .hint("add `region: us-east-1` (or your region)");
        } else if !is_region(region) {
            self.err("/region", format!("`{region}` is not an AWS region name"))
                .hint("for example `us-east-1` or `eu-west-2`");
        } else if !KNOWN_REGIONS.contains(&region.as_str()) {
            let hint = did_you_mean(region, KNOWN_REGIONS.iter().copied())
                .map(|r| format!("did you mean `{r}`?"))
                .unwrap_or_else(|| "regions are named like `us-east-1` or `eu-west-2`".into());
            self.err(
                "/region",
                format!("`{region}` is not a region in any AWS partition this build knows"),
            )
            .hint(hint);
        }
        if let Some(s3) = self.spec.state.as_ref().and_then(|s| s.s3.as_ref()) {
            if let Err(why) = crate::state::s3::check_bucket(&s3.bucket) {
                self.err("/state/s3/bucket", why).hint(
                    "bucket names are global; `deploy backend bootstrap --bucket NAME` makes one",
                );
            }
            if s3.prefix.starts_with('/') || s3.prefix.ends_with('/') || s3.prefix.contains("//") {
                self.err(
                    "/state/s3/prefix",
                    format!(
                        "`{}` must not start or end with `/` or hold `//`",
                        s3.prefix
                    ),
                )
                .hint("for example `trivia` or `teams/games`");
            }
            if !s3.region.is_empty() && !KNOWN_REGIONS.contains(&s3.region.as_str()) {
                self.err(
                    "/state/s3/region",
                    format!("`{}` is not a region this build knows", s3.region),
                )
                .hint("the bucket's region, e.g. `us-east-1`; leave it out when it is the environment's");
            }
        }
        for (k, val) in &self.spec.tags {
            let p = format!("/tags/{}", escape(k));
            if k.starts_with("aws:") || k.starts_with("deploy:") {
                self.key_err(&p, format!("tag key `{k}` uses a reserved prefix"))
                    .hint("`aws:` belongs to AWS and `deploy:` to this tool");
            } else if k.is_empty() || k.len() > 128 || val.len() > 256 {
                self.key_err(
                    &p,
                    "tag keys must be 1–128 characters and values at most 256",
                );
            }
        }
    }
}
