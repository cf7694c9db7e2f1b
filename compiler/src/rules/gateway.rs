//! What Portico needs to serve a document, beyond valid AsyncAPI: a context, a version, a backend,
//! mappings that only use declared parameters, declared scopes, a valid lifecycle; and the
//! translation of the lowered [`Api`] into the plan's [`PlanApi`] with its routes.
//!
//! Skipped by `compile --lint`. Problems across documents (duplicate contexts) are checked in
//! [`crate::compile`], where all APIs are known.

use std::sync::OnceLock;

use serde_json::Value;

use crate::diagnostics::Diagnostic;
use crate::model::{template_parameters, Api, Direction, Located};
use crate::plan::{
    route_kind, route_order, route_shape, slug, ApiLimits, ApiThrottling, Bucket, Endpoints,
    HandshakeContract, Lifecycle, MessageDirection, OnThrottle, OperationBucket, OperationScopes,
    PlanApi, PlanMessage, Rate, Route, RouteAuth, RouteMessages, RouteParameter, RouteSecurity,
    RouteThrottling, RouteValidation, SchemeKind, SecurityRequirement, SourceRef, ValidationPolicy,
};
use crate::source::{Node, Span};
use crate::wso2::ApiProject;

/// What the caller knows that the document does not.
pub struct Context<'a> {
    /// `--context`: used for documents that name no context themselves.
    pub fallback_context: Option<&'a str>,
    pub project: &'a ApiProject,
    pub source: SourceRef,
}

/// The built-in backends the runtime serves itself.
pub const BUILTIN_ENDPOINTS: [&str; 2] = ["echo:", "mock:"];

fn extension_schema() -> &'static (Value, jsonschema::Validator) {
    static SCHEMA: OnceLock<(Value, jsonschema::Validator)> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let schema: Value = serde_json::from_str(include_str!("../../schemas/x-gateway.json"))
            .expect("x-gateway schema is JSON");
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .build(&schema)
            .expect("x-gateway schema compiles");
        (schema, validator)
    })
}

/// Checks the gateway rules and builds the API's part of the plan. Returns `None` when an error
/// makes the API unservable (the diagnostics say why).
pub fn check(api: &Api, cx: &Context, diags: &mut Vec<Diagnostic>) -> Option<PlanApi> {
    let errors_before = diags.iter().filter(|d| d.is_error()).count();
    let gateway = api.gateway.as_ref();
    if let Some(g) = gateway {
        let (schema, validator) = extension_schema();
        crate::schema::validate_extension(
            g,
            "/x-gateway",
            schema,
            validator,
            "gateway-extension",
            diags,
        );
        for reserved in ["auth"] {
            if let Some((k, _)) = g.entry(reserved) {
                diags.push(Diagnostic::warning("gateway-extension-reserved", format!("`x-gateway.{reserved}` is reserved and not enforced by this version of Portico"))
                    .with_help("remove it until the policy is supported; it has no effect today").at(k.span, format!("/x-gateway/{reserved}")));
            }
        }
    }
    let version = check_version(api, cx, diags);
    let context_template = check_context(api, cx, diags);
    let lifecycle = check_lifecycle(api, cx, diags);
    let default_version = gateway
        .and_then(|g| g.get("defaultVersion"))
        .and_then(Node::as_bool)
        .or_else(|| {
            cx.project
                .default_version
                .as_ref()
                .and_then(|n| n.as_bool().or_else(|| n.as_str().map(|s| s == "true")))
        })
        .unwrap_or(false);
    let endpoints = check_endpoints(api, cx, diags);
    // `1e6` is a YAML float but a whole number; the extension schema has checked it is an integer.
    let whole = |n: &Node| {
        let v = n.to_json();
        v.as_u64().or_else(|| {
            v.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1e18)
                .map(|f| f as u64)
        })
    };
    let limits = gateway
        .and_then(|g| g.get("limits"))
        .map(|l| ApiLimits {
            max_message_bytes: l.get("maxMessageBytes").and_then(whole),
            max_frame_bytes: l.get("maxFrameBytes").and_then(whole),
            max_connections: l.get("maxConnections").and_then(whole),
            idle_timeout_seconds: l.get("idleTimeoutSeconds").and_then(whole),
        })
        .unwrap_or_default();

    let origins = check_origins(gateway, diags);
    let throttling = check_throttling(api, gateway, diags);
    let validation = check_validation(api, gateway, diags);

    let (Some(version), Some(context_template), Some(endpoints)) =
        (version, context_template, endpoints)
    else {
        // Still check the routes, so that every problem shows in one run.
        build_routes(api, "/", diags);
        return None;
    };
    let context = substitute_version(&context_template, &version);
    let default_context = default_version.then(|| without_version(&context_template));
    let mut routes = build_routes(api, &context, diags);
    unmapped_topics(api, cx, &mut routes, diags);
    attach_route_policies(api, &mut routes, &throttling, &validation, diags);
    if diags.iter().filter(|d| d.is_error()).count() > errors_before {
        return None;
    }
    Some(PlanApi {
        name: slug(&api.title),
        title: api.title.clone(),
        version,
        context,
        context_template,
        default_context,
        lifecycle,
        endpoints,
        limits,
        origins,
        throttling: throttling.api,
        source: cx.source.clone(),
        routes,
    })
}

/// `/chat/{version}` + `1.0` → `/chat/1.0`; `/chat` + `1.0` → `/chat/1.0` (WSO2's rule).
pub fn substitute_version(template: &str, version: &str) -> String {
    if template.contains("{version}") {
        template.replace("{version}", version)
    } else {
        format!("{}/{version}", template.trim_end_matches('/'))
    }
}

/// The context clients use for the default version: the template without its version segment.
fn without_version(template: &str) -> String {
    if template.contains("{version}") {
        let s = template.replace("/{version}", "").replace("{version}", "");
        if s.is_empty() {
            "/".to_string()
        } else {
            s
        }
    } else {
        template.trim_end_matches('/').to_string()
    }
}

fn check_version(api: &Api, cx: &Context, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let Some(version) = &api.version else {
        diags.push(
            Diagnostic::error(
                "gateway-version-missing",
                "the API has no `info.version`; the gateway puts the version in every URL",
            )
            .with_help("add `version: 1.0.0` (or similar) under `info`")
            .at(api.info_span, "/info"),
        );
        return None;
    };
    let ok = !version.value.is_empty()
        && version
            .value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '~'));
    if !ok {
        diags.push(
            Diagnostic::error(
                "gateway-version-invalid",
                format!(
                    "the version `{}` cannot be used in a URL path",
                    version.value
                ),
            )
            .with_help("use letters, digits, `.`, `-`, `_` and `~` only, e.g. `1.0.0` or `v2`")
            .at(version.span, version.pointer.clone()),
        );
        return None;
    }
    if let Some(v) = cx.project.version.as_ref().and_then(|n| n.as_str()) {
        if v != version.value {
            diags.push(Diagnostic::warning("gateway-version-mismatch", format!("api.yaml says version `{v}`, the AsyncAPI document says `{}`; the document wins", version.value))
                .with_help("make them agree").at(cx.project.version.as_ref().map(|n| n.span).unwrap_or(version.span), "/data/version"));
        }
    }
    Some(version.value.clone())
}

fn with_leading_slash(context: &str) -> String {
    if context.starts_with('/') {
        context.to_string()
    } else {
        format!("/{context}")
    }
}

fn check_context(api: &Api, cx: &Context, diags: &mut Vec<Diagnostic>) -> Option<String> {
    let from_spec = api.gateway.as_ref().and_then(|g| g.get("context"));
    let (text, span, pointer) = match (from_spec, cx.project.context.as_ref(), cx.fallback_context)
    {
        (Some(n), _, _) => (n.as_str()?.to_string(), n.span, "/x-gateway/context"),
        // WSO2's publisher writes contexts without the leading `/` (`{version}/websocket`).
        (None, Some(n), _) => (with_leading_slash(n.as_str()?), n.span, "/data/context"),
        (None, None, Some(flag)) => (with_leading_slash(flag), api.root_span, ""),
        (None, None, None) => {
            diags.push(Diagnostic::error("gateway-context-missing", format!("the API `{}` has no context, so the gateway does not know where to serve it", api.title))
                .with_help("add `x-gateway: {context: /your-api}` at the root, or pass `--context /your-api`").at(api.root_span, ""));
            return None;
        }
    };
    let problem = if !text.starts_with('/') {
        Some("must start with `/`")
    } else if text.contains(['?', '#', ' ', '\t', '\\', '%', '*']) {
        Some("must not contain `?`, `#`, `%`, `*`, `\\` or spaces")
    } else if text.split('/').any(|s| s == ".." || s == ".") {
        Some("must not contain `.` or `..` segments")
    } else if text.contains("//") {
        Some("must not contain empty segments (`//`)")
    } else if text.replace("{version}", "").contains(['{', '}']) {
        Some("may contain `{version}` and no other parameter")
    } else if text.contains("{version}") && !text.split('/').any(|seg| seg == "{version}") {
        Some("may contain `{version}` only as a whole segment (`/chat/{version}`, not `/chat/v{version}`)")
    } else if text.len() > 1 && text.ends_with('/') {
        Some("must not end with `/`")
    } else if text == "/" {
        Some("must name at least one segment")
    } else {
        None
    };
    if let Some(problem) = problem {
        diags.push(
            Diagnostic::error(
                "gateway-context-invalid",
                format!("the context `{text}` {problem}"),
            )
            .with_help("write it like `/chat` or `/chat/{version}`")
            .at(span, pointer),
        );
        return None;
    }
    Some(text)
}

fn check_lifecycle(api: &Api, cx: &Context, diags: &mut Vec<Diagnostic>) -> Lifecycle {
    let node = api
        .gateway
        .as_ref()
        .and_then(|g| g.get("lifecycle"))
        .or(cx.project.lifecycle.as_ref());
    let Some(node) = node else {
        return Lifecycle::Published;
    };
    match node.as_str().and_then(Lifecycle::parse) {
        Some(l) => l,
        None => {
            // Inside x-gateway the extension schema has already reported it.
            if api
                .gateway
                .as_ref()
                .and_then(|g| g.get("lifecycle"))
                .is_none()
            {
                diags.push(
                    Diagnostic::error(
                        "gateway-lifecycle-invalid",
                        format!("`{}` is not a lifecycle state", node.to_json()),
                    )
                    .with_help(format!("use one of {}", Lifecycle::NAMES.join(", ")))
                    .at(node.span, "/data/lifeCycleStatus"),
                );
            }
            Lifecycle::Published
        }
    }
}

fn check_endpoints(api: &Api, cx: &Context, diags: &mut Vec<Diagnostic>) -> Option<Endpoints> {
    let explicit = |key: &str| -> Option<(String, Span, String)> {
        if let Some(n) = api
            .gateway
            .as_ref()
            .and_then(|g| g.get("endpoints"))
            .and_then(|e| e.get(key))
        {
            return n
                .as_str()
                .map(|s| (s.to_string(), n.span, format!("/x-gateway/endpoints/{key}")));
        }
        let n = if key == "production" {
            cx.project.production.as_ref()
        } else {
            cx.project.sandbox.as_ref()
        }?;
        n.as_str().map(|s| {
            (
                s.to_string(),
                n.span,
                format!("/data/endpointConfig/{key}_endpoints/url"),
            )
        })
    };
    let production = match explicit("production") {
        Some((text, span, pointer)) => endpoint_from_text(api, &text, span, &pointer, diags),
        None => default_endpoint(api, "production", diags),
    };
    let sandbox = match explicit("sandbox") {
        Some((text, span, pointer)) => endpoint_from_text(api, &text, span, &pointer, diags),
        None => api
            .servers
            .iter()
            .find(|s| s.name == "sandbox")
            .and_then(|s| check_url(&s.url, s.span, &s.pointer, diags)),
    };
    Some(Endpoints {
        production: production?,
        sandbox,
    })
}

/// Without an explicit endpoint: the server named `production` (WSO2's export), else the only
/// ws/wss server.
fn default_endpoint(api: &Api, role: &str, diags: &mut Vec<Diagnostic>) -> Option<String> {
    if let Some(s) = api.servers.iter().find(|s| s.name == role) {
        return check_url(&s.url, s.span, &s.pointer, diags);
    }
    // A server named `sandbox` is the sandbox backend, never a candidate for production.
    let ws: Vec<_> = api
        .servers
        .iter()
        .filter(|s| s.name != "sandbox")
        .filter(|s| matches!(s.protocol.to_ascii_lowercase().as_str(), "ws" | "wss"))
        .collect();
    match ws.as_slice() {
        [one] => check_url(&one.url, one.span, &one.pointer, diags),
        [] => {
            diags.push(Diagnostic::error("gateway-endpoint-missing", format!("the API `{}` has no backend endpoint", api.title))
                .with_help("add `x-gateway: {endpoints: {production: ws://backend:8080}}` (or `echo:` to try it out), or a server with `protocol: ws`").at(api.root_span, ""));
            None
        }
        many => {
            diags.push(Diagnostic::error("gateway-endpoint-ambiguous", format!("the API has {} WebSocket servers ({}) and does not say which is the backend", many.len(), many.iter().map(|s| format!("`{}`", s.name)).collect::<Vec<_>>().join(", ")))
                .with_help(format!("set `x-gateway.endpoints.production` to one of their names, e.g. `{}`", many[0].name)).at(many[1].span, many[1].pointer.clone()));
            None
        }
    }
}

fn endpoint_from_text(
    api: &Api,
    text: &str,
    span: Span,
    pointer: &str,
    diags: &mut Vec<Diagnostic>,
) -> Option<String> {
    if text.contains(':') {
        return check_url(text, span, pointer, diags);
    }
    match api.servers.iter().find(|s| s.name == text) {
        Some(server) => check_url(&server.url, server.span, &server.pointer, diags),
        None => {
            let names: Vec<&str> = api.servers.iter().map(|s| s.name.as_str()).collect();
            let help = match crate::suggest::closest(text, names.iter().copied()) {
                _ if text == "echo" || text == "mock" => format!("for the built-in backend write `'{text}:'` (with the colon, in quotes)"),
                Some(best) => format!("did you mean the server `{best}`?"),
                None => "give a `ws://` or `wss://` URL, `echo:`, `mock:`, or the name of a server in `servers`".to_string(),
            };
            diags.push(
                Diagnostic::error(
                    "gateway-endpoint-server-unknown",
                    format!("`{text}` is neither a URL nor the name of a server of this document"),
                )
                .with_help(help)
                .at(span, pointer),
            );
            None
        }
    }
}

/// Where a topic without `x-uri-mapping` goes. AsyncAPI's reading appends its address to the
/// endpoint; WSO2 sends it to the bare endpoint. A WSO2 export (an `api.yaml` beside it, or WSO2's
/// `x-uri-mapping`/`x-auth-type` in a document with a `production` server) follows WSO2 and says so
/// per topic; `x-gateway.unmappedTopics` makes the choice explicit either way.
fn unmapped_topics(api: &Api, cx: &Context, routes: &mut [Route], diags: &mut Vec<Diagnostic>) {
    let explicit = api
        .gateway
        .as_ref()
        .and_then(|g| g.get("unmappedTopics"))
        .and_then(Node::as_str);
    let wso2_markers = api.servers.iter().any(|s| s.name == "production")
        && api.channels.iter().any(|c| {
            c.auth_type.is_some()
                || c.mapping.is_some()
                || c.operations.iter().any(|o| o.mapping.is_some())
        });
    let is_wso2_export = cx.project.file.is_some() || wso2_markers;
    let to_endpoint = match explicit {
        Some("endpoint") => true,
        Some(_) => false,
        None => is_wso2_export,
    };
    if !to_endpoint {
        return;
    }
    let is_mapped = |c: &crate::model::Channel| {
        c.mapping.is_some() || c.operations.iter().any(|o| o.mapping.is_some())
    };
    let mapped: Vec<&str> = api
        .channels
        .iter()
        .filter(|c| is_mapped(c))
        .map(|c| c.id.as_str())
        .collect();
    for channel in api.channels.iter().filter(|c| !is_mapped(c)) {
        // A route that merges a mapped channel keeps that mapping.
        let Some(route) = routes.iter_mut().find(|r| {
            r.channels.iter().any(|c| c == &channel.id)
                && !r.channels.iter().any(|c| mapped.contains(&c.as_str()))
        }) else {
            continue;
        };
        route.backend_path = String::new();
        if explicit.is_none() {
            diags.push(
                Diagnostic::info(
                    "gateway-unmapped-topic",
                    format!(
                        "the topic `{}` has no `x-uri-mapping`; as in WSO2, it goes to the bare endpoint",
                        route.topic
                    ),
                )
                .with_help("add `x-uri-mapping` to send it to a path, or set `x-gateway.unmappedTopics: append` (the endpoint plus the topic's address) or `endpoint` to say so")
                .at(channel.span, channel.pointer.clone()),
            );
        }
    }
}

/// A backend URL must be ws/wss with a host, no query or fragment, no unresolved `{variable}`.
fn check_url(text: &str, span: Span, pointer: &str, diags: &mut Vec<Diagnostic>) -> Option<String> {
    if BUILTIN_ENDPOINTS.contains(&text) {
        return Some(text.to_string());
    }
    let mut bad = |code: &'static str, message: String, help: &str| {
        diags.push(
            Diagnostic::error(code, message)
                .with_help(help)
                .at(span, pointer),
        );
        None
    };
    if text.contains(['{', '}']) {
        return bad(
            "gateway-endpoint-invalid",
            format!("the endpoint `{text}` still has an unresolved `{{variable}}`"),
            "give the server variable a `default`, or write the URL out",
        );
    }
    // `localhost:9000` parses as a URL with the scheme `localhost`: say what was meant.
    if !text.contains("://") {
        let guess = format!("ws://{text}");
        if url::Url::parse(&guess).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty())) {
            return bad(
                "gateway-endpoint-scheme",
                format!("the endpoint `{text}` has no scheme"),
                &format!("did you mean `{guess}`? (`wss://` for TLS)"),
            );
        }
    }
    let url = match url::Url::parse(text) {
        Ok(u) => u,
        Err(e) => {
            return bad(
                "gateway-endpoint-invalid",
                format!("the endpoint `{text}` is not a valid URL: {e}"),
                "write it like `ws://backend:8080/path`",
            )
        }
    };
    if !matches!(url.scheme(), "ws" | "wss") {
        let hint = match url.scheme() {
            "http" => "a WebSocket backend is reached with `ws://` (or `wss://` for `https://`)",
            "https" => "a WebSocket backend over TLS is reached with `wss://`",
            _ => "use a `ws://` or `wss://` URL, or a built-in backend (`echo:`, `mock:`)",
        };
        return bad(
            "gateway-endpoint-scheme",
            format!(
                "the endpoint `{text}` has scheme `{}`; Portico relays WebSockets only",
                url.scheme()
            ),
            hint,
        );
    }
    if url.host_str().is_none_or(str::is_empty) {
        return bad(
            "gateway-endpoint-invalid",
            format!("the endpoint `{text}` has no host"),
            "write it like `ws://backend:8080`",
        );
    }
    if url.query().is_some() || url.fragment().is_some() {
        return bad(
            "gateway-endpoint-invalid",
            format!("the endpoint `{text}` has a query or fragment"),
            "put query parameters in the topic's `x-uri-mapping` instead",
        );
    }
    if !url.username().is_empty() || url.password().is_some() {
        return bad(
            "gateway-endpoint-invalid",
            "the endpoint URL carries credentials".to_string(),
            "never put secrets in a spec; configure backend credentials in the runtime",
        );
    }
    Some(url.as_str().trim_end_matches('/').to_string())
}

/// The one mapping of a channel: its own `x-uri-mapping` and its operations' must agree.
fn channel_mapping(
    channel: &crate::model::Channel,
    diags: &mut Vec<Diagnostic>,
) -> Option<Located<String>> {
    let mut all: Vec<&Located<String>> = channel.mapping.iter().collect();
    all.extend(channel.operations.iter().filter_map(|o| o.mapping.as_ref()));
    let first = all.first().copied()?;
    for other in &all[1..] {
        if other.value != first.value {
            diags.push(Diagnostic::error("gateway-mapping-conflict", format!("the channel `{}` maps to `{}` here and to `{}` elsewhere; a connection has one backend URL", channel.id, other.value, first.value))
                .with_help("use the same `x-uri-mapping` on the channel's publish and subscribe operations").at(other.span, other.pointer.clone()));
        }
    }
    Some(first.clone())
}

fn build_routes(api: &Api, context: &str, diags: &mut Vec<Diagnostic>) -> Vec<Route> {
    let declared_scopes: Vec<&str> = api
        .security_schemes
        .iter()
        .flat_map(|s| s.scopes.iter().map(String::as_str))
        .collect();
    let mut routes: Vec<Route> = Vec::new();
    for channel in &api.channels {
        let Some(address) = &channel.address else {
            diags.push(Diagnostic::error("gateway-channel-address", format!("the channel `{}` has no address, so clients cannot reach it through the gateway", channel.id))
                .with_help("give the channel an `address` such as `/rooms/{roomId}`").at(channel.span, channel.pointer.clone()));
            continue;
        };
        if !check_address(address, channel, diags) {
            continue;
        }
        let params = template_parameters(address);
        let mapping = channel_mapping(channel, diags);
        let backend_path = match &mapping {
            Some(m) => {
                if !m.value.starts_with('/') {
                    diags.push(
                        Diagnostic::error(
                            "gateway-mapping-invalid",
                            format!("the mapping `{}` must start with `/`", m.value),
                        )
                        .with_help(format!("write `/{}`", m.value))
                        .at(m.span, m.pointer.clone()),
                    );
                }
                for p in template_parameters(&m.value) {
                    // `{*}` forwards a wildcard channel's remainder (`/*`).
                    if p == "*" && address.ends_with("/*") {
                        continue;
                    }
                    if !params.contains(&p) {
                        let help =
                            match crate::suggest::closest(&p, params.iter().map(String::as_str)) {
                                Some(best) => format!("did you mean `{{{best}}}`?"),
                                None if params.is_empty() => {
                                    "the channel address declares no parameters".to_string()
                                }
                                None => format!(
                                    "the address declares: {}",
                                    params
                                        .iter()
                                        .map(|p| format!("`{{{p}}}`"))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                ),
                            };
                        diags.push(Diagnostic::error("gateway-mapping-parameter", format!("the mapping `{}` uses `{p}`, which the channel address `{address}` does not declare", m.value))
                            .with_help(help).at(m.span, m.pointer.clone()));
                    }
                }
                normalize_template(&m.value)
            }
            // AsyncAPI's meaning: the backend serves the channel at the same address.
            None if address == "/" => String::new(),
            None if address.ends_with("/*") => format!("{}{{*}}", address.trim_end_matches('*')),
            None => address.clone(),
        };
        let auth = match &channel.auth_type {
            None => RouteAuth::Required,
            Some(a) => match a.value.to_ascii_lowercase().as_str() {
                "any" => RouteAuth::Required,
                "none" => RouteAuth::None,
                _ => {
                    diags.push(
                        Diagnostic::error(
                            "gateway-auth-type-invalid",
                            format!("`x-auth-type: {}` is not `Any` or `None`", a.value),
                        )
                        .with_help("`Any` requires a credential, `None` leaves the topic open")
                        .at(a.span, a.pointer.clone()),
                    );
                    RouteAuth::Required
                }
            },
        };
        let mut scopes: Vec<String> = Vec::new();
        let mut messages = RouteMessages::default();
        let security = route_security(api, channel, &declared_scopes);
        for op in &channel.operations {
            for s in &op.scopes {
                if !declared_scopes.contains(&s.value.as_str()) {
                    let help = match crate::suggest::closest(&s.value, declared_scopes.iter().copied()) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => "declare it under an OAuth2 flow's `scopes` in `components.securitySchemes`".to_string(),
                    };
                    diags.push(
                        Diagnostic::error(
                            "gateway-scope-undeclared",
                            format!(
                                "the scope `{}` is not declared by any security scheme",
                                s.value
                            ),
                        )
                        .with_help(help)
                        .at(s.span, s.pointer.clone()),
                    );
                } else if !scopes.contains(&s.value) {
                    scopes.push(s.value.clone());
                }
            }
            let list = match op.direction {
                Direction::ClientToServer => &mut messages.client_to_server,
                Direction::ServerToClient => &mut messages.server_to_client,
            };
            for m in &op.messages {
                if !list.iter().any(|x: &PlanMessage| x.name == m.name) {
                    list.push(PlanMessage::new(
                        m.name.clone(),
                        m.payload.clone().map(self_contained),
                        m.examples.clone(),
                    ));
                }
            }
        }
        let topic = address.clone();
        let pattern = if topic == "/" {
            context.to_string()
        } else {
            format!("{context}{topic}")
        };
        let route = Route {
            kind: route_kind(&pattern),
            pattern,
            topic,
            backend_path,
            parameters: channel
                .parameters
                .iter()
                .filter(|p| params.contains(&p.name))
                .map(|p| RouteParameter {
                    name: p.name.clone(),
                    schema: p.schema.clone(),
                })
                .chain(
                    params
                        .iter()
                        .filter(|n| !channel.parameters.iter().any(|p| &&p.name == n))
                        .map(|n| RouteParameter {
                            name: n.clone(),
                            schema: None,
                        }),
                )
                .collect(),
            channels: vec![channel.id.clone()],
            messages,
            scopes,
            auth,
            handshake: None,
            throttling: None,
            validation: None,
            security: if auth == RouteAuth::Required {
                security
            } else {
                RouteSecurity::default()
            },
        };
        merge_route(&mut routes, route, channel, diags);
    }
    routes.sort_by(route_order);
    routes
}

/// Channels sharing one address (AsyncAPI 3's Kraken example) are one route with the union of
/// their messages; if they disagree about the backend, that is a conflict.
fn merge_route(
    routes: &mut Vec<Route>,
    route: Route,
    channel: &crate::model::Channel,
    diags: &mut Vec<Diagnostic>,
) {
    let shape = route_shape(&route.pattern);
    let Some(existing) = routes.iter_mut().find(|r| route_shape(&r.pattern) == shape) else {
        routes.push(route);
        return;
    };
    if existing.backend_path != route.backend_path || existing.pattern != route.pattern {
        diags.push(Diagnostic::error("gateway-route-conflict", format!(
            "the channel `{}` claims the public route `{}`, which the channel `{}` already claims with a different backend (`{}` vs `{}`)",
            channel.id, route.pattern, existing.channels[0], route.backend_path, existing.backend_path))
            .with_help("give the channels different addresses, or the same mapping and parameter names").at(channel.span, channel.pointer.clone()));
        return;
    }
    existing.channels.extend(route.channels);
    for (into, from) in [
        (
            &mut existing.messages.client_to_server,
            route.messages.client_to_server,
        ),
        (
            &mut existing.messages.server_to_client,
            route.messages.server_to_client,
        ),
    ] {
        for m in from {
            if !into.iter().any(|x| x.name == m.name) {
                into.push(m);
            }
        }
    }
    for s in route.scopes {
        if !existing.scopes.contains(&s) {
            existing.scopes.push(s);
        }
    }
    if route.auth == RouteAuth::Required {
        existing.auth = RouteAuth::Required;
    }
    for scheme in route.security.schemes {
        if !existing.security.schemes.contains(&scheme) {
            existing.security.schemes.push(scheme);
        }
    }
    existing.security.schemes.sort();
    existing
        .security
        .operations
        .extend(route.security.operations);
}

/// What a route requires of a credential: the schemes its operations' `security` names, else
/// those of the servers' `security`, else none in particular (any verifier the gateway has: WSO2
/// exports declare schemes without requiring them); and each operation's direction and scopes.
fn route_security(
    api: &Api,
    channel: &crate::model::Channel,
    declared_scopes: &[&str],
) -> RouteSecurity {
    let mut names: Vec<&str> = channel
        .operations
        .iter()
        .flat_map(|o| o.security.iter().map(String::as_str))
        .collect();
    if names.is_empty() {
        names = api
            .servers
            .iter()
            .flat_map(|s| s.security.iter().map(String::as_str))
            .collect();
    }
    let mut schemes: Vec<SecurityRequirement> = Vec::new();
    for name in names {
        // An undeclared name is reported by the AsyncAPI rules; it cannot be verified.
        let kind = match api.security_schemes.iter().find(|s| s.name == name) {
            Some(scheme) => scheme_kind(scheme),
            None => SchemeKind::Unsupported {
                declared: "undeclared".to_string(),
            },
        };
        let requirement = SecurityRequirement {
            name: name.to_string(),
            kind,
        };
        if !schemes.contains(&requirement) {
            schemes.push(requirement);
        }
    }
    schemes.sort();
    let operations = channel
        .operations
        .iter()
        .map(|op| OperationScopes {
            direction: match op.direction {
                Direction::ClientToServer => MessageDirection::ClientToServer,
                Direction::ServerToClient => MessageDirection::ServerToClient,
            },
            scopes: op
                .scopes
                .iter()
                .map(|s| s.value.clone())
                .filter(|s| declared_scopes.contains(&s.as_str()))
                .collect(),
        })
        .collect();
    RouteSecurity {
        schemes,
        operations,
    }
}

fn scheme_kind(scheme: &crate::model::SecurityScheme) -> SchemeKind {
    match scheme.kind.as_str() {
        "http"
            if scheme
                .http_scheme
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("bearer")) =>
        {
            SchemeKind::Bearer
        }
        "oauth2" => SchemeKind::Oauth2,
        "openIdConnect" => SchemeKind::OpenIdConnect,
        "httpApiKey" | "apiKey" => SchemeKind::ApiKey {
            location: scheme
                .location
                .clone()
                .unwrap_or_else(|| "header".to_string()),
            name: scheme.param_name.clone(),
        },
        "http" => SchemeKind::Unsupported {
            declared: format!(
                "http {}",
                scheme.http_scheme.as_deref().unwrap_or("(no scheme)")
            ),
        },
        other => SchemeKind::Unsupported {
            declared: other.to_string(),
        },
    }
}

/// Addresses the gateway can match: parameters are whole segments; `*` only as the last segment.
fn check_address(
    address: &str,
    channel: &crate::model::Channel,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let segments: Vec<&str> = address.split('/').skip(1).collect();
    for (i, seg) in segments.iter().enumerate() {
        let whole_param =
            seg.starts_with('{') && seg.ends_with('}') && seg.matches('{').count() == 1;
        let problem = if seg.contains(['{', '}']) && !whole_param {
            Some("a parameter must be a whole path segment (`/rooms/{id}`, not `/rooms/id-{id}`)")
        } else if seg.contains('*') && (*seg != "*" || i + 1 != segments.len()) {
            Some("`*` is only allowed as the whole last segment (`/prefix/*`)")
        } else if *seg == ".." || *seg == "." {
            Some("`.` and `..` segments are not allowed")
        } else {
            None
        };
        if let Some(problem) = problem {
            diags.push(
                Diagnostic::error(
                    "gateway-address-invalid",
                    format!("the gateway cannot route the address `{address}`: {problem}"),
                )
                .with_help("restructure the address so that each parameter is one segment")
                .at(channel.span, channel.pointer.clone()),
            );
            return false;
        }
    }
    true
}

// ---------------------------------------------------------------------------------------------
// Traffic policies: origins, throttling, validation, the ws binding's handshake contract.

/// `x-gateway.origins`: each entry is `scheme://host[:port]`, the host may start with `*.`; or `*`.
fn check_origins(gateway: Option<&Node>, diags: &mut Vec<Diagnostic>) -> Vec<String> {
    let Some(list) = gateway
        .and_then(|g| g.get("origins"))
        .and_then(Node::as_seq)
    else {
        return Vec::new();
    };
    let mut origins = Vec::new();
    for (i, node) in list.iter().enumerate() {
        let Some(text) = node.as_str() else { continue };
        match origin_problem(text) {
            None => origins.push(text.to_ascii_lowercase()),
            Some(problem) => diags.push(
                Diagnostic::error(
                    "gateway-origin-invalid",
                    format!("the origin `{text}` {problem}"),
                )
                .with_help("write an origin as a browser sends it: `https://app.example.com`, `https://*.example.com` or `http://localhost:3000`; `*` allows any")
                .at(node.span, format!("/x-gateway/origins/{i}")),
            ),
        }
    }
    origins
}

fn origin_problem(text: &str) -> Option<&'static str> {
    if text == "*" {
        return None;
    }
    let Some((scheme, rest)) = text.split_once("://") else {
        return Some("has no scheme (`https://`)");
    };
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return Some("has an invalid scheme");
    }
    if rest.contains(['/', '?', '#', '@']) {
        return Some("has a path, query or user part; an origin is only scheme, host and port");
    }
    let (host, port) = match rest.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || rest.starts_with('[') => (h, Some(p)),
        _ => (rest, None),
    };
    if let Some(port) = port {
        if port.parse::<u16>().is_err() {
            return Some("has an invalid port");
        }
    }
    let bare = host.strip_prefix("*.").unwrap_or(host);
    if bare.is_empty() || bare.contains('*') {
        return Some(
            "may use `*` only as the whole first label of the host (`https://*.example.com`)",
        );
    }
    if !bare
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c))
    {
        return Some("has an invalid host");
    }
    None
}

/// `x-gateway.throttling` read into the API's part and the per-operation buckets (by operation id).
struct Throttling {
    api: Option<ApiThrottling>,
    operations: Vec<(Located<String>, Bucket)>,
}

fn check_throttling(api: &Api, gateway: Option<&Node>, diags: &mut Vec<Diagnostic>) -> Throttling {
    let mut out = Throttling {
        api: None,
        operations: Vec::new(),
    };
    let Some(node) = gateway.and_then(|g| g.get("throttling")) else {
        return out;
    };
    let pointer = "/x-gateway/throttling";
    let whole = |key: &str| node.get(key).and_then(|n| n.to_json().as_u64());
    let mut throttling = ApiThrottling {
        api: node
            .get("api")
            .map(|b| bucket(b, &format!("{pointer}/api"), diags)),
        client: node
            .get("client")
            .map(|b| bucket(b, &format!("{pointer}/client"), diags)),
        max_connections_per_client: whole("maxConnectionsPerClient"),
        handshakes_per_second_per_client: whole("handshakesPerSecondPerClient"),
        on_throttle: OnThrottle::Drop,
    };
    if node.get("onThrottle").and_then(Node::as_str) == Some("close") {
        throttling.on_throttle = OnThrottle::Close;
    }
    if let Some(ops) = node.get("operations") {
        for (key, b) in ops.entries() {
            let op_pointer = child_pointer(&format!("{pointer}/operations"), &key.name);
            if known_operation(api, &key.name, key.span, &op_pointer, diags) {
                let located = Located {
                    value: key.name.clone(),
                    span: key.span,
                    pointer: op_pointer.clone(),
                };
                out.operations
                    .push((located, bucket(b, &op_pointer, diags)));
            }
        }
    }
    out.api = Some(throttling);
    out
}

fn child_pointer(parent: &str, key: &str) -> String {
    format!("{parent}/{}", key.replace('~', "~0").replace('/', "~1"))
}

fn bucket(node: &Node, pointer: &str, diags: &mut Vec<Diagnostic>) -> Bucket {
    if let Some(tier) = node.as_str() {
        return Bucket {
            tier: Some(tier.to_string()),
            ..Bucket::default()
        };
    }
    let mut rate = |key: &str| {
        let n = node.get(key)?;
        let text = n.as_str()?;
        match Rate::parse(text) {
            Some(r) => Some(r),
            None => {
                diags.push(
                    Diagnostic::error(
                        "gateway-throttling-rate-invalid",
                        format!("`{text}` is not a rate"),
                    )
                    .with_help("write a positive count per unit: `1000/min`, `50/s`, `10K/hour`, `1M/day` (units: s, min, hour, day)")
                    .at(n.span, format!("{pointer}/{key}")),
                );
                None
            }
        }
    };
    let messages = rate("messages");
    let bytes = rate("bytes");
    Bucket {
        tier: node.get("tier").and_then(Node::as_str).map(String::from),
        messages,
        bytes,
        burst: node.get("burst").and_then(|n| n.to_json().as_u64()),
    }
}

/// Whether an operation id named in `x-gateway` exists; reports it with a suggestion otherwise.
fn known_operation(
    api: &Api,
    name: &str,
    span: Span,
    pointer: &str,
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let ids: Vec<&str> = api
        .channels
        .iter()
        .flat_map(|c| c.operations.iter())
        .filter_map(|o| o.id.as_deref())
        .collect();
    if ids.contains(&name) {
        return true;
    }
    let help = match crate::suggest::closest(name, ids.iter().copied()) {
        Some(best) => format!("did you mean `{best}`?"),
        None if ids.is_empty() => "no operation of this document has an id: give it an `operationId` (2.x) or use its key under `operations` (3.x)".to_string(),
        None => format!("the operations are: {}", ids.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")),
    };
    diags.push(
        Diagnostic::error(
            "gateway-operation-unknown",
            format!("`{name}` is not the id of an operation of this document"),
        )
        .with_help(help)
        .at(span, pointer),
    );
    false
}

/// `x-gateway.validation`: a policy name, or `{policy, strict, operations: {id: policy}}`.
struct Validation {
    policy: ValidationPolicy,
    strict: bool,
    operations: Vec<(String, ValidationPolicy)>,
}

fn check_validation(
    api: &Api,
    gateway: Option<&Node>,
    diags: &mut Vec<Diagnostic>,
) -> Option<Validation> {
    let node = gateway.and_then(|g| g.get("validation"))?;
    // The extension schema has checked the names; anything else was reported there.
    if let Some(name) = node.as_str() {
        return Some(Validation {
            policy: ValidationPolicy::parse(name)?,
            strict: false,
            operations: Vec::new(),
        });
    }
    let mut validation = Validation {
        policy: node
            .get("policy")
            .and_then(Node::as_str)
            .and_then(ValidationPolicy::parse)
            .unwrap_or(ValidationPolicy::Enforce),
        strict: node.get("strict").and_then(Node::as_bool).unwrap_or(false),
        operations: Vec::new(),
    };
    if let Some(ops) = node.get("operations") {
        for (key, p) in ops.entries() {
            let pointer = child_pointer("/x-gateway/validation/operations", &key.name);
            let policy = p.as_str().and_then(ValidationPolicy::parse);
            if known_operation(api, &key.name, key.span, &pointer, diags) {
                if let Some(policy) = policy {
                    validation.operations.push((key.name.clone(), policy));
                }
            }
        }
    }
    Some(validation)
}

/// Puts the per-operation throttling, the validation policy and the handshake contract on each
/// route, from the operations of the route's channels.
fn attach_route_policies(
    api: &Api,
    routes: &mut [Route],
    throttling: &Throttling,
    validation: &Option<Validation>,
    diags: &mut Vec<Diagnostic>,
) {
    for route in routes.iter_mut() {
        let channels: Vec<&crate::model::Channel> = api
            .channels
            .iter()
            .filter(|c| route.channels.contains(&c.id))
            .collect();
        let operations = || channels.iter().flat_map(|c| c.operations.iter());

        let mut route_throttling = RouteThrottling::default();
        for op in operations() {
            let Some(id) = &op.id else { continue };
            if let Some((_, b)) = throttling.operations.iter().find(|(k, _)| &k.value == id) {
                let list = match op.direction {
                    Direction::ClientToServer => &mut route_throttling.client_to_server,
                    Direction::ServerToClient => &mut route_throttling.server_to_client,
                };
                list.push(OperationBucket {
                    operation: id.clone(),
                    bucket: b.clone(),
                });
            }
        }
        if route_throttling != RouteThrottling::default() {
            route.throttling = Some(route_throttling);
        }

        if let Some(v) = validation {
            // Several operations in one direction: the strictest policy among them applies.
            let policy_of = |direction: Direction| {
                operations()
                    .filter(|o| o.direction == direction)
                    .map(|o| {
                        o.id.as_ref()
                            .and_then(|id| v.operations.iter().find(|(k, _)| k == id))
                            .map_or(v.policy, |(_, p)| *p)
                    })
                    .max()
                    .unwrap_or(v.policy)
            };
            route.validation = Some(RouteValidation {
                client_to_server: policy_of(Direction::ClientToServer),
                server_to_client: policy_of(Direction::ServerToClient),
                strict: v.strict,
            });
        }

        for channel in &channels {
            let Some(binding) = &channel.ws_binding else {
                continue;
            };
            let mut contract = HandshakeContract {
                query: None,
                headers: None,
            };
            for (key, slot) in [
                ("query", &mut contract.query),
                ("headers", &mut contract.headers),
            ] {
                let Some(schema) = binding.get(key) else {
                    continue;
                };
                let pointer = format!("{}/bindings/ws/{key}", channel.pointer);
                let problem = if schema.get("type").and_then(Value::as_str) != Some("object") {
                    Some("must be a schema of `type: object` (one property per name)".to_string())
                } else {
                    jsonschema::options()
                        .with_draft(jsonschema::Draft::Draft7)
                        .build(schema)
                        .err()
                        .map(|e| format!("is not a valid JSON Schema: {e}"))
                };
                match problem {
                    Some(problem) => diags.push(
                        Diagnostic::error(
                            "gateway-binding-schema-invalid",
                            format!("the ws binding's `{key}` of the channel `{}` {problem}", channel.id),
                        )
                        .with_help(format!("write it like `{key}: {{type: object, properties: {{name: {{type: string}}}}, required: [name]}}`"))
                        .at(channel.span, pointer),
                    ),
                    None => *slot = Some(self_contained(schema.clone())),
                }
            }
            if contract.query.is_some() || contract.headers.is_some() {
                route.handshake = Some(contract);
            }
        }
    }
}

/// The plan must be readable without the specs: a `$ref` left by a recursive schema (which cannot
/// be expanded) becomes an open schema that says what it stood for.
fn self_contained(mut schema: Value) -> Value {
    let mut stack = vec![&mut schema];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let note = format!("recursive reference to {r}, not expanded");
                    map.clear();
                    map.insert("description".into(), Value::String(note));
                    continue;
                }
                stack.extend(map.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
    schema
}

/// `{uri.var.name}` (WSO2) → `{name}`.
fn normalize_template(template: &str) -> String {
    template.replace("{uri.var.", "{")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_with_and_without_version() {
        assert_eq!(substitute_version("/chat/{version}", "1.0"), "/chat/1.0");
        assert_eq!(substitute_version("/{version}/chat", "1.0"), "/1.0/chat");
        assert_eq!(substitute_version("/chat", "1.0"), "/chat/1.0");
        assert_eq!(without_version("/chat/{version}"), "/chat");
        assert_eq!(without_version("/{version}/chat"), "/chat");
        assert_eq!(without_version("/chat"), "/chat");
    }
}
