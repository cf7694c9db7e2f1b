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
use crate::source::escape_pointer_token;
use crate::source::{FileId, Node};

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
    }
}

/// `api.yaml` settings Portico reads.
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

/// Values that mean "nothing set" in an export: WSO2 writes every field, mostly with these.
fn is_unset(key: &str, value: &Node) -> bool {
    if value.as_map().is_some_and(<[_]>::is_empty)
        || value.as_seq().is_some_and(<[_]>::is_empty)
        || value.as_bool() == Some(false)
        || value.as_str().is_some_and(str::is_empty)
        || matches!(value.value, crate::source::NodeValue::Null)
    {
        return true;
    }
    match key {
        "visibility" => value.as_str() == Some("PUBLIC"),
        "accessControl" => value.as_str() == Some("NONE"),
        "authorizationHeader" => value.as_str() == Some("Authorization"),
        "apiKeyHeader" => value.as_str() == Some("ApiKey"),
        // Unlimited tiers limit nothing.
        "policies" => value.as_seq().is_some_and(|tiers| {
            tiers
                .iter()
                .all(|t| t.as_str().is_some_and(|t| t.ends_with("Unlimited")))
        }),
        "apiThrottlingPolicy" => value.as_str().is_some_and(|t| t.ends_with("Unlimited")),
        "corsConfiguration" => value
            .get("corsConfigurationEnabled")
            .is_some_and(|e| e.as_bool() == Some(false)),
        _ => false,
    }
}

/// The import report: one warning per `api.yaml` setting Portico does not use, at its line, so
/// nothing of an export is dropped silently (load-balanced or failover endpoints, endpoint
/// security, policies and tiers, visibility, business information, additional properties, CORS,
/// ...). Bookkeeping fields and values that mean "unset" stay quiet.
pub fn import_report(files: &Files, project: &ApiProject, diags: &mut Vec<Diagnostic>) {
    let Some(root) = project.file.and_then(|f| files.tree(f)) else {
        return;
    };
    let (data, base) = match root.get("data") {
        Some(d) => (d, "/data"),
        None => (root, ""),
    };
    let mut ignored = |key: &crate::source::Key, pointer: String, why: &str| {
        diags.push(
            Diagnostic::warning(
                "gateway-import-ignored",
                format!("`{}` in api.yaml is not used by Portico: {why}", key.name),
            )
            .with_help("configure the equivalent in `x-gateway` or the runtime if you need it (see docs/spec-extensions.md), or remove it from the export")
            .at(key.span, pointer),
        );
    };
    for (key, value) in data.entries() {
        let pointer = format!("{base}/{}", escape_pointer_token(&key.name));
        if NOT_APPLICABLE.contains(&key.name.as_str()) || is_unset(&key.name, value) {
            continue;
        }
        if key.name == "endpointConfig" {
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
                ignored(k, p, why);
            }
            continue;
        }
        if READ.contains(&key.name.as_str()) {
            continue;
        }
        let why = match key.name.as_str() {
            "policies" | "apiThrottlingPolicy" => "subscription tiers and policies are not enforced; set `x-gateway.throttling`",
            "visibility" | "visibleRoles" | "visibleTenants" | "accessControl" | "accessControlRoles" => "visibility and access control of the developer portal",
            "businessInformation" => "business information is not shown",
            "additionalProperties" | "additionalPropertiesMap" => "additional properties are not shown",
            "corsConfiguration" => "CORS does not apply to WebSocket handshakes; set `x-gateway.origins` to restrict origins",
            "securityScheme" | "authorizationHeader" | "apiKeyHeader" | "keyManagers" => "credentials are configured in the runtime",
            "operations" | "scopes" => "topics and scopes are read from the AsyncAPI document",
            _ => "a WSO2 setting Portico does not have",
        };
        ignored(key, pointer, why);
    }
}

/// Whether `path` is an apictl project's `api.yaml` (named so, with `type: api` or a `data` map).
pub fn is_project_file(path: &Path, root: &Node) -> bool {
    let named = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n == "api.yaml" || n == "api.yml");
    named && (root.get("type").and_then(Node::as_str) == Some("api") || root.get("data").is_some())
}
