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
    let endpoint = |key: &str| {
        data.get("endpointConfig")
            .and_then(|c| c.get(key))
            .and_then(|e| e.get("url"))
            .cloned()
    };
    ApiProject {
        file: Some(id),
        context: data.get("context").cloned(),
        version: data.get("version").cloned(),
        lifecycle: data.get("lifeCycleStatus").cloned(),
        default_version: data.get("isDefaultVersion").cloned(),
        production: endpoint("production_endpoints"),
        sandbox: endpoint("sandbox_endpoints"),
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
