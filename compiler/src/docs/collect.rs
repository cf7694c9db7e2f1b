//! What the docs need from the specs, gathered from the lowered model (never from the raw tree)
//! and owned, so a caller can keep it between compiling and rendering.

use std::collections::HashSet;

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::markdown::safe_url;
use super::view::{ContactView, InfoView, LinkView, ServerView};
use crate::compile::Compilation;
use crate::model::{self, Direction};

/// What the docs need from the specs of one compilation.
#[derive(Clone, Debug, Default)]
pub struct Collected {
    pub apis: Vec<SourceApi>,
}

/// One AsyncAPI document, as the docs see it.
#[derive(Clone, Debug)]
pub struct SourceApi {
    /// The spec file's path as it was compiled.
    pub path: String,
    /// `sha256:<hex>` of the file (what the plan's `source.sha256` names).
    pub sha256: String,
    /// The spec as written (served by the runtime at `/specs/<api>/<version>.yaml`).
    pub text: String,
    pub(super) title: String,
    pub(super) version: Option<String>,
    pub(super) spec_version: String,
    pub(super) description: Option<String>,
    pub(super) info: InfoView,
    pub(super) default_content_type: Option<String>,
    pub(super) servers: Vec<ServerView>,
    pub(super) security: Vec<SchemeDoc>,
    pub(super) channels: Vec<ChannelDoc>,
    /// Messages under `components.messages` (and 3.x channels) that no operation uses.
    pub(super) unused_messages: Vec<MessageDoc>,
    pub(super) gateway: Option<Value>,
}

#[derive(Clone, Debug)]
pub(super) struct SchemeDoc {
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) scheme: Option<String>,
    pub(super) bearer_format: Option<String>,
    pub(super) location: Option<String>,
    pub(super) param_name: Option<String>,
    pub(super) description: Option<String>,
    pub(super) scopes: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub(super) struct ChannelDoc {
    pub(super) id: String,
    pub(super) address: Option<String>,
    pub(super) title: Option<String>,
    pub(super) description: Option<String>,
    pub(super) parameters: Vec<ParamDoc>,
    pub(super) ws_binding: Option<Value>,
    pub(super) auth_type: Option<String>,
    pub(super) operations: Vec<OperationDoc>,
}

#[derive(Clone, Debug)]
pub(super) struct ParamDoc {
    pub(super) name: String,
    pub(super) description: Option<String>,
    pub(super) schema: Option<Value>,
}

#[derive(Clone, Debug)]
pub(super) struct OperationDoc {
    pub(super) id: Option<String>,
    pub(super) direction: Direction,
    pub(super) summary: Option<String>,
    pub(super) description: Option<String>,
    pub(super) scopes: Vec<String>,
    pub(super) messages: Vec<MessageDoc>,
}

#[derive(Clone, Debug, PartialEq)]
pub(super) struct MessageDoc {
    pub(super) name: String,
    pub(super) title: Option<String>,
    pub(super) summary: Option<String>,
    pub(super) description: Option<String>,
    pub(super) content_type: Option<String>,
    pub(super) payload: Option<Value>,
    pub(super) headers: Option<Value>,
    pub(super) examples: Vec<Value>,
}

impl MessageDoc {
    pub(super) fn from_model(m: &model::Message) -> MessageDoc {
        MessageDoc {
            name: m.name.clone(),
            title: m.title.clone(),
            summary: m.summary.clone(),
            description: m.description.clone(),
            content_type: m.content_type.clone(),
            payload: m.payload.clone(),
            headers: m.headers.clone(),
            examples: m.examples.clone(),
        }
    }
}

/// Gathers what the docs need from a compilation (every document, gateway API or not): the
/// lowered model, and each spec's text as written.
pub fn collect(compilation: &Compilation) -> Collected {
    let apis = compilation
        .apis
        .iter()
        .map(|api| {
            let source = compilation.files.sources.get(api.file);
            source_api(api, &source.path.display().to_string(), &source.text)
        })
        .collect();
    Collected { apis }
}

pub(super) fn source_api(api: &model::Api, path: &str, text: &str) -> SourceApi {
    let channels: Vec<ChannelDoc> = api
        .channels
        .iter()
        .map(|c| ChannelDoc {
            id: c.id.clone(),
            address: c.address.clone(),
            title: c.title.clone(),
            description: c.description.clone(),
            parameters: c
                .parameters
                .iter()
                .map(|p| ParamDoc {
                    name: p.name.clone(),
                    description: p.description.clone(),
                    schema: p.schema.clone(),
                })
                .collect(),
            ws_binding: c.ws_binding.clone(),
            auth_type: c.auth_type.as_ref().map(|a| a.value.clone()),
            operations: c
                .operations
                .iter()
                .map(|o| OperationDoc {
                    id: o.id.clone(),
                    direction: o.direction,
                    summary: o.summary.clone(),
                    description: o.description.clone(),
                    scopes: o.scopes.iter().map(|s| s.value.clone()).collect(),
                    messages: o.messages.iter().map(MessageDoc::from_model).collect(),
                })
                .collect(),
        })
        .map(replies_after_requests)
        .collect();
    let used: HashSet<&str> = channels
        .iter()
        .flat_map(|c| &c.operations)
        .flat_map(|o| &o.messages)
        .map(|m| m.name.as_str())
        .collect();
    // Messages defined but used by no operation: the AsyncAPI html-template leaves them out, we
    // list them.
    let mut unused_messages: Vec<MessageDoc> = Vec::new();
    for m in &api.defined_messages {
        if !used.contains(m.name.as_str()) && !unused_messages.iter().any(|u| u.name == m.name) {
            unused_messages.push(MessageDoc::from_model(m));
        }
    }
    let security = api
        .security_schemes
        .iter()
        .map(|s| {
            let mut scopes = s.scope_descriptions.clone();
            for name in &s.scopes {
                if !scopes.iter().any(|(n, _)| n == name) {
                    scopes.push((name.clone(), String::new()));
                }
            }
            SchemeDoc {
                name: s.name.clone(),
                kind: s.kind.clone(),
                scheme: s.scheme.clone(),
                bearer_format: s.bearer_format.clone(),
                location: s.location.clone(),
                param_name: s.param_name.clone(),
                description: s.description.clone(),
                scopes,
            }
        })
        .collect();
    SourceApi {
        path: path.to_string(),
        sha256: format!("sha256:{:x}", Sha256::digest(text.as_bytes())),
        text: text.to_string(),
        title: api.title.clone(),
        version: api.version.as_ref().map(|v| v.value.clone()),
        spec_version: api.asyncapi.clone(),
        description: api.description.clone(),
        info: info_view(&api.info),
        default_content_type: api.default_content_type.clone(),
        servers: api
            .servers
            .iter()
            .map(|s| ServerView {
                name: s.name.clone(),
                url: s.url.clone(),
                protocol: s.protocol.clone(),
                description: s.description.clone(),
                kind: "spec",
            })
            .collect(),
        security,
        channels,
        unused_messages,
        gateway: api.gateway.as_ref().map(crate::source::Node::to_json),
    }
}

/// A 3.x reply (lowered as an operation `<id>Reply` going the other way) is listed right after the
/// operation it answers, and says so.
pub(super) fn replies_after_requests(mut channel: ChannelDoc) -> ChannelDoc {
    let mut i = 0;
    while i < channel.operations.len() {
        let reply_of = channel.operations[i]
            .id
            .as_deref()
            .and_then(|id| id.strip_suffix("Reply"))
            .map(str::to_string);
        if let Some(request) = reply_of {
            let found = channel.operations[i + 1..]
                .iter()
                .position(|o| o.id.as_deref() == Some(request.as_str()));
            if let Some(offset) = found {
                let mut reply = channel.operations.remove(i);
                if reply.summary.is_none() {
                    reply.summary = Some(format!("The reply to `{request}`."));
                }
                // The request was at i + 1 + offset; after the removal it is at i + offset.
                channel.operations.insert(i + offset + 1, reply);
                continue;
            }
        }
        i += 1;
    }
    channel
}

/// The info links, with every URL that is not safe in an `href` dropped.
pub(super) fn info_view(info: &model::Info) -> InfoView {
    let safe = |url: &Option<String>| url.clone().filter(|u| safe_url(u));
    InfoView {
        terms_of_service: safe(&info.terms_of_service),
        contact: info.contact.as_ref().map(|c| ContactView {
            name: c.name.clone(),
            url: safe(&c.url),
            email: c.email.clone(),
        }),
        license: info.license.as_ref().map(|l| LinkView {
            name: l.name.clone().unwrap_or_default(),
            url: safe(&l.url),
        }),
        external_docs: info.external_docs.as_ref().map(|d| LinkView {
            name: d
                .description
                .clone()
                .unwrap_or_else(|| "More documentation".into()),
            url: safe(&d.url),
        }),
    }
}
