//! The route table: a [`Plan`] turned into something a request path can be matched against.
//!
//! A table is immutable; a reload builds a new one and swaps it whole (see [`crate::reload`]).
//! Matching, for a path `/chat/1.0.0/rooms/lobby`:
//!
//! 1. the API whose context is the longest segment-wise prefix of the path wins (a default-version
//!    context such as `/chat` counts too, and loses to `/chat/1.0.0`);
//! 2. inside that API, routes are tried in the plan's order: literal, then template, then `/*`;
//! 3. `{parameters}` capture one segment each, percent-decoded exactly once.
//!
//! The backend URL is built from the endpoint and the route's `backendPath`, with every captured
//! value percent-encoded again, so a parameter can never add a `/`, `?`, `#` or `..` to it.
//! Empty segments of a `/*` remainder are dropped (`/a//b` → `/a/b`), so a client path can never
//! make the backend path start with `//`, which URL parsers read as a host.
//!
//! The client's query is forwarded with three rules (see [`forward_query`]): credentials are
//! removed, parameters the mapping sets are removed (the mapping wins), and bytes a URL may not
//! carry raw are percent-encoded.
//!
//! ```
//! use portico_compiler::plan::Plan;
//! use portico_runtime::routes::{RouteTable, Lookup};
//! let table = RouteTable::new(&Plan::new(vec![]));
//! assert!(matches!(table.lookup("/nothing/here"), Lookup::NoApi));
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use percent_encoding::{
    percent_decode_str, percent_encode, utf8_percent_encode, AsciiSet, CONTROLS, NON_ALPHANUMERIC,
};
use portico_compiler::plan::{Plan, PlanApi, Route, RouteKind};

/// Characters encoded in a substituted path parameter: everything but RFC 3986 unreserved.
const PARAM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Characters percent-encoded in a forwarded query: everything RFC 3986 §3.4 does not allow raw
/// (`"`, `<`, `>`, `\`, `^`, `` ` ``, `{`, `|`, `}`, space, `#`, controls and non-ASCII). `%` is
/// handled apart: kept when it starts an escape, encoded otherwise.
const QUERY_UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Query parameters that carry credentials and are never forwarded to a backend.
pub const CREDENTIAL_PARAMS: [&str; 2] = ["access_token", "apikey"];

/// One API as the runtime serves it.
#[derive(Debug)]
pub struct ApiEntry {
    pub api: PlanApi,
    /// Routes with their topic split into segments once.
    routes: Vec<CompiledRoute>,
}

#[derive(Debug)]
struct CompiledRoute {
    route: Route,
    segments: Vec<Segment>,
}

#[derive(Debug)]
enum Segment {
    Literal(String),
    Param(String),
    Rest,
}

/// An immutable snapshot of what is served.
#[derive(Debug)]
pub struct RouteTable {
    pub plan_hash: String,
    apis: Vec<Arc<ApiEntry>>,
    /// (context, index into `apis`), longest context first.
    contexts: Vec<(String, usize)>,
}

/// The outcome of matching a path.
#[derive(Debug)]
pub enum Lookup<'a> {
    /// A route matched.
    Found(Match<'a>),
    /// No API serves this path.
    NoApi,
    /// The API exists but has no such topic.
    NoTopic { api: &'a Arc<ApiEntry> },
}

#[derive(Debug)]
pub struct Match<'a> {
    pub api: &'a Arc<ApiEntry>,
    pub route: &'a Route,
    /// The route's position in its API ([`ApiEntry::route`]), to refer to it without a borrow.
    pub index: usize,
    /// Captured parameters, decoded.
    pub params: Vec<(String, String)>,
    /// For `/*` routes: the decoded remaining segments.
    pub rest: Vec<String>,
}

impl RouteTable {
    pub fn new(plan: &Plan) -> RouteTable {
        let mut apis = Vec::new();
        let mut contexts = Vec::new();
        for api in &plan.apis {
            let index = apis.len();
            contexts.push((api.context.clone(), index));
            if let Some(default) = &api.default_context {
                contexts.push((default.clone(), index));
            }
            let routes = api
                .routes
                .iter()
                .map(|r| CompiledRoute {
                    route: r.clone(),
                    segments: split(&r.topic),
                })
                .collect();
            apis.push(Arc::new(ApiEntry {
                api: api.clone(),
                routes,
            }));
        }
        contexts.sort_by(|a, b| {
            let segs = |s: &str| s.split('/').count();
            segs(&b.0).cmp(&segs(&a.0)).then(a.0.cmp(&b.0))
        });
        RouteTable {
            plan_hash: plan.hash.clone(),
            apis,
            contexts,
        }
    }

    pub fn apis(&self) -> impl Iterator<Item = &Arc<ApiEntry>> {
        self.apis.iter()
    }

    /// Finds the API by its (versioned) context.
    pub fn api_by_context(&self, context: &str) -> Option<&Arc<ApiEntry>> {
        self.apis.iter().find(|a| a.api.context == context)
    }

    /// Matches a request path (without query).
    pub fn lookup(&self, path: &str) -> Lookup<'_> {
        for (context, index) in &self.contexts {
            let rest = if context == "/" {
                Some(path)
            } else {
                path.strip_prefix(context.as_str())
                    .filter(|r| r.is_empty() || r.starts_with('/'))
            };
            let Some(rest) = rest else { continue };
            let api = &self.apis[*index];
            let segments: Vec<&str> = if rest.is_empty() || rest == "/" {
                Vec::new()
            } else {
                rest[1..].split('/').collect()
            };
            for (index, compiled) in api.routes.iter().enumerate() {
                if let Some((params, tail)) = match_segments(&compiled.segments, &segments) {
                    return Lookup::Found(Match {
                        api,
                        route: &compiled.route,
                        index,
                        params,
                        rest: tail,
                    });
                }
            }
            return Lookup::NoTopic { api };
        }
        Lookup::NoApi
    }
}

impl ApiEntry {
    /// A stable key for this API in metrics and the connection registry.
    pub fn key(&self) -> &str {
        &self.api.context
    }

    /// The route at `index` (as [`Match::index`] gives it).
    pub fn route(&self, index: usize) -> Option<&Route> {
        self.routes.get(index).map(|c| &c.route)
    }
}

fn split(topic: &str) -> Vec<Segment> {
    if topic == "/" {
        return Vec::new();
    }
    topic
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            if s == "*" {
                Segment::Rest
            } else if let Some(name) = s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Segment::Param(name.to_string())
            } else {
                Segment::Literal(s.to_string())
            }
        })
        .collect()
}

type Captures = (Vec<(String, String)>, Vec<String>);

fn decode(segment: &str) -> Option<String> {
    percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn match_segments(pattern: &[Segment], path: &[&str]) -> Option<Captures> {
    let mut params = Vec::new();
    for (i, seg) in pattern.iter().enumerate() {
        match seg {
            Segment::Rest => {
                // Empty segments are collapsed: `//host` must not reach a backend's URL parser.
                let rest = path[i.min(path.len())..]
                    .iter()
                    .filter(|s| !s.is_empty())
                    .map(|s| decode(s))
                    .collect::<Option<Vec<_>>>()?;
                return Some((params, rest));
            }
            Segment::Literal(lit) => {
                let got = path.get(i)?;
                if decode(got)? != *lit {
                    return None;
                }
            }
            Segment::Param(name) => {
                let got = path.get(i)?;
                if got.is_empty() {
                    return None;
                }
                params.push((name.clone(), decode(got)?));
            }
        }
    }
    (pattern.len() == path.len()).then_some((params, Vec::new()))
}

/// Encodes one path parameter value so that it stays one segment, and cannot be `.` or `..`.
pub fn encode_param(value: &str) -> String {
    match value {
        "." => "%2E".to_string(),
        ".." => "%2E%2E".to_string(),
        _ => utf8_percent_encode(value, PARAM).to_string(),
    }
}

/// The backend URL for a match: endpoint + backendPath with parameters substituted (encoded), plus
/// the client's query string minus credentials.
pub fn backend_url(endpoint: &str, m: &Match<'_>, client_query: Option<&str>) -> String {
    let values: HashMap<&str, &str> = m
        .params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut path = String::new();
    let template = m.route.backend_path.as_str();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        path.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            path.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let name = &after[..close];
        if name == "*" {
            let joined: Vec<String> = m.rest.iter().map(|s| encode_param(s)).collect();
            path.push_str(&joined.join("/"));
        } else {
            path.push_str(&encode_param(values.get(name).copied().unwrap_or("")));
        }
        rest = &after[close + 1..];
    }
    path.push_str(rest);
    if m.route.kind == RouteKind::Wildcard && path.ends_with('/') && m.rest.is_empty() {
        path.pop();
    }
    let mut url = format!("{endpoint}{path}");
    let mapping_query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
    let mapped: Vec<String> = parameters(mapping_query)
        .map(|(_, pair)| canonical_name(pair))
        .collect();
    if let Some(query) = client_query
        .map(|q| forward_query(q, &mapped))
        .filter(|q| !q.is_empty())
    {
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&query);
    }
    url
}

/// The client's query as the backend gets it. Parameters are separated by `&` or `;` (backends
/// differ on `;`, so both count); each keeps its separator and its bytes, except that
/// * a credential parameter ([`CREDENTIAL_PARAMS`]) is removed,
/// * a parameter the mapping (or the endpoint) already sets is removed, so the client cannot
///   override it for a backend that reads the last value (`mapped` holds canonical names),
/// * bytes a URL may not carry raw are percent-encoded, so they are not the backend's problem.
///
/// Two names are the same parameter when their canonical forms are equal ([`canonical_name`]).
pub fn forward_query(query: &str, mapped: &[String]) -> String {
    let mut out = String::new();
    for (separator, pair) in parameters(query) {
        if pair.is_empty() {
            continue;
        }
        let name = canonical_name(pair);
        if CREDENTIAL_PARAMS.contains(&name.as_str()) || mapped.contains(&name) {
            continue;
        }
        if !out.is_empty() {
            out.push(separator);
        }
        encode_query_part(pair, &mut out);
    }
    out
}

/// Splits a query into parameters, each with the separator that preceded it (`&` for the first).
fn parameters(query: &str) -> impl Iterator<Item = (char, &str)> {
    let mut separator = '&';
    query.split_inclusive(['&', ';']).map(move |piece| {
        let this = separator;
        let pair = match piece.chars().last() {
            Some(c @ ('&' | ';')) => {
                separator = c;
                &piece[..piece.len() - 1]
            }
            _ => piece,
        };
        (this, pair)
    })
}

/// A parameter's name as a backend's query parser may read it: the part before `=`,
/// percent-decoded until stable (so `access%255Ftoken` is `access_token`), `+` read as a space,
/// surrounding whitespace trimmed, a trailing `[...]` (PHP/Rails arrays) removed, ASCII
/// lower-cased.
pub fn canonical_name(pair: &str) -> String {
    let mut name = pair.split('=').next().unwrap_or_default().replace('+', " ");
    for _ in 0..4 {
        let decoded = percent_decode_str(&name).decode_utf8_lossy().into_owned();
        if decoded == name {
            break;
        }
        name = decoded;
    }
    let mut name = name.trim();
    if let Some(open) = name.find('[') {
        name = name[..open].trim_end();
    }
    name.to_ascii_lowercase()
}

fn encode_query_part(part: &str, out: &mut String) {
    let bytes = part.as_bytes();
    for (i, c) in part.char_indices() {
        if c == '%' {
            let escape = bytes.len() > i + 2
                && bytes[i + 1].is_ascii_hexdigit()
                && bytes[i + 2].is_ascii_hexdigit();
            out.push_str(if escape { "%" } else { "%25" });
        } else {
            let mut buf = [0u8; 4];
            out.extend(percent_encode(
                c.encode_utf8(&mut buf).as_bytes(),
                QUERY_UNSAFE,
            ));
        }
    }
}

/// Removes the credential parameters from a query string, keeping everything else byte for byte
/// (but for the encoding of unsafe bytes).
pub fn strip_credentials(query: &str) -> String {
    forward_query(query, &[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_compiler::plan::{Endpoints, Lifecycle, RouteAuth, RouteMessages, SourceRef};

    fn route(topic: &str, backend: &str, context: &str) -> Route {
        let pattern = if topic == "/" {
            context.to_string()
        } else {
            format!("{context}{topic}")
        };
        Route {
            kind: portico_compiler::plan::route_kind(&pattern),
            pattern,
            topic: topic.into(),
            backend_path: backend.into(),
            parameters: vec![],
            channels: vec![],
            messages: RouteMessages::default(),
            scopes: vec![],
            auth: RouteAuth::None,
            handshake: None,
            throttling: None,
            validation: None,
            security: Default::default(),
        }
    }

    fn api(context: &str, default: Option<&str>, routes: Vec<Route>) -> PlanApi {
        let mut routes = routes;
        routes.sort_by(portico_compiler::plan::route_order);
        PlanApi {
            name: "t".into(),
            title: "T".into(),
            version: "1".into(),
            context: context.into(),
            context_template: context.into(),
            default_context: default.map(Into::into),
            lifecycle: Lifecycle::Published,
            endpoints: Endpoints {
                production: "ws://b:1".into(),
                sandbox: None,
            },
            limits: Default::default(),
            origins: vec![],
            throttling: None,
            source: SourceRef {
                file: "x".into(),
                sha256: "y".into(),
            },
            routes,
        }
    }

    fn table() -> RouteTable {
        let c = "/chat/1";
        RouteTable::new(&Plan::new(vec![
            api(
                c,
                Some("/chat"),
                vec![
                    route("/rooms/{id}", "/r?room={id}", c),
                    route("/rooms/lobby", "/lobby", c),
                    route("/*", "/{*}", c),
                ],
            ),
            api("/chat/1/admin", None, vec![route("/", "", "/chat/1/admin")]),
        ]))
    }

    fn found<'a>(t: &'a RouteTable, path: &str) -> Match<'a> {
        match t.lookup(path) {
            Lookup::Found(m) => m,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn literal_beats_template_beats_wildcard() {
        let t = table();
        assert_eq!(found(&t, "/chat/1/rooms/lobby").route.topic, "/rooms/lobby");
        assert_eq!(found(&t, "/chat/1/rooms/x").route.topic, "/rooms/{id}");
        assert_eq!(found(&t, "/chat/1/else/where").route.topic, "/*");
        assert_eq!(found(&t, "/chat/1").route.topic, "/*");
    }

    #[test]
    fn longest_context_wins_and_default_version_reaches_the_api() {
        let t = table();
        assert_eq!(found(&t, "/chat/1/admin").api.api.context, "/chat/1/admin");
        assert_eq!(found(&t, "/chat/rooms/x").api.api.context, "/chat/1");
        assert!(matches!(t.lookup("/other"), Lookup::NoApi));
        assert!(matches!(t.lookup("/chatty/1"), Lookup::NoApi));
        assert!(matches!(
            t.lookup("/chat/1/admin/extra"),
            Lookup::NoTopic { .. }
        ));
    }

    #[test]
    fn hostile_parameters_cannot_escape_their_segment() {
        let t = table();
        for (raw, encoded) in [
            ("a%2Fb", "a%2Fb"),
            ("a%3Fx%3D1", "a%3Fx%3D1"),
            ("%23frag", "%23frag"),
            ("..", "%2E%2E"),
            ("%2E%2E", "%2E%2E"),
            ("sp%20ace", "sp%20ace"),
            ("caf%C3%A9", "caf%C3%A9"),
        ] {
            let m = found(&t, &format!("/chat/1/rooms/{raw}"));
            assert_eq!(
                backend_url("ws://b:1", &m, None),
                format!("ws://b:1/r?room={encoded}"),
                "{raw}"
            );
        }
        let m = found(&t, "/chat/1/a/%2E%2E/b");
        assert_eq!(backend_url("ws://b:1", &m, None), "ws://b:1/a/%2E%2E/b");
    }

    #[test]
    fn query_is_forwarded_without_credentials() {
        let t = table();
        let m = found(&t, "/chat/1/rooms/lobby");
        assert_eq!(
            backend_url("ws://b:1", &m, Some("a=1&access_token=s3cret&b=2&APIKEY=k")),
            "ws://b:1/lobby?a=1&b=2"
        );
        let m = found(&t, "/chat/1/rooms/x");
        assert_eq!(
            backend_url("ws://b:1", &m, Some("apikey=k&z=%20")),
            "ws://b:1/r?room=x&z=%20"
        );
        assert_eq!(strip_credentials("access_token=1"), "");
    }

    #[test]
    fn a_client_query_cannot_override_the_mapping() {
        let t = table();
        let m = found(&t, "/chat/1/rooms/lobby2");
        for query in [
            "room=admin",
            "ROOM=admin",
            "room%5B%5D=admin",
            "r%6Fom=admin",
            "room",
        ] {
            assert_eq!(
                backend_url("ws://b:1", &m, Some(&format!("{query}&x=1"))),
                "ws://b:1/r?room=lobby2&x=1",
                "{query}"
            );
        }
    }

    #[test]
    fn empty_segments_of_a_remainder_are_collapsed() {
        let t = table();
        let m = found(&t, "/chat/1//evil.example/steal");
        assert_eq!(
            backend_url("ws://b:1", &m, None),
            "ws://b:1/evil.example/steal"
        );
        let m = found(&t, "/chat/1/a//b/");
        assert_eq!(backend_url("ws://b:1", &m, None), "ws://b:1/a/b");
    }

    #[test]
    fn unsafe_query_bytes_are_percent_encoded() {
        let t = table();
        let m = found(&t, "/chat/1/rooms/lobby");
        assert_eq!(
            backend_url("ws://b:1", &m, Some("q=\"|<>`\\^{}&p=100%&ok=%41")),
            "ws://b:1/lobby?q=%22%7C%3C%3E%60%5C%5E%7B%7D&p=100%25&ok=%41"
        );
        assert_eq!(
            backend_url("ws://b:1", &m, Some("q=caf\u{e9} x")),
            "ws://b:1/lobby?q=caf%C3%A9%20x"
        );
    }

    #[test]
    fn credential_spellings_are_all_stripped() {
        for query in [
            "a=1;access_token=S",
            "a=1&access_token[]=S",
            "a=1&apikey[x]=S",
            "a=1&%20access_token=S",
            "a=1&+access_token=S",
            "a=1&access%255Ftoken=S",
            "a=1&ACCESS%5FTOKEN=S",
            "a=1&api%6Bey=S",
        ] {
            assert_eq!(strip_credentials(query), "a=1", "{query}");
        }
        // Separators and unrelated bytes are kept as sent.
        assert_eq!(strip_credentials("a=1;b=2&c=%2F"), "a=1;b=2&c=%2F");
        assert_eq!(strip_credentials("access_token=S;b=2&c"), "b=2&c");
    }
}
