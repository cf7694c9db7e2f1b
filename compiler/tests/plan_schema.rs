//! The published JSON Schemas describe what the compiler really reads and writes:
//! `docs/plan.schema.json` every plan it builds from the sample specs, and
//! `compiler/schemas/x-gateway.json` the sample's `x-gateway` object.

use std::path::{Path, PathBuf};

use portico_compiler::{compile, Options, Plan};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn validator(relative: &str) -> jsonschema::Validator {
    let path = repo().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let schema: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&schema)
        .unwrap_or_else(|e| panic!("{} is not a valid schema: {e}", path.display()))
}

fn schema_errors(validator: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path().as_str()))
        .collect()
}

/// Compiles one input folder and returns its plan, failing on any error diagnostic.
fn plan_of(relative: &str) -> Plan {
    let out = compile(&[repo().join(relative)], &Options::default());
    let errors: Vec<String> = out
        .diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    assert!(
        errors.is_empty(),
        "{relative} does not compile: {errors:#?}"
    );
    out.plan
        .unwrap_or_else(|| panic!("{relative} compiled without a plan"))
}

#[test]
fn plans_of_the_samples_match_the_plan_schema() {
    let schema = validator("docs/plan.schema.json");
    for input in ["specs", "tests/fixtures/wso2"] {
        let plan = plan_of(input);
        assert!(!plan.apis.is_empty(), "{input}: the plan has no APIs");
        let text = plan.to_json();
        let instance: Value = serde_json::from_str(&text).expect("the plan is JSON");
        let errors = schema_errors(&schema, &instance);
        assert!(
            errors.is_empty(),
            "{input}: plan.json does not match docs/plan.schema.json: {errors:#?}"
        );
        let reread = Plan::from_json(&text).expect("the runtime can load the plan");
        assert_eq!(reread.hash, plan.hash);
    }
}

#[test]
fn the_plan_schema_refuses_what_the_runtime_refuses() {
    let schema = validator("docs/plan.schema.json");
    let plan: Value = serde_json::from_str(&plan_of("specs").to_json()).expect("JSON");
    let mut unknown_field = plan.clone();
    unknown_field["apis"][0]["routes"][0]["timeout"] = Value::from(5);
    assert!(!schema_errors(&schema, &unknown_field).is_empty());
    let mut other_version = plan.clone();
    other_version["planVersion"] = Value::from(2);
    assert!(!schema_errors(&schema, &other_version).is_empty());
    let mut bad_kind = plan;
    bad_kind["apis"][0]["routes"][0]["kind"] = Value::from("regex");
    assert!(!schema_errors(&schema, &bad_kind).is_empty());
}

#[test]
fn the_sample_x_gateway_matches_the_extension_schema() {
    let schema = validator("compiler/schemas/x-gateway.json");
    let out = compile(
        &[repo().join("specs/chat/asyncapi.yaml")],
        &Options::default(),
    );
    let document = *out.documents.first().expect("the sample is a document");
    let gateway = out
        .files
        .tree(document)
        .and_then(|root| root.get("x-gateway"))
        .expect("the sample has an x-gateway object")
        .to_json();
    let errors = schema_errors(&schema, &gateway);
    assert!(
        errors.is_empty(),
        "specs/chat/asyncapi.yaml's x-gateway does not match compiler/schemas/x-gateway.json: {errors:#?}"
    );
}

#[test]
fn plans_with_traffic_policies_match_the_plan_schema() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = dir.path().join("api.yaml");
    std::fs::write(
        &spec,
        r#"asyncapi: 2.6.0
info: {title: Policies, version: 1.0.0, description: Every traffic policy.}
x-gateway:
  context: /p
  endpoints: {production: 'echo:'}
  origins: ['https://*.example.com']
  throttling:
    api: {messages: 1000/min}
    client: {messages: 10/s, bytes: 1M/day, burst: 5}
    operations: {post: AsyncGold}
    maxConnectionsPerClient: 2
    handshakesPerSecondPerClient: 1
    onThrottle: close
  validation: {policy: drop, strict: true, operations: {post: enforce}}
channels:
  /room:
    bindings:
      ws:
        query: {type: object, properties: {room: {type: integer}}, required: [room]}
    publish:
      operationId: post
      message: {payload: {type: object}}
"#,
    )
    .expect("write the spec");
    let out = compile(&[spec], &Options::default());
    let errors: Vec<_> = out.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    let plan = out.plan.expect("a plan");
    let route = &plan.apis[0].routes[0];
    assert!(route.handshake.is_some() && route.throttling.is_some() && route.validation.is_some());
    let instance: Value = serde_json::from_str(&plan.to_json()).expect("JSON");
    let errors = schema_errors(&validator("docs/plan.schema.json"), &instance);
    assert!(errors.is_empty(), "{errors:#?}");
}
