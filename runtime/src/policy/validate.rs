//! Message validation from the spec: each text message is checked against the payload schemas
//! of its direction (2.x `publish` and 3.x `receive` are client → backend; `subscribe`/`send`
//! backend → client), with validators compiled once per plan.
//!
//! A message is valid when it matches any of its direction's schemas. What is not checked passes:
//! text that is not JSON (other content types), binary frames, and directions where a message has
//! no JSON Schema payload. A direction for which the spec declares no operation is relayed
//! unchecked unless the policy is `strict`. What to do with a failure is the policy's business
//! (see [`crate::policy::message`]); this module only answers "valid or not, and where".

use portico_compiler::plan::{PlanMessage, Route, ValidationPolicy};
use serde_json::Value;

use crate::policy::message::Direction;

/// The result of checking one message.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Valid,
    /// Not JSON, or the direction has a message without a JSON Schema: relayed as is.
    Unchecked,
    /// The JSON pointer in the message and the schema keyword that failed.
    Invalid {
        pointer: String,
        keyword: String,
    },
    /// The spec declares no message in this direction and the policy is strict.
    Undeclared,
}

struct DirectionValidator {
    policy: ValidationPolicy,
    /// `None`: the direction has no operation. Empty is impossible (then it is `None`).
    schemas: Option<Vec<jsonschema::Validator>>,
    /// A message of this direction has no schema, so nothing can be called invalid.
    open: bool,
}

/// A route's validators, both directions.
pub struct RouteValidator {
    client_to_server: DirectionValidator,
    server_to_client: DirectionValidator,
    strict: bool,
}

impl RouteValidator {
    /// `Ok(None)` when the route has no validation policy.
    pub fn compile(route: &Route) -> Result<Option<RouteValidator>, String> {
        let Some(v) = route.validation else {
            return Ok(None);
        };
        let direction = |messages: &[PlanMessage], policy| -> Result<DirectionValidator, String> {
            if messages.is_empty() {
                return Ok(DirectionValidator {
                    policy,
                    schemas: None,
                    open: false,
                });
            }
            let mut schemas = Vec::new();
            let mut open = false;
            for m in messages {
                let Some(schema) = &m.schema else {
                    open = true;
                    continue;
                };
                let validator = jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft7)
                    .build(schema)
                    .map_err(|e| {
                        format!(
                            "the payload schema of the message `{}` of {} does not compile: {e}",
                            m.name, route.pattern
                        )
                    })?;
                schemas.push(validator);
            }
            Ok(DirectionValidator {
                policy,
                schemas: Some(schemas),
                open,
            })
        };
        Ok(Some(RouteValidator {
            client_to_server: direction(&route.messages.client_to_server, v.client_to_server)?,
            server_to_client: direction(&route.messages.server_to_client, v.server_to_client)?,
            strict: v.strict,
        }))
    }

    pub fn policy(&self, direction: Direction) -> ValidationPolicy {
        self.side(direction).policy
    }

    fn side(&self, direction: Direction) -> &DirectionValidator {
        match direction {
            Direction::ClientToServer => &self.client_to_server,
            Direction::ServerToClient => &self.server_to_client,
        }
    }

    /// Checks a text message travelling in `direction`.
    pub fn check(&self, direction: Direction, text: &str) -> Outcome {
        let side = self.side(direction);
        let Some(schemas) = &side.schemas else {
            return if self.strict {
                Outcome::Undeclared
            } else {
                Outcome::Unchecked
            };
        };
        if side.open || schemas.is_empty() {
            return Outcome::Unchecked;
        }
        let Ok(instance) = serde_json::from_str::<Value>(text) else {
            return Outcome::Unchecked;
        };
        if schemas.iter().any(|s| s.is_valid(&instance)) {
            return Outcome::Valid;
        }
        // Report the first schema's first error: with one message per direction (the common
        // case) that is exactly what failed.
        match schemas[0].validate(&instance) {
            Err(error) => Outcome::Invalid {
                pointer: error.instance_path().as_str().to_string(),
                keyword: error.kind().keyword().to_string(),
            },
            // Unreachable in practice (it was not valid above); never call it invalid anyway.
            Ok(()) => Outcome::Valid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_compiler::plan::{RouteAuth, RouteKind, RouteMessages, RouteValidation};
    use serde_json::json;

    pub(crate) fn route(
        c2s: Vec<Option<Value>>,
        s2c: Vec<Option<Value>>,
        validation: Option<RouteValidation>,
    ) -> Route {
        let messages = |list: Vec<Option<Value>>| {
            list.into_iter()
                .enumerate()
                .map(|(i, schema)| PlanMessage {
                    name: format!("m{i}"),
                    schema,
                    examples: vec![],
                    generated_example: None,
                })
                .collect()
        };
        Route {
            topic: "/t".into(),
            pattern: "/a/1/t".into(),
            kind: RouteKind::Literal,
            backend_path: "/t".into(),
            parameters: vec![],
            channels: vec!["t".into()],
            messages: RouteMessages {
                client_to_server: messages(c2s),
                server_to_client: messages(s2c),
            },
            scopes: vec![],
            auth: RouteAuth::None,
            handshake: None,
            throttling: None,
            validation,
            security: Default::default(),
        }
    }

    fn chat() -> Value {
        json!({"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]})
    }

    fn policy(strict: bool) -> Option<RouteValidation> {
        Some(RouteValidation {
            client_to_server: ValidationPolicy::Enforce,
            server_to_client: ValidationPolicy::Drop,
            strict,
        })
    }

    #[test]
    fn no_policy_no_validator() {
        let r = route(vec![Some(chat())], vec![], None);
        assert!(RouteValidator::compile(&r).unwrap().is_none());
    }

    #[test]
    fn valid_and_invalid_messages_in_each_direction() {
        let r = route(
            vec![Some(chat())],
            vec![Some(json!({"type": "integer"}))],
            policy(false),
        );
        let v = RouteValidator::compile(&r).unwrap().unwrap();
        assert_eq!(
            v.check(Direction::ClientToServer, r#"{"text":"hi"}"#),
            Outcome::Valid
        );
        assert_eq!(
            v.check(Direction::ClientToServer, r#"{"text":5}"#),
            Outcome::Invalid {
                pointer: "/text".into(),
                keyword: "type".into()
            }
        );
        assert_eq!(
            v.check(Direction::ClientToServer, r#"{}"#),
            Outcome::Invalid {
                pointer: "".into(),
                keyword: "required".into()
            }
        );
        assert_eq!(v.check(Direction::ServerToClient, "42"), Outcome::Valid);
        assert!(matches!(
            v.check(Direction::ServerToClient, r#""x""#),
            Outcome::Invalid { .. }
        ));
        assert_eq!(
            v.policy(Direction::ClientToServer),
            ValidationPolicy::Enforce
        );
        assert_eq!(v.policy(Direction::ServerToClient), ValidationPolicy::Drop);
    }

    #[test]
    fn any_schema_of_the_direction_may_match() {
        let r = route(
            vec![Some(chat()), Some(json!({"type": "integer"}))],
            vec![],
            policy(false),
        );
        let v = RouteValidator::compile(&r).unwrap().unwrap();
        assert_eq!(v.check(Direction::ClientToServer, "7"), Outcome::Valid);
        assert_eq!(
            v.check(Direction::ClientToServer, r#"{"text":"x"}"#),
            Outcome::Valid
        );
        assert!(matches!(
            v.check(Direction::ClientToServer, "true"),
            Outcome::Invalid { .. }
        ));
    }

    #[test]
    fn non_json_and_schemaless_messages_pass() {
        let r = route(vec![Some(chat())], vec![Some(chat()), None], policy(false));
        let v = RouteValidator::compile(&r).unwrap().unwrap();
        assert_eq!(
            v.check(Direction::ClientToServer, "plain text"),
            Outcome::Unchecked
        );
        assert_eq!(
            v.check(Direction::ServerToClient, r#"{"text":5}"#),
            Outcome::Unchecked
        );
    }

    #[test]
    fn an_undeclared_direction_is_relayed_unless_strict() {
        let r = route(vec![Some(chat())], vec![], policy(false));
        let v = RouteValidator::compile(&r).unwrap().unwrap();
        assert_eq!(
            v.check(Direction::ServerToClient, r#"{"a":1}"#),
            Outcome::Unchecked
        );
        let r = route(vec![Some(chat())], vec![], policy(true));
        let v = RouteValidator::compile(&r).unwrap().unwrap();
        assert_eq!(
            v.check(Direction::ServerToClient, r#"{"a":1}"#),
            Outcome::Undeclared
        );
        assert_eq!(
            v.check(Direction::ClientToServer, r#"{"text":"ok"}"#),
            Outcome::Valid
        );
    }

    #[test]
    fn a_schema_that_does_not_compile_is_an_error_naming_the_message() {
        let r = route(vec![Some(json!({"type": 12}))], vec![], policy(false));
        let error = RouteValidator::compile(&r).err().expect("an error");
        assert!(error.contains("m0"), "{error}");
    }
}
