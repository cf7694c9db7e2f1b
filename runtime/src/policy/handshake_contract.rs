//! The ws channel binding's handshake contract (AsyncAPI `bindings.ws.query` and `.headers`):
//! what a client must put in its handshake request, checked before any backend is contacted.
//!
//! The schemas are compiled once per plan. Query parameters and header values arrive as text, so
//! each declared property is converted to the type its schema names (`integer`, `number`,
//! `boolean`; repeated query parameters for `array`) before validation; a value that does not
//! convert stays text and fails the schema's `type`. Only declared properties are validated:
//! ordinary headers (`Host`, `Upgrade`, …) are not the contract's business. A failure is a 400
//! naming the failing JSON pointer and keyword, never the value (a header may carry a secret).
//!
//! `$ref`s were resolved by the compiler; remote references cannot be fetched (the `jsonschema`
//! crate is built without its HTTP and file resolvers).

use serde_json::{Map, Value};

use crate::http::RequestHead;
use crate::refusal::Refusal;

/// One part of the contract (query or headers), ready to check.
struct Part {
    validator: jsonschema::Validator,
    /// Declared property names with the JSON type each value converts to.
    properties: Vec<(String, Conversion)>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Conversion {
    Text,
    Integer,
    Number,
    Boolean,
    List,
}

/// A route's compiled handshake contract.
pub struct HandshakeContract {
    query: Option<Part>,
    headers: Option<Part>,
}

impl HandshakeContract {
    /// Compiles the plan's schemas; an error names the part that does not compile.
    pub fn compile(
        plan: &portico_compiler::plan::HandshakeContract,
    ) -> Result<HandshakeContract, String> {
        let part = |name: &str, schema: &Option<Value>| -> Result<Option<Part>, String> {
            let Some(schema) = schema else {
                return Ok(None);
            };
            let validator = jsonschema::options()
                .build(schema)
                .map_err(|e| format!("the ws binding's `{name}` schema does not compile: {e}"))?;
            let properties = schema
                .get("properties")
                .and_then(Value::as_object)
                .map(|props| {
                    props
                        .iter()
                        .map(|(k, s)| (k.clone(), conversion(s)))
                        .collect()
                })
                .unwrap_or_default();
            Ok(Some(Part {
                validator,
                properties,
            }))
        };
        Ok(HandshakeContract {
            query: part("query", &plan.query)?,
            headers: part("headers", &plan.headers)?,
        })
    }

    /// Refuses (400) a handshake that does not meet the contract.
    pub fn check(&self, head: &RequestHead) -> Result<(), Refusal> {
        if let Some(part) = &self.query {
            let pairs: Vec<(String, String)> =
                url::form_urlencoded::parse(head.query.as_deref().unwrap_or("").as_bytes())
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect();
            let instance = part.instance(|name| {
                pairs
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v.as_str())
                    .collect()
            });
            part.check("query parameter", "/query", &instance)?;
        }
        if let Some(part) = &self.headers {
            let instance = part.instance(|name| {
                head.headers
                    .iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_str())
                    .collect()
            });
            part.check("header", "/headers", &instance)?;
        }
        Ok(())
    }
}

impl Part {
    /// The JSON object the schema validates: declared names only, values converted.
    fn instance<'a>(&self, values_of: impl Fn(&str) -> Vec<&'a str>) -> Value {
        let mut object = Map::new();
        for (name, conversion) in &self.properties {
            let values = values_of(name);
            let Some(first) = values.first() else {
                continue;
            };
            let value = match conversion {
                Conversion::List => Value::Array(values.iter().map(|v| Value::from(*v)).collect()),
                Conversion::Integer => first
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::from(*first)),
                Conversion::Number => first
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(Value::from)
                    .unwrap_or_else(|| Value::from(*first)),
                Conversion::Boolean => match *first {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    other => Value::from(other),
                },
                Conversion::Text => Value::from(*first),
            };
            object.insert(name.clone(), value);
        }
        Value::Object(object)
    }

    fn check(&self, what: &str, root: &str, instance: &Value) -> Result<(), Refusal> {
        let Err(error) = self.validator.validate(instance) else {
            return Ok(());
        };
        let text = match error.kind() {
            jsonschema::error::ValidationErrorKind::Required { property } => format!(
                "the handshake lacks the required {what} {} (at {root})",
                property
            ),
            _ => format!(
                "the {what} at {root}{} does not meet the channel's ws binding (`{}`)",
                error.instance_path().as_str(),
                error.kind().keyword()
            ),
        };
        Err(Refusal::new(400, text))
    }
}

fn conversion(schema: &Value) -> Conversion {
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.contains(&"string") || types.is_empty() {
        Conversion::Text
    } else if types.contains(&"array") {
        Conversion::List
    } else if types.contains(&"integer") {
        Conversion::Integer
    } else if types.contains(&"number") {
        Conversion::Number
    } else if types.contains(&"boolean") {
        Conversion::Boolean
    } else {
        Conversion::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn head(query: Option<&str>, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            version: 1,
            path: "/x".into(),
            query: query.map(Into::into),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn contract() -> HandshakeContract {
        HandshakeContract::compile(&portico_compiler::plan::HandshakeContract {
            query: Some(json!({
                "type": "object",
                "properties": {"room": {"type": "integer", "minimum": 1}, "lang": {"type": "string"}},
                "required": ["room"]
            })),
            headers: Some(json!({
                "type": "object",
                "properties": {"X-Tenant": {"type": "string", "pattern": "^[a-z]+$"}, "X-Debug": {"type": "boolean"}},
                "required": ["X-Tenant"]
            })),
        })
        .expect("compiles")
    }

    #[test]
    fn a_handshake_meeting_the_contract_passes() {
        let ok = head(
            Some("room=12&lang=en&other=1"),
            &[("x-tenant", "acme"), ("Host", "h")],
        );
        assert!(contract().check(&ok).is_ok());
        let ok = head(Some("room=3"), &[("X-Tenant", "acme"), ("x-debug", "true")]);
        assert!(contract().check(&ok).is_ok());
    }

    #[test]
    fn a_missing_query_parameter_is_refused_with_its_pointer() {
        let refused = contract()
            .check(&head(Some("lang=en"), &[("x-tenant", "acme")]))
            .unwrap_err();
        assert_eq!(refused.status, 400);
        assert!(
            refused.text.contains("query parameter \"room\""),
            "{}",
            refused.text
        );
        assert!(refused.text.contains("/query"), "{}", refused.text);
        let no_query = contract().check(&head(None, &[("x-tenant", "acme")]));
        assert_eq!(no_query.unwrap_err().status, 400);
    }

    #[test]
    fn a_mistyped_query_parameter_is_refused_with_its_pointer() {
        let refused = contract()
            .check(&head(Some("room=twelve"), &[("x-tenant", "acme")]))
            .unwrap_err();
        assert_eq!(refused.status, 400);
        assert!(refused.text.contains("/query/room"), "{}", refused.text);
        assert!(refused.text.contains("`type`"), "{}", refused.text);
        let below = contract()
            .check(&head(Some("room=0"), &[("x-tenant", "acme")]))
            .unwrap_err();
        assert!(below.text.contains("`minimum`"), "{}", below.text);
    }

    #[test]
    fn missing_and_mistyped_headers_are_refused_without_echoing_the_value() {
        let missing = contract().check(&head(Some("room=1"), &[])).unwrap_err();
        assert_eq!(missing.status, 400);
        assert!(
            missing.text.contains("header \"X-Tenant\""),
            "{}",
            missing.text
        );
        let bad = contract()
            .check(&head(Some("room=1"), &[("x-tenant", "SECRET-VALUE")]))
            .unwrap_err();
        assert!(bad.text.contains("/headers/X-Tenant"), "{}", bad.text);
        assert!(!bad.text.contains("SECRET-VALUE"), "{}", bad.text);
        let not_bool = contract()
            .check(&head(
                Some("room=1"),
                &[("x-tenant", "a"), ("x-debug", "yes")],
            ))
            .unwrap_err();
        assert!(
            not_bool.text.contains("/headers/X-Debug"),
            "{}",
            not_bool.text
        );
    }

    #[test]
    fn a_schema_that_does_not_compile_is_an_error() {
        let bad = HandshakeContract::compile(&portico_compiler::plan::HandshakeContract {
            query: Some(json!({"type": "object", "properties": {"a": {"type": 5}}})),
            headers: None,
        });
        assert!(bad.is_err());
    }
}
