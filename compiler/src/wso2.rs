//! WSO2 API Manager project import: the `api.yaml` that `apictl` writes next to
//! `Definitions/asyncapi.yaml`.
//!
//! WSO2 keeps an API's context, version, lifecycle and endpoints outside the AsyncAPI document, in
//! the project's `api.yaml`:
//!
//! ```yaml
//! type: api
//! version: v4.2.0
//! data:
//!   name: ChatAPI
//!   context: /chat
//!   version: 1.0.0
//!   type: WS
//!   lifeCycleStatus: PUBLISHED
//!   isDefaultVersion: true
//!   endpointConfig:
//!     endpoint_type: ws
//!     production_endpoints: { url: "ws://chat-backend:8080" }
//!     sandbox_endpoints: { url: "ws://chat-sandbox:8080" }
//! ```
//!
//! When a spec lives at `<project>/Definitions/asyncapi.yaml` and `<project>/api.yaml` exists, its
//! values are used wherever the spec's own `x-gateway` is silent.

use std::path::Path;

use crate::diagnostics::Diagnostic;
use crate::files::Files;
use crate::model::{Api, Direction};
use crate::source::escape_pointer_token;
use crate::source::{FileId, Node, NodeValue, Span};

/// What an apictl project says about an API, each value with its position in `api.yaml`.
#[derive(Clone, Debug, Default)]
pub struct ApiProject {
    pub file: Option<FileId>,
    pub context: Option<Node>,
    pub version: Option<Node>,
    pub lifecycle: Option<Node>,
    pub default_version: Option<Node>,
    pub production: Option<Node>,
    pub sandbox: Option<Node>,
    pub description: Option<Node>,
    pub name: Option<Node>,
}

/// Reads `<project>/api.yaml` for a spec at `<project>/Definitions/<spec>`, if there is one.
pub fn project_for(files: &mut Files, spec: &Path, diags: &mut Vec<Diagnostic>) -> ApiProject {
    let Some(definitions) = spec.parent() else {
        return ApiProject::default();
    };
    if definitions.file_name().and_then(|n| n.to_str()) != Some("Definitions") {
        return ApiProject::default();
    }
    let Some(project) = definitions.parent() else {
        return ApiProject::default();
    };
    let candidates = [project.join("api.yaml"), project.join("api.yml")];
    let Some(id) = files.load_first_present(&candidates, diags) else {
        return ApiProject::default();
    };
    let Some(root) = files.tree(id) else {
        return ApiProject::default();
    };
    let data = root.get("data").unwrap_or(root);
    // A load-balanced list serves its first URL (the import report says so at the list).
    let endpoint = |key: &str| {
        let endpoints = data.get("endpointConfig").and_then(|c| c.get(key))?;
        let single = match endpoints.as_seq() {
            Some(list) => list.first()?,
            None => endpoints,
        };
        single.get("url").cloned()
    };
    ApiProject {
        file: Some(id),
        context: data.get("context").cloned(),
        version: data.get("version").cloned(),
        lifecycle: data.get("lifeCycleStatus").cloned(),
        default_version: data.get("isDefaultVersion").cloned(),
        production: endpoint("production_endpoints"),
        sandbox: endpoint("sandbox_endpoints"),
        description: data.get("description").cloned(),
        name: data.get("name").cloned(),
    }
}

/// What `api.yaml` gives the API its document describes, and the import report for the rest.
///
/// `description` fills a missing `info.description` (so the note that the API has none no longer
/// applies), `name` a blank `info.title`; a `name` that differs from the title and `tags` (Portico
/// has no API tags) get an info note at their line, so neither is dropped silently.
pub fn import(files: &Files, project: &ApiProject, api: &mut Api, diags: &mut Vec<Diagnostic>) {
    let Some(file) = project.file else {
        return;
    };
    let text = |node: &Option<Node>| {
        node.as_ref()
            .and_then(Node::as_str)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    };
    if api
        .description
        .as_deref()
        .is_none_or(|d| d.trim().is_empty())
    {
        if let Some(description) = text(&project.description) {
            api.description = Some(description);
            diags.retain(|d| {
                d.code != "info-description" || d.span.is_some_and(|s| s.file != api.file)
            });
        }
    }
    let Some(root) = files.tree(file) else {
        return;
    };
    let (data, base) = match root.get("data") {
        Some(d) => (d, "/data"),
        None => (root, ""),
    };
    if let Some(name) = text(&project.name) {
        if api.title.trim().is_empty() {
            api.title = name;
        } else if name != api.title {
            if let Some((key, _)) = data.entry("name") {
                diags.push(
                    Diagnostic::info(
                        "gateway-import-unused",
                        format!(
                            "`name` in api.yaml is `{name}` but `info.title` is `{}`: the API is named after `info.title`",
                            api.title
                        ),
                    )
                    .with_help("make them agree; the name shows in the plan and the docs only")
                    .at(key.span, format!("{base}/name")),
                );
            }
        }
    }
    if let Some((key, tags)) = data.entry("tags") {
        if !is_unset("tags", tags) {
            diags.push(
                Diagnostic::info(
                    "gateway-import-unused",
                    "`tags` in api.yaml are not used: Portico's plan and docs have no API tags",
                )
                .with_help("nothing to do; they grouped the API in WSO2's Developer Portal")
                .at(key.span, format!("{base}/tags")),
            );
        }
    }
    import_report(files, project, api, diags);
}

/// `api.yaml` settings Portico reads (`scopes` and `operations` are compared with the document).
const READ: &[&str] = &[
    "name",
    "context",
    "version",
    "description",
    "lifeCycleStatus",
    "isDefaultVersion",
    "tags",
    "endpointConfig",
];

/// Bookkeeping of the WSO2 installation the export came from: nothing to serve.
const NOT_APPLICABLE: &[&str] = &[
    "id",
    "uuid",
    "provider",
    "type",
    "transport",
    "createdTime",
    "lastUpdatedTime",
    "lastUpdatedTimestamp",
    "gatewayVendor",
    "gatewayType",
    "revisionId",
    "revisionedApiId",
    "isRevision",
    "organizationId",
    "enableStore",
    "initiatedFromGateway",
    "workflowStatus",
    "endpointImplementationType",
    "asyncTransportProtocols",
];

/// Settings that are a group with an on/off switch: switched off, the rest of the group is inert.
const SWITCHED: &[(&str, &str)] = &[
    ("corsConfiguration", "corsConfigurationEnabled"),
    ("monetization", "enabled"),
    ("websubSubscriptionConfiguration", "enable"),
    ("advertiseInfo", "advertised"),
];

/// Values that mean "nothing set" in an export: WSO2 writes every field, mostly with these (empty,
/// `false`, `null`, WSO2's default, a switched-off group, a group of such values).
fn is_unset(key: &str, value: &Node) -> bool {
    if value
        .as_seq()
        .is_some_and(|items| items.iter().all(|v| is_unset("", v)))
        || value.as_bool() == Some(false)
        || value.as_str().is_some_and(|s| s.trim().is_empty())
        || matches!(value.value, NodeValue::Null)
    {
        return true;
    }
    if let Some(&(_, switch)) = SWITCHED.iter().find(|(k, _)| *k == key) {
        if value
            .get(switch)
            .is_some_and(|on| on.as_bool() == Some(false))
        {
            return true;
        }
    }
    if value.as_map().is_some() && value.entries().all(|(k, v)| is_unset(&k.name, v)) {
        return true;
    }
    match key {
        "visibility" => value.as_str() == Some("PUBLIC"),
        "accessControl" => value.as_str() == Some("NONE"),
        "authorizationHeader" => value.as_str() == Some("Authorization"),
        "apiKeyHeader" => value.as_str() == Some("ApiKey"),
        "subscriptionAvailability" => value.as_str() == Some("CURRENT_TENANT"),
        // Every key manager of the installation: the default.
        "keyManagers" => value
            .as_seq()
            .is_some_and(|m| m.len() == 1 && m[0].as_str() == Some("all")),
        // Unlimited tiers limit nothing.
        "policies" => value.as_seq().is_some_and(|tiers| {
            tiers
                .iter()
                .all(|t| t.as_str().is_some_and(|t| t.ends_with("Unlimited")))
        }),
        // Per environment (`production`, `sandbox`), each with its own switch.
        "endpoint_security" => value.entries().all(|(_, environment)| {
            is_unset("", environment)
                || environment
                    .get("enabled")
                    .is_some_and(|on| on.as_bool() == Some(false))
        }),
        // An ordinary API (not an AI API or another subtype).
        "subtypeConfiguration" => value.entries().all(|(k, v)| {
            (k.name == "subtype" && v.as_str() == Some("DEFAULT")) || is_unset(&k.name, v)
        }),
        "apiThrottlingPolicy" | "throttlingPolicy" => {
            value.as_str().is_some_and(|t| t.ends_with("Unlimited"))
        }
        _ => false,
    }
}

/// The import report: one warning per `api.yaml` setting Portico does not use, at its line, so
/// nothing of an export is dropped silently (load-balanced or failover endpoints, endpoint
/// security, policies and tiers, visibility, business information, additional properties, CORS,
/// ...). Bookkeeping fields, values that mean "unset", and `scopes` and `operations` that say what
/// the AsyncAPI document says stay quiet.
fn import_report(files: &Files, project: &ApiProject, api: &Api, diags: &mut Vec<Diagnostic>) {
    let Some(root) = project.file.and_then(|f| files.tree(f)) else {
        return;
    };
    let (data, base) = match root.get("data") {
        Some(d) => (d, "/data"),
        None => (root, ""),
    };
    let mut ignored = |name: &str, span: Span, pointer: String, why: &str| {
        diags.push(
            Diagnostic::warning(
                "gateway-import-ignored",
                format!("`{name}` in api.yaml is not used by Portico: {why}"),
            )
            .with_help("configure the equivalent in `x-gateway` or the runtime if you need it (see docs/spec-extensions.md), or remove it from the export")
            .at(span, pointer),
        );
    };
    for (key, value) in data.entries() {
        let pointer = format!("{base}/{}", escape_pointer_token(&key.name));
        if NOT_APPLICABLE.contains(&key.name.as_str()) || is_unset(&key.name, value) {
            continue;
        }
        match key.name.as_str() {
            "endpointConfig" => {
                for (k, v) in value.entries() {
                    let p = format!("{pointer}/{}", escape_pointer_token(&k.name));
                    let why = match k.name.as_str() {
                        "endpoint_type" => match v.as_str() {
                            Some("ws" | "wss") | None => continue,
                            Some(_) => "load-balanced and failover endpoints are not supported; the first production and sandbox URLs are used",
                        },
                        "production_endpoints" | "sandbox_endpoints" => {
                            if v.as_seq().is_some_and(|l| l.len() > 1) {
                                "a list of endpoints (load balancing) is not supported; the first URL is used"
                            } else {
                                continue;
                            }
                        }
                        _ if is_unset(&k.name, v) => continue,
                        "endpoint_security" => "backend credentials belong in the runtime's configuration",
                        _ => "an endpoint setting Portico does not have",
                    };
                    ignored(&k.name, k.span, p, why);
                }
                continue;
            }
            "scopes" => {
                for (i, scope) in value.as_seq().unwrap_or(&[]).iter().enumerate() {
                    if let Some(why) = scope_difference(api, scope) {
                        ignored("scopes", scope.span, format!("{pointer}/{i}"), &why);
                    }
                }
                continue;
            }
            "operations" => {
                for (i, operation) in value.as_seq().unwrap_or(&[]).iter().enumerate() {
                    if let Some(why) = operation_difference(api, operation) {
                        ignored("operations", operation.span, format!("{pointer}/{i}"), &why);
                    }
                }
                continue;
            }
            // The same properties as `additionalProperties`, keyed for lookup: reported there.
            "additionalPropertiesMap"
                if data
                    .get("additionalProperties")
                    .is_some_and(|p| !is_unset("additionalProperties", p)) =>
            {
                continue
            }
            // The cache's time-out, written even when the cache is off.
            "cacheTimeout"
                if data
                    .get("responseCachingEnabled")
                    .is_none_or(|on| on.as_bool() != Some(true)) =>
            {
                continue
            }
            name if READ.contains(&name) => continue,
            _ => {}
        }
        let why = match key.name.as_str() {
            "policies" | "apiThrottlingPolicy" => "subscription tiers and policies are not enforced; set `x-gateway.throttling`",
            "visibility" | "visibleRoles" | "visibleTenants" | "accessControl" | "accessControlRoles" => "visibility and access control of the developer portal",
            "businessInformation" => "business information is not shown",
            "additionalProperties" | "additionalPropertiesMap" => "additional properties are not shown",
            "corsConfiguration" => "CORS does not apply to WebSocket handshakes; set `x-gateway.origins` to restrict origins",
            "securityScheme" => "which credentials are accepted is the runtime's configuration; which topics need one is `x-auth-type`",
            "authorizationHeader" | "apiKeyHeader" | "keyManagers" => "credentials are configured in the runtime",
            "subscriptionAvailability" | "subscriptionAvailableTenants" => "Portico has no subscriptions",
            _ => "a WSO2 setting Portico does not have",
        };
        ignored(&key.name, key.span, pointer, why);
    }
}

/// Why an `api.yaml` scope (`{scope: {name, bindings}, shared}`) says more than the document, if it
/// does: a scope no security scheme declares, or role bindings other than `x-scopes-bindings`.
fn scope_difference(api: &Api, entry: &Node) -> Option<String> {
    let scope = entry.get("scope").unwrap_or(entry);
    let Some(name) = scope.get("name").and_then(Node::as_str) else {
        return Some("a scope without a `name`".to_string());
    };
    let Some(scheme) = api
        .security_schemes
        .iter()
        .find(|s| s.scopes.iter().any(|s| s == name))
    else {
        return Some(format!(
            "scope `{name}` is not declared by the AsyncAPI document's security schemes, which is where Portico reads scopes"
        ));
    };
    let roles = strings_at(scope, "bindings");
    let declared: Vec<&str> = scheme
        .scope_bindings
        .iter()
        .filter(|(s, _)| s == name)
        .flat_map(|(_, roles)| roles.split(',').map(str::trim).filter(|r| !r.is_empty()))
        .collect();
    let same = roles.len() == declared.len() && roles.iter().all(|r| declared.contains(r));
    (!roles.is_empty() && !same).then(|| {
        format!(
            "the roles of scope `{name}` ({}) differ from the document's `x-scopes-bindings`; roles are not enforced",
            roles.join(", ")
        )
    })
}

/// Why an `api.yaml` operation (`{target, verb, authType, scopes, uriMapping, throttlingPolicy}`)
/// says more than the document, if it does. The document's topics are what Portico serves, so an
/// operation that agrees with its topic carries nothing to drop.
/// The strings of the list under `key` (none when it is missing or not a list).
fn strings_at<'a>(node: &'a Node, key: &str) -> Vec<&'a str> {
    node.get(key)
        .and_then(Node::as_seq)
        .unwrap_or(&[])
        .iter()
        .filter_map(Node::as_str)
        .collect()
}

fn operation_difference(api: &Api, operation: &Node) -> Option<String> {
    let Some(target) = operation.get("target").and_then(Node::as_str) else {
        return Some("an operation without a `target` names no topic".to_string());
    };
    let field = |key: &str| operation.get(key).and_then(Node::as_str);
    let verb = field("verb").unwrap_or_default();
    let Some(channel) = api
        .channels
        .iter()
        .find(|c| c.address.as_deref() == Some(target))
    else {
        return Some(format!(
            "the AsyncAPI document has no topic `{target}`, so `{verb} {target}` is not served"
        ));
    };
    if let Some(tier) = operation
        .get("throttlingPolicy")
        .filter(|t| !is_unset("throttlingPolicy", t))
        .and_then(Node::as_str)
    {
        return Some(format!(
            "the tier `{tier}` of `{verb} {target}` is not enforced; set `x-gateway.throttling`"
        ));
    }
    let direction = match verb.to_ascii_uppercase().as_str() {
        "SUBSCRIBE" => Direction::ServerToClient,
        "PUBLISH" => Direction::ClientToServer,
        _ => {
            return Some(format!(
                "`verb: {verb}` of `{target}` is neither SUBSCRIBE nor PUBLISH, so it is not a WebSocket topic"
            ))
        }
    };
    let Some(op) = channel.operations.iter().find(|o| o.direction == direction) else {
        return Some(format!(
            "the AsyncAPI document's topic `{target}` has no {} operation, so `{verb} {target}` is not served",
            verb.to_ascii_lowercase()
        ));
    };
    if let Some(auth) = field("authType") {
        let documented = channel.auth_type.as_ref().map(|a| a.value.as_str());
        if !documented.is_some_and(|d| d.eq_ignore_ascii_case(auth)) {
            return Some(format!(
                "`authType: {auth}` of `{verb} {target}` differs from the document's `x-auth-type`, which Portico uses"
            ));
        }
    }
    let scopes = strings_at(operation, "scopes");
    let documented: Vec<&str> = op.scopes.iter().map(|s| s.value.as_str()).collect();
    if scopes.len() != documented.len() || !scopes.iter().all(|s| documented.contains(s)) {
        return Some(format!(
            "the scopes of `{verb} {target}` ({}) differ from the document's `x-scopes`, which Portico uses",
            scopes.join(", ")
        ));
    }
    if let Some(mapping) = field("uriMapping") {
        let documented = op.mapping.as_ref().or(channel.mapping.as_ref());
        let normal = |m: &str| m.replace("{uri.var.", "{");
        if documented.is_none_or(|d| normal(&d.value) != normal(mapping)) {
            return Some(format!(
                "`uriMapping: {mapping}` of `{verb} {target}` differs from the document's `x-uri-mapping`, which Portico uses"
            ));
        }
    }
    None
}

/// Whether `path` is an apictl project's `api.yaml` (named so, with `type: api` or a `data` map).
pub fn is_project_file(path: &Path, root: &Node) -> bool {
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "api.yaml" || n == "api.yml");
    named && (root.get("type").and_then(Node::as_str) == Some("api") || root.get("data").is_some())
}
