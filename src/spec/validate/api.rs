//! `api`: stage name, CORS origins and headers, routes and the functions behind them.

use std::collections::BTreeMap;

use super::Checker;
use crate::spec::values::{cors_origin, is_header_name, route_path};

impl Checker<'_> {
    pub(super) fn api(&mut self) {
        let Some(api) = &self.spec.api else { return };
        if api.stage.is_empty()
            || !api
                .stage
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            || api.stage.len() > 128
        {
            self.err(
                "/api/stage",
                format!(
                    "stage name `{}` may hold only letters, digits, `-` and `_`",
                    api.stage
                ),
            );
        }
        if api.routes.is_empty() {
            self.err("/api/routes", "the API has no routes")
                .hint("add at least one `{ method, path, function }`");
        }
        if let Some(cors) = &api.cors {
            if cors.allow_origins.is_empty() {
                self.err("/api/cors/allow_origins", "no origins are allowed")
                    .hint("list the front end's origins (`https://app.example.com`), or remove `cors`");
            }
            for (i, origin) in cors.allow_origins.iter().enumerate() {
                if let Err((why, hint)) = cors_origin(origin) {
                    self.err(&format!("/api/cors/allow_origins/{i}"), why)
                        .hint(hint);
                }
            }
            if cors.allow_origins.len() > 1 && cors.allow_origins.iter().any(|o| o == "*") {
                self.err(
                    "/api/cors/allow_origins",
                    "`*` allows every origin, so it cannot be listed with others",
                )
                .hint("keep `*` alone, or list only the origins to allow");
            }
            for (i, header) in cors.allow_headers.iter().enumerate() {
                if !is_header_name(header) {
                    self.err(
                        &format!("/api/cors/allow_headers/{i}"),
                        format!("`{header}` is not an HTTP header name"),
                    )
                    .hint("letters, digits and `-` (e.g. `Content-Type`)");
                }
            }
        }
        let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
        for (i, r) in api.routes.iter().enumerate() {
            let p = format!("/api/routes/{i}");
            if !self.spec.functions.contains_key(&r.function) {
                self.unknown_function(&format!("{p}/function"), &r.function);
            }
            if let Err(why) = route_path(&r.path) {
                self.err(&format!("{p}/path"), why);
            }
            if r.auth == crate::spec::model::Auth::Cognito && self.spec.cognito.is_none() {
                self.err(
                    &format!("{p}/auth"),
                    "the route requires Cognito sign-in but the spec has no `cognito` section",
                )
                .hint("add `cognito:` or set `auth: none`");
            }
            if let Some(first) = seen.insert((r.method.as_str().to_string(), r.path.clone()), i) {
                let at = self.sources.value(&format!("/api/routes/{first}"));
                self.err(
                    &p,
                    format!(
                        "duplicate route {} {} (also on line {})",
                        r.method.as_str(),
                        r.path,
                        at.line
                    ),
                );
            }
        }
    }
}
