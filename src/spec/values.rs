//! Parsers and checks of single spec values (CIDR blocks, ports, names, regions,
//! origins, header names, times of day, SSM and route paths, schedule expressions),
//! shared by validation and the planner. Each says why a value is refused.

use ipnet::Ipv4Net;
use serde_json::Value;

/// Lowercase letters, digits and single hyphens, starting with a letter, no trailing hyphen.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// The regions of the AWS SDK's endpoint partitions (aws, aws-cn, aws-us-gov, the
/// isolated and sovereign ones), as the SDK crates this build uses list them. A region
/// newer than the build is refused with that said; update the SDK to get it.
pub const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "cn-north-1",
    "cn-northwest-1",
    "eusc-de-east-1",
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isob-west-1",
    "eu-isoe-west-1",
    "us-isof-east-1",
    "us-isof-south-1",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// A region name: a known one, or one shaped like them (`us-east-1`, `us-gov-west-1`).
pub fn is_region(s: &str) -> bool {
    // The European Sovereign Cloud's partition has a four-letter first group.
    if KNOWN_REGIONS.contains(&s) {
        return true;
    }
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_lowercase()))
        && parts[parts.len() - 1].parse::<u8>().is_ok()
}

/// An origin as browsers send it (`scheme://host[:port]`), or `*`.
pub fn cors_origin(origin: &str) -> Result<(), (String, String)> {
    if origin == "*" {
        return Ok(());
    }
    let url = reqwest::Url::parse(origin).map_err(|e| {
        (
            format!("`{origin}` is not an origin: {e}"),
            "write it as `https://host` or `http://host:port`".to_string(),
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err((
            format!("`{origin}` is not an http or https origin"),
            "write it as `https://host` or `http://host:port`".into(),
        ));
    }
    let canonical = url.origin().ascii_serialization();
    if canonical != origin {
        return Err((
            format!("`{origin}` is not an origin as browsers send it (no path, no trailing `/`, lowercase host, no default port)"),
            format!("write `{canonical}`"),
        ));
    }
    Ok(())
}

/// An HTTP header name (RFC 9110 token).
pub fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
        && !name.contains('\'')
}

/// A time of day as `HH:MM`, 24-hour.
pub fn is_hh_mm(s: &str) -> bool {
    match s.split_once(':') {
        Some((h, m)) => {
            h.len() == 2
                && m.len() == 2
                && h.parse::<u8>().is_ok_and(|h| h < 24)
                && m.parse::<u8>().is_ok_and(|m| m < 60)
        }
        None => false,
    }
}

/// Parses an IPv4 CIDR block, insisting the address is the block's network address.
pub fn parse_cidr(s: &str) -> Result<Ipv4Net, String> {
    let net: Ipv4Net = s
        .parse()
        .map_err(|_| "expected ADDRESS/PREFIX such as 10.0.1.0/24".to_string())?;
    if net.network() != net.addr() {
        return Err(format!(
            "host bits are set; the block starting there is {}",
            net.trunc()
        ));
    }
    Ok(net)
}

/// `443` or `"6379-6380"` → (from, to).
pub fn parse_ports(v: &Value) -> Result<(u16, u16), String> {
    let range = match v {
        Value::Number(n) => n.as_u64().map(|p| (p, p)),
        Value::String(s) => match s.split_once('-') {
            Some((a, b)) => a.trim().parse().ok().zip(b.trim().parse().ok()),
            None => s.trim().parse().ok().map(|p| (p, p)),
        },
        _ => None,
    };
    match range {
        Some((a, b)) if (1..=65535).contains(&a) && (1..=65535).contains(&b) && a <= b => {
            Ok((a as u16, b as u16))
        }
        Some((a, b)) if a > b => Err(format!("port range {a}-{b} runs backwards")),
        Some(_) => Err("ports must be between 1 and 65535".into()),
        None => Err(format!(
            "`{}` is not a port or a port range",
            v.as_str()
                .map(String::from)
                .unwrap_or_else(|| v.to_string())
        )),
    }
}

/// An SSM parameter name as a path (`/trivia-dev/valkey`) that SSM accepts.
pub fn ssm_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("SSM path `{p}` must start with `/`"));
    }
    if p.ends_with('/') {
        return Err(format!("SSM path `{p}` must not end with `/`"));
    }
    let first = p
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    if first.starts_with("aws") || first.starts_with("ssm") {
        return Err(format!(
            "SSM names may not begin with `aws` or `ssm` (found `{p}`)"
        ));
    }
    if let Some(c) = p
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.-/".contains(*c)))
    {
        return Err(format!(
            "SSM path `{p}` contains `{c}`; allowed are letters, digits and `_ . - /`"
        ));
    }
    if p.len() > 1000 {
        return Err("SSM names are at most 1011 characters".into());
    }
    Ok(())
}

/// An API Gateway resource path: `/`, or segments of `-_.` names and `{param}`/`{proxy+}`.
pub fn route_path(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("route path `{p}` must start with `/`"));
    }
    if p.len() > 1 && p.ends_with('/') {
        return Err(format!("route path `{p}` must not end with `/`"));
    }
    for seg in p.split('/').skip(1).filter(|s| !s.is_empty()) {
        let inner = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
        let name = inner
            .map(|s| s.strip_suffix('+').unwrap_or(s))
            .unwrap_or(seg);
        let ok = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
        if !ok {
            return Err(format!("route path segment `{seg}` is not valid; use letters, digits, `-_.` or `{{param}}`"));
        }
    }
    Ok(())
}

/// Checks an EventBridge schedule expression; on failure, the reason and a hint.
pub fn schedule_expression(e: &str) -> Result<(), (String, String)> {
    if let Some(inner) = e.strip_prefix("rate(").and_then(|s| s.strip_suffix(')')) {
        let mut parts = inner.split_whitespace();
        let (Some(n), Some(unit), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err((
                format!("`{e}` is not `rate(VALUE UNIT)`"),
                "for example `rate(6 hours)`".into(),
            ));
        };
        let Ok(n) = n.parse::<u32>() else {
            return Err((
                format!("`{n}` in `{e}` is not a whole number"),
                "for example `rate(6 hours)`".into(),
            ));
        };
        if n == 0 {
            return Err((
                format!("`{e}` has a rate of zero"),
                "use a positive value".into(),
            ));
        }
        let singular = ["minute", "hour", "day"];
        let plural = ["minutes", "hours", "days"];
        if n == 1 && !singular.contains(&unit) {
            let fix = unit.trim_end_matches('s');
            return Err((
                format!("`{e}`: a rate of 1 takes a singular unit"),
                format!("write `rate(1 {fix})`"),
            ));
        }
        if n > 1 && !plural.contains(&unit) {
            let fix = if singular.contains(&unit) {
                format!("{unit}s")
            } else {
                "hours".into()
            };
            return Err((
                format!("`{e}`: a rate above 1 takes a plural unit (minutes, hours, days)"),
                format!("write `rate({n} {fix})`"),
            ));
        }
        return Ok(());
    }
    if let Some(inner) = e.strip_prefix("cron(").and_then(|s| s.strip_suffix(')')) {
        let fields: Vec<&str> = inner.split_whitespace().collect();
        if fields.len() != 6 {
            return Err((
                format!("`{e}` has {} fields; EventBridge cron has six: minutes hours day-of-month month day-of-week year", fields.len()),
                "for example `cron(0 3 * * ? *)`".into(),
            ));
        }
        let allowed = |f: &str| {
            f.chars()
                .all(|c| c.is_ascii_alphanumeric() || ",-*/?#".contains(c))
        };
        if let Some(bad) = fields.iter().find(|f| !allowed(f)) {
            return Err((
                format!("cron field `{bad}` in `{e}` has characters cron does not accept"),
                "use digits, names and `, - * / ? L W #`".into(),
            ));
        }
        if fields[..2]
            .iter()
            .chain(&fields[3..4])
            .chain(&fields[5..])
            .any(|f| f.contains('?'))
        {
            return Err((
                format!("`{e}`: `?` is allowed only in day-of-month or day-of-week"),
                "for example `cron(0 3 * * ? *)`".into(),
            ));
        }
        if (fields[2] == "?") == (fields[4] == "?") {
            return Err((
                format!("`{e}`: exactly one of day-of-month and day-of-week must be `?`"),
                "for example `cron(0 3 * * ? *)` (every day at 03:00 UTC)".into(),
            ));
        }
        let numeric_in = |f: &str, lo: u32, hi: u32| {
            f.split([',', '-', '/'])
                .filter(|p| !p.is_empty() && *p != "*")
                .all(|p| {
                    p.parse::<u32>().is_ok_and(|n| n >= lo && n <= hi) || p.parse::<u32>().is_err()
                })
        };
        if !numeric_in(fields[0], 0, 59) || !numeric_in(fields[1], 0, 23) {
            return Err((
                format!("`{e}`: minutes are 0–59 and hours 0–23"),
                "times are in UTC".into(),
            ));
        }
        return Ok(());
    }
    Err((
        format!("`{e}` is not a schedule expression"),
        "use `rate(6 hours)` or `cron(0 3 * * ? *)`".into(),
    ))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_cidr_block_must_start_at_its_network_address() {
        assert_eq!(
            parse_cidr("10.0.1.0/24").unwrap(),
            "10.0.1.0/24".parse::<Ipv4Net>().unwrap()
        );
        assert_eq!(
            parse_cidr("10.0.1.5/24").unwrap_err(),
            "host bits are set; the block starting there is 10.0.1.0/24"
        );
        for bad in ["10.0.1.0", "10.0.1.0/33", "300.0.0.0/8", "fd00::/8", ""] {
            assert_eq!(
                parse_cidr(bad).unwrap_err(),
                "expected ADDRESS/PREFIX such as 10.0.1.0/24",
                "{bad}"
            );
        }
    }

    #[test]
    fn ports_are_one_port_or_a_forward_range() {
        assert_eq!(parse_ports(&json!(443)), Ok((443, 443)));
        assert_eq!(parse_ports(&json!("443")), Ok((443, 443)));
        assert_eq!(parse_ports(&json!("6379-6380")), Ok((6379, 6380)));
        assert_eq!(parse_ports(&json!("6379 - 6380")), Ok((6379, 6380)));
        assert_eq!(parse_ports(&json!(65535)), Ok((65535, 65535)));
        assert_eq!(
            parse_ports(&json!("6380-6379")).unwrap_err(),
            "port range 6380-6379 runs backwards"
        );
        for out_of_range in [json!(0), json!(65536), json!("0-80")] {
            assert_eq!(
                parse_ports(&out_of_range).unwrap_err(),
                "ports must be between 1 and 65535"
            );
        }
        assert_eq!(
            parse_ports(&json!("https")).unwrap_err(),
            "`https` is not a port or a port range"
        );
        assert_eq!(
            parse_ports(&json!(-1)).unwrap_err(),
            "`-1` is not a port or a port range"
        );
        assert_eq!(
            parse_ports(&json!([80])).unwrap_err(),
            "`[80]` is not a port or a port range"
        );
    }

    #[test]
    fn a_slug_is_lowercase_words_joined_by_single_hyphens() {
        for good in ["dev", "pr-42", "a1-b2-c3"] {
            assert!(is_slug(good), "{good}");
        }
        for bad in ["", "Dev", "42pr", "-dev", "dev-", "pr--42", "pr_42", "dév"] {
            assert!(!is_slug(bad), "{bad}");
        }
    }

    #[test]
    fn a_region_name_is_letter_groups_then_a_number() {
        for good in [
            "us-east-1",
            "us-gov-west-1",
            "eu-isoe-west-1",
            "eusc-de-east-1",
            "xx-nowhere-9",
        ] {
            assert!(is_region(good), "{good}");
        }
        for bad in [
            "us-east",
            "useast1",
            "US-EAST-1",
            "usa-east-1",
            "us--1",
            "us-east-x",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn a_cors_origin_is_written_as_browsers_send_it() {
        for good in ["*", "https://app.example.com", "http://localhost:5173"] {
            assert_eq!(cors_origin(good), Ok(()), "{good}");
        }
        let (why, hint) = cors_origin("https://app.example.com/").unwrap_err();
        assert!(why.contains("not an origin as browsers send it"), "{why}");
        assert_eq!(hint, "write `https://app.example.com`");
        assert_eq!(
            cors_origin("https://App.Example.com:443").unwrap_err().1,
            "write `https://app.example.com`"
        );
        assert_eq!(
            cors_origin("ftp://files.example.com").unwrap_err().0,
            "`ftp://files.example.com` is not an http or https origin"
        );
        assert!(cors_origin("app.example.com")
            .unwrap_err()
            .0
            .starts_with("`app.example.com` is not an origin: "));
    }

    #[test]
    fn header_names_are_http_tokens() {
        for good in ["Content-Type", "x-api-key", "X_Trace.Id"] {
            assert!(is_header_name(good), "{good}");
        }
        for bad in ["", "Content Type", "x-key:", "don't", "é"] {
            assert!(!is_header_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_time_of_day_is_two_digit_hours_and_minutes() {
        for good in ["00:00", "03:00", "23:59"] {
            assert!(is_hh_mm(good), "{good}");
        }
        for bad in [
            "24:00", "12:60", "3:00", "03:0", "0300", "03:00:00", "ab:cd",
        ] {
            assert!(!is_hh_mm(bad), "{bad}");
        }
    }

    #[test]
    fn ssm_paths_are_absolute_and_outside_the_reserved_prefixes() {
        assert_eq!(ssm_path("/trivia-dev/valkey"), Ok(()));
        assert_eq!(ssm_path("/a_b.c/d-e"), Ok(()));
        assert_eq!(
            ssm_path("trivia/valkey").unwrap_err(),
            "SSM path `trivia/valkey` must start with `/`"
        );
        assert_eq!(
            ssm_path("/trivia/").unwrap_err(),
            "SSM path `/trivia/` must not end with `/`"
        );
        for reserved in ["/aws/x", "/AWS-thing/x", "/ssm/x"] {
            assert!(ssm_path(reserved)
                .unwrap_err()
                .starts_with("SSM names may not begin with `aws` or `ssm`"));
        }
        assert_eq!(
            ssm_path("/trivia dev/valkey").unwrap_err(),
            "SSM path `/trivia dev/valkey` contains ` `; allowed are letters, digits and `_ . - /`"
        );
        let long = format!("/{}", "a".repeat(1000));
        assert_eq!(
            ssm_path(&long).unwrap_err(),
            "SSM names are at most 1011 characters"
        );
    }

    #[test]
    fn route_paths_are_slash_separated_names_and_parameters() {
        for good in [
            "/",
            "/games",
            "/games/{id}/answers",
            "/{proxy+}",
            "/v1.0/a_b",
        ] {
            assert_eq!(route_path(good), Ok(()), "{good}");
        }
        assert_eq!(
            route_path("games").unwrap_err(),
            "route path `games` must start with `/`"
        );
        assert_eq!(
            route_path("/games/").unwrap_err(),
            "route path `/games/` must not end with `/`"
        );
        for bad_segment in ["/games/{}", "/games/{id", "/a b", "/games/:id"] {
            assert!(
                route_path(bad_segment)
                    .unwrap_err()
                    .contains("is not valid; use letters, digits, `-_.` or `{param}`"),
                "{bad_segment}"
            );
        }
    }

    #[test]
    fn rate_expressions_take_a_positive_count_and_a_matching_unit() {
        for good in ["rate(1 minute)", "rate(6 hours)", "rate(2 days)"] {
            assert_eq!(schedule_expression(good), Ok(()), "{good}");
        }
        let fails = |e: &str| schedule_expression(e).unwrap_err();
        assert_eq!(fails("rate(1 hours)").1, "write `rate(1 hour)`");
        assert_eq!(fails("rate(6 hour)").1, "write `rate(6 hours)`");
        assert_eq!(fails("rate(6 weeks)").1, "write `rate(6 hours)`");
        assert_eq!(
            fails("rate(0 hours)").0,
            "`rate(0 hours)` has a rate of zero"
        );
        assert_eq!(
            fails("rate(1.5 hours)").0,
            "`1.5` in `rate(1.5 hours)` is not a whole number"
        );
        assert_eq!(fails("rate(6)").0, "`rate(6)` is not `rate(VALUE UNIT)`");
    }

    #[test]
    fn cron_expressions_have_six_fields_and_one_question_mark_day() {
        for good in [
            "cron(0 3 * * ? *)",
            "cron(0/15 8-17 ? * MON-FRI *)",
            "cron(30 23 L * ? 2030)",
        ] {
            assert_eq!(schedule_expression(good), Ok(()), "{good}");
        }
        let why = |e: &str| schedule_expression(e).unwrap_err().0;
        assert!(why("cron(0 3 * * *)").contains("has 5 fields"));
        assert!(why("cron(0 3 * * * *)").contains("exactly one of day-of-month and day-of-week"));
        assert!(why("cron(0 3 ? * ? *)").contains("exactly one of day-of-month and day-of-week"));
        assert!(why("cron(? 3 * * ? *)").contains("`?` is allowed only in day-of-month"));
        assert!(why("cron(0 3 * * ? $)").contains("has characters cron does not accept"));
        assert!(why("cron(60 3 * * ? *)").contains("minutes are 0–59 and hours 0–23"));
        assert!(why("cron(0 24 * * ? *)").contains("minutes are 0–59 and hours 0–23"));
        assert_eq!(
            why("every 6 hours"),
            "`every 6 hours` is not a schedule expression"
        );
    }
}
