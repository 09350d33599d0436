//! `security_groups`: names, rules with exactly one peer, ports, no duplicates.

use std::collections::HashSet;

use super::Checker;
use crate::spec::model::Rule;
use crate::spec::values::{is_slug, parse_cidr, parse_ports};
use crate::spec::yaml::escape;

impl Checker<'_> {
    pub(super) fn security_groups(&mut self) {
        for (name, sg) in &self.spec.security_groups {
            let base = format!("/security_groups/{}", escape(name));
            if !is_slug(name) {
                self.key_err(&base, format!("security group name `{name}` must be lowercase letters, digits and hyphens"));
            }
            if let Some(n) = &sg.name {
                if n.is_empty() || n.len() > 255 || n.to_ascii_lowercase().starts_with("sg-") {
                    self.err(
                        &format!("{base}/name"),
                        format!("`{n}` cannot name a security group (1–255 characters, not starting with `sg-`)"),
                    );
                }
            }
            let mut rules_seen = HashSet::new();
            let egress = sg.egress.as_deref().unwrap_or(&[]);
            for (dir, rules) in [("ingress", sg.ingress.as_slice()), ("egress", egress)] {
                for (i, rule) in rules.iter().enumerate() {
                    let p = format!("{base}/{dir}/{i}");
                    self.rule(&p, rule);
                    if !rules_seen.insert((dir, rule_id(rule))) {
                        self.err(&p, format!("duplicate {dir} rule"))
                            .hint("remove one of them");
                    }
                }
            }
        }
    }

    fn rule(&mut self, p: &str, rule: &Rule) {
        if let Err(why) = parse_ports(&rule.ports) {
            self.err(&format!("{p}/ports"), why)
                .hint("a port `443` or a range `\"6379-6380\"`");
        }
        match (&rule.cidr, &rule.group) {
            (Some(_), Some(_)) => {
                self.err(p, "a rule names either a `cidr` or a `group`, not both")
                    .hint("split it into two rules");
            }
            (None, None) => {
                self.err(p, "a rule needs a peer: `cidr` or `group`")
                    .hint("for example `cidr: 0.0.0.0/0` or `group: lambda`");
            }
            (Some(c), None) => {
                if let Err(why) = parse_cidr(c) {
                    self.err(
                        &format!("{p}/cidr"),
                        format!("`{c}` is not a valid IPv4 CIDR block: {why}"),
                    );
                }
            }
            (None, Some(g)) => self.check_groups(p, std::slice::from_ref(g)),
        }
    }
}

fn rule_id(r: &Rule) -> String {
    format!(
        "{}:{}:{:?}:{:?}",
        r.protocol.as_str(),
        r.ports,
        r.cidr,
        r.group
    )
}
