//! GitHub Actions workflow commands: spec problems as `::error file=…,line=…,col=…::…`
//! annotations (shown on the pull request's diff), and other failures as plain
//! `::error::…` lines. The escaping is the runner's: `%`, CR and LF everywhere, and
//! `:` and `,` in property values.

use crate::spec::Diagnostics;

fn data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn property(text: &str) -> String {
    data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Whether this process runs inside a GitHub Actions job.
pub fn in_actions() -> bool {
    std::env::var("GITHUB_ACTIONS").is_ok_and(|v| v == "true")
}

/// One annotation per problem, at its FILE:LINE:COL, the hint on the next line.
pub fn diagnostics(d: &Diagnostics) -> String {
    let mut out = String::new();
    for x in &d.0 {
        let message = match &x.hint {
            Some(h) => format!("{}\nhint: {h}", x.message),
            None => x.message.clone(),
        };
        out.push_str(&format!(
            "::error file={},line={},col={},title={}::{}\n",
            property(&x.pos.file.to_string_lossy()),
            x.pos.line,
            x.pos.col,
            property("deploy: invalid spec"),
            data(&message)
        ));
    }
    out
}

/// A failure that is not about a spec line, as one annotation.
pub fn error(title: &str, message: &str) -> String {
    format!("::error title={}::{}\n", property(title), data(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::diag::{Diagnostic, Pos};

    #[test]
    fn annotations_carry_the_position_and_escape_what_the_runner_parses() {
        let mut d = Diagnostics::default();
        let mut x = Diagnostic::new(
            Pos {
                file: "environments/pr-7.yaml".into(),
                line: 12,
                col: 5,
            },
            "`ports`: 70000 is not a port, 100% sure",
        );
        x.hint = Some("a port `443`, or a range".into());
        d.0.push(x);
        assert_eq!(
            diagnostics(&d),
            "::error file=environments/pr-7.yaml,line=12,col=5,title=deploy%3A invalid spec::`ports`: 70000 is not a port, 100%25 sure%0Ahint: a port `443`, or a range\n"
        );
        assert_eq!(
            error("deploy apply", "locked\nhint: wait"),
            "::error title=deploy apply::locked%0Ahint: wait\n"
        );
    }
}
