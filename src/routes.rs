//! The route table and the one dispatcher every request goes through.
//!
//! Each dialect declares its routes once, as data (`appgate::routes::TABLE`,
//! `occ::routes::TABLE`): method, path pattern, a stable name, the access it needs and the
//! handler. For every request the dispatcher, in this order, finds the route (404, or 405 with
//! an `Allow` computed from the table), runs the dialect's pre-checks (Appgate's `Accept`
//! negotiation), authenticates the caller and checks its privilege, and only then runs the
//! handler, which receives the caller as an argument. Logs and metrics name the route, never
//! the raw path (paths hold ids).

use std::future::Future;
use std::pin::Pin;

use http_body_util::Either;
use hyper::header::HeaderMap;
use hyper::{Method, Response};

use crate::app::App;
use crate::auth::{Caller, Partial, Privilege};
use crate::error::{ApiError, Dialect};
use bytes::Bytes;
use hyper::body::Incoming;

use crate::http::{self, Body, Head, Req, Resp};

/// What a handler answers: a response (buffered or streamed) or an error the dispatcher
/// renders in the route's dialect.
pub type Answer = Result<Response<Body>, ApiError>;
pub type Handling = Pin<Box<dyn Future<Output = Answer> + Send>>;

/// A handler of a route anyone may call.
pub type Public = fn(Cx) -> Handling;
/// A handler of a route that needs a signed-in caller; it cannot be called without one.
pub type Signed = fn(Cx, Caller) -> Handling;
/// A handler of a step of a multi-step sign-in: a token at any stage of it.
pub type Stepping = fn(Cx, Partial) -> Handling;

/// Who may call a route, with its handler: the handler's type follows from the access, so a
/// route that needs a caller cannot be declared public without changing its handler.
pub enum Access {
    Public(Public),
    /// Any signed-in, active account.
    SignedIn(Signed),
    /// A signed-in account whose roles grant the privilege.
    Privileged(Privilege, Signed),
    /// A token of a sign-in in progress (the password was right; the account may still owe
    /// a one-time code), or a full one.
    Partial(Stepping),
}

impl Access {
    /// The privilege the route needs, if any (for tests and documentation).
    pub fn privilege(&self) -> Option<Privilege> {
        match self {
            Access::Privileged(p, _) => Some(*p),
            _ => None,
        }
    }
}

/// One route: `path` is relative to the dialect's prefix, its segments split on `/`; a
/// segment `{name}` is a parameter, anything else (the empty segment too) a literal.
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    /// Stable and unique: `dialect.resource.action`. Logs and metrics use it.
    pub name: &'static str,
    pub access: Access,
}

impl Route {
    pub const fn new(
        method: Method,
        path: &'static str,
        name: &'static str,
        access: Access,
    ) -> Route {
        Route {
            method,
            path,
            name,
            access,
        }
    }
}

/// A dialect's routes and the checks it makes before authentication.
pub struct Table {
    pub dialect: Dialect,
    /// Path prefixes served by this table (`/admin`).
    pub prefixes: &'static [&'static str],
    pub routes: &'static [Route],
    /// Runs after the lookup (also for 404 and 405) and before authentication.
    /// `rest` is the path below the prefix.
    pub precheck: fn(rest: &str, &HeaderMap) -> Result<(), ApiError>,
    pub not_found: &'static str,
    /// Route names for requests that match no route, for the log.
    pub unmatched: &'static str,
    /// Adds to the error of a route what the dialect's clients look for in it.
    pub on_error: fn(route: &'static str, &mut ApiError),
}

/// Every table; a path belongs to the first whose prefix it is under (the last one's prefix
/// is empty: it takes every other path).
pub fn tables() -> [&'static Table; 4] {
    [
        &crate::appgate::routes::TABLE,
        &crate::occ::routes::TABLE,
        &crate::console::TABLE,
        &crate::ops::TABLE,
    ]
}

/// What a handler receives besides the caller: the application, the request's head, its
/// body (read through `json` or `body`), and the values of the path's parameters in pattern
/// order.
pub struct Cx {
    pub app: App,
    pub head: Head,
    pub params: Vec<String>,
    body: Option<Incoming>,
    /// The caller's token and the route's privilege, checked again once the body is in.
    recheck: Option<([u8; 32], Option<Privilege>)>,
}

impl Cx {
    fn new(app: App, req: Req, params: Vec<String>, caller: Option<(&Caller, &Access)>) -> Cx {
        let (head, body) = req.into_parts();
        Cx {
            app,
            head,
            params,
            body: Some(body),
            recheck: caller.map(|(c, access)| (c.token_hash, access.privilege())),
        }
    }

    /// The first path parameter (the routes here have at most one, `{id}`).
    pub fn id(&self) -> &str {
        self.params.first().map(String::as_str).unwrap_or("")
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.head.headers
    }

    /// The client's IP address.
    pub fn peer_ip(&self) -> Option<std::net::IpAddr> {
        http::peer_ip(&self.head.extensions)
    }

    /// The JSON body (415, 413, 408 or 400 when it is not one). The caller is checked again
    /// once it has arrived: a body can take seconds, and a caller deactivated (or whose
    /// privilege was withdrawn) meanwhile must not write with the access it had before.
    pub async fn json(&mut self) -> Result<serde_json::Value, ApiError> {
        let body = self.take_body()?;
        let value = http::read_json(&self.head.headers, body, self.app.config.body_timeout).await?;
        self.recheck()?;
        Ok(value)
    }

    /// The raw body (413 or 408 when too large or too slow), the caller checked again.
    pub async fn body(&mut self) -> Result<Bytes, ApiError> {
        let body = self.take_body()?;
        let bytes = http::read_body(&self.head.headers, body, self.app.config.body_timeout).await?;
        self.recheck()?;
        Ok(bytes)
    }

    /// The caller as it is now: still signed in, active, and holding the route's privilege.
    /// Handlers that write call this (through `json`, or directly) at the moment they write.
    pub fn recheck(&self) -> Result<(), ApiError> {
        match &self.recheck {
            None => Ok(()),
            Some((token_hash, privilege)) => {
                let caller = self.app.auth.caller_of(token_hash)?;
                match privilege {
                    Some(p) => caller.require(*p),
                    None => Ok(()),
                }
            }
        }
    }

    fn take_body(&mut self) -> Result<Incoming, ApiError> {
        self.body
            .take()
            .ok_or_else(|| ApiError::internal("the request body was read twice"))
    }
}

/// A buffered answer as a handler's future.
pub fn buffered(f: impl Future<Output = Result<Resp, ApiError>> + Send + 'static) -> Handling {
    Box::pin(async move { f.await.map(|r| r.map(Either::Left)) })
}

/// The outcome of looking a request up, before anything else is done with it.
pub struct Found {
    /// The route's name, or the table's `unmatched` name.
    pub name: &'static str,
    pub dialect: Dialect,
    target: Target,
}

enum Target {
    Route {
        table: &'static Table,
        route: &'static Route,
        params: Vec<String>,
        rest_start: usize,
    },
    /// The path matches no route of a table (404), or none for this method (405).
    Miss {
        table: &'static Table,
        allow: Option<String>,
        rest_start: usize,
    },
    /// Under no table's prefix.
    Nowhere,
}

/// Finds the route of a request. Cheap, and never fails: a miss is a `Found` too.
pub fn find(method: &Method, path: &str) -> Found {
    for table in tables() {
        for prefix in table.prefixes {
            let Some(rest) = sub_path(path, prefix) else {
                continue;
            };
            let rest_start = path.len() - rest.len();
            return match lookup(table, method, rest) {
                Ok((route, params)) => Found {
                    name: route.name,
                    dialect: table.dialect,
                    target: Target::Route {
                        table,
                        route,
                        params,
                        rest_start,
                    },
                },
                Err(allow) => Found {
                    name: table.unmatched,
                    dialect: table.dialect,
                    target: Target::Miss {
                        table,
                        allow,
                        rest_start,
                    },
                },
            };
        }
    }
    Found {
        name: "unmatched",
        dialect: Dialect::of(path),
        target: Target::Nowhere,
    }
}

/// Runs a found request: pre-checks, authentication, authorization, handler.
pub async fn dispatch(app: App, req: Req, found: Found) -> Response<Body> {
    let dialect = found.dialect;
    let decorate = match &found.target {
        Target::Route { table, route, .. } => Some((table.on_error, route.name)),
        _ => None,
    };
    let mut caller = None;
    let mut resp = run(app, req, found, &mut caller)
        .await
        .unwrap_or_else(|mut e| {
            if let Some((on_error, name)) = decorate {
                on_error(name, &mut e);
            }
            e.into_response(dialect).map(Either::Left)
        });
    if let Some(account) = caller {
        resp.extensions_mut().insert(http::CallerId(account));
    }
    resp
}

/// `caller` is set to the account (or application) the request was authenticated as.
async fn run(app: App, req: Req, found: Found, caller: &mut Option<String>) -> Answer {
    match found.target {
        Target::Nowhere => Err(ApiError::not_found("No such resource.")),
        Target::Miss {
            table,
            allow,
            rest_start,
        } => {
            (table.precheck)(&req.uri().path()[rest_start..], req.headers())?;
            Err(match allow {
                Some(allow) => ApiError::method_not_allowed(allow),
                None => ApiError::not_found(table.not_found),
            })
        }
        Target::Route {
            table,
            route,
            params,
            rest_start,
        } => {
            (table.precheck)(&req.uri().path()[rest_start..], req.headers())?;
            match &route.access {
                Access::Public(handler) => handler(Cx::new(app, req, params, None)).await,
                Access::Partial(handler) => {
                    let partial = app.auth.authenticate_partial(req.headers())?;
                    *caller = Some(partial.account.id.clone());
                    handler(Cx::new(app, req, params, None), partial).await
                }
                access @ (Access::SignedIn(handler) | Access::Privileged(_, handler)) => {
                    let who = app.auth.authenticate(req.headers())?;
                    *caller = Some(who.account_id.clone());
                    let caller = who;
                    if let Some(privilege) = access.privilege() {
                        caller.require(privilege)?;
                    }
                    let cx = Cx::new(app, req, params, Some((&caller, access)));
                    handler(cx, caller).await
                }
            }
        }
    }
}

/// `path` below `prefix` (`""` or starting with `/`), if it is below it.
fn sub_path<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// The segments of a path below a prefix: `""` and `"/"` are both one empty segment, as a
/// bare prefix names nothing.
fn segments(rest: &str) -> std::str::Split<'_, char> {
    rest.strip_prefix('/').unwrap_or(rest).split('/')
}

fn is_param(segment: &str) -> bool {
    segment.starts_with('{') && segment.ends_with('}')
}

/// How specifically `pattern` matches `rest`: `None` when it does not; otherwise one bit per
/// segment, the first segment the highest, set where the pattern has a literal. A larger
/// value is more specific, so literals win over parameters whatever the declaration order.
fn specificity(pattern: &str, rest: &str) -> Option<u64> {
    let mut pat = segments(pattern);
    let mut got = segments(rest);
    let mut score = 0u64;
    loop {
        match (pat.next(), got.next()) {
            (None, None) => return Some(score),
            (Some(p), Some(g)) => {
                score <<= 1;
                if is_param(p) {
                    continue;
                }
                if p != g {
                    return None;
                }
                score |= 1;
            }
            _ => return None,
        }
    }
}

/// The route for `method` among the table's most specific patterns matching `rest`, with its
/// parameters; or the `Allow` value of that pattern (405), or `None` (404).
fn lookup(
    table: &'static Table,
    method: &Method,
    rest: &str,
) -> Result<(&'static Route, Vec<String>), Option<String>> {
    let mut best: Option<(u64, &'static str)> = None;
    for route in table.routes {
        if let Some(score) = specificity(route.path, rest)
            && best.is_none_or(|(s, _)| score > s)
        {
            best = Some((score, route.path));
        }
    }
    let Some((_, pattern)) = best else {
        return Err(None);
    };
    let at_pattern = || table.routes.iter().filter(move |r| r.path == pattern);
    match at_pattern().find(|r| r.method == method) {
        Some(route) => {
            let params = segments(route.path)
                .zip(segments(rest))
                .filter(|(p, _)| is_param(p))
                .map(|(_, v)| v.to_string())
                .collect();
            Ok((route, params))
        }
        None => {
            let mut methods: Vec<&Method> = at_pattern().map(|r| &r.method).collect();
            methods.sort_by_key(|m| method_rank(m));
            methods.dedup();
            let allow: Vec<&str> = methods.iter().map(|m| m.as_str()).collect();
            Err(Some(allow.join(", ")))
        }
    }
}

/// The order methods are listed in `Allow`.
fn method_rank(m: &Method) -> usize {
    [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ]
    .iter()
    .position(|x| x == m)
    .unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_win_over_parameters_whatever_the_order() {
        assert_eq!(specificity("a/{id}", "a/current"), Some(0b10));
        assert_eq!(specificity("a/current", "a/current"), Some(0b11));
        assert_eq!(specificity("a/current", "a/x"), None);
        assert_eq!(specificity("a/{id}/url", "a/1/url"), Some(0b101));
        assert_eq!(specificity("a/{id}", "a/1/url"), None);
        assert_eq!(specificity("a/", "a/"), Some(0b11));
        assert_eq!(specificity("a", "/a/"), None);
        assert_eq!(specificity("", ""), Some(1));
    }

    #[test]
    fn every_route_name_is_unique_and_every_pattern_method_pair_declared_once() {
        let mut names = std::collections::HashSet::new();
        let mut pairs = std::collections::HashSet::new();
        for table in tables() {
            for r in table.routes {
                assert!(names.insert(r.name), "route name {} twice", r.name);
                assert!(
                    pairs.insert((table.prefixes[0], r.path, r.method.as_str())),
                    "{} {} declared twice",
                    r.method,
                    r.path
                );
                let family = match (table.dialect, table.prefixes) {
                    (_, [""]) => "ops.",
                    (_, ["/ui", "/"]) => "console.",
                    (Dialect::Appgate, _) => "appgate.",
                    (Dialect::Occ, _) => "occ.",
                };
                assert!(r.name.starts_with(family), "{}", r.name);
            }
        }
    }

    #[test]
    fn lookup_answers_405_with_the_methods_of_the_most_specific_pattern() {
        let occ = &crate::occ::routes::TABLE;
        let (route, params) = lookup(occ, &Method::GET, "/adminProfiles/current").unwrap();
        assert_eq!(route.name, "occ.admin_profiles.current.get");
        assert!(params.is_empty());
        let (route, params) = lookup(occ, &Method::GET, "/adminProfiles/100001").unwrap();
        assert_eq!(route.name, "occ.admin_profiles.get");
        assert_eq!(params, ["100001"]);
        assert_eq!(
            lookup(occ, &Method::DELETE, "/adminProfiles/current")
                .err()
                .unwrap(),
            Some("GET, PUT".into())
        );
        assert_eq!(
            lookup(occ, &Method::DELETE, "/adminProfiles/")
                .err()
                .unwrap(),
            Some("GET, POST, PUT".into())
        );
        assert_eq!(lookup(occ, &Method::GET, "/nothing").err().unwrap(), None);
    }
}
