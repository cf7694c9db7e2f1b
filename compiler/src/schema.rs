//! Validation against the official AsyncAPI JSON Schemas, with errors people can act on.
//!
//! The schemas are vendored from `@asyncapi/specs` (see `compiler/schemas/README.md`), compiled once
//! per version on first use and shared. Raw JSON Schema errors are poor diagnostics: a bad channel is
//! reported as "not valid under any of the schemas listed in oneOf". [`validate`] prunes each
//! `oneOf`/`anyOf` failure down to the branch that matched best (see [`branch_score`]) and reports
//! that branch's own errors, at the exact key or value they concern.

use std::sync::OnceLock;

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::ValidationError;
use serde_json::Value;

use crate::diagnostics::{clip, Diagnostic};
use crate::source::Node;
use crate::suggest::closest;

/// The AsyncAPI versions the compiler accepts.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SpecVersion {
    V2_0,
    V2_1,
    V2_2,
    V2_3,
    V2_4,
    V2_5,
    V2_6,
    V3_0,
    V3_1,
}

impl SpecVersion {
    pub const ALL: [SpecVersion; 9] = [
        SpecVersion::V2_0,
        SpecVersion::V2_1,
        SpecVersion::V2_2,
        SpecVersion::V2_3,
        SpecVersion::V2_4,
        SpecVersion::V2_5,
        SpecVersion::V2_6,
        SpecVersion::V3_0,
        SpecVersion::V3_1,
    ];

    /// Parses the `asyncapi` field. Pre-releases of an accepted version (`2.0.0-rc2`) count as it.
    pub fn parse(text: &str) -> Option<SpecVersion> {
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let (major, minor, patch) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || patch.parse::<u32>().is_err() {
            return None;
        }
        Some(match (major, minor) {
            ("2", "0") => SpecVersion::V2_0,
            ("2", "1") => SpecVersion::V2_1,
            ("2", "2") => SpecVersion::V2_2,
            ("2", "3") => SpecVersion::V2_3,
            ("2", "4") => SpecVersion::V2_4,
            ("2", "5") => SpecVersion::V2_5,
            ("2", "6") => SpecVersion::V2_6,
            ("3", "0") => SpecVersion::V3_0,
            ("3", "1") => SpecVersion::V3_1,
            _ => return None,
        })
    }

    pub fn is_v3(self) -> bool {
        self >= SpecVersion::V3_0
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V2_0 => "2.0.0",
            SpecVersion::V2_1 => "2.1.0",
            SpecVersion::V2_2 => "2.2.0",
            SpecVersion::V2_3 => "2.3.0",
            SpecVersion::V2_4 => "2.4.0",
            SpecVersion::V2_5 => "2.5.0",
            SpecVersion::V2_6 => "2.6.0",
            SpecVersion::V3_0 => "3.0.0",
            SpecVersion::V3_1 => "3.1.0",
        }
    }

    fn schema_text(self) -> &'static str {
        match self {
            SpecVersion::V2_0 => include_str!("../schemas/2.0.0.json"),
            SpecVersion::V2_1 => include_str!("../schemas/2.1.0.json"),
            SpecVersion::V2_2 => include_str!("../schemas/2.2.0.json"),
            SpecVersion::V2_3 => include_str!("../schemas/2.3.0.json"),
            SpecVersion::V2_4 => include_str!("../schemas/2.4.0.json"),
            SpecVersion::V2_5 => include_str!("../schemas/2.5.0.json"),
            SpecVersion::V2_6 => include_str!("../schemas/2.6.0.json"),
            SpecVersion::V3_0 => include_str!("../schemas/3.0.0.json"),
            SpecVersion::V3_1 => include_str!("../schemas/3.1.0.json"),
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

struct Compiled {
    schema: Value,
    validator: jsonschema::Validator,
}

fn compiled(version: SpecVersion) -> &'static Compiled {
    static CACHE: [OnceLock<Compiled>; 9] = [const { OnceLock::new() }; 9];
    CACHE[version.index()].get_or_init(|| {
        let schema: Value =
            serde_json::from_str(version.schema_text()).expect("vendored schema is valid JSON");
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft7)
            .should_validate_formats(true)
            .build(&schema)
            .expect("vendored schema compiles");
        Compiled { schema, validator }
    })
}

/// Validates a resolved document against its version's schema, pushing pruned diagnostics.
pub fn validate(doc: &Node, version: SpecVersion, diags: &mut Vec<Diagnostic>) {
    let compiled = compiled(version);
    let mut instance = doc.to_json();
    // A pre-release (`2.0.0-rc2`) is validated as its release; the schema's `const` would refuse it.
    if let Some(v) = instance.get_mut("asyncapi") {
        *v = Value::String(version.as_str().to_string());
    }
    if version.is_v3() {
        restore_v3_references(&mut instance);
    }
    report(
        &errors_of(&compiled.validator, &instance),
        doc,
        "",
        &compiled.schema,
        "schema",
        &ASYNCAPI,
        diags,
    );
}

/// AsyncAPI 3's schema demands a Reference Object (not an inlined object) for an operation's
/// `channel` and `messages`, a reply's, and a channel's `servers`. Validation runs on the resolved
/// document (so that referenced files are checked too), so those places get a `$ref` back; their
/// targets are validated where they are defined.
fn restore_v3_references(instance: &mut Value) {
    // Distinct placeholders: lists such as a channel's `servers` must keep unique items.
    fn placeholder(i: usize) -> Value {
        serde_json::json!({ "$ref": format!("#/resolved-by-portico/{i}") })
    }
    fn fix_list(holder: &mut Value, key: &str) {
        if let Some(Value::Array(items)) = holder.get_mut(key) {
            for (i, item) in items.iter_mut().enumerate() {
                *item = placeholder(i);
            }
        }
    }
    fn fix_reply(reply: &mut Value) {
        if reply.get("$ref").is_some() {
            return;
        }
        if let Some(c) = reply.get_mut("channel") {
            *c = placeholder(0);
        }
        fix_list(reply, "messages");
    }
    fn fix_operation(op: &mut Value) {
        if let Some(c) = op.get_mut("channel") {
            *c = placeholder(0);
        }
        fix_list(op, "messages");
        if let Some(reply) = op.get_mut("reply") {
            fix_reply(reply);
        }
    }
    fn fix_channel(channel: &mut Value) {
        fix_list(channel, "servers");
    }
    fn each(v: Option<&mut Value>, f: fn(&mut Value)) {
        if let Some(Value::Object(map)) = v {
            map.values_mut().for_each(f);
        }
    }
    each(instance.get_mut("operations"), fix_operation);
    each(instance.get_mut("channels"), fix_channel);
    if let Some(components) = instance.get_mut("components") {
        each(components.get_mut("operations"), fix_operation);
        each(components.get_mut("replies"), fix_reply);
        each(components.get_mut("channels"), fix_channel);
    }
}

/// Validates `node` (found at `prefix` in its document) against a schema of our own, such as the
/// `x-gateway` extension's, reporting under `code`.
pub fn validate_extension(
    node: &Node,
    prefix: &str,
    schema: &Value,
    validator: &jsonschema::Validator,
    code: &'static str,
    diags: &mut Vec<Diagnostic>,
) {
    report(
        &errors_of(validator, &node.to_json()),
        node,
        prefix,
        schema,
        code,
        &Vocabulary {
            root: "`x-gateway`",
            owner: "Portico",
        },
        diags,
    );
}

/// Validates a binding object's value (found at `prefix`) against its vendored binding schema.
pub fn validate_binding(
    node: &Node,
    prefix: &str,
    schema: &Value,
    validator: &jsonschema::Validator,
    code: &'static str,
    diags: &mut Vec<Diagnostic>,
) {
    report(
        &errors_of(validator, &node.to_json()),
        node,
        prefix,
        schema,
        code,
        &Vocabulary {
            root: "the binding",
            owner: "AsyncAPI",
        },
        diags,
    );
}

fn report(
    errors: &[ValidationError<'static>],
    doc: &Node,
    prefix: &str,
    schema: &Value,
    code: &'static str,
    vocabulary: &Vocabulary,
    diags: &mut Vec<Diagnostic>,
) {
    let mut leaves = Vec::new();
    for error in errors {
        prune(error, &mut leaves);
    }
    let mut seen = std::collections::HashSet::new();
    for leaf in leaves {
        let mut d = describe(leaf, doc, schema, vocabulary);
        d.code = code;
        d.pointer = format!("{prefix}{}", d.pointer);
        if seen.insert((d.pointer.clone(), d.message.clone())) {
            diags.push(d);
        }
    }
}

/// Every error of `instance`, owned (they borrow the instance otherwise).
fn errors_of(validator: &jsonschema::Validator, instance: &Value) -> Vec<ValidationError<'static>> {
    validator
        .iter_errors(instance)
        .map(ValidationError::to_owned)
        .collect()
}

/// Flattens an error into the leaf errors worth showing, descending into the best `oneOf`/`anyOf`
/// branch instead of reporting the combinator itself.
fn prune<'e>(error: &'e ValidationError<'static>, out: &mut Vec<&'e ValidationError<'static>>) {
    match error.kind() {
        ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } => {
            let base = depth(error.instance_path().as_str());
            let best = context
                .iter()
                .filter(|branch| !branch.is_empty())
                .max_by_key(|branch| branch_score(branch, base));
            match best {
                Some(branch) => {
                    for e in branch {
                        prune(e, out);
                    }
                }
                None => out.push(error),
            }
        }
        _ => out.push(error),
    }
}

fn depth(pointer: &str) -> usize {
    pointer.matches('/').count()
}

/// How well a failed branch matched the instance: higher is better. A branch whose errors are
/// deeper inside the instance got further; a wrong type or a missing `$ref` at the instance itself
/// means the branch was never meant.
fn branch_score(
    branch: &[ValidationError<'static>],
    base: usize,
) -> (usize, usize, std::cmp::Reverse<usize>) {
    let rank = |e: &ValidationError<'static>| -> usize {
        let d = depth(e.instance_path().as_str());
        if d > base {
            return 10 + d - base;
        }
        match e.kind() {
            ValidationErrorKind::Type { .. } => 0,
            ValidationErrorKind::Constant { .. } | ValidationErrorKind::Enum { .. } => 1,
            ValidationErrorKind::Required { property } if property.as_str() == Some("$ref") => 2,
            ValidationErrorKind::Required { .. } => 3,
            ValidationErrorKind::FalseSchema | ValidationErrorKind::Not { .. } => 3,
            _ => 5,
        }
    };
    let min = branch.iter().map(rank).min().unwrap_or(0);
    let max = branch.iter().map(rank).max().unwrap_or(0);
    (min, max, std::cmp::Reverse(branch.len()))
}

pub(crate) fn type_name(kind: &TypeKind) -> String {
    match kind {
        TypeKind::Single(t) => format!("{t:?}").to_lowercase(),
        TypeKind::Multiple(ts) => {
            let names: Vec<String> = ts.iter().map(|t| format!("{t:?}").to_lowercase()).collect();
            names.join(" or ")
        }
    }
}

fn value_preview(v: &Value) -> String {
    clip(&v.to_string(), 200)
}

/// The last token of a pointer, as the user wrote the key.
fn last_name(pointer: &str) -> String {
    pointer
        .rsplit('/')
        .next()
        .map(crate::source::unescape_pointer_token)
        .unwrap_or_default()
}

/// Properties a schema location allows, for "did you mean" on unknown keys.
fn allowed_properties(schema: &Value, keyword_path: &str) -> Vec<String> {
    let parent = keyword_path.rsplit_once('/').map(|(p, _)| p).unwrap_or("");
    schema
        .pointer(parent)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|props| props.keys().cloned().collect())
        .unwrap_or_default()
}

/// How messages name the validated thing and whose schema it is.
pub struct Vocabulary {
    /// What the root is called (`the document`, `` `x-gateway` ``).
    pub root: &'static str,
    /// Who defines the schema (`AsyncAPI`, `Portico`).
    pub owner: &'static str,
}

const ASYNCAPI: Vocabulary = Vocabulary {
    root: "the document",
    owner: "AsyncAPI",
};

fn describe(
    error: &ValidationError<'static>,
    doc: &Node,
    schema: &Value,
    vocabulary: &Vocabulary,
) -> Diagnostic {
    let owner = vocabulary.owner;
    let pointer = error.instance_path().as_str().to_string();
    let node = doc.pointer(&pointer).unwrap_or(doc);
    let here = if pointer.is_empty() {
        vocabulary.root.to_string()
    } else {
        format!("`{}`", last_name(&pointer))
    };
    let mut span = node.span;
    let mut pointer_override = None;
    let (message, help) = match error.kind() {
        ValidationErrorKind::AdditionalProperties { unexpected } => {
            let name = unexpected.first().cloned().unwrap_or_default();
            let child = format!("{pointer}/{}", crate::source::escape_pointer_token(&name));
            if let Some(key_span) = doc.pointer_key_span(&child) {
                span = key_span;
            }
            pointer_override = Some(child);
            let allowed = allowed_properties(schema, error.schema_path().as_str());
            let help = match closest(&name, allowed.iter().map(String::as_str)) {
                Some(best) => format!("did you mean `{best}`?"),
                None if !allowed.is_empty() => format!(
                    "allowed here: {} (and extensions starting with `x-`)",
                    allowed.iter().map(|a| format!("`{a}`")).collect::<Vec<_>>().join(", ")
                ),
                None => "remove it, or prefix it with `x-` to make it a specification extension".into(),
            };
            let message = if unexpected.len() > 1 {
                format!(
                    "{here} has properties {owner} does not define: {}",
                    unexpected.iter().map(|u| format!("`{u}`")).collect::<Vec<_>>().join(", ")
                )
            } else {
                format!("{here} has a property {owner} does not define: `{name}`")
            };
            (message, help)
        }
        ValidationErrorKind::Required { property } => {
            if let Some(key_span) = doc.pointer_key_span(&pointer) {
                span = key_span;
            }
            let name = property.as_str().unwrap_or_default();
            (
                format!("{here} is missing the required property `{name}`"),
                format!("add `{name}` to {here}"),
            )
        }
        ValidationErrorKind::Type { kind } => (
            format!("{here} must be of type {}, not {}", type_name(kind), node.type_name()),
            format!("write {here} as {}", type_name(kind)),
        ),
        ValidationErrorKind::Enum { options } => (
            format!("{here} is {}, which is not one of the allowed values", value_preview(&node.to_json())),
            format!("use one of: {}", value_preview(options)),
        ),
        ValidationErrorKind::Constant { expected_value } => (
            format!("{here} must be {}", value_preview(expected_value)),
            format!("set it to {}", value_preview(expected_value)),
        ),
        ValidationErrorKind::Format { format } => (
            format!("{here} is not a valid {format}: {}", value_preview(&node.to_json())),
            format!("write a valid {format}"),
        ),
        ValidationErrorKind::Pattern { pattern } => (
            format!("{here} ({}) does not match the required pattern `{pattern}`", value_preview(&node.to_json())),
            "change the value to match the pattern".into(),
        ),
        ValidationErrorKind::PropertyNames { error } => {
            let bad = error.instance().as_str().unwrap_or_default().to_string();
            let child = format!("{pointer}/{}", crate::source::escape_pointer_token(&bad));
            if let Some(key_span) = doc.pointer_key_span(&child) {
                span = key_span;
            }
            (
                format!("the key `{bad}` in {here} is not an allowed name: {}", strip_instance(&error.to_string())),
                "rename the key".into(),
            )
        }
        ValidationErrorKind::UniqueItems => (
            format!("{here} has duplicate items"),
            "remove the repeated entries".into(),
        ),
        ValidationErrorKind::OneOfMultipleValid { .. } => (
            format!("{here} matches more than one of the shapes AsyncAPI allows here, so its meaning is ambiguous"),
            "remove the fields that make it fit several shapes".into(),
        ),
        ValidationErrorKind::OneOfNotValid { .. } | ValidationErrorKind::AnyOf { .. } => (
            format!("{here} does not match any of the shapes AsyncAPI allows here"),
            format!("compare it with the {owner} specification for this object"),
        ),
        _ => (
            format!("{here}: {}", strip_instance(&error.to_string())),
            format!("see the {owner} specification for this field"),
        ),
    };
    Diagnostic::error("schema", message)
        .with_help(help)
        .at(span, pointer_override.unwrap_or(pointer))
}

/// jsonschema's messages start with the whole instance; keep them short.
fn strip_instance(message: &str) -> String {
    clip(message, 160)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(SpecVersion::parse("2.6.0"), Some(SpecVersion::V2_6));
        assert_eq!(SpecVersion::parse("2.0.0-rc2"), Some(SpecVersion::V2_0));
        assert_eq!(SpecVersion::parse("3.1.0"), Some(SpecVersion::V3_1));
        assert_eq!(SpecVersion::parse("1.2.0"), None);
        assert_eq!(SpecVersion::parse("3.0"), None);
    }

    #[test]
    fn every_vendored_schema_compiles() {
        for v in SpecVersion::ALL {
            compiled(v);
        }
    }
}
