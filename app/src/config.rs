//! Settings from the environment, checked once at start: a missing or malformed one
//! stops the process with a one-line message naming it.

use std::path::PathBuf;
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue};

/// How the process serves requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Behind API Gateway, as a Lambda function (`AWS_LAMBDA_RUNTIME_API` is set).
    Lambda,
    /// A local HTTP server on 127.0.0.1.
    Local { port: u16 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterMode {
    /// Ask the server (`INFO cluster`).
    Detect,
    On,
    Off,
}

#[derive(Debug, Clone)]
pub struct Valkey {
    pub endpoint: String,
    pub port: u16,
    /// ElastiCache Serverless requires TLS, so it is on unless turned off.
    pub tls: bool,
    /// A PEM file of CAs to trust instead of the public roots (tests, private CAs).
    pub ca_file: Option<PathBuf>,
    pub cluster: ClusterMode,
    pub timeout: Duration,
}

/// Where local mode checks bearer tokens.
#[derive(Debug, Clone)]
pub struct Cognito {
    pub issuer: String,
    pub client_id: String,
    pub jwks_url: String,
}

/// Which browser origins may call the API from pages on another origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigins {
    /// No CORS headers at all: the site and the API share an origin (the default).
    None,
    /// `*`: pages on any origin.
    Any,
    /// Exactly these origins, as browsers send them: `scheme://host[:port]`, lowercase.
    List(Vec<HeaderValue>),
}

/// Cross-origin settings: `CORS_ALLOW_ORIGINS`, `CORS_ALLOW_HEADERS`, `CORS_MAX_AGE_S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cors {
    pub origins: AllowedOrigins,
    /// Request headers a page may send (preflight `Access-Control-Allow-Headers`).
    pub headers: Vec<HeaderName>,
    /// How long a browser may cache a preflight answer.
    pub max_age: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mode: Mode,
    pub valkey: Valkey,
    /// Required in local mode; in Lambda mode API Gateway's authorizer checks tokens.
    pub cognito: Option<Cognito>,
    /// The OpenTDB-compatible question source; `None` (`QUESTION_SOURCE_URL=none`)
    /// uses only the question bank bundled in the crate.
    pub question_source: Option<String>,
    pub questions_per_game: u32,
    pub cors: Cors,
}

/// A setting that is missing or malformed, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {problem}")]
pub struct ConfigError {
    pub name: &'static str,
    pub problem: String,
}

fn bad(name: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        problem: problem.into(),
    }
}

impl Config {
    /// Reads settings through `get` (the process environment in production).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let non_empty = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let flag = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            match non_empty(name)
                .as_deref()
                .map(str::to_ascii_lowercase)
                .as_deref()
            {
                None => Ok(default),
                Some("1" | "true" | "yes" | "on") => Ok(true),
                Some("0" | "false" | "no" | "off") => Ok(false),
                Some(other) => Err(bad(name, format!("`{other}` is not true or false"))),
            }
        };
        let number = |name: &'static str, default: u64, max: u64| -> Result<u64, ConfigError> {
            match non_empty(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u64>() {
                    Ok(n) if n >= 1 && n <= max => Ok(n),
                    _ => Err(bad(
                        name,
                        format!("`{v}` is not a number between 1 and {max}"),
                    )),
                },
            }
        };

        let mode = if non_empty("AWS_LAMBDA_RUNTIME_API").is_some() {
            Mode::Lambda
        } else {
            Mode::Local {
                port: number("PORT", 3000, 65535)? as u16,
            }
        };
        let endpoint = non_empty("VALKEY_ENDPOINT")
            .ok_or_else(|| bad("VALKEY_ENDPOINT", "is not set; give the cache's host name"))?;
        if endpoint.contains("://") || endpoint.contains(' ') {
            return Err(bad(
                "VALKEY_ENDPOINT",
                format!("`{endpoint}` should be a bare host name (the port goes in VALKEY_PORT)"),
            ));
        }
        let cluster = match non_empty("VALKEY_CLUSTER")
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("auto" | "detect") => ClusterMode::Detect,
            Some("1" | "true" | "yes" | "on") => ClusterMode::On,
            Some("0" | "false" | "no" | "off") => ClusterMode::Off,
            Some(other) => {
                return Err(bad(
                    "VALKEY_CLUSTER",
                    format!("`{other}` is not auto, true or false"),
                ))
            }
        };
        let ca_file = non_empty("VALKEY_TLS_CA").map(PathBuf::from);
        if let Some(ca) = &ca_file {
            if !ca.is_file() {
                return Err(bad(
                    "VALKEY_TLS_CA",
                    format!("{} is not a readable file", ca.display()),
                ));
            }
        }
        let valkey = Valkey {
            endpoint,
            port: number("VALKEY_PORT", 6379, 65535)? as u16,
            tls: flag("VALKEY_TLS", true)?,
            ca_file,
            cluster,
            timeout: Duration::from_millis(number("VALKEY_TIMEOUT_MS", 1000, 60_000)?),
        };
        let cognito = match (non_empty("COGNITO_ISSUER"), non_empty("COGNITO_CLIENT_ID")) {
            // Behind API Gateway the Cognito authorizer has verified the token before the
            // function runs; the function trusts its claims and checks nothing itself,
            // whatever Cognito settings the function carries.
            _ if mode == Mode::Lambda => None,
            (Some(issuer), Some(client_id)) => {
                let issuer = issuer.trim_end_matches('/').to_string();
                if !issuer.starts_with("https://") && !issuer.starts_with("http://") {
                    return Err(bad("COGNITO_ISSUER", format!("`{issuer}` is not a URL")));
                }
                let jwks_url = non_empty("COGNITO_JWKS_URL")
                    .unwrap_or_else(|| format!("{issuer}/.well-known/jwks.json"));
                Some(Cognito {
                    issuer,
                    client_id,
                    jwks_url,
                })
            }
            (None, _) => {
                return Err(bad(
                    "COGNITO_ISSUER",
                    "is not set; local mode checks tokens against this user pool",
                ))
            }
            (_, None) => {
                return Err(bad(
                    "COGNITO_CLIENT_ID",
                    "is not set; local mode checks tokens against this app client",
                ))
            }
        };
        Ok(Config {
            mode,
            valkey,
            cognito,
            question_source: match non_empty("QUESTION_SOURCE_URL").as_deref() {
                Some("none") => None,
                other => Some(
                    other
                        .unwrap_or("https://opentdb.com")
                        .trim_end_matches('/')
                        .to_string(),
                ),
            },
            questions_per_game: number("QUESTIONS_PER_GAME", 10, 50)? as u32,
            cors: Cors {
                origins: match non_empty("CORS_ALLOW_ORIGINS") {
                    None => AllowedOrigins::None,
                    Some(v) => allowed_origins(&v).map_err(|p| bad("CORS_ALLOW_ORIGINS", p))?,
                },
                headers: allowed_headers(
                    non_empty("CORS_ALLOW_HEADERS")
                        .as_deref()
                        .unwrap_or("authorization,content-type"),
                )
                .map_err(|p| bad("CORS_ALLOW_HEADERS", p))?,
                max_age: match non_empty("CORS_MAX_AGE_S") {
                    None => Duration::from_secs(600),
                    Some(v) => match v.trim().parse::<u64>() {
                        // Browsers cap it lower anyway (Firefox at a day, Chromium at two hours).
                        Ok(n) if n <= 86_400 => Duration::from_secs(n),
                        _ => {
                            return Err(bad(
                                "CORS_MAX_AGE_S",
                                format!("`{v}` is not a number of seconds from 0 to 86400"),
                            ))
                        }
                    },
                },
            },
        })
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// The items of a comma-separated list, trimmed; an empty item is a mistake.
fn items(list: &str) -> Result<Vec<&str>, String> {
    list.split(',')
        .map(str::trim)
        .map(|item| {
            if item.is_empty() {
                Err(format!(
                    "`{list}` has an empty entry; separate entries with single commas"
                ))
            } else {
                Ok(item)
            }
        })
        .collect()
}

/// `*`, or origins such as `https://app.example.com,http://localhost:5173`.
fn allowed_origins(list: &str) -> Result<AllowedOrigins, String> {
    let items = items(list)?;
    if items == ["*"] {
        return Ok(AllowedOrigins::Any);
    }
    if items.contains(&"*") {
        return Err(format!(
            "`{list}` mixes `*` with origins; `*` alone allows every origin"
        ));
    }
    items
        .into_iter()
        .map(origin)
        .collect::<Result<_, _>>()
        .map(AllowedOrigins::List)
}

/// One origin, checked for the form browsers send in `Origin` (an origin that cannot
/// match any request is a configuration mistake, not something to ignore), and
/// lowercased as they send it.
fn origin(raw: &str) -> Result<HeaderValue, String> {
    let form = "an origin is scheme://host[:port], e.g. https://app.example.com";
    let not = |why: &str| format!("`{raw}` is not an origin: {why}; {form}");
    let lower = raw.to_ascii_lowercase();
    let (scheme, authority) = lower
        .split_once("://")
        .ok_or_else(|| not("there is no scheme"))?;
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(not("the scheme is malformed"));
    }
    if authority.contains(['/', '?', '#']) {
        return Err(not("it has a path (browsers send no path, not even `/`)"));
    }
    if authority.contains('@') {
        return Err(not("it has a user name"));
    }
    let (host, port) = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => (&authority[..i], Some(&authority[i + 1..])),
        _ => (authority, None),
    };
    let host_ok = match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(v6) => {
            !v6.is_empty()
                && v6
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        }
        None => {
            !host.is_empty()
                && host
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        }
    };
    if !host_ok {
        return Err(not("the host is malformed"));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(0) | Err(_) => return Err(not("the port is not a number from 1 to 65535")),
            Ok(p) if (scheme, p) == ("http", 80) || (scheme, p) == ("https", 443) => {
                return Err(not(&format!(
                    "browsers leave the default port out, so write {scheme}://{host}"
                )))
            }
            Ok(_) => {}
        }
    }
    HeaderValue::from_str(&lower).map_err(|_| not("it has characters a header cannot carry"))
}

fn allowed_headers(list: &str) -> Result<Vec<HeaderName>, String> {
    items(list)?
        .into_iter()
        .map(|h| {
            HeaderName::from_bytes(h.as_bytes())
                .map_err(|_| format!("`{h}` is not a header name (such as `authorization`)"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn with(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    const LOCAL: &[(&str, &str)] = &[
        ("VALKEY_ENDPOINT", "cache.local"),
        (
            "COGNITO_ISSUER",
            "https://cognito-idp.us-east-1.amazonaws.com/pool",
        ),
        ("COGNITO_CLIENT_ID", "abc"),
    ];

    #[test]
    fn defaults_follow_elasticache_serverless() {
        let c = with(LOCAL).unwrap();
        assert_eq!(c.valkey.port, 6379);
        assert!(c.valkey.tls);
        assert_eq!(c.valkey.cluster, ClusterMode::Detect);
        assert_eq!(c.mode, Mode::Local { port: 3000 });
        assert_eq!(
            c.cognito.unwrap().jwks_url,
            "https://cognito-idp.us-east-1.amazonaws.com/pool/.well-known/jwks.json"
        );
    }

    #[test]
    fn a_bad_setting_is_named_in_one_line() {
        let e = with(&[LOCAL, &[("VALKEY_PORT", "six")]].concat()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "VALKEY_PORT: `six` is not a number between 1 and 65535"
        );
        assert_eq!(
            with(&[("COGNITO_ISSUER", "https://x"), ("COGNITO_CLIENT_ID", "a")])
                .unwrap_err()
                .name,
            "VALKEY_ENDPOINT"
        );
        assert_eq!(
            with(&[LOCAL, &[("VALKEY_TLS", "maybe")]].concat())
                .unwrap_err()
                .name,
            "VALKEY_TLS"
        );
        assert_eq!(
            with(&[("VALKEY_ENDPOINT", "h")]).unwrap_err().name,
            "COGNITO_ISSUER"
        );
        assert_eq!(
            with(&[LOCAL, &[("VALKEY_ENDPOINT", "redis://h:6379")]].concat())
                .unwrap_err()
                .name,
            "VALKEY_ENDPOINT"
        );
    }

    #[test]
    fn lambda_mode_trusts_the_gateway_whatever_cognito_settings_it_has() {
        // dev, staging and prod give the API its pool and client ids but no issuer.
        let c = with(&[
            ("VALKEY_ENDPOINT", "h"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
            ("COGNITO_USER_POOL_ID", "us-east-1_abc"),
            ("COGNITO_CLIENT_ID", "client"),
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Lambda);
        assert!(c.cognito.is_none());
    }

    #[test]
    fn lambda_mode_needs_no_cognito_settings() {
        let c = with(&[
            ("VALKEY_ENDPOINT", "h"),
            ("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001"),
        ])
        .unwrap();
        assert_eq!(c.mode, Mode::Lambda);
        assert!(c.cognito.is_none());
    }

    #[test]
    fn cors_is_off_unless_origins_are_listed() {
        let c = with(LOCAL).unwrap().cors;
        assert_eq!(c.origins, AllowedOrigins::None);
        assert_eq!(
            c.headers,
            vec![
                axum::http::header::AUTHORIZATION,
                axum::http::header::CONTENT_TYPE
            ]
        );
        assert_eq!(c.max_age, Duration::from_secs(600));
        let empty = with(&[LOCAL, &[("CORS_ALLOW_ORIGINS", " ")]].concat()).unwrap();
        assert_eq!(empty.cors.origins, AllowedOrigins::None);
    }

    #[test]
    fn cors_settings_are_read_and_normalized() {
        let c = with(
            &[
                LOCAL,
                &[
                    (
                        "CORS_ALLOW_ORIGINS",
                        "https://App.Example.com, http://localhost:5173,http://[::1]:8080",
                    ),
                    ("CORS_ALLOW_HEADERS", "Authorization, x-request-id"),
                    ("CORS_MAX_AGE_S", "0"),
                ],
            ]
            .concat(),
        )
        .unwrap()
        .cors;
        assert_eq!(
            c.origins,
            AllowedOrigins::List(vec![
                HeaderValue::from_static("https://app.example.com"),
                HeaderValue::from_static("http://localhost:5173"),
                HeaderValue::from_static("http://[::1]:8080"),
            ])
        );
        assert_eq!(
            c.headers,
            vec![
                axum::http::header::AUTHORIZATION,
                HeaderName::from_static("x-request-id")
            ]
        );
        assert_eq!(c.max_age, Duration::ZERO);
        let any = with(&[LOCAL, &[("CORS_ALLOW_ORIGINS", "*")]].concat()).unwrap();
        assert_eq!(any.cors.origins, AllowedOrigins::Any);
    }

    #[test]
    fn a_bad_cors_setting_is_named() {
        for (name, value, says) in [
            ("CORS_ALLOW_ORIGINS", "https://a.example.com/", "path"),
            ("CORS_ALLOW_ORIGINS", "https://a.example.com/app", "path"),
            ("CORS_ALLOW_ORIGINS", "a.example.com", "no scheme"),
            ("CORS_ALLOW_ORIGINS", "https://", "host"),
            ("CORS_ALLOW_ORIGINS", "https://a b.com", "host"),
            ("CORS_ALLOW_ORIGINS", "https://u@a.example.com", "user name"),
            ("CORS_ALLOW_ORIGINS", "https://a.example.com:99999", "port"),
            (
                "CORS_ALLOW_ORIGINS",
                "https://a.example.com:443",
                "default port",
            ),
            ("CORS_ALLOW_ORIGINS", "https://a.example.com,*", "`*` alone"),
            (
                "CORS_ALLOW_ORIGINS",
                "https://a.example.com,",
                "empty entry",
            ),
            (
                "CORS_ALLOW_HEADERS",
                "authorization,bad header",
                "not a header name",
            ),
            ("CORS_MAX_AGE_S", "-1", "0 to 86400"),
            ("CORS_MAX_AGE_S", "86401", "0 to 86400"),
            ("CORS_MAX_AGE_S", "ten", "0 to 86400"),
        ] {
            let e = with(&[LOCAL, &[(name, value)]].concat()).unwrap_err();
            assert_eq!(e.name, name, "{value}: {e}");
            assert!(e.problem.contains(says), "{value}: {e}");
        }
    }
}
