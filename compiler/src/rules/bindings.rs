//! Protocol bindings checked against the binding JSON Schemas that `@asyncapi/specs` ships
//! (vendored as `compiler/schemas/bindings.json`, see its README). The official parser checks no
//! bindings at all.
//!
//! Every binding object of a server, channel, operation or message (also in `components` and
//! traits) whose protocol has a schema for that kind is validated, against the version its
//! `bindingVersion` names (default: the latest vendored). An unknown version is a warning and the
//! binding is not checked. A `ws` binding the gateway uses: `asyncapi-binding-ws-invalid`, always
//! an error. Other protocols: `asyncapi-binding-invalid`, an error under `--lint` and a warning when
//! compiling for the gateway (which does not use them; see [`super::asyncapi::SPEC_ONLY`]).

use std::collections::{BTreeMap, HashSet};
use std::sync::OnceLock;

use serde_json::Value;

use crate::diagnostics::Diagnostic;
use crate::schema::SpecVersion;
use crate::source::{escape_pointer_token, Node};

const BUNDLE: &str = include_str!("../../schemas/bindings.json");

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Server,
    Channel,
    Operation,
    Message,
}

impl Kind {
    fn file(self) -> &'static str {
        match self {
            Kind::Server => "server",
            Kind::Channel => "channel",
            Kind::Operation => "operation",
            Kind::Message => "message",
        }
    }
}

struct BindingSchema {
    schema: Value,
    validator: jsonschema::Validator,
}

/// (folder, kind) → version → compiled schema.
type Catalogue = BTreeMap<(String, &'static str), BTreeMap<Version, BindingSchema>>;

/// A `major.minor.patch` binding version, ordered numerically.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Version(Vec<u64>, String);

impl Version {
    fn parse(text: &str) -> Version {
        Version(
            text.split('.').map(|p| p.parse().unwrap_or(0)).collect(),
            text.to_string(),
        )
    }
}

fn catalogue() -> &'static Catalogue {
    static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
    CATALOGUE.get_or_init(|| {
        let bundle: BTreeMap<String, Value> =
            serde_json::from_str(BUNDLE).expect("the vendored binding schemas are JSON");
        let mut out = Catalogue::new();
        for (key, schema) in bundle {
            let mut parts = key.split('/');
            let (Some(folder), Some(version), Some(kind)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let Some(kind) = ["server", "channel", "operation", "message"]
                .into_iter()
                .find(|k| *k == kind)
            else {
                continue;
            };
            let schema = standalone(schema);
            // A schema that does not compile is left out; a unit test keeps that from happening.
            let Ok(validator) = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft7)
                .build(&schema)
            else {
                continue;
            };
            out.entry((folder.to_string(), kind))
                .or_default()
                .insert(Version::parse(version), BindingSchema { schema, validator });
        }
        out
    })
}

/// The binding schemas refer to the AsyncAPI document schemas by URL (a Schema Object, a
/// Reference Object, a specification extension). Bindings are checked on the resolved document,
/// where references are gone and schema objects are checked elsewhere, so those references become
/// their shape (an object, or a boolean schema) and `oneOf`s over them `anyOf`s (an object would
/// match both "a schema" and "a reference" otherwise).
fn standalone(mut schema: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    if r.starts_with("http://asyncapi.com/definitions/") {
                        let shape = if r.ends_with("/schema.json") {
                            serde_json::json!({"type": ["object", "boolean"]})
                        } else if r.ends_with("/specificationExtension.json") {
                            serde_json::json!({})
                        } else {
                            serde_json::json!({"type": "object"})
                        };
                        *v = shape;
                        return;
                    }
                }
                if let Some(alternatives) = map.remove("oneOf") {
                    let over_documents = alternatives.as_array().is_some_and(|a| {
                        a.iter().any(|alt| {
                            alt.get("$ref")
                                .and_then(Value::as_str)
                                .is_some_and(|r| r.starts_with("http://asyncapi.com/definitions/"))
                        })
                    });
                    map.insert(
                        if over_documents { "anyOf" } else { "oneOf" }.to_string(),
                        alternatives,
                    );
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut schema);
    schema
}

/// The folder of a binding key (`ws` is `websockets`).
fn folder(protocol: &str) -> &str {
    match protocol {
        "ws" => "websockets",
        other => other,
    }
}

/// Drops the document schema's own `schema` errors inside binding objects: the AsyncAPI 3 schemas
/// embed some binding schemas, and [`check`] reports binding problems with binding codes and
/// severities (an unknown `bindingVersion` is a warning there, not a schema error).
pub fn drop_schema_errors_inside_bindings(
    root: &Node,
    version: SpecVersion,
    diags: &mut Vec<Diagnostic>,
) {
    let mut found: Vec<(Kind, &Node, String)> = Vec::new();
    collect(root, version, &mut found);
    diags.retain(|d| {
        d.code != "schema"
            || !found.iter().any(|(kind, bindings, pointer)| {
                d.pointer
                    .strip_prefix(pointer.as_str())
                    .and_then(|rest| rest.strip_prefix('/'))
                    .and_then(|rest| rest.split('/').next())
                    .is_some_and(|protocol| {
                        let protocol = crate::source::unescape_pointer_token(protocol);
                        // Only where [`check`] reports instead.
                        catalogue().contains_key(&(folder(&protocol).to_string(), kind.file()))
                            && bindings
                                .get(&protocol)
                                .is_some_and(|b| b.as_map().is_some())
                    })
            })
    });
}

pub fn check(root: &Node, version: SpecVersion, diags: &mut Vec<Diagnostic>) {
    let mut found: Vec<(Kind, &Node, String)> = Vec::new();
    collect(root, version, &mut found);
    let mut seen = HashSet::new();
    for (kind, bindings, pointer) in found {
        if !seen.insert((kind, bindings.span.file, bindings.span.start)) {
            continue;
        }
        for (protocol, value) in bindings.entries() {
            if protocol.name.starts_with("x-") || value.as_map().is_none() {
                continue;
            }
            let Some(versions) =
                catalogue().get(&(folder(&protocol.name).to_string(), kind.file()))
            else {
                continue;
            };
            let binding_pointer = format!("{pointer}/{}", escape_pointer_token(&protocol.name));
            let latest = versions.values().next_back();
            let chosen = match value.get("bindingVersion") {
                // Not a string: the latest schema says what is wrong with it.
                Some(v) if v.as_str().is_none() => match latest {
                    Some(latest) => latest,
                    None => continue,
                },
                Some(v) => {
                    let text = v.as_str().unwrap_or_default();
                    match versions.iter().find(|(known, _)| known.1 == text) {
                        Some((_, schema)) => schema,
                        None => {
                            let known: Vec<String> =
                                versions.keys().map(|k| format!("`{}`", k.1)).collect();
                            diags.push(
                                Diagnostic::warning(
                                    "asyncapi-binding-version-unknown",
                                    format!(
                                        "the `{}` {} binding's version `{text}` is not one Portico knows, so the binding is not checked",
                                        protocol.name,
                                        kind.file()
                                    ),
                                )
                                .with_help(format!("known versions: {}", known.join(", ")))
                                .at(v.span, format!("{binding_pointer}/bindingVersion")),
                            );
                            continue;
                        }
                    }
                }
                None => match latest {
                    Some(latest) => latest,
                    None => continue,
                },
            };
            let code = if protocol.name == "ws" {
                "asyncapi-binding-ws-invalid"
            } else {
                "asyncapi-binding-invalid"
            };
            crate::schema::validate_binding(
                value,
                &binding_pointer,
                &chosen.schema,
                &chosen.validator,
                code,
                diags,
            );
        }
    }
}

fn ptr(parent: &str, key: &str) -> String {
    format!("{parent}/{}", escape_pointer_token(key))
}

/// Every `bindings` object in the document with the kind of object it belongs to.
fn collect<'a>(root: &'a Node, version: SpecVersion, out: &mut Vec<(Kind, &'a Node, String)>) {
    let mut stack: Vec<(Kind, &'a Node, String)> = Vec::new();
    let each =
        |node: Option<&'a Node>, p: &str, kind: Kind, stack: &mut Vec<(Kind, &'a Node, String)>| {
            for (k, v) in node
                .map(|n| n.entries().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                stack.push((kind, v, ptr(p, &k.name)));
            }
        };
    each(root.get("servers"), "/servers", Kind::Server, &mut stack);
    each(root.get("channels"), "/channels", Kind::Channel, &mut stack);
    if version.is_v3() {
        each(
            root.get("operations"),
            "/operations",
            Kind::Operation,
            &mut stack,
        );
    }
    if let Some(components) = root.get("components") {
        for (section, kind) in [
            ("servers", Kind::Server),
            ("channels", Kind::Channel),
            ("operations", Kind::Operation),
            ("messages", Kind::Message),
            ("operationTraits", Kind::Operation),
            ("messageTraits", Kind::Message),
        ] {
            each(
                components.get(section),
                &format!("/components/{section}"),
                kind,
                &mut stack,
            );
        }
        for (section, kind) in [
            ("serverBindings", Kind::Server),
            ("channelBindings", Kind::Channel),
            ("operationBindings", Kind::Operation),
            ("messageBindings", Kind::Message),
        ] {
            for (k, v) in components
                .get(section)
                .map(|n| n.entries().collect::<Vec<_>>())
                .unwrap_or_default()
            {
                out.push((kind, v, ptr(&format!("/components/{section}"), &k.name)));
            }
        }
    }
    while let Some((kind, node, pointer)) = stack.pop() {
        if node.as_map().is_none() {
            continue;
        }
        if let Some(b) = node.get("bindings") {
            out.push((kind, b, ptr(&pointer, "bindings")));
        }
        if let Some(traits) = node.get("traits").and_then(Node::as_seq) {
            for (i, t) in traits.iter().enumerate() {
                stack.push((kind, t, format!("{pointer}/traits/{i}")));
            }
        }
        match kind {
            Kind::Channel if version.is_v3() => {
                each(
                    node.get("messages"),
                    &ptr(&pointer, "messages"),
                    Kind::Message,
                    &mut stack,
                );
            }
            Kind::Channel => {
                for verb in ["publish", "subscribe"] {
                    if let Some(op) = node.get(verb) {
                        stack.push((Kind::Operation, op, ptr(&pointer, verb)));
                    }
                }
            }
            Kind::Operation if !version.is_v3() => {
                if let Some(message) = node.get("message") {
                    let mp = ptr(&pointer, "message");
                    match message.get("oneOf").and_then(Node::as_seq) {
                        Some(alternatives) => {
                            for (i, m) in alternatives.iter().enumerate() {
                                stack.push((Kind::Message, m, format!("{mp}/oneOf/{i}")));
                            }
                        }
                        None => stack.push((Kind::Message, message, mp)),
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vendored_binding_schema_compiles() {
        let bundle: BTreeMap<String, Value> = serde_json::from_str(BUNDLE).unwrap();
        let compiled: usize = catalogue().values().map(BTreeMap::len).sum();
        assert_eq!(compiled, bundle.len());
        assert!(compiled >= 60);
    }

    #[test]
    fn versions_order_numerically() {
        assert!(Version::parse("0.10.0") > Version::parse("0.9.0"));
        let ws = &catalogue()[&("websockets".to_string(), "channel")];
        assert_eq!(ws.keys().next_back().unwrap().1, "0.1.0");
    }
}
