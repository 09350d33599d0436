//! Human views of plans, diagnostics, progress and state. Text is built with ANSI styles;
//! the printer (anstream) strips them when `NO_COLOR` is set or the output is not a
//! terminal. Pull requests get their own views: Markdown comment bodies
//! ([`markdown`]) and workflow annotations ([`github`]).

pub mod github;
pub mod markdown;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use serde_json::Value;

use crate::engine::{Event, Report, StepOp};
use crate::model::Action;
use crate::plan::{AttrChange, Change, Operation, Plan};
use crate::spec::Diagnostics;

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const GREEN: Style = AnsiColor::Green.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const RED: Style = AnsiColor::Red.on_default();
const CYAN: Style = AnsiColor::Cyan.on_default();
const MAGENTA: Style = AnsiColor::Magenta.on_default();

fn paint(style: Style, text: impl std::fmt::Display) -> String {
    format!("{style}{text}{style:#}")
}

fn action_style(a: Action) -> Style {
    match a {
        Action::Create => GREEN,
        Action::Update => YELLOW,
        Action::DeleteBeforeCreate | Action::CreateBeforeDelete => MAGENTA,
        Action::Delete => RED,
        Action::NoOp => DIM,
    }
}

/// `Plan: 23 to create, 1 to update, 0 to replace, 0 to delete.`
pub fn summary_line(plan: &Plan) -> String {
    let s = &plan.summary;
    if !plan.has_changes() {
        let what = if plan.operation == Operation::Destroy {
            "Nothing to destroy"
        } else {
            "No changes"
        };
        return format!(
            "{}. {} resources match the spec.",
            paint(BOLD, what),
            s.unchanged
        );
    }
    format!(
        "{} {} to create, {} to update, {} to replace, {} to delete.",
        paint(BOLD, "Plan:"),
        s.create,
        s.update,
        s.replace,
        s.delete
    )
}

fn value(v: &Option<Value>, known_after_apply: bool) -> String {
    match v {
        _ if known_after_apply => paint(DIM, "(known after apply)"),
        None => paint(DIM, "(none)"),
        Some(Value::Null) => paint(DIM, "null"),
        Some(v) => v.to_string(),
    }
}

/// The whole plan for a human: summary first, then one block per changed resource,
/// then drift and refusals.
pub fn plan(plan: &Plan, allow_data_loss: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", summary_line(plan));
    if let Some(account) = &plan.account {
        let _ = writeln!(
            out,
            "{}",
            paint(
                DIM,
                format!(
                    "{}-{} in account {account}, {}.",
                    plan.project, plan.environment, plan.region
                )
            )
        );
    }
    if plan.summary.drifted > 0 {
        let _ = writeln!(
            out,
            "{} {} resource(s) changed outside deploy (shown as drift below).",
            paint(YELLOW, "Drift:"),
            plan.summary.drifted
        );
    }
    if !plan.refreshed {
        let _ = writeln!(out, "{}", paint(DIM, "Planned from recorded state only (no refresh): changes made outside deploy are not shown."));
    }
    if !plan.targets.is_empty() {
        let t: Vec<&str> = plan.targets.iter().map(|a| a.as_str()).collect();
        let _ = writeln!(
            out,
            "{} limited to {} and what it depends on.",
            paint(YELLOW, "Targeted:"),
            t.join(", ")
        );
    }
    for c in plan
        .changes
        .iter()
        .filter(|c| c.action != Action::NoOp || !c.drift.is_empty())
    {
        out.push('\n');
        change(&mut out, c);
    }
    if let Some(cost) = &plan.cost {
        out.push('\n');
        out.push_str(&cost_footer(cost));
    }
    let refusals = crate::ops::refusal_lines(plan, allow_data_loss);
    if !refusals.is_empty() {
        let _ = writeln!(
            out,
            "\n{}",
            paint(RED.bold(), "This plan cannot be applied as it stands:")
        );
        for r in refusals {
            let _ = writeln!(out, "  {} {r}", paint(RED, "✗"));
        }
    }
    out
}

fn change(out: &mut String, c: &Change) {
    let style = action_style(c.action);
    let mut head = format!(
        "{} {} {}",
        paint(style.bold(), format!("{:>3}", c.action.symbol())),
        paint(BOLD, &c.address),
        paint(DIM, format!("({})", c.kind))
    );
    if let Some(reason) = &c.reason {
        let _ = write!(head, " — {reason}");
    }
    for (mark, warning) in marks(c) {
        let _ = write!(
            head,
            " {}",
            paint(if warning { RED.bold() } else { DIM }, mark)
        );
    }
    let _ = writeln!(out, "{head}");
    match c.action {
        Action::Create => {
            let width = c.attributes.iter().map(|a| a.path.len()).max().unwrap_or(0);
            for a in &c.attributes {
                let _ = writeln!(
                    out,
                    "      {:<width$} = {}",
                    a.path,
                    value(&a.after, a.known_after_apply)
                );
            }
        }
        Action::Update | Action::DeleteBeforeCreate | Action::CreateBeforeDelete => {
            for a in &c.attributes {
                attr_change(out, a);
            }
        }
        _ => {}
    }
    for d in &c.drift {
        let _ = writeln!(
            out,
            "      {} {}: {} → {} {}",
            paint(YELLOW, "drift"),
            d.path,
            value(&d.before, false),
            value(&d.after, false),
            paint(DIM, "(changed outside deploy)")
        );
    }
}

/// What a change's heading calls out, each with whether it is a warning: data loss,
/// a protected resource being replaced or deleted, a deposed object.
pub(crate) fn marks(c: &Change) -> impl Iterator<Item = (&'static str, bool)> {
    [
        (c.data_loss, "[DATA LOSS]", true),
        (
            c.protected && (c.action.is_replace() || c.action == Action::Delete),
            "[PROTECTED]",
            true,
        ),
        (c.deposed, "(deposed object)", false),
    ]
    .into_iter()
    .filter(|(on, _, _)| *on)
    .map(|(_, mark, warning)| (mark, warning))
}

fn attr_change(out: &mut String, a: &AttrChange) {
    let forces = if a.forces_replacement {
        format!(" {}", paint(MAGENTA, "# forces replacement"))
    } else {
        String::new()
    };
    let _ = writeln!(
        out,
        "      {} {}: {} → {}{forces}",
        paint(YELLOW, "~"),
        a.path,
        value(&a.before, false),
        value(&a.after, a.known_after_apply)
    );
}

/// Diagnostics, one per problem, then a count.
pub fn diagnostics(d: &Diagnostics) -> String {
    let mut out = String::new();
    for x in &d.0 {
        let _ = writeln!(
            out,
            "{}: {} {}",
            paint(BOLD, &x.pos),
            paint(RED.bold(), "error:"),
            x.message
        );
        if let Some(h) = &x.hint {
            let _ = writeln!(out, "  {} {h}", paint(CYAN, "hint:"));
        }
    }
    let n = d.len();
    let _ = writeln!(
        out,
        "{}",
        paint(
            RED,
            format!("{n} problem{} found", if n == 1 { "" } else { "s" })
        )
    );
    out
}

fn short(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

fn verb(op: StepOp) -> (&'static str, &'static str) {
    match op {
        StepOp::Create => ("creating", "created"),
        StepOp::Update => ("updating", "updated"),
        StepOp::Delete => ("deleting", "deleted"),
    }
}

/// One progress line for an engine event, or `None` to stay quiet. `verbose` adds
/// retries. (How often waits are shown is the caller's choice.)
pub fn event(e: &Event, verbose: bool) -> Option<String> {
    Some(match e {
        Event::Started { address, op } => format!("{}: {}…", paint(BOLD, address), verb(*op).0),
        Event::Finished {
            address,
            op,
            elapsed,
        } => format!(
            "{}: {} {}",
            paint(BOLD, address),
            paint(GREEN, verb(*op).1),
            paint(DIM, format!("({})", short(*elapsed)))
        ),
        Event::Failed { address, op, error } => format!(
            "{}: {} to {}: {error}",
            paint(BOLD, address),
            paint(RED.bold(), "failed"),
            op.as_str()
        ),
        Event::Skipped {
            address,
            op,
            because,
        } => format!(
            "{}: {} ({} not attempted because {because} failed)",
            paint(BOLD, address),
            paint(YELLOW, "skipped"),
            op.as_str()
        ),
        Event::Retrying {
            address,
            attempt,
            delay,
            error,
        } if verbose => {
            format!(
                "{}: retrying in {} (attempt {attempt}): {error}",
                paint(BOLD, address),
                short(*delay)
            )
        }
        Event::Waiting {
            address,
            status,
            elapsed,
        } => {
            format!(
                "{}: still {status}… ({} elapsed)",
                paint(BOLD, address),
                short(*elapsed)
            )
        }
        Event::Adopted { address, id } => format!(
            "{}: found {id} from an interrupted run; adopting it instead of creating another",
            paint(BOLD, address)
        ),
        Event::LockTakenOver { message } => format!("{}: {message}", paint(YELLOW, "lock")),
        Event::FoundWithoutState {
            environment,
            adopted,
            others,
        } => {
            let mut line = format!(
                "{}: `{environment}` has no state, but {} resource{} tagged with it {} in the spec; recorded {}, to be updated rather than made again",
                paint(YELLOW, "state"),
                adopted.len(),
                if adopted.len() == 1 { "" } else { "s" },
                if adopted.len() == 1 { "is" } else { "are" },
                if adopted.len() == 1 { "it" } else { "them" },
            );
            if *others > 0 {
                line.push_str(&format!(
                    " ({others} more tagged with it are not in the spec: `deploy destroy --sweep` lists them)"
                ));
            }
            line
        }
        Event::Refreshed { .. } | Event::Retrying { .. } => return None,
    })
}

/// The closing lines of an apply or destroy.
pub fn report(r: &Report, operation: Operation) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, op) in &r.completed {
        *counts.entry(verb(*op).1).or_default() += 1;
    }
    let done: Vec<String> = ["created", "updated", "deleted"]
        .iter()
        .map(|v| format!("{} {v}", counts.get(v).copied().unwrap_or(0)))
        .collect();
    let what = if operation == Operation::Destroy {
        "Destroy"
    } else {
        "Apply"
    };
    if r.ok() {
        format!(
            "{} {}.",
            paint(GREEN.bold(), format!("{what} complete:")),
            done.join(", ")
        )
    } else if r.was_interrupted() {
        let mut out = format!(
            "{} {}; {} left undone, {} failed.",
            paint(YELLOW.bold(), format!("{what} interrupted:")),
            done.join(", "),
            r.interrupted.len(),
            r.failed.len()
        );
        for (a, op) in &r.interrupted {
            let _ = write!(out, "\n  {} {a} ({})", paint(YELLOW, "…"), op.as_str());
        }
        for (a, op, e) in &r.failed {
            let _ = write!(out, "\n  {} {a} ({}): {e}", paint(RED, "✗"), op.as_str());
        }
        out.push_str("\nState records everything that finished and the lock is released; run the same command again to resume.");
        out
    } else {
        let mut out = format!(
            "{} {}; {} failed, {} skipped.",
            paint(RED.bold(), format!("{what} incomplete:")),
            done.join(", "),
            r.failed.len(),
            r.skipped.len()
        );
        for (a, op, e) in &r.failed {
            let _ = write!(out, "\n  {} {a} ({}): {e}", paint(RED, "✗"), op.as_str());
        }
        out.push_str("\nState records everything that finished; fix the cause and run the same command again.");
        out
    }
}

pub(crate) fn usd(v: f64) -> String {
    format!("${v:.2}")
}

pub(crate) fn signed(v: f64) -> String {
    if v < 0.0 {
        format!("-${:.2}", -v)
    } else {
        format!("+${v:.2}")
    }
}

/// `Monthly estimate: $41.20 → $73.10 (+$31.90)`, at the assumed load, then the idle
/// floor and any warnings.
pub fn cost_footer(c: &crate::cost::Delta) -> String {
    let mut out = format!(
        "{} {} → {} ({}) at the assumed load; idle {} → {}. `deploy cost` shows the basis.\n",
        paint(BOLD, "Monthly estimate:"),
        usd(c.before.high),
        usd(c.after.high),
        signed(c.after.high - c.before.high),
        usd(c.before.low),
        usd(c.after.low),
    );
    for w in &c.warnings {
        let _ = writeln!(out, "  {} {w}", paint(YELLOW, "!"));
    }
    out
}

/// `deploy cost`: one line per billable resource, totals, assumptions, warnings.
pub fn estimate(e: &crate::cost::Estimate, warnings: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} {} idle – {} at the assumed load",
        paint(BOLD, format!("Monthly estimate for `{}`:", e.environment)),
        usd(e.monthly_usd.low),
        usd(e.monthly_usd.high)
    );
    let _ = writeln!(out, "{}", paint(DIM, format!("({})", e.prices)));
    if !e.items.is_empty() {
        let wa = e
            .items
            .iter()
            .map(|i| i.address.as_str().len())
            .max()
            .unwrap_or(0)
            .max("resource".len());
        let wk = e
            .items
            .iter()
            .map(|i| i.kind.as_str().len())
            .max()
            .unwrap_or(0)
            .max("kind".len());
        let _ = writeln!(
            out,
            "\n  {:<wa$}  {:<wk$}  {:>9}  {:>9}  basis",
            "resource", "kind", "idle", "at load"
        );
        for i in &e.items {
            let _ = writeln!(
                out,
                "  {:<wa$}  {:<wk$}  {:>9}  {:>9}  {}",
                i.address.as_str(),
                i.kind.as_str(),
                usd(i.monthly_usd.low),
                usd(i.monthly_usd.high),
                paint(DIM, &i.basis)
            );
        }
    }
    let a = &e.assumptions;
    let _ = writeln!(
        out,
        "\nAssumptions: {} requests/day, {} KB of cache traffic per request, {} GB/month through NAT, {} ms per invocation, {} h/month.",
        a.requests_per_day,
        a.kb_per_request,
        a.nat_gb_per_month,
        a.function_duration_ms,
        crate::cost::HOURS_PER_MONTH
    );
    let _ = writeln!(
        out,
        "{}",
        paint(DIM, "Not billed here: VPC, subnets, route tables, internet gateway, security groups, IAM, standard SSM parameters, EventBridge rules; Cognito is free up to 10,000 monthly active users; free tiers are not deducted.")
    );
    if !warnings.is_empty() {
        let _ = writeln!(out, "\n{}", paint(YELLOW.bold(), "Worth a look:"));
        for w in warnings {
            let _ = writeln!(out, "  {} {w}", paint(YELLOW, "!"));
        }
    }
    out
}

/// The smoke checks as a table: check, result, latency, detail.
pub fn smoke(r: &crate::smoke::Report) -> String {
    use std::fmt::Write;
    let width = r
        .checks
        .iter()
        .map(|c| c.check.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "\nSmoke checks against {}\n",
        if r.target.is_empty() {
            "(no API)"
        } else {
            &r.target
        }
    );
    let _ = writeln!(
        out,
        "  {:<width$}  {:<6}  {:>9}  detail",
        "check", "result", "latency"
    );
    for c in &r.checks {
        let result = if c.ok { "pass" } else { "FAIL" };
        let latency = c
            .latency_ms
            .map(|l| format!("{l:.1} ms"))
            .unwrap_or_else(|| "-".into());
        let _ = writeln!(
            out,
            "  {:<width$}  {:<6}  {:>9}  {}",
            c.check, result, latency, c.detail
        );
    }
    let failed = r.checks.iter().filter(|c| !c.ok).count();
    let _ = writeln!(
        out,
        "{}",
        if failed == 0 {
            format!("All {} smoke checks passed.", r.checks.len())
        } else {
            format!("{failed} of {} smoke checks failed.", r.checks.len())
        }
    );
    out
}
