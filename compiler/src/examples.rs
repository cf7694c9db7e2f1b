//! Plausible example values for JSON Schemas: what the docs show when a message has no example, and
//! the plan's `generatedExample`, which the runtime's `mock:` backend plays.
//!
//! ```
//! use portico_compiler::examples::from_schema;
//! use serde_json::json;
//! let schema = json!({"type": "object", "properties": {"n": {"type": "integer", "minimum": 3}}});
//! assert_eq!(from_schema(&schema), json!({"n": 3}));
//! ```

use serde_json::{json, Map, Value};

/// Deepest nesting followed; below it the value is `null` (recursive schemas end there).
const MAX_DEPTH: usize = 8;

/// A plausible value for a JSON Schema: the first `const`, `default`, `examples` or `enum` value;
/// else one built from the type (objects get all their properties, arrays one item).
pub fn from_schema(schema: &Value) -> Value {
    from_schema_at_depth(schema, 0)
}

/// [`from_schema`] for a schema found `depth` levels deep inside another.
fn from_schema_at_depth(schema: &Value, depth: usize) -> Value {
    // Past the depth limit, or a `$ref` left unresolved because it is recursive: nothing to build.
    if depth > MAX_DEPTH || schema.get("$ref").is_some() {
        return Value::Null;
    }
    for key in ["const", "default"] {
        if let Some(v) = schema.get(key) {
            return v.clone();
        }
    }
    if let Some(v) = schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return v.clone();
    }
    if let Some(v) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return v.clone();
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = schema
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
        {
            if key == "allOf" {
                let mut merged = Map::new();
                for part in schema[key].as_array().into_iter().flatten() {
                    if let Value::Object(o) = from_schema_at_depth(part, depth + 1) {
                        merged.extend(o);
                    }
                }
                return Value::Object(merged);
            }
            return from_schema_at_depth(first, depth + 1);
        }
    }
    let ty = match schema.get("type") {
        Some(Value::String(t)) => t.as_str(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("null"),
        _ if schema.get("properties").is_some() => "object",
        _ => "string",
    };
    match ty {
        "object" => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (name, sub) in props {
                    out.insert(name.clone(), from_schema_at_depth(sub, depth + 1));
                }
            }
            Value::Object(out)
        }
        "array" => {
            let item = schema
                .get("items")
                .map(|i| from_schema_at_depth(i, depth + 1))
                .unwrap_or(Value::Null);
            Value::Array(vec![item])
        }
        "integer" => json!(schema.get("minimum").and_then(Value::as_i64).unwrap_or(0)),
        "number" => json!(schema.get("minimum").and_then(Value::as_f64).unwrap_or(0.0)),
        "boolean" => json!(true),
        "null" => Value::Null,
        _ => match schema.get("format").and_then(Value::as_str) {
            Some("date-time") => json!("2024-01-01T00:00:00Z"),
            Some("date") => json!("2024-01-01"),
            Some("email") => json!("user@example.com"),
            Some("uri") => json!("https://example.com/"),
            Some("uuid") => json!("00000000-0000-4000-8000-000000000000"),
            _ => json!("string"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_examples_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "user": {"type": "string"},
                "n": {"type": "integer", "minimum": 3},
                "kind": {"enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": "string", "format": "email"}},
                "at": {"type": "string", "format": "date-time"},
                "both": {"allOf": [
                    {"properties": {"a": {"const": 1}}},
                    {"properties": {"b": {"type": "boolean"}}}
                ]}
            }
        });
        assert_eq!(
            from_schema(&schema),
            json!({"user": "string", "n": 3, "kind": "a", "tags": ["user@example.com"],
                   "at": "2024-01-01T00:00:00Z", "both": {"a": 1, "b": true}})
        );
    }

    #[test]
    fn recursion_ends() {
        let schema = json!({"type": "object", "properties": {"next": {"$ref": "#"}}});
        assert_eq!(from_schema(&schema), json!({"next": null}));
        let mut deep = json!({"type": "integer"});
        for _ in 0..20 {
            deep = json!({"type": "array", "items": deep});
        }
        let mut v = &from_schema(&deep);
        let mut levels = 0;
        while let Some(inner) = v.as_array().and_then(|a| a.first()) {
            v = inner;
            levels += 1;
        }
        assert_eq!(levels, MAX_DEPTH + 1);
        assert!(v.is_null());
    }
}
