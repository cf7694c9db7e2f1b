//! Hostile and broken input: every case gets one clear diagnostic with the right code, `compile`
//! returns (no panic, no stack overflow, no runaway memory), and the binary exits 1.
//!
//! Each case is bounded by construction (size and depth limits are checked before work is done);
//! the test harness is what notices a hang.

mod common;

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::write;
use portico_compiler::{compile, Compilation, Options};

/// Compiles one file through the library and through the binary (`--format json`), checks both
/// report exactly `code` as their only error, at `at`, and returns the library's result.
fn refused(path: &Path, code: &str, at: (u32, u32)) -> Compilation {
    let out = compile(&[path.to_path_buf()], &Options::default());
    let errors: Vec<_> = out.diagnostics.iter().filter(|d| d.is_error()).collect();
    assert_eq!(
        errors.iter().map(|d| d.code).collect::<Vec<_>>(),
        [code],
        "{}: {:#?}",
        path.display(),
        out.diagnostics
    );
    let span = errors[0].span.expect("located");
    assert_eq!((span.line, span.col), at, "{}", errors[0].message);
    assert_eq!(out.files.path(span.file), path);
    assert!(out.plan.is_none());

    let run = Command::new(env!("CARGO_BIN_EXE_compile"))
        .arg("--format")
        .arg("json")
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run compile");
    assert_eq!(
        run.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&run.stdout).expect("JSON diagnostics");
    let codes: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .map(|d| d["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, [code]);
    out
}

fn message(out: &Compilation) -> &str {
    &out.diagnostics
        .iter()
        .find(|d| d.is_error())
        .unwrap()
        .message
}

fn temp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn malformed_yaml_is_a_syntax_error_at_the_bad_line() {
    let dir = temp();
    let path = write(
        dir.path(),
        "api.yaml",
        "asyncapi: 3.1.0\ninfo:\n  title: Chat\n   version: 1.0.0\n",
    );
    let out = refused(&path, "syntax", (4, 11));
    assert!(
        message(&out).starts_with("this is not valid YAML or JSON: "),
        "{}",
        message(&out)
    );
}

#[test]
fn malformed_json_is_a_syntax_error_at_the_bad_token() {
    let dir = temp();
    let path = write(
        dir.path(),
        "api.json",
        "{\n  \"asyncapi\": \"3.1.0\",\n  \"info\": {\"title\": \"Chat\",}\n  \"channels\": {}\n}\n",
    );
    refused(&path, "syntax", (4, 3));
}

#[test]
fn unterminated_json_string_is_a_syntax_error() {
    let dir = temp();
    let path = write(dir.path(), "api.json", "{\"asyncapi\": \"3.1.0");
    let out = compile(std::slice::from_ref(&path), &Options::default());
    assert_eq!(out.diagnostics.len(), 1, "{:?}", out.diagnostics);
    assert_eq!(out.diagnostics[0].code, "syntax");
}

#[test]
fn binary_file_is_refused_as_not_text() {
    // Deterministic pseudo-random bytes (xorshift), with NULs in them.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    assert!(bytes.contains(&0));
    let dir = temp();
    let path = write(dir.path(), "image.yaml", &bytes);
    let out = refused(&path, "input-not-text", (1, 1));
    assert!(message(&out).contains("NUL bytes"), "{}", message(&out));
}

#[test]
fn invalid_utf8_is_refused_with_its_offset() {
    let dir = temp();
    let mut bytes = b"asyncapi: 3.1.0\ninfo:\n  title: Caf".to_vec();
    let offset = bytes.len();
    bytes.extend_from_slice(b"\xe9 Paris\n");
    let path = write(dir.path(), "api.yaml", &bytes);
    let out = refused(&path, "input-not-text", (1, 1));
    assert!(
        message(&out).contains(&format!("offset {offset}")),
        "{}",
        message(&out)
    );
}

#[test]
fn empty_file_is_refused() {
    let dir = temp();
    let path = write(dir.path(), "api.yaml", "");
    let out = refused(&path, "input-empty", (1, 1));
    assert_eq!(message(&out), "the file is empty");
}

#[test]
fn whitespace_only_file_is_refused_as_empty() {
    let dir = temp();
    let path = write(dir.path(), "api.yaml", " \n\t\n\r\n   \n");
    refused(&path, "input-empty", (1, 1));
}

#[test]
fn hundred_megabyte_file_is_refused_before_it_is_read() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let dir = temp();
    let path = dir.path().join("huge.yaml");
    // A sparse file: a document, 100 MB of holes, one more key at the end. Only its size is real.
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(b"asyncapi: 3.1.0\n").unwrap();
    file.set_len(SIZE).unwrap();
    file.seek(SeekFrom::End(-5)).unwrap();
    file.write_all(b"a: 1\n").unwrap();
    drop(file);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), SIZE);
    let out = refused(&path, "input-too-large", (1, 1));
    assert!(message(&out).contains("16 MiB"), "{}", message(&out));
    // Refused before reading: nothing of the file is kept.
    let span = out.diagnostics[0].span.unwrap();
    assert_eq!(out.files.sources.get(span.file).text, "");
}

fn nested_json(depth: usize) -> String {
    "[".repeat(depth) + &"]".repeat(depth)
}

#[test]
fn ten_thousand_nested_json_arrays_are_refused_as_too_deep() {
    let dir = temp();
    let path = write(dir.path(), "deep.json", nested_json(10_000));
    // The 256th `[`: deeper than the 255 levels the YAML scanner and the compiler accept.
    refused(&path, "yaml-too-deep", (1, 256));
}

#[test]
fn ten_thousand_nested_json_objects_are_refused_as_too_deep() {
    let dir = temp();
    let text = "{\"a\":".repeat(10_000) + "1" + &"}".repeat(10_000);
    let path = write(dir.path(), "deep.json", text);
    refused(&path, "yaml-too-deep", (1, 1 + 255 * 5));
}

#[test]
fn ten_thousand_nested_yaml_flow_mappings_are_refused_as_too_deep() {
    let dir = temp();
    let text = format!(
        "asyncapi: 3.1.0\nx: {}1{}\n",
        "{a: ".repeat(10_000),
        "}".repeat(10_000)
    );
    let path = write(dir.path(), "deep.yaml", text);
    refused(&path, "yaml-too-deep", (2, 4 + 255 * 4));
}

#[test]
fn ten_thousand_nested_yaml_block_sequences_are_refused_as_too_deep() {
    let dir = temp();
    let text = format!("asyncapi: 3.1.0\nx:\n{}a\n", "- ".repeat(10_000));
    let path = write(dir.path(), "deep.yaml", text);
    // The root mapping is level 1; the 256th sequence is level 257.
    refused(&path, "yaml-too-deep", (3, 1 + 2 * 255));
}

#[test]
fn billion_laughs_is_refused_at_the_alias_that_crosses_the_limit() {
    let mut text = String::from(
        "asyncapi: 3.1.0\nlol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n",
    );
    for i in 1..10 {
        let prev = format!("*lol{}", i - 1);
        let items = [prev.as_str(); 10].join(", ");
        text.push_str(&format!("lol{i}: &lol{i} [{items}]\n"));
    }
    let dir = temp();
    let path = write(dir.path(), "laughs.yaml", &text);
    // Priced in bytes before anything is copied: the last `*lol3` of `lol4` is the first alias to
    // take the expansion past the default 8 MiB, long before the 2,000,000-node limit.
    let out = refused(&path, "yaml-too-large", common::pos_nth(&text, "*lol3", 9));
    assert_eq!(common::pos_nth(&text, "*lol3", 9).0, 6);
    assert!(
        message(&out).contains("aliases expand this document by more than 8 MiB"),
        "{}",
        message(&out)
    );
}

/// A 2.6 document whose message is `m0`, with `m0 → m1 → … → m{n}` a chain of pure `$ref`s.
fn ref_chain(n: usize) -> String {
    let mut text = String::from(
        "asyncapi: 2.6.0\ninfo:\n  title: Chain\n  version: 1.0.0\n  description: A long chain.\nchannels:\n  /c:\n    publish:\n      message:\n        $ref: '#/components/messages/m0'\ncomponents:\n  messages:\n",
    );
    for i in 0..n {
        text.push_str(&format!(
            "    m{i}:\n      $ref: '#/components/messages/m{}'\n",
            i + 1
        ));
    }
    text.push_str(&format!(
        "    m{n}:\n      payload:\n        type: string\n"
    ));
    text
}

#[test]
fn a_chain_of_refs_resolves_to_its_end() {
    let dir = temp();
    let path = write(dir.path(), "chain.yaml", ref_chain(200));
    let out = compile(
        &[path],
        &Options {
            lint: true,
            ..Options::default()
        },
    );
    assert!(
        !out.has_errors(),
        "{:?}",
        out.diagnostics.iter().find(|d| d.is_error())
    );
    assert_eq!(
        out.apis[0].channels[0].operations[0].messages[0].name,
        "m200"
    );
}

#[test]
fn a_ten_thousand_link_ref_chain_resolves() {
    let dir = temp();
    let path = write(dir.path(), "chain.yaml", ref_chain(10_000));
    let out = compile(
        &[path],
        &Options {
            lint: true,
            ..Options::default()
        },
    );
    assert!(!out.has_errors());
    assert_eq!(
        out.apis[0].channels[0].operations[0].messages[0].name,
        "m10000"
    );
}

/// A document whose payload is `schemas.yaml#/s0`, where each `s{i}` nests `s{i+1}` one level down.
fn nested_refs(dir: &Path, n: usize) -> PathBuf {
    let mut schemas = String::new();
    for i in 0..n {
        schemas.push_str(&format!(
            "s{i}:\n  type: object\n  properties:\n    next:\n      $ref: '#/s{}'\n",
            i + 1
        ));
    }
    schemas.push_str(&format!("s{n}:\n  type: string\n"));
    write(dir, "schemas.yaml", schemas);
    write(
        dir,
        "api.yaml",
        "asyncapi: 2.6.0\ninfo:\n  title: Deep\n  version: 1.0.0\n  description: Deep refs.\nx-gateway:\n  context: /deep\n  endpoints:\n    production: 'echo:'\nchannels:\n  /c:\n    publish:\n      message:\n        payload:\n          $ref: 'schemas.yaml#/s0'\n",
    )
}

/// How many `next` levels a plan schema has.
fn depth_of(schema: &serde_json::Value) -> usize {
    let mut depth = 0;
    let mut node = schema;
    while let Some(next) = node.pointer("/properties/next") {
        depth += 1;
        node = next;
    }
    depth
}

#[test]
fn deeply_nested_refs_resolve_without_overflowing_the_stack() {
    // 1,000 nested references (3,000 levels once resolved) on the default 2 MiB test-thread stack.
    // Past the resolution depth limit, compilation stops with `ref-too-deep`, not a crash.
    let dir = temp();
    let api = nested_refs(dir.path(), 1_000);
    let out = compile(&[api], &Options::default());
    assert!(out.plan.is_none());
    assert!(
        out.diagnostics.iter().any(|d| d.code == "ref-too-deep"),
        "{:?}",
        out.diagnostics
    );

    // Below the resolution depth limit, the schema is resolved to its end.
    let dir = temp();
    let api = nested_refs(dir.path(), 50);
    let out = compile(&[api], &Options::default());
    assert!(out.diagnostics.is_empty(), "{:?}", out.diagnostics);
    let plan = out.plan.expect("a plan");
    let schema = plan.apis[0].routes[0].messages.client_to_server[0]
        .schema
        .as_ref()
        .unwrap();
    assert_eq!(depth_of(schema), 50);
    let mut end = schema;
    while let Some(next) = end.pointer("/properties/next") {
        end = next;
    }
    assert_eq!(end, &serde_json::json!({"type": "string"}));
}

#[test]
fn refs_nested_beyond_the_depth_limit_are_reported() {
    let dir = temp();
    let api = nested_refs(dir.path(), 1_000);
    let out = compile(&[api], &Options::default());
    assert!(
        !out.diagnostics.is_empty(),
        "a schema cut at the resolution depth limit must be reported"
    );
}

#[test]
fn very_long_single_line_renders_a_bounded_excerpt() {
    // A minified JSON document with a problem at its far end.
    let mut text = String::from("{\"asyncapi\":\"3.1.0\",\"info\":{\"title\":\"Wide\",\"version\":\"1.0.0\",\"description\":\"");
    text.push_str(&"x".repeat(200_000));
    text.push_str("\"},\"channels\":{},\"oops\":1}");
    let dir = temp();
    let path = write(dir.path(), "wide.json", &text);
    let out = compile(
        &[path],
        &Options {
            lint: true,
            ..Options::default()
        },
    );
    let d = out
        .diagnostics
        .iter()
        .find(|d| d.code == "schema")
        .expect("schema error for `oops`");
    let span = d.span.unwrap();
    assert_eq!(span.line, 1);
    assert!(span.col > 200_000);
    let human = portico_compiler::render::human(&out.files.sources, &out.diagnostics, false);
    assert!(human.contains("oops"), "{human}");
    let widest = human.lines().map(|l| l.chars().count()).max().unwrap();
    assert!(widest < 300, "an excerpt line has {widest} characters");
}

#[test]
fn unreadable_inputs_do_not_stop_the_other_documents() {
    let dir = temp();
    write(dir.path(), "empty.yaml", "");
    write(dir.path(), "binary.json", b"\x00\x01\x02");
    write(dir.path(), "broken.yml", "asyncapi: [\n");
    let good = write(
        dir.path(),
        "good.yaml",
        "asyncapi: 3.1.0\ninfo:\n  title: Good\n  version: 1.0.0\n  description: Fine.\nchannels: {}\n",
    );
    let out = compile(
        &[dir.path().to_path_buf()],
        &Options {
            lint: true,
            ..Options::default()
        },
    );
    let mut codes: Vec<&str> = out.diagnostics.iter().map(|d| d.code).collect();
    codes.sort_unstable();
    assert_eq!(codes, ["input-empty", "input-not-text", "syntax"]);
    assert_eq!(out.documents.len(), 1);
    assert_eq!(out.files.path(out.documents[0]), good.as_path());
}
