//! AsyncAPI 2.x and 3.x lowered into one model of what a WebSocket API is.
//!
//! Later stages (gateway rules, plan, docs) never look at version-specific shapes: they see an
//! [`Api`] with [`Channel`]s, each with [`Operation`]s whose [`Direction`] is said from the client's
//! side, each with [`Message`]s. Directions are the part people get wrong, so they are fixed here once:
//!
//! | AsyncAPI | meaning for a WebSocket client | [`Direction`] |
//! | --- | --- | --- |
//! | 2.x `publish` | the client sends it to the API | [`Direction::ClientToServer`] |
//! | 2.x `subscribe` | the API sends it to the client | [`Direction::ServerToClient`] |
//! | 3.x `receive` | the API receives it from the client | [`Direction::ClientToServer`] |
//! | 3.x `send` | the API sends it to the client | [`Direction::ServerToClient`] |

use serde::Serialize;
use serde_json::Value;

use crate::refs::Resolved;
use crate::schema::SpecVersion;
use crate::source::{FileId, Node, Span};

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    ClientToServer,
    ServerToClient,
}

/// A value as written, with the position to report problems at.
#[derive(Clone, Debug)]
pub struct Located<T> {
    pub value: T,
    pub span: Span,
    pub pointer: String,
}

#[derive(Clone, Debug)]
pub struct Api {
    pub file: FileId,
    pub spec_version: SpecVersion,
    /// The `asyncapi` field as written (`3.0.0`, `2.6.0-rc1`).
    pub asyncapi: String,
    pub title: String,
    pub version: Option<Located<String>>,
    pub description: Option<String>,
    pub info: Info,
    pub default_content_type: Option<String>,
    pub servers: Vec<Server>,
    pub channels: Vec<Channel>,
    pub security_schemes: Vec<SecurityScheme>,
    /// Every message the document defines, in document order: `components.messages` and, in 3.x,
    /// each channel's `messages`; named by `name`, else `messageId`, else their key. The docs list
    /// those no operation uses.
    pub defined_messages: Vec<Message>,
    /// The root `x-gateway` object, if any (validated and read by the gateway rules).
    pub gateway: Option<Node>,
    /// The root node, for rules that need a position when a field is missing.
    pub root_span: Span,
    /// The `info` key (or the root when there is none), for problems about a missing info field.
    pub info_span: Span,
}

/// The parts of `info` that are about people and links (for the docs).
#[derive(Clone, Debug, Default)]
pub struct Info {
    pub terms_of_service: Option<String>,
    pub contact: Option<Contact>,
    pub license: Option<License>,
    /// `info.externalDocs` (3.x), else the root `externalDocs` (2.x).
    pub external_docs: Option<ExternalDocs>,
}

#[derive(Clone, Debug, Default)]
pub struct Contact {
    pub name: Option<String>,
    pub url: Option<String>,
    pub email: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct License {
    pub name: Option<String>,
    pub url: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ExternalDocs {
    pub description: Option<String>,
    pub url: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Server {
    pub name: String,
    /// `protocol://host/path`, with variables replaced by their defaults where they have one.
    pub url: String,
    pub protocol: String,
    pub description: Option<String>,
    /// Names of the security schemes the server's `security` requires.
    pub security: Vec<String>,
    pub span: Span,
    pub pointer: String,
}

#[derive(Clone, Debug)]
pub struct SecurityScheme {
    pub name: String,
    pub kind: String,
    /// Scopes the scheme declares (OAuth2 flows' scopes / `availableScopes`).
    pub scopes: Vec<String>,
    /// The same scopes with their descriptions (empty when the spec gives none).
    pub scope_descriptions: Vec<(String, String)>,
    /// For `http`: the scheme (`bearer`, `basic`, ...) and, for bearer, the token format.
    pub scheme: Option<String>,
    pub bearer_format: Option<String>,
    /// `x-scopes-bindings` (WSO2: scope → roles), kept for the docs.
    pub scope_bindings: Vec<(String, String)>,
    /// For apiKey / httpApiKey: where the credential goes (`query`, `header`, `user`, ...) and its name.
    pub location: Option<String>,
    pub param_name: Option<String>,
    /// For `http`: the scheme (`bearer`, `basic`, ...).
    pub http_scheme: Option<String>,
    pub description: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Channel {
    /// The channel's key in `channels` (in 2.x the key is also the address).
    pub id: String,
    pub title: Option<String>,
    /// The address clients use after the API's context, always starting with `/`; `None` when a 3.x
    /// channel has a null address.
    pub address: Option<String>,
    pub description: Option<String>,
    pub parameters: Vec<Parameter>,
    pub operations: Vec<Operation>,
    /// `x-uri-mapping` on the channel itself.
    pub mapping: Option<Located<String>>,
    /// `x-auth-type` (WSO2): `Any` needs a credential, `None` does not.
    pub auth_type: Option<Located<String>>,
    /// The channel's `bindings.ws` object (query and headers the connection takes).
    pub ws_binding: Option<Value>,
    pub span: Span,
    pub pointer: String,
}

#[derive(Clone, Debug)]
pub struct Parameter {
    pub name: String,
    pub description: Option<String>,
    pub schema: Option<Value>,
    pub span: Span,
}

#[derive(Clone, Debug)]
pub struct Operation {
    pub id: Option<String>,
    pub direction: Direction,
    pub summary: Option<String>,
    pub description: Option<String>,
    pub messages: Vec<Message>,
    pub scopes: Vec<Located<String>>,
    /// Names of the security schemes the operation's `security` requires.
    pub security: Vec<String>,
    /// `x-uri-mapping` on the operation (WSO2 writes it on both publish and subscribe).
    pub mapping: Option<Located<String>>,
    pub span: Span,
    pub pointer: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The payload schema, when it is a JSON Schema (other schema formats are not enforced).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<Value>,
}

fn string(node: Option<&Node>) -> Option<String> {
    node.and_then(Node::as_str).map(str::to_string)
}

fn located_string(node: &Node, key: &str, pointer: &str) -> Option<Located<String>> {
    let (k, v) = node.entry(key)?;
    Some(Located {
        value: v.as_str()?.to_string(),
        span: v.span,
        pointer: format!("{pointer}/{}", crate::source::escape_pointer_token(&k.name)),
    })
}

fn child_pointer(parent: &str, key: &str) -> String {
    format!("{parent}/{}", crate::source::escape_pointer_token(key))
}

/// Lowers a resolved document. Never fails: missing parts are simply absent (schema validation has
/// already reported them).
pub fn lower(file: FileId, version: SpecVersion, doc: &Resolved) -> Api {
    let root = &doc.root;
    let info = root.get("info");
    let version_node = info.and_then(|i| located_string(i, "version", "/info"));
    let mut api = Api {
        file,
        spec_version: version,
        asyncapi: string(root.get("asyncapi")).unwrap_or_default(),
        title: string(info.and_then(|i| i.get("title"))).unwrap_or_default(),
        version: version_node,
        description: string(info.and_then(|i| i.get("description"))),
        info: lower_info(root),
        default_content_type: string(root.get("defaultContentType")),
        servers: lower_servers(root, version),
        channels: Vec::new(),
        security_schemes: lower_security_schemes(root),
        defined_messages: lower_defined_messages(root, version),
        gateway: root.get("x-gateway").cloned(),
        root_span: root.span,
        info_span: root.entry("info").map(|(k, _)| k.span).unwrap_or(root.span),
    };
    for server in &mut api.servers {
        if let Some(node) = root.get("servers").and_then(|s| s.get(&server.name)) {
            server.security = security_names(doc, node);
        }
    }
    api.channels = if version.is_v3() {
        lower_channels_v3(doc)
    } else {
        lower_channels_v2(doc)
    };
    api
}

fn lower_info(root: &Node) -> Info {
    let info = root.get("info");
    let field = |node: Option<&Node>, key: &str| string(node.and_then(|n| n.get(key)));
    Info {
        terms_of_service: field(info, "termsOfService"),
        contact: info.and_then(|i| i.get("contact")).map(|c| Contact {
            name: field(Some(c), "name"),
            url: field(Some(c), "url"),
            email: field(Some(c), "email"),
        }),
        license: info.and_then(|i| i.get("license")).map(|l| License {
            name: field(Some(l), "name"),
            url: field(Some(l), "url"),
        }),
        external_docs: info
            .and_then(|i| i.get("externalDocs"))
            .or_else(|| root.get("externalDocs"))
            .map(|d| ExternalDocs {
                description: field(Some(d), "description"),
                url: field(Some(d), "url"),
            }),
    }
}

/// `components.messages`, then (3.x) each channel's `messages`, named as the docs list them.
fn lower_defined_messages(root: &Node, version: SpecVersion) -> Vec<Message> {
    let mut candidates: Vec<(&str, &Node)> = Vec::new();
    if let Some(map) = root.get("components").and_then(|c| c.get("messages")) {
        candidates.extend(map.entries().map(|(k, v)| (k.name.as_str(), v)));
    }
    if version.is_v3() {
        for (_, channel) in root.get("channels").into_iter().flat_map(Node::entries) {
            if let Some(map) = channel.get("messages") {
                candidates.extend(map.entries().map(|(k, v)| (k.name.as_str(), v)));
            }
        }
    }
    candidates
        .into_iter()
        .filter(|(_, node)| node.as_map().is_some())
        .map(|(key, node)| {
            let name = string(node.get("name"))
                .or_else(|| string(node.get("messageId")))
                .unwrap_or_else(|| key.to_string());
            message_named(node, name)
        })
        .collect()
}

fn lower_servers(root: &Node, version: SpecVersion) -> Vec<Server> {
    let mut servers = Vec::new();
    for (key, server) in root
        .get("servers")
        .map(|s| s.entries().collect::<Vec<_>>())
        .unwrap_or_default()
    {
        let protocol = string(server.get("protocol")).unwrap_or_default();
        let raw = if version.is_v3() {
            format!(
                "{}{}",
                string(server.get("host")).unwrap_or_default(),
                string(server.get("pathname")).unwrap_or_default()
            )
        } else {
            string(server.get("url")).unwrap_or_default()
        };
        let mut url = substitute_variables(&raw, server.get("variables"));
        if !url.contains("://") && !protocol.is_empty() {
            url = format!("{}://{url}", protocol.to_ascii_lowercase());
        }
        servers.push(Server {
            name: key.name.clone(),
            url,
            protocol,
            description: string(server.get("description")),
            security: Vec::new(),
            span: key.span,
            pointer: child_pointer("/servers", &key.name),
        });
    }
    servers
}

/// Replaces `{name}` with the variable's default (or first enum value); unknown ones stay.
fn substitute_variables(raw: &str, variables: Option<&Node>) -> String {
    let mut out = raw.to_string();
    if let Some(vars) = variables {
        for (k, v) in vars.entries() {
            let value = string(v.get("default")).or_else(|| {
                v.get("enum")
                    .and_then(Node::as_seq)
                    .and_then(|e| e.first())
                    .and_then(|n| n.as_str().map(str::to_string))
            });
            if let Some(value) = value {
                out = out.replace(&format!("{{{}}}", k.name), &value);
            }
        }
    }
    out
}

fn lower_security_schemes(root: &Node) -> Vec<SecurityScheme> {
    let Some(schemes) = root
        .get("components")
        .and_then(|c| c.get("securitySchemes"))
    else {
        return Vec::new();
    };
    schemes
        .entries()
        .map(|(k, s)| {
            let mut scopes = Vec::new();
            let mut scope_descriptions = Vec::new();
            if let Some(flows) = s.get("flows") {
                for (_, flow) in flows.entries() {
                    for key in ["scopes", "availableScopes"] {
                        for (scope, description) in
                            flow.get(key).into_iter().flat_map(Node::entries)
                        {
                            if !scopes.contains(&scope.name) {
                                scopes.push(scope.name.clone());
                                scope_descriptions.push((
                                    scope.name.clone(),
                                    string(Some(description)).unwrap_or_default(),
                                ));
                            }
                        }
                    }
                }
            }
            let scope_bindings = s
                .get("flows")
                .map(|flows| {
                    flows
                        .entries()
                        .filter_map(|(_, f)| f.get("x-scopes-bindings"))
                        .flat_map(|b| {
                            b.entries()
                                .map(|(k, v)| (k.name.clone(), string(Some(v)).unwrap_or_default()))
                                .collect::<Vec<_>>()
                        })
                        .collect()
                })
                .unwrap_or_default();
            SecurityScheme {
                name: k.name.clone(),
                kind: string(s.get("type")).unwrap_or_default(),
                scopes,
                scope_descriptions,
                scheme: string(s.get("scheme")),
                bearer_format: string(s.get("bearerFormat")),
                scope_bindings,
                location: string(s.get("in")),
                param_name: string(s.get("name")),
                http_scheme: string(s.get("scheme")),
                description: string(s.get("description")),
            }
        })
        .collect()
}

/// Converts a parameter-ish address to the gateway's form: always a leading `/`.
fn normalize_address(address: &str) -> String {
    if address.starts_with('/') {
        address.to_string()
    } else {
        format!("/{address}")
    }
}

fn lower_parameters(channel: &Node) -> Vec<Parameter> {
    channel
        .get("parameters")
        .map(|p| {
            p.entries()
                .map(|(k, v)| Parameter {
                    name: k.name.clone(),
                    description: string(v.get("description")),
                    schema: v.get("schema").map(Node::to_json).or_else(|| {
                        // 3.x parameters carry enum/default/examples directly.
                        let mut s = serde_json::Map::new();
                        s.insert("type".into(), Value::String("string".into()));
                        for key in ["enum", "default", "examples"] {
                            if let Some(n) = v.get(key) {
                                s.insert(key.into(), n.to_json());
                            }
                        }
                        Some(Value::Object(s))
                    }),
                    span: k.span,
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The scheme names a `security` list requires: 2.x writes `{name: [scopes]}`, 3.x a (resolved)
/// reference to `#/components/securitySchemes/<name>`.
fn security_names(doc: &Resolved, node: &Node) -> Vec<String> {
    let mut names = Vec::new();
    for requirement in node.get("security").and_then(Node::as_seq).unwrap_or(&[]) {
        let from_ref = doc.origin(requirement).and_then(|t| {
            t.pointer
                .strip_prefix("/components/securitySchemes/")
                .map(crate::source::unescape_pointer_token)
        });
        let found: Vec<String> = match from_ref {
            Some(name) => vec![name],
            None if requirement.get("type").is_some() => Vec::new(),
            None => requirement.entries().map(|(k, _)| k.name.clone()).collect(),
        };
        for name in found {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

/// 2.x/3.x `x-scopes` is a list (`[a, b]`) or, as WSO2 writes it, an object (`{"0": a}`).
fn lower_scopes(op: &Node, pointer: &str) -> Vec<Located<String>> {
    let mut scopes = Vec::new();
    if let Some((k, v)) = op.entry("x-scopes") {
        let base = child_pointer(pointer, &k.name);
        match (v.as_seq(), v.as_map()) {
            (Some(items), _) => {
                for (i, item) in items.iter().enumerate() {
                    if let Some(s) = item.as_str() {
                        scopes.push(Located {
                            value: s.to_string(),
                            span: item.span,
                            pointer: format!("{base}/{i}"),
                        });
                    }
                }
            }
            (_, Some(entries)) => {
                for (key, item) in entries {
                    if let Some(s) = item.as_str() {
                        scopes.push(Located {
                            value: s.to_string(),
                            span: item.span,
                            pointer: child_pointer(&base, &key.name),
                        });
                    }
                }
            }
            _ => {}
        }
    }
    // Standard AsyncAPI: security requirements with scopes (2.x `{scheme: [scopes]}`).
    if let Some(reqs) = op.get("security").and_then(Node::as_seq) {
        for (i, req) in reqs.iter().enumerate() {
            for (k, list) in req.entries() {
                for (j, item) in list.as_seq().unwrap_or(&[]).iter().enumerate() {
                    if let Some(s) = item.as_str() {
                        if !scopes.iter().any(|x| x.value == s) {
                            scopes.push(Located {
                                value: s.to_string(),
                                span: item.span,
                                pointer: format!(
                                    "{pointer}/security/{i}/{}/{j}",
                                    crate::source::escape_pointer_token(&k.name)
                                ),
                            });
                        }
                    }
                }
            }
            // 3.x: security entries are scheme objects with a `scopes` list.
            for (j, item) in req
                .get("scopes")
                .and_then(Node::as_seq)
                .unwrap_or(&[])
                .iter()
                .enumerate()
            {
                if let Some(s) = item.as_str() {
                    if !scopes.iter().any(|x| x.value == s) {
                        scopes.push(Located {
                            value: s.to_string(),
                            span: item.span,
                            pointer: format!("{pointer}/security/{i}/scopes/{j}"),
                        });
                    }
                }
            }
        }
    }
    scopes
}

/// The value of `field` once an AsyncAPI 2 operation's or message's `traits` are applied, and the
/// index of the trait that set it (`None`: the object's own). 2.x applies traits as JSON Merge
/// Patches over the object, in order, so the last trait that sets the field wins over the object's
/// own value (3.x does the opposite: the object wins).
pub(crate) fn v2_merged<'a>(object: &'a Node, field: &str) -> Option<(&'a Node, Option<usize>)> {
    let from_trait = object
        .get("traits")
        .and_then(Node::as_seq)
        .unwrap_or(&[])
        .iter()
        .enumerate()
        .rev()
        .find_map(|(i, t)| t.get(field).map(|v| (v, Some(i))));
    from_trait.or_else(|| object.get(field).map(|v| (v, None)))
}

/// A message's name: its `name`, else its `messageId`, else the component key it was defined under,
/// else a positional name.
fn lower_message(doc: &Resolved, node: &Node, fallback: String) -> Message {
    let from_origin = doc.origin(node).and_then(|t| {
        let (parent, last) = t.pointer.rsplit_once('/')?;
        parent
            .ends_with("/messages")
            .then(|| crate::source::unescape_pointer_token(last))
    });
    let name = string(node.get("name"))
        .or_else(|| string(node.get("messageId")))
        .or(from_origin)
        .unwrap_or(fallback);
    message_named(node, name)
}

fn message_named(node: &Node, name: String) -> Message {
    let schema_format = string(node.get("schemaFormat")).unwrap_or_default();
    let payload = node.get("payload").and_then(|p| {
        // 3.x Multi Format Schema: {schemaFormat, schema}.
        if let (Some(format), Some(schema)) = (p.get("schemaFormat"), p.get("schema")) {
            return is_json_schema_format(format.as_str().unwrap_or_default())
                .then(|| schema.to_json());
        }
        is_json_schema_format(&schema_format).then(|| p.to_json())
    });
    let mut examples = Vec::new();
    if let Some(list) = node.get("examples").and_then(Node::as_seq) {
        for ex in list {
            // 2.x/3.x message examples: {payload, headers, name, summary}.
            if let Some(p) = ex.get("payload") {
                examples.push(p.to_json());
            }
        }
    }
    Message {
        name,
        title: string(node.get("title")),
        summary: string(node.get("summary")),
        description: string(node.get("description")),
        content_type: string(node.get("contentType")),
        payload,
        headers: node.get("headers").map(Node::to_json),
        examples,
    }
}

/// Whether a `schemaFormat` names a JSON Schema dialect (the only ones the gateway can enforce).
pub fn is_json_schema_format(format: &str) -> bool {
    format.is_empty()
        || format.starts_with("application/vnd.aai.asyncapi")
        || format.starts_with("application/schema+json")
        || format.starts_with("application/schema+yaml")
}

fn lower_channels_v2(doc: &Resolved) -> Vec<Channel> {
    let mut channels = Vec::new();
    let Some(map) = doc.root.get("channels") else {
        return channels;
    };
    for (key, channel) in map.entries() {
        let pointer = child_pointer("/channels", &key.name);
        let mut operations = Vec::new();
        for (verb, direction) in [
            ("publish", Direction::ClientToServer),
            ("subscribe", Direction::ServerToClient),
        ] {
            let Some(op) = channel.get(verb) else {
                continue;
            };
            let op_pointer = child_pointer(&pointer, verb);
            let mut messages = Vec::new();
            if let Some(message) = op.get("message") {
                match message.get("oneOf").and_then(Node::as_seq) {
                    Some(alternatives) => {
                        for (i, m) in alternatives.iter().enumerate() {
                            messages.push(lower_message(doc, m, format!("{verb}Message{i}")));
                        }
                    }
                    None => messages.push(lower_message(doc, message, format!("{verb}Message"))),
                }
            }
            operations.push(Operation {
                id: string(v2_merged(op, "operationId").map(|(id, _)| id)),
                direction,
                summary: string(op.get("summary")),
                description: string(op.get("description")),
                messages,
                scopes: lower_scopes(op, &op_pointer),
                security: security_names(doc, op),
                mapping: located_string(op, "x-uri-mapping", &op_pointer),
                span: op.span,
                pointer: op_pointer,
            });
        }
        channels.push(Channel {
            id: key.name.clone(),
            title: string(channel.get("title")),
            address: Some(normalize_address(&key.name)),
            description: string(channel.get("description")),
            parameters: lower_parameters(channel),
            operations,
            mapping: located_string(channel, "x-uri-mapping", &pointer),
            auth_type: located_string(channel, "x-auth-type", &pointer),
            ws_binding: channel
                .get("bindings")
                .and_then(|b| b.get("ws"))
                .map(Node::to_json),
            span: key.span,
            pointer,
        });
    }
    channels
}

/// The key in `channels` whose resolved channel is the same definition as `node` (both are copies
/// of it, so they share its span), e.g. when `channels.echo` is itself a `$ref` into components.
fn channel_key(channels: &Node, node: &Node) -> Option<String> {
    channels
        .entries()
        .find(|(_, c)| c.span == node.span)
        .map(|(k, _)| k.name.clone())
}

fn lower_channels_v3(doc: &Resolved) -> Vec<Channel> {
    let mut channels = Vec::new();
    let Some(map) = doc.root.get("channels") else {
        return channels;
    };
    for (key, channel) in map.entries() {
        let pointer = child_pointer("/channels", &key.name);
        channels.push(Channel {
            id: key.name.clone(),
            title: string(channel.get("title")),
            address: channel
                .get("address")
                .and_then(Node::as_str)
                .map(normalize_address),
            description: string(channel.get("description")),
            parameters: lower_parameters(channel),
            operations: Vec::new(),
            mapping: located_string(channel, "x-uri-mapping", &pointer),
            auth_type: located_string(channel, "x-auth-type", &pointer),
            ws_binding: channel
                .get("bindings")
                .and_then(|b| b.get("ws"))
                .map(Node::to_json),
            span: key.span,
            pointer,
        });
    }
    let Some(ops) = doc.root.get("operations") else {
        return channels;
    };
    for (key, op) in ops.entries() {
        let op_pointer = child_pointer("/operations", &key.name);
        let direction = match op.get("action").and_then(Node::as_str) {
            Some("receive") => Direction::ClientToServer,
            Some("send") => Direction::ServerToClient,
            _ => continue,
        };
        // Which channel: the resolved `channel` node was copied from `/channels/<id>`.
        let Some(channel_node) = op.get("channel") else {
            continue;
        };
        let channel_id = channel_key(map, channel_node).or_else(|| {
            doc.origin(channel_node).and_then(|t| {
                t.pointer
                    .strip_prefix("/channels/")
                    .map(crate::source::unescape_pointer_token)
            })
        });
        let Some(index) = channel_id.and_then(|id| channels.iter().position(|c| c.id == id)) else {
            continue;
        };
        // WSO2's publisher writes `x-auth-type` on 3.x operations. The channel's own value wins;
        // among its operations, anything but `None` wins (fail closed).
        if let Some(op_auth) = located_string(op, "x-auth-type", &op_pointer) {
            let auth = &mut channels[index].auth_type;
            let replace = match auth {
                None => true,
                Some(current) => {
                    current.pointer.starts_with("/operations/")
                        && current.value.eq_ignore_ascii_case("none")
                }
            };
            if replace {
                *auth = Some(op_auth);
            }
        }
        let messages = operation_messages(doc, op, channel_node, &key.name);
        // A reply (request/reply, as in the Kraken example) travels the other way, on the reply's
        // channel if it names one, else on the operation's own.
        if let Some(reply) = op.get("reply") {
            let reply_channel = reply.get("channel").unwrap_or(channel_node);
            let reply_index = channel_key(map, reply_channel)
                .or_else(|| {
                    doc.origin(reply_channel).and_then(|t| {
                        t.pointer
                            .strip_prefix("/channels/")
                            .map(crate::source::unescape_pointer_token)
                    })
                })
                .and_then(|id| channels.iter().position(|c| c.id == id))
                .unwrap_or(index);
            let reply_pointer = format!("{op_pointer}/reply");
            channels[reply_index].operations.push(Operation {
                id: Some(format!("{}Reply", key.name)),
                direction: match direction {
                    Direction::ClientToServer => Direction::ServerToClient,
                    Direction::ServerToClient => Direction::ClientToServer,
                },
                summary: None,
                description: string(reply.get("description")),
                messages: operation_messages(
                    doc,
                    reply,
                    reply_channel,
                    &format!("{}Reply", key.name),
                ),
                scopes: Vec::new(),
                security: Vec::new(),
                mapping: None,
                span: reply.span,
                pointer: reply_pointer,
            });
        }
        channels[index].operations.push(Operation {
            id: Some(key.name.clone()),
            direction,
            summary: string(op.get("summary")),
            description: string(op.get("description")),
            messages,
            scopes: lower_scopes(op, &op_pointer),
            security: security_names(doc, op),
            mapping: located_string(op, "x-uri-mapping", &op_pointer),
            span: key.span,
            pointer: op_pointer,
        });
    }
    channels
}

/// The messages of an operation (or reply): its `messages`, or every message of its channel.
fn operation_messages(doc: &Resolved, op: &Node, channel: &Node, fallback: &str) -> Vec<Message> {
    match op.get("messages").and_then(Node::as_seq) {
        Some(list) if !list.is_empty() => list
            .iter()
            .enumerate()
            .map(|(i, m)| lower_message(doc, m, format!("{fallback}Message{i}")))
            .collect(),
        _ => channel
            .get("messages")
            .map(|m| {
                m.entries()
                    .map(|(name, m)| lower_message(doc, m, name.name.clone()))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Names of the `{parameters}` in an address or mapping template, in order. WSO2's
/// `{uri.var.name}` counts as `name`.
pub fn template_parameters(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { break };
        let name = &after[..close];
        let name = name.strip_prefix("uri.var.").unwrap_or(name);
        names.push(name.to_string());
        rest = &after[close + 1..];
    }
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn template_parameters_accept_wso2_spelling() {
        assert_eq!(
            super::template_parameters("/rooms/{roomId}?x={uri.var.user}"),
            vec!["roomId", "user"]
        );
    }
}
