//! Markdown for pull requests: a plan as a comment body (`plan --format markdown`) and
//! the smoke checks as a table (`smoke --format markdown`). Each body opens with a
//! hidden marker naming the environment, so a workflow updates one comment in place.
//! Nothing here depends on the time or the machine: the same plan renders the same.

use std::fmt::Write;

use serde_json::Value;

use super::{signed, usd};
use crate::model::Action;
use crate::plan::{AttrChange, Change, Operation, Plan};

/// The hidden first line of a plan comment: `<!-- deploy:plan ENV -->`.
pub fn plan_marker(environment: &str) -> String {
    format!("<!-- deploy:plan {environment} -->")
}

/// The hidden first line of a smoke comment: `<!-- deploy:smoke ENV -->`.
pub fn smoke_marker(environment: &str) -> String {
    format!("<!-- deploy:smoke {environment} -->")
}

fn html(text: &str) -> String {
    html_escape::encode_text(text).into_owned()
}

/// Text inside a table cell: no line breaks, no column separators.
fn cell(text: &str) -> String {
    html(text).replace('|', "\\|").replace('\n', " ")
}

fn word(a: Action) -> &'static str {
    match a {
        Action::Create => "create",
        Action::Update => "update",
        Action::DeleteBeforeCreate => "replace (delete first)",
        Action::CreateBeforeDelete => "replace (create first)",
        Action::Delete => "delete",
        Action::NoOp => "drift only",
    }
}

fn value(v: &Option<Value>, known_after_apply: bool) -> String {
    match v {
        _ if known_after_apply => "(known after apply)".into(),
        None => "(none)".into(),
        Some(v) => v.to_string(),
    }
}

/// A fenced block that no backtick run inside `body` can close early.
fn fenced(lang: &str, body: &str) -> String {
    let longest = body.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}{lang}\n{body}{fence}\n")
}

/// The plan as a pull-request comment: the marker, the summary line and the cost change
/// first, what blocks the apply (data loss, protection), then one collapsible section
/// per changed resource with its attributes as a diff.
pub fn plan(plan: &Plan, allow_data_loss: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", plan_marker(&plan.environment));
    let what = match plan.operation {
        Operation::Apply => "plan",
        Operation::Destroy => "destroy plan",
    };
    let _ = writeln!(
        out,
        "### `deploy` {what} for `{}`\n",
        html(&plan.environment)
    );
    let summary = anstream::adapter::strip_str(&super::summary_line(plan)).to_string();
    let _ = writeln!(out, "**{}**", html(&summary));
    let mut facts = vec![format!(
        "`{}-{}` in {}{}",
        plan.project,
        plan.environment,
        plan.region,
        plan.account
            .as_ref()
            .map(|a| format!(", account {a}"))
            .unwrap_or_default()
    )];
    if let Some(c) = &plan.cost {
        facts.push(format!(
            "monthly estimate {} → {} ({}) at the assumed load, idle {} → {}",
            usd(c.before.high),
            usd(c.after.high),
            signed(c.after.high - c.before.high),
            usd(c.before.low),
            usd(c.after.low)
        ));
    }
    if plan.summary.drifted > 0 {
        facts.push(format!(
            "{} resource(s) changed outside deploy",
            plan.summary.drifted
        ));
    }
    if !plan.refreshed {
        facts.push("planned from recorded state only (no refresh)".into());
    }
    if !plan.targets.is_empty() {
        let t: Vec<String> = plan.targets.iter().map(|a| format!("`{a}`")).collect();
        facts.push(format!("limited to {}", t.join(", ")));
    }
    for f in facts {
        let _ = writeln!(out, "- {f}");
    }
    if let Some(c) = &plan.cost {
        for w in &c.warnings {
            let _ = writeln!(out, "- ⚠️ {}", html(w));
        }
    }
    let refusals = crate::ops::refusal_lines(plan, allow_data_loss);
    if !refusals.is_empty() {
        let _ = writeln!(
            out,
            "\n> [!CAUTION]\n> **This plan cannot be applied as it stands:**"
        );
        for r in &refusals {
            let _ = writeln!(out, "> - {}", html(r));
        }
    }
    let shown: Vec<&Change> = plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp || !c.drift.is_empty())
        .collect();
    if !shown.is_empty() {
        out.push('\n');
    }
    let total = shown.len();
    for (i, c) in shown.into_iter().enumerate() {
        let mut section = String::new();
        change(&mut section, c);
        // GitHub refuses comments over 65,536 characters: the rest is listed by name.
        if out.len() + section.len() > COMMENT_BUDGET {
            let _ = writeln!(
                out,
                "… and {} more change(s), too many to show here: run `deploy plan -e {}` for all of them.",
                total - i,
                plan.environment
            );
            break;
        }
        out.push_str(&section);
    }
    out
}

/// Room for a plan comment's body, below GitHub's 65,536-character limit.
const COMMENT_BUDGET: usize = 60_000;

fn change(out: &mut String, c: &Change) {
    let mut head = format!(
        "<code>{}</code> {} <code>{}</code> ({}) — {}",
        c.action.symbol(),
        word(c.action),
        html(c.address.as_str()),
        html(c.kind.as_str()),
        html(c.reason.as_deref().unwrap_or("")),
    );
    if c.reason.is_none() {
        head.truncate(head.len() - " — ".len());
    }
    for (mark, warning) in super::marks(c) {
        if warning {
            let _ = write!(head, " <b>{mark}</b>");
        } else {
            let _ = write!(head, " {mark}");
        }
    }
    let mut lines = String::new();
    match c.action {
        Action::Create => {
            for a in &c.attributes {
                let _ = writeln!(
                    lines,
                    "+ {} = {}",
                    a.path,
                    value(&a.after, a.known_after_apply)
                );
            }
        }
        Action::Update | Action::DeleteBeforeCreate | Action::CreateBeforeDelete => {
            for a in &c.attributes {
                attr(&mut lines, a);
            }
        }
        _ => {}
    }
    for d in &c.drift {
        let _ = writeln!(
            lines,
            "! {}: {} → {} (changed outside deploy)",
            d.path,
            value(&d.before, false),
            value(&d.after, false)
        );
    }
    if lines.is_empty() {
        let _ = writeln!(out, "- {head}");
    } else {
        let _ = writeln!(
            out,
            "<details><summary>{head}</summary>\n\n{}\n</details>\n",
            fenced("diff", &lines)
        );
    }
}

fn attr(out: &mut String, a: &AttrChange) {
    let forces = if a.forces_replacement {
        "  # forces replacement"
    } else {
        ""
    };
    let _ = writeln!(out, "- {} = {}{forces}", a.path, value(&a.before, false));
    let _ = writeln!(
        out,
        "+ {} = {}",
        a.path,
        value(&a.after, a.known_after_apply)
    );
}

/// The smoke checks as a Markdown table, with the marker and a verdict line.
pub fn smoke(r: &crate::smoke::Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", smoke_marker(&r.environment));
    let failed = r.checks.iter().filter(|c| !c.ok).count();
    let verdict = if failed == 0 {
        format!("✅ All {} smoke checks passed", r.checks.len())
    } else {
        format!("❌ {failed} of {} smoke checks failed", r.checks.len())
    };
    let target = if r.target.is_empty() {
        "(no API)".to_string()
    } else {
        format!("<{}>", r.target)
    };
    let _ = writeln!(
        out,
        "### Smoke checks for `{}`\n\n**{verdict}** against {target}\n",
        html(&r.environment)
    );
    let _ = writeln!(out, "| check | result | latency | detail |");
    let _ = writeln!(out, "|---|---|--:|---|");
    for c in &r.checks {
        let latency = c
            .latency_ms
            .map(|l| format!("{l:.1} ms"))
            .unwrap_or_else(|| "–".into());
        let _ = writeln!(
            out,
            "| {} | {} | {latency} | {} |",
            cell(&c.check),
            if c.ok { "✅ pass" } else { "❌ FAIL" },
            cell(&c.detail)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_is_longer_than_any_backtick_run_inside() {
        assert_eq!(fenced("diff", "+ a = 1\n"), "```diff\n+ a = 1\n```\n");
        let tricky = "+ note = \"````\"\n";
        assert!(fenced("diff", tricky).starts_with("`````diff\n"));
    }

    #[test]
    fn cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(cell("a|b\n<script>"), "a\\|b &lt;script&gt;");
    }

    #[test]
    fn the_smoke_table_has_a_marker_a_verdict_and_one_row_per_check() {
        let r = crate::smoke::Report {
            environment: "pr-7".into(),
            target: "https://x.example/live".into(),
            ok: false,
            checks: vec![
                crate::smoke::Check {
                    check: "health".into(),
                    ok: true,
                    detail: "valkey tls".into(),
                    latency_ms: Some(12.34),
                },
                crate::smoke::Check {
                    check: "cors".into(),
                    ok: false,
                    detail: "no Access-Control-Allow-Origin | header".into(),
                    latency_ms: None,
                },
            ],
        };
        let md = smoke(&r);
        assert!(md.starts_with("<!-- deploy:smoke pr-7 -->\n"));
        assert!(md.contains("**❌ 1 of 2 smoke checks failed** against <https://x.example/live>"));
        assert!(md.contains("| health | ✅ pass | 12.3 ms | valkey tls |"));
        assert!(md.contains("| cors | ❌ FAIL | – | no Access-Control-Allow-Origin \\| header |"));
    }
}
