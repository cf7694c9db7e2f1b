//! JSON Schemas as tables: one row per field (`user.tags[].k`), with a readable type and its
//! constraints; choices (`oneOf`/`anyOf`) as alternatives. Bounded in rows and depth.

use std::fmt::Write as _;

use serde_json::Value;

use super::api_view::value_text;
use super::view::{AlternativeView, Constraint, FieldRow, PayloadView};

/// Most rows a payload table gets (a huge schema is summarised, not dumped).
pub(super) const MAX_ROWS: usize = 400;

/// Deepest nesting a payload table follows.
pub(super) const MAX_DEPTH: usize = 8;

/// `properties`/`required` of a schema with its `allOf` parts merged in.
pub(super) fn merged_object(schema: &Value) -> (Vec<(String, Value)>, Vec<String>) {
    let mut props: Vec<(String, Value)> = Vec::new();
    let mut required: Vec<String> = Vec::new();
    fn add(
        schema: &Value,
        props: &mut Vec<(String, Value)>,
        required: &mut Vec<String>,
        depth: usize,
    ) {
        if depth > 8 {
            return;
        }
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            for (k, v) in p {
                match props.iter_mut().find(|(n, _)| n == k) {
                    Some(existing) => existing.1 = v.clone(),
                    None => props.push((k.clone(), v.clone())),
                }
            }
        }
        for r in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !required.iter().any(|x| x == r) {
                required.push(r.to_string());
            }
        }
        for part in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            add(part, props, required, depth + 1);
        }
    }
    add(schema, &mut props, &mut required, 0);
    (props, required)
}

pub(super) fn is_objectish(schema: &Value) -> bool {
    !merged_object(schema).0.is_empty()
}

pub(super) fn choice(schema: &Value) -> Option<(&'static str, &Vec<Value>)> {
    for key in ["oneOf", "anyOf"] {
        if let Some(list) = schema.get(key).and_then(Value::as_array) {
            if !list.is_empty() {
                return Some((key, list));
            }
        }
    }
    None
}

pub(super) fn payload_view(schema: &Value) -> PayloadView {
    let mut truncated = false;
    if let Some((kind, list)) = choice(schema) {
        let alternatives = list
            .iter()
            .enumerate()
            .map(|(i, alt)| {
                let mut rows = Vec::new();
                root_rows(alt, &mut rows, &mut truncated);
                AlternativeView {
                    label: alternative_label(alt, i),
                    rows,
                }
            })
            .collect();
        // Properties shared by every alternative may sit next to the `oneOf`.
        let mut rows = Vec::new();
        if is_objectish(schema) {
            flatten_object(schema, "", 0, &mut rows, &mut truncated);
        }
        return PayloadView {
            r#type: type_label(schema),
            rows,
            alternatives,
            choice: Some(kind),
            truncated,
        };
    }
    let mut rows = Vec::new();
    root_rows(schema, &mut rows, &mut truncated);
    PayloadView {
        r#type: type_label(schema),
        rows,
        alternatives: Vec::new(),
        choice: None,
        truncated,
    }
}

pub(super) fn alternative_label(schema: &Value, i: usize) -> String {
    let named = schema
        .get("title")
        .or_else(|| schema.get("$id"))
        .or_else(|| schema.get("name"))
        .and_then(Value::as_str);
    match named {
        Some(n) => format!("Option {}: {n}", i + 1),
        None => format!("Option {}: {}", i + 1, type_label(schema)),
    }
}

/// Rows for a whole payload: its properties, or one row for a non-object payload.
pub(super) fn root_rows(schema: &Value, rows: &mut Vec<FieldRow>, truncated: &mut bool) {
    if is_objectish(schema) {
        flatten_object(schema, "", 0, rows, truncated);
    } else {
        rows.push(FieldRow {
            path: "(payload)".into(),
            depth: 0,
            r#type: type_label(schema),
            required: true,
            description: schema
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_string),
            constraints: constraints(schema),
        });
        if let Some(items) = schema.get("items") {
            if is_objectish(items) {
                flatten_object(items, "[].", 1, rows, truncated);
            }
        }
    }
}

pub(super) fn flatten_object(
    schema: &Value,
    prefix: &str,
    depth: usize,
    rows: &mut Vec<FieldRow>,
    truncated: &mut bool,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let (props, required) = merged_object(schema);
    for (name, sub) in props {
        if rows.len() >= MAX_ROWS {
            *truncated = true;
            return;
        }
        let path = format!("{prefix}{name}");
        rows.push(FieldRow {
            path: path.clone(),
            depth,
            r#type: type_label(&sub),
            required: required.contains(&name),
            description: sub
                .get("description")
                .or_else(|| sub.get("title"))
                .and_then(Value::as_str)
                .map(str::to_string),
            constraints: constraints(&sub),
        });
        nested_rows(&sub, &path, depth + 1, rows, truncated);
    }
}

/// Rows below a field: its properties (`a.b`), its items' properties (`a[].b`), or its
/// alternatives' properties.
pub(super) fn nested_rows(
    sub: &Value,
    path: &str,
    depth: usize,
    rows: &mut Vec<FieldRow>,
    truncated: &mut bool,
) {
    if is_objectish(sub) {
        flatten_object(sub, &format!("{path}."), depth, rows, truncated);
    } else if let Some(items) = sub.get("items") {
        if is_objectish(items) {
            flatten_object(items, &format!("{path}[]."), depth, rows, truncated);
        }
    }
    if let Some((_, list)) = choice(sub) {
        for (i, alt) in list.iter().enumerate() {
            if is_objectish(alt) {
                let start = rows.len();
                flatten_object(alt, &format!("{path}."), depth, rows, truncated);
                for row in &mut rows[start..] {
                    row.constraints.insert(
                        0,
                        Constraint {
                            label: format!("only in option {}", i + 1),
                            values: Vec::new(),
                        },
                    );
                }
            }
        }
    }
}

/// `string`, `integer or null`, `array of string`, `one of: string | object`, ...
pub(super) fn type_label(schema: &Value) -> String {
    type_label_at(schema, 0)
}

pub(super) fn type_label_at(schema: &Value, depth: usize) -> String {
    if depth > 4 {
        return "…".into();
    }
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return format!("recursive ({r})");
    }
    if let Some((kind, list)) = choice(schema) {
        let parts: Vec<String> = list
            .iter()
            .map(|s| match s.get("title").and_then(Value::as_str) {
                Some(title) => title.to_string(),
                None => type_label_at(s, depth + 1),
            })
            .collect();
        let word = if kind == "oneOf" { "one of" } else { "any of" };
        return format!("{word}: {}", parts.join(" | "));
    }
    let base = match schema.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(" or "),
        _ => {
            if is_objectish(schema) {
                "object".into()
            } else if schema.get("items").is_some() {
                "array".into()
            } else if let Some(v) = schema.get("const") {
                json_type(v).into()
            } else if let Some(first) = schema
                .get("enum")
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                json_type(first).into()
            } else {
                "any".into()
            }
        }
    };
    let mut label = if base == "array" {
        match schema.get("items") {
            Some(items) if items.is_object() => {
                format!("array of {}", type_label_at(items, depth + 1))
            }
            _ => base,
        }
    } else {
        base
    };
    if let Some(f) = schema.get("format").and_then(Value::as_str) {
        let _ = write!(label, " ({f})");
    }
    if schema.get("nullable").and_then(Value::as_bool) == Some(true) {
        label.push_str(" or null");
    }
    label
}

pub(super) fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

pub(super) fn constraints(schema: &Value) -> Vec<Constraint> {
    let mut out = Vec::new();
    let mut add = |label: &str, values: Vec<String>| {
        out.push(Constraint {
            label: label.to_string(),
            values,
        })
    };
    if let Some(list) = schema.get("enum").and_then(Value::as_array) {
        add("one of", list.iter().map(value_text).collect());
    }
    if let Some(v) = schema.get("const") {
        add("always", vec![value_text(v)]);
    }
    if let Some(v) = schema.get("default") {
        add("default", vec![value_text(v)]);
    }
    if let Some(v) = schema.get("pattern").and_then(Value::as_str) {
        add("pattern", vec![v.to_string()]);
    }
    for (key, label) in [
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("minimum", "≥"),
        ("exclusiveMinimum", ">"),
        ("maximum", "≤"),
        ("exclusiveMaximum", "<"),
        ("multipleOf", "multiple of"),
        ("minItems", "min items"),
        ("maxItems", "max items"),
        ("minProperties", "min fields"),
        ("maxProperties", "max fields"),
    ] {
        if let Some(v) = schema.get(key).filter(|v| v.is_number()) {
            add(label, vec![v.to_string()]);
        }
    }
    if schema.get("uniqueItems").and_then(Value::as_bool) == Some(true) {
        add("unique items", Vec::new());
    }
    if schema.get("additionalProperties") == Some(&Value::Bool(false)) {
        add("no other fields", Vec::new());
    }
    if let Some(not) = schema.get("not") {
        add("must not be", vec![type_label(not)]);
    }
    if schema.get("deprecated").and_then(Value::as_bool) == Some(true) {
        add("deprecated", Vec::new());
    }
    let mut examples: Vec<String> = schema
        .get("examples")
        .and_then(Value::as_array)
        .map(|a| a.iter().take(3).map(value_text).collect())
        .unwrap_or_default();
    if let Some(e) = schema.get("example") {
        examples.push(value_text(e));
    }
    if !examples.is_empty() {
        add("e.g.", examples);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn payload_tables_flatten_nested_objects_and_alternatives() {
        let schema = json!({
            "type": "object",
            "required": ["user"],
            "properties": {
                "user": {"type": "object", "required": ["id"], "properties": {
                    "id": {"type": "string", "format": "uuid"},
                    "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}}
                }},
                "n": {"type": "integer", "minimum": 1, "maximum": 9},
                "kind": {"oneOf": [{"type": "string"}, {"type": "object", "properties": {"x": {"type": "number"}}}]}
            }
        });
        let view = payload_view(&schema);
        let paths: Vec<&str> = view.rows.iter().map(|r| r.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "user",
                "user.id",
                "user.tags",
                "user.tags[].k",
                "n",
                "kind",
                "kind.x"
            ]
        );
        assert!(view.rows[0].required && view.rows[1].required && !view.rows[2].required);
        assert_eq!(view.rows[1].r#type, "string (uuid)");
        assert_eq!(view.rows[2].r#type, "array of object");
        assert_eq!(view.rows[5].r#type, "one of: string | object");
        assert_eq!(view.rows[6].constraints[0].label, "only in option 2");
        let one_of = payload_view(&json!({"oneOf": [
            {"title": "Ping", "type": "object", "properties": {"op": {"const": "ping"}}},
            {"type": "string"}
        ]}));
        assert_eq!(one_of.choice, Some("oneOf"));
        assert_eq!(one_of.alternatives[0].label, "Option 1: Ping");
        assert_eq!(one_of.alternatives[1].rows[0].path, "(payload)");
    }
}
