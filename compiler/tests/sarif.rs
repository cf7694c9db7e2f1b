//! `compile --format sarif` as code-scanning tools check it (the rules of Microsoft's SARIF
//! validator that Portico's output once broke): absolute paths are `file://` URIs, each rule has a
//! `name` other than its `id` and a `helpUri` to its row in `docs/diagnostics.md`, and the driver
//! names its `informationUri`. `scripts/sarif-validate.sh` runs the validator itself.

mod common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{workspace, write};
use portico_compiler::render;
use serde_json::Value;

/// A document with an error, a warning and an info.
const BROKEN: &str = "asyncapi: 3.0.0
info: {title: Broken, version: 1.0.0}
x-gateway: {context: /broken, endpoints: {production: 'echo:'}}
channels:
  room: {address: '/rooms/{roomId}/'}
operations:
  join: {action: send, channel: {$ref: '#/channels/rom'}}
";

fn run(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_compile"))
        .current_dir(cwd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run compile")
}

fn sarif_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).expect("stdout is JSON")
}

fn uris(log: &Value) -> Vec<String> {
    log["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                .as_str()
                .expect("every result here has a location")
                .to_string()
        })
        .collect()
}

fn rules(log: &Value) -> Vec<Value> {
    log["runs"][0]["tool"]["driver"]["rules"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn an_absolute_spec_path_is_a_file_uri() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "my specs/broken api.yaml", BROKEN);
    let out = run(dir.path(), &["--format", "sarif", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let uris = uris(&sarif_of(&out));
    assert_eq!(uris.len(), 4, "{uris:?}");
    let expected = url::Url::from_file_path(&file).unwrap().to_string();
    assert!(expected.starts_with("file:///"), "{expected}");
    for uri in &uris {
        assert_eq!(uri, &expected);
        assert!(uri.ends_with("/my%20specs/broken%20api.yaml"), "{uri}");
    }
}

#[test]
fn a_relative_spec_path_stays_a_relative_reference() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "my specs/broken api.yaml", BROKEN);
    let out = run(dir.path(), &["--format", "sarif", "my specs"]);
    for uri in uris(&sarif_of(&out)) {
        assert_eq!(uri, "my%20specs/broken%20api.yaml");
    }
}

#[test]
fn rules_have_a_pascal_case_name_and_a_help_uri_to_their_docs_row() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "api.yaml", BROKEN);
    let log = sarif_of(&run(dir.path(), &["--format", "sarif", "api.yaml"]));
    let rules = rules(&log);
    assert_eq!(rules.len(), 4, "{rules:?}");
    let pascal = regex::Regex::new("^[A-Z][A-Za-z0-9]*$").unwrap();
    for rule in &rules {
        let id = rule["id"].as_str().unwrap();
        let name = rule["name"].as_str().unwrap();
        assert_ne!(name, id);
        assert!(pascal.is_match(name), "{name}");
        assert_eq!(
            rule["helpUri"],
            format!("https://github.com/portico/portico/blob/main/docs/diagnostics.md#{id}")
        );
    }
    let names: Vec<&str> = rules.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"RefUnresolved"), "{names:?}");
    let driver = &log["runs"][0]["tool"]["driver"];
    assert_eq!(
        driver["informationUri"],
        "https://github.com/portico/portico"
    );
}

#[test]
fn rule_names_are_the_codes_in_pascal_case() {
    assert_eq!(render::rule_name("ref-unresolved"), "RefUnresolved");
    assert_eq!(
        render::rule_name("asyncapi3-channel-parameters"),
        "Asyncapi3ChannelParameters"
    );
    assert_eq!(
        render::rule_name("asyncapi2-operation-operationId-uniqueness"),
        "Asyncapi2OperationOperationIdUniqueness"
    );
    assert_eq!(render::rule_name("syntax"), "Syntax");
}

#[test]
fn help_base_url_moves_every_help_uri() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "api.yaml", BROKEN);
    let base = "https://git.example.com/platform/portico/-/blob/v1/docs/diagnostics.md";
    let out = run(
        dir.path(),
        &["--format", "sarif", "--help-base-url", base, "api.yaml"],
    );
    assert_eq!(out.status.code(), Some(1));
    for rule in rules(&sarif_of(&out)) {
        assert_eq!(
            rule["helpUri"],
            format!("{base}#{}", rule["id"].as_str().unwrap())
        );
    }
}

#[test]
fn a_help_base_url_that_is_not_an_absolute_http_url_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "api.yaml", BROKEN);
    for (bad, why) in [
        ("docs/diagnostics.md", "not an absolute URL"),
        (
            "ftp://example.com/diagnostics.md",
            "not an http:// or https:// URL",
        ),
        ("https://example.com/diagnostics.md#top", "fragment"),
        ("https://user:secret@example.com/d.md", "user-info"),
    ] {
        let out = run(
            dir.path(),
            &["--format", "sarif", "--help-base-url", bad, "api.yaml"],
        );
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("--help-base-url") && err.contains(why),
            "{bad}: {err}"
        );
        assert!(!err.contains("secret"), "{err}");
        assert!(out.stdout.is_empty(), "{bad}: nothing printed");
    }
}

/// Every code the compiler reports has the anchor its `helpUri` points at.
#[test]
fn every_code_in_the_compiler_has_an_anchor_in_diagnostics_md() {
    let docs = std::fs::read_to_string(workspace().join("docs/diagnostics.md")).unwrap();
    let literal =
        regex::Regex::new(r#"Diagnostic::(?:error|warning|info)\(\s*"([A-Za-z0-9-]+)""#).unwrap();
    let mut codes = Vec::new();
    let mut stack = vec![workspace().join("compiler/src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                codes.extend(literal.captures_iter(&text).map(|c| c[1].to_string()));
            }
        }
    }
    codes.sort();
    codes.dedup();
    assert!(codes.len() > 40, "the scan finds the codes: {codes:?}");
    let missing: Vec<&String> = codes
        .iter()
        .filter(|c| !docs.contains(&format!("<a id=\"{c}\"></a>`{c}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "no anchor in docs/diagnostics.md: {missing:?}"
    );
}
