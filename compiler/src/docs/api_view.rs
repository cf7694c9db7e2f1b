//! The view of one API page: its channels, operations and messages (from the specs, else from the
//! plan's routes), with gateway URLs, lifecycle, limits and how to authenticate (from the plan).

use std::collections::HashSet;

use serde_json::Value;

use super::collect::{ChannelDoc, MessageDoc, OperationDoc, ParamDoc, SchemeDoc, SourceApi};
use super::schema_table::{constraints, flatten_object, payload_view, type_label};
use super::snippets::{example_of, example_path, example_query, snippets};
use super::view::*;
use super::{public_variants, Options};
use crate::model::Direction;
use crate::plan::{
    slug, Lifecycle, MessageDirection, Plan, PlanApi, Route, RouteAuth, RouteSecurity, SchemeKind,
};

pub(super) fn lifecycle_view(state: Lifecycle, successor: Option<ApiRef>) -> LifecycleView {
    let (label, level, served, note) = match state {
        Lifecycle::Created => (
            "Created",
            "info",
            false,
            "Not served yet: connections are refused with 404 Not Found.",
        ),
        Lifecycle::Prototyped => (
            "Prototype",
            "info",
            true,
            "Served without authentication, for trying the API out. It may still change.",
        ),
        Lifecycle::Published => ("Published", "ok", true, "Served."),
        Lifecycle::Deprecated => (
            "Deprecated",
            "warn",
            true,
            "This version is deprecated: it is still served, but will be retired. Handshake responses carry a `Deprecation: true` header. Move to a newer version.",
        ),
        Lifecycle::Blocked => (
            "Blocked",
            "danger",
            false,
            "Blocked: new connections are refused with 503 Service Unavailable.",
        ),
        Lifecycle::Retired => (
            "Retired",
            "danger",
            false,
            "Retired: connections are refused with 410 Gone.",
        ),
    };
    LifecycleView {
        state: state.as_str(),
        label,
        level,
        served,
        note,
        successor,
    }
}

pub(super) fn version_key(v: &str) -> Vec<(u64, String)> {
    v.split(['.', '-', '_'])
        .map(|p| {
            let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
            (digits.parse().unwrap_or(0), p.to_string())
        })
        .collect()
}

/// The newest served version of the same API that is newer than `api`.
pub(super) fn successor(api: &PlanApi, plan: &Plan) -> Option<ApiRef> {
    plan.apis
        .iter()
        .filter(|o| {
            o.name == api.name
                && matches!(o.lifecycle, Lifecycle::Published | Lifecycle::Prototyped)
                && version_key(&o.version) > version_key(&api.version)
        })
        .max_by(|a, b| version_key(&a.version).cmp(&version_key(&b.version)))
        .map(|o| {
            let stem = format!("{}-{}", o.name, o.version);
            ApiRef {
                title: o.title.clone(),
                version: o.version.clone(),
                html: format!("{stem}.html"),
                md: format!("{stem}.md"),
            }
        })
}

/// Hands out unique anchors.
#[derive(Default)]
pub(super) struct Anchors(HashSet<String>);

impl Anchors {
    pub(super) fn make(&mut self, prefix: &str, name: &str) -> String {
        let mut s = String::from(prefix);
        s.push('-');
        let mut dash = false;
        for c in name.chars() {
            if c.is_ascii_alphanumeric() || c == '_' {
                if dash && !s.ends_with('-') {
                    s.push('-');
                }
                s.push(c.to_ascii_lowercase());
                dash = false;
            } else {
                dash = true;
            }
        }
        while s.ends_with('-') {
            s.pop();
        }
        if s.len() == prefix.len() {
            s.push_str("-x");
        }
        let mut candidate = s.clone();
        let mut n = 2;
        while !self.0.insert(candidate.clone()) {
            candidate = format!("{s}-{n}");
            n += 1;
        }
        candidate
    }
}

pub(super) fn api_view(
    source: Option<&SourceApi>,
    plan: Option<(&PlanApi, &Plan)>,
    file_stem: &str,
    options: &Options,
) -> ApiView {
    let plan_api = plan.map(|(a, _)| a);
    let public = &options.public_urls;
    let prototype = plan_api.is_some_and(|a| a.lifecycle == Lifecycle::Prototyped);
    // Channels: the spec's (matched to routes), else the plan's routes.
    let channels: Vec<(ChannelDoc, Option<&Route>)> = match (source, plan_api) {
        (Some(s), _) => s
            .channels
            .iter()
            .map(|c| {
                let route =
                    plan_api.and_then(|a| a.routes.iter().find(|r| r.channels.contains(&c.id)));
                (c.clone(), route)
            })
            .collect(),
        (None, Some(api)) => api
            .routes
            .iter()
            .map(|r| (channel_from_route(r), Some(r)))
            .collect(),
        (None, None) => Vec::new(),
    };
    let security: Vec<SchemeDoc> = source.map(|s| s.security.clone()).unwrap_or_default();
    let mut anchors = Anchors::default();
    let mut messages: Vec<(MessageDoc, MessageView)> = Vec::new();
    let mut channel_views = Vec::new();
    let mut all_operations = Vec::new();
    for (channel, route) in &channels {
        let anchor = anchors.make("channel", &channel.id);
        let address = route
            .map(|r| r.topic.clone())
            .or_else(|| channel.address.clone());
        let urls = match (plan_api, route) {
            (Some(api), Some(route)) => {
                let (ws, wss) = public_variants(public, &route.pattern);
                let mut urls = vec![UrlView {
                    label: "this version",
                    ws,
                    wss,
                }];
                if let Some(default) = &api.default_context {
                    let rest = route.pattern.strip_prefix(&api.context).unwrap_or("");
                    let (ws, wss) = public_variants(public, &format!("{default}{rest}"));
                    urls.push(UrlView {
                        label: "default version",
                        ws,
                        wss,
                    });
                }
                urls
            }
            _ => Vec::new(),
        };
        let parameters: Vec<ParamView> = channel.parameters.iter().map(param_view).collect();
        let (query, headers, method) = ws_binding_rows(channel.ws_binding.as_ref());
        let example_url = route.map(|r| {
            let path = example_path(&r.pattern, &channel.parameters);
            let query_string = example_query(channel.ws_binding.as_ref());
            let (ws, wss) = public_variants(public, &format!("{path}{query_string}"));
            UrlView {
                label: "example",
                ws,
                wss,
            }
        });
        let auth = match (route, &channel.auth_type) {
            (Some(r), _) => Some(match r.auth {
                RouteAuth::Required if !prototype => "required",
                _ => "none",
            }),
            (None, Some(t)) if t.eq_ignore_ascii_case("none") => Some("none"),
            (None, Some(_)) => Some("required"),
            _ => None,
        };
        let channel_ref = ChannelRef {
            id: channel.id.clone(),
            anchor: anchor.clone(),
            address: address.clone(),
        };
        let mut operation_views = Vec::new();
        for op in &channel.operations {
            let (action, direction) = match op.direction {
                Direction::ClientToServer => ("send", "client sends"),
                Direction::ServerToClient => ("receive", "client receives"),
            };
            let id = op.id.clone().unwrap_or_else(|| {
                format!("{action} {}", address.clone().unwrap_or(channel.id.clone()))
            });
            let op_anchor = anchors.make("operation", &id);
            let mut refs = Vec::new();
            for m in &op.messages {
                let existing = messages.iter_mut().find(|(doc, _)| doc == m);
                let view = match existing {
                    Some((_, view)) => view,
                    None => {
                        let anchor = anchors.make("message", &m.name);
                        messages.push((m.clone(), message_view(m, anchor)));
                        &mut messages.last_mut().expect("just pushed").1
                    }
                };
                view.used_by.push(OperationRef {
                    id: id.clone(),
                    anchor: op_anchor.clone(),
                    direction,
                });
                refs.push(MessageRef {
                    name: view.name.clone(),
                    title: view.title.clone(),
                    anchor: view.anchor.clone(),
                });
            }
            operation_views.push(OperationView {
                id,
                anchor: op_anchor,
                action,
                direction,
                channel: channel_ref.clone(),
                summary: op.summary.clone(),
                description: op.description.clone(),
                scopes: op.scopes.clone(),
                messages: refs,
            });
        }
        let snippets = example_url.as_ref().map(|url| {
            let sent = channel
                .operations
                .iter()
                .filter(|o| o.direction == Direction::ClientToServer)
                .flat_map(|o| &o.messages)
                .next()
                .and_then(example_of);
            // The snippets connect with TLS when the gateway is published with it.
            let connect = url.wss.as_deref().or(url.ws.as_deref()).unwrap_or_default();
            snippets(connect, auth == Some("required"), &security, sent.as_ref())
        });
        all_operations.extend(operation_views.iter().cloned());
        channel_views.push(ChannelView {
            id: channel.id.clone(),
            anchor,
            title: channel.title.clone(),
            address,
            description: channel.description.clone(),
            urls,
            example_url,
            auth,
            requirement: route.map(|r| requirement_view(r, prototype)),
            scopes: route.map(|r| r.scopes.clone()).unwrap_or_else(|| {
                let mut s: Vec<String> = channel
                    .operations
                    .iter()
                    .flat_map(|o| o.scopes.iter().cloned())
                    .collect();
                s.dedup();
                s
            }),
            parameters,
            method,
            query,
            headers,
            operations: operation_views,
            snippets,
        });
    }
    for m in source.map(|s| s.unused_messages.as_slice()).unwrap_or(&[]) {
        let anchor = anchors.make("message", &m.name);
        messages.push((m.clone(), message_view(m, anchor)));
    }
    let name = plan_api
        .map(|a| a.name.clone())
        .unwrap_or_else(|| slug(source.map(|s| s.title.as_str()).unwrap_or("api")));
    let version = plan_api
        .map(|a| a.version.clone())
        .or_else(|| source.and_then(|s| s.version.clone()))
        .unwrap_or_default();
    let servers = match plan_api {
        Some(api) => {
            let mut servers = Vec::new();
            let (ws, wss) = public_variants(public, &api.context);
            if let Some(url) = ws {
                servers.push(ServerView {
                    name: "gateway".into(),
                    url,
                    protocol: "ws".into(),
                    description: Some("Plain WebSocket.".into()),
                    kind: "gateway",
                });
            }
            if let Some(url) = wss {
                servers.push(ServerView {
                    name: "gateway (TLS)".into(),
                    url,
                    protocol: "wss".into(),
                    description: Some("WebSocket over TLS.".into()),
                    kind: "gateway",
                });
            }
            if let Some(default) = &api.default_context {
                let url = format!("{}{default}", public.preferred());
                let protocol = url.split_once("://").map(|(s, _)| s).unwrap_or("ws").into();
                servers.push(ServerView {
                    name: "default version".into(),
                    url,
                    protocol,
                    description: Some("The same API without the version in the path.".to_string()),
                    kind: "gateway",
                });
            }
            servers
        }
        None => source.map(|s| s.servers.clone()).unwrap_or_default(),
    };
    let gateway_ext = source.and_then(|s| s.gateway.as_ref());
    let spec_link = (options.spec_links && source.is_some() && plan_api.is_some())
        .then(|| format!("../specs/{name}/{version}.yaml"));
    ApiView {
        title: plan_api
            .map(|a| a.title.clone())
            .or_else(|| source.map(|s| s.title.clone()))
            .unwrap_or_default(),
        html: format!("{file_stem}.html"),
        md: format!("{file_stem}.md"),
        spec_version: source.map(|s| s.spec_version.clone()),
        description: source.and_then(|s| s.description.clone()),
        info: source.map(|s| s.info.clone()).unwrap_or_default(),
        default_content_type: source.and_then(|s| s.default_content_type.clone()),
        lifecycle: plan.map(|(api, plan)| {
            let next = (api.lifecycle == Lifecycle::Deprecated)
                .then(|| successor(api, plan))
                .flatten();
            lifecycle_view(api.lifecycle, next)
        }),
        gateway: plan_api.is_some(),
        context: plan_api.map(|a| a.context.clone()),
        default_context: plan_api.and_then(|a| a.default_context.clone()),
        servers,
        security: security_views(&security, prototype, plan_api.is_some()),
        limits: plan_api.map(limit_views).unwrap_or_default(),
        throttling: gateway_ext
            .and_then(|g| g.get("throttling"))
            .map(|t| serde_json::to_string_pretty(t).unwrap_or_default()),
        validation: ValidationView {
            policy: if plan_api.is_some() {
                "The gateway relays messages as they are: it does not validate payloads against the schemas below. They describe what the API expects and sends.".into()
            } else {
                "The schemas below describe what the API expects and sends.".into()
            },
            config: gateway_ext
                .and_then(|g| g.get("validation"))
                .map(|t| serde_json::to_string_pretty(t).unwrap_or_default()),
        },
        channels: channel_views,
        operations: all_operations,
        messages: messages.into_iter().map(|(_, v)| v).collect(),
        source: SourceView {
            file: plan_api
                .map(|a| a.source.file.clone())
                .or_else(|| source.map(|s| s.path.clone())),
            sha256: plan_api
                .map(|a| a.source.sha256.clone())
                .or_else(|| source.map(|s| s.sha256.clone())),
            spec: spec_link,
        },
        hash: plan.map(|(_, p)| p.hash.clone()),
        name,
        version,
    }
}

/// A channel as the plan alone describes it (runtime serving `--plan`).
pub(super) fn channel_from_route(route: &Route) -> ChannelDoc {
    let plan_message = |m: &crate::plan::PlanMessage| MessageDoc {
        name: m.name.clone(),
        title: None,
        summary: None,
        description: None,
        content_type: None,
        payload: m.schema.clone(),
        headers: None,
        examples: m.examples.clone(),
    };
    let mut operations = Vec::new();
    for (direction, list) in [
        (Direction::ClientToServer, &route.messages.client_to_server),
        (Direction::ServerToClient, &route.messages.server_to_client),
    ] {
        if !list.is_empty() {
            operations.push(OperationDoc {
                id: None,
                direction,
                summary: None,
                description: None,
                scopes: route.scopes.clone(),
                messages: list.iter().map(plan_message).collect(),
            });
        }
    }
    ChannelDoc {
        id: route.channels.join(", "),
        address: Some(route.topic.clone()),
        title: None,
        description: None,
        parameters: route
            .parameters
            .iter()
            .map(|p| ParamDoc {
                name: p.name.clone(),
                description: None,
                schema: p.schema.clone(),
            })
            .collect(),
        ws_binding: None,
        auth_type: None,
        operations,
    }
}

pub(super) fn limit_views(api: &PlanApi) -> Vec<LimitView> {
    let l = &api.limits;
    let mut out = Vec::new();
    let mut add = |name, value: Option<u64>, unit: &str, meaning| {
        if let Some(v) = value {
            out.push(LimitView {
                name,
                value: format!("{}{unit}", group_digits(v)),
                meaning,
            });
        }
    };
    add(
        "maxMessageBytes",
        l.max_message_bytes,
        " bytes",
        "Largest message, either way (larger: the connection is closed with 1009).",
    );
    add(
        "maxFrameBytes",
        l.max_frame_bytes,
        " bytes",
        "Largest single WebSocket frame.",
    );
    add(
        "maxConnections",
        l.max_connections,
        "",
        "Most concurrent connections to this API version (more: 503 at the handshake).",
    );
    add(
        "idleTimeoutSeconds",
        l.idle_timeout_seconds,
        " s",
        "A connection without traffic for this long is closed.",
    );
    out
}

pub(super) fn group_digits(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(super) fn is_bearer(s: &SchemeDoc) -> bool {
    matches!(s.kind.as_str(), "oauth2" | "openIdConnect" | "httpBearer")
        || (s.kind == "http"
            && s.scheme
                .as_deref()
                .is_none_or(|x| x.eq_ignore_ascii_case("bearer")))
}

/// How a client passes the scheme's credential. `gateway`: through Portico (which also takes a
/// bearer token from the `access_token` query parameter, for browsers, and strips it).
pub(super) fn ways(s: &SchemeDoc, gateway: bool) -> Vec<WayView> {
    let way = |place, name: &str, example: String, note: Option<&str>| WayView {
        place,
        name: name.to_string(),
        example,
        note: note.map(str::to_string),
    };
    if is_bearer(s) {
        let token = match &s.bearer_format {
            Some(f) => format!("YOUR_TOKEN ({f})"),
            None => "YOUR_TOKEN".to_string(),
        };
        let mut ways = vec![way(
            "header",
            "Authorization",
            format!("Bearer {token}"),
            None,
        )];
        if gateway {
            ways.push(way(
                "query",
                "access_token",
                "YOUR_TOKEN".into(),
                Some("For browsers, which cannot set headers on a WebSocket handshake. The gateway removes it before it connects the backend."),
            ));
        }
        return ways;
    }
    match (s.kind.as_str(), s.location.as_deref()) {
        ("http", _) => vec![way(
            "header",
            "Authorization",
            format!(
                "{} CREDENTIALS",
                capitalize(s.scheme.as_deref().unwrap_or("Basic"))
            ),
            None,
        )],
        ("httpApiKey", Some(place)) => {
            let name = s.param_name.clone().unwrap_or_else(|| "apikey".into());
            match place {
                "header" if name.eq_ignore_ascii_case("sec-websocket-protocol") => vec![way(
                    "subprotocol",
                    &name,
                    "YOUR_KEY".into(),
                    Some("Offered as a WebSocket subprotocol, which browsers can do: `new WebSocket(url, [key])`."),
                )],
                "header" => vec![way(
                    "header",
                    &name,
                    "YOUR_KEY".into(),
                    Some("Browsers cannot set headers on a WebSocket handshake: use it from a server-side client."),
                )],
                "query" => vec![way("query", &name, "YOUR_KEY".into(), None)],
                "cookie" => vec![way("cookie", &name, "YOUR_KEY".into(), None)],
                other => vec![way("other", &name, "YOUR_KEY".into(), Some(other))],
            }
        }
        ("apiKey", place) | ("userPassword", place) => vec![way(
            "other",
            place.unwrap_or("user"),
            "YOUR_KEY".into(),
            Some("In the connection's user or password."),
        )],
        ("X509", _) => vec![way(
            "other",
            "client certificate",
            "TLS client certificate".into(),
            Some("Connect with wss:// and present a client certificate."),
        )],
        _ => Vec::new(),
    }
}

pub(super) fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

pub(super) fn security_views(
    schemes: &[SchemeDoc],
    prototype: bool,
    gateway: bool,
) -> Vec<SecurityView> {
    schemes
        .iter()
        .map(|s| SecurityView {
            name: s.name.clone(),
            kind: s.kind.clone(),
            description: match (prototype, &s.description) {
                (true, _) => Some(
                    "This API is a prototype: it is served without authentication for now.".into(),
                ),
                (false, d) => d.clone(),
            },
            ways: ways(s, gateway),
            scopes: s
                .scopes
                .iter()
                .map(|(n, d)| ScopeView {
                    name: n.clone(),
                    description: d.clone(),
                })
                .collect(),
        })
        .collect()
}

pub(super) fn ws_binding_rows(
    binding: Option<&Value>,
) -> (Vec<FieldRow>, Vec<FieldRow>, Option<String>) {
    let Some(b) = binding else {
        return (Vec::new(), Vec::new(), None);
    };
    let rows = |key: &str| {
        b.get(key)
            .map(|schema| {
                let mut rows = Vec::new();
                let mut truncated = false;
                flatten_object(schema, "", 0, &mut rows, &mut truncated);
                rows
            })
            .unwrap_or_default()
    };
    (
        rows("query"),
        rows("headers"),
        b.get("method").and_then(Value::as_str).map(str::to_string),
    )
}

pub(super) fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn param_view(p: &ParamDoc) -> ParamView {
    let schema = p.schema.clone().unwrap_or(Value::Null);
    let list = |k: &str| -> Vec<String> {
        schema
            .get(k)
            .and_then(Value::as_array)
            .map(|a| a.iter().map(value_text).collect())
            .unwrap_or_default()
    };
    let mut examples = list("examples");
    if let Some(e) = schema.get("example") {
        examples.push(value_text(e));
    }
    let constraints = constraints(&schema);
    ParamView {
        name: p.name.clone(),
        description: p.description.clone().or_else(|| {
            schema
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string)
        }),
        r#type: type_label(&schema),
        r#enum: list("enum"),
        examples,
        default: schema.get("default").map(value_text),
        constraints,
    }
}

pub(super) fn message_view(m: &MessageDoc, anchor: String) -> MessageView {
    let mut examples: Vec<ExampleView> = m
        .examples
        .iter()
        .map(|e| ExampleView {
            json: serde_json::to_string_pretty(e).unwrap_or_default(),
            generated: false,
        })
        .collect();
    if examples.is_empty() {
        if let Some(p) = &m.payload {
            examples.push(ExampleView {
                json: serde_json::to_string_pretty(&crate::examples::from_schema(p))
                    .unwrap_or_default(),
                generated: true,
            });
        }
    }
    let headers = m
        .headers
        .as_ref()
        .map(|h| {
            let mut rows = Vec::new();
            let mut truncated = false;
            flatten_object(h, "", 0, &mut rows, &mut truncated);
            rows
        })
        .unwrap_or_default();
    MessageView {
        name: m.name.clone(),
        anchor,
        title: m.title.clone(),
        summary: m.summary.clone(),
        description: m.description.clone(),
        content_type: m.content_type.clone(),
        payload: m.payload.as_ref().map(payload_view),
        headers,
        examples,
        used_by: Vec::new(),
    }
}

/// What the gateway enforces on `route`, from the plan (the same fields the runtime's credential
/// stage reads): open for `x-auth-type: None` and PROTOTYPED APIs; otherwise the schemes the
/// credential may satisfy and the scopes each step needs. A route whose schemes are all ones the
/// gateway cannot check is not served (fail closed), and the docs say so.
pub(super) fn requirement_view(route: &Route, prototype: bool) -> RequirementView {
    let open = |because| RequirementView {
        kind: "open",
        open_because: Some(because),
        accepts: Vec::new(),
        connect: ScopeRuleView::default(),
        send: ScopeRuleView::default(),
        receive: ScopeRuleView::default(),
    };
    if prototype {
        return open("the API is a prototype, served without authentication");
    }
    if route.auth == RouteAuth::None {
        return open("the topic is marked x-auth-type: None");
    }
    let security = &route.security;
    let accepts: Vec<AcceptView> = security
        .schemes
        .iter()
        .map(|s| AcceptView {
            scheme: s.name.clone(),
            credential: credential_words(&s.kind),
        })
        .collect();
    let unserved = !security.schemes.is_empty()
        && security
            .schemes
            .iter()
            .all(|s| matches!(s.kind, SchemeKind::Unsupported { .. }));
    RequirementView {
        kind: if unserved { "unserved" } else { "credential" },
        open_because: None,
        accepts,
        connect: scope_rule(security, None),
        send: scope_rule(security, Some(MessageDirection::ClientToServer)),
        receive: scope_rule(security, Some(MessageDirection::ServerToClient)),
    }
}

/// The scopes a step needs: to connect (`direction` none: any operation of the route), or to
/// pass a message in `direction` (its operations; a direction without operations is not
/// restricted by scopes). An operation without scopes makes the step need none.
fn scope_rule(security: &RouteSecurity, direction: Option<MessageDirection>) -> ScopeRuleView {
    let ops: Vec<&Vec<String>> = security
        .operations
        .iter()
        .filter(|op| direction.is_none_or(|d| op.direction == d))
        .map(|op| &op.scopes)
        .collect();
    if ops.is_empty() || ops.iter().any(|scopes| scopes.is_empty()) {
        return ScopeRuleView::default();
    }
    let mut any_of: Vec<Vec<String>> = Vec::new();
    for scopes in ops {
        let mut set = scopes.clone();
        set.sort();
        set.dedup();
        if !any_of.contains(&set) {
            any_of.push(set);
        }
    }
    ScopeRuleView {
        needed: true,
        any_of,
    }
}

fn credential_words(kind: &SchemeKind) -> String {
    match kind {
        SchemeKind::Bearer => "a JWT bearer token".into(),
        SchemeKind::Oauth2 => "an OAuth 2 access token (JWT)".into(),
        SchemeKind::OpenIdConnect => "an OpenID Connect token (JWT)".into(),
        SchemeKind::ApiKey { .. } => "an API key".into(),
        SchemeKind::Unsupported { declared } => {
            format!("a {declared} credential, which the gateway cannot check on a WebSocket")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{OperationScopes, RouteKind, SecurityRequirement};

    fn route(auth: RouteAuth, security: RouteSecurity) -> Route {
        Route {
            topic: "/t".into(),
            pattern: "/a/1/t".into(),
            kind: RouteKind::Literal,
            backend_path: "/t".into(),
            parameters: vec![],
            channels: vec!["t".into()],
            messages: Default::default(),
            // The legacy union the docs used to print: not what decides.
            scopes: vec!["legacy:union".into()],
            auth,
            handshake: None,
            throttling: None,
            validation: None,
            security,
        }
    }

    fn op(direction: MessageDirection, scopes: &[&str]) -> OperationScopes {
        OperationScopes {
            direction,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn scheme(name: &str, kind: SchemeKind) -> SecurityRequirement {
        SecurityRequirement {
            name: name.into(),
            kind,
        }
    }

    fn rule(sets: &[&[&str]]) -> ScopeRuleView {
        ScopeRuleView {
            needed: true,
            any_of: sets
                .iter()
                .map(|s| s.iter().map(|x| x.to_string()).collect())
                .collect(),
        }
    }

    #[test]
    fn the_requirement_is_what_the_gateway_enforces() {
        use MessageDirection::*;
        let security = RouteSecurity {
            schemes: vec![
                scheme("oauth", SchemeKind::Oauth2),
                scheme(
                    "key",
                    SchemeKind::ApiKey {
                        location: "query".into(),
                        name: Some("apikey".into()),
                    },
                ),
            ],
            operations: vec![
                op(ClientToServer, &["chat:write", "chat:write"]),
                op(ServerToClient, &["chat:read"]),
            ],
        };
        let r = requirement_view(&route(RouteAuth::Required, security.clone()), false);
        assert_eq!(r.kind, "credential");
        assert_eq!(
            r.accepts
                .iter()
                .map(|a| a.scheme.as_str())
                .collect::<Vec<_>>(),
            ["oauth", "key"]
        );
        assert_eq!(r.accepts[1].credential, "an API key");
        assert_eq!(r.connect, rule(&[&["chat:write"], &["chat:read"]]));
        assert_eq!(r.send, rule(&[&["chat:write"]]));
        assert_eq!(r.receive, rule(&[&["chat:read"]]));

        // x-auth-type: None and PROTOTYPED are open, whatever the security says.
        let open = requirement_view(&route(RouteAuth::None, security.clone()), false);
        assert_eq!((open.kind, open.accepts.len()), ("open", 0));
        assert!(open.open_because.unwrap().contains("x-auth-type: None"));
        let prototype = requirement_view(&route(RouteAuth::Required, security), true);
        assert_eq!(prototype.kind, "open");
        assert!(prototype.open_because.unwrap().contains("prototype"));

        // No scheme named (WSO2): any configured verifier; an operation without scopes, or a
        // direction without operations, needs none.
        let wso2 = RouteSecurity {
            schemes: vec![],
            operations: vec![op(ClientToServer, &[]), op(ClientToServer, &["x"])],
        };
        let r = requirement_view(&route(RouteAuth::Required, wso2), false);
        assert_eq!((r.kind, r.accepts.len()), ("credential", 0));
        assert_eq!(r.connect, ScopeRuleView::default());
        assert_eq!(r.receive, ScopeRuleView::default());

        // Only schemes the gateway cannot check: not served (fail closed).
        let x509 = RouteSecurity {
            schemes: vec![scheme(
                "cert",
                SchemeKind::Unsupported {
                    declared: "X509".into(),
                },
            )],
            operations: vec![],
        };
        let r = requirement_view(&route(RouteAuth::Required, x509), false);
        assert_eq!(r.kind, "unserved");
        assert!(r.accepts[0].credential.contains("X509"));
    }
}
