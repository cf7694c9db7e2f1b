//! The compiler against AsyncAPI documents nobody on this project wrote (`tests/corpus/`, see its
//! README): the AsyncAPI specification's examples must pass `--lint`, the AsyncAPI TCK's
//! verdicts must be matched on at least 99% of its documents, and published documents whose
//! operations reference a channel's message through a channel `$ref` resolve as the official
//! parser resolves them.
//!
//! Run with `--nocapture` to see the TCK agreement and every disagreement.

mod common;

use std::path::{Path, PathBuf};

use common::corpus;
use portico_compiler::source::{parse_text, FileId, Limits};
use portico_compiler::{compile, Compilation, Options};

fn lint() -> Options {
    Options {
        lint: true,
        // Examples compiled one file at a time `$ref` their siblings (`../common/…`).
        allow_roots: vec![corpus()],
        ..Options::default()
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| ["yml", "yaml", "json"].contains(&e))
            {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Whether the file's root has an `asyncapi` key (a document, not a `$ref` fragment).
fn is_document(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap();
    let (root, _) = parse_text(FileId(0), &text, &Limits::default());
    root.is_some_and(|r| r.get("asyncapi").is_some())
}

fn errors(out: &Compilation) -> Vec<String> {
    out.diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| {
            let at = d
                .span
                .map(|s| format!("{}:{}:{}", out.files.path(s.file).display(), s.line, s.col))
                .unwrap_or_default();
            format!("{} at {at}: {}", d.code, d.message)
        })
        .collect()
}

/// The 2.6 examples (tag v2.6.0) predate the binding versions `@asyncapi/specs` now ships and
/// omit `bindingVersion`, so the latest is assumed, as the specification says: their `http`
/// operation bindings use `type` (and `headers`), an `amqp` message binding uses `replyTo`, and
/// one `http` message binding nests a whole bindings object. `--lint` reports these; compiling for
/// the gateway they are warnings. The 3.1 examples have none.
fn known_binding_errors(path: &Path) -> usize {
    let name = path.file_name().unwrap().to_str().unwrap();
    let in_2_6 = path.to_string_lossy().contains("spec-examples-2.6");
    match name {
        "gitter-streaming.yml" if in_2_6 => 2,
        "operation-security.yml" | "rpc-client.yml" | "rpc-server.yml" if in_2_6 => 1,
        _ => 0,
    }
}

#[test]
fn every_specification_example_passes_lint_except_the_one_with_a_remote_ref() {
    let mut documents = 0;
    let mut failures = Vec::new();
    for folder in ["spec-examples-2.6", "spec-examples-3.1"] {
        for path in files_under(&corpus().join(folder)) {
            if !is_document(&path) {
                continue;
            }
            documents += 1;
            let out = compile(std::slice::from_ref(&path), &lint());
            assert_eq!(out.documents.len(), 1, "{}", path.display());
            let errs = errors(&out);
            let name = path.file_name().unwrap().to_str().unwrap();
            if name == "adeo-kafka-request-reply-asyncapi.yml" {
                assert!(
                    !errs.is_empty()
                        && out
                            .diagnostics
                            .iter()
                            .filter(|d| d.is_error())
                            .all(|d| d.code == "ref-remote"),
                    "{name} must fail with ref-remote only: {errs:#?}"
                );
                continue;
            }
            let expected_bindings = known_binding_errors(&path);
            let binding_errors = errs
                .iter()
                .filter(|e| e.starts_with("asyncapi-binding-invalid "))
                .count();
            let others: Vec<&String> = errs
                .iter()
                .filter(|e| !e.starts_with("asyncapi-binding-invalid "))
                .collect();
            if binding_errors != expected_bindings || !others.is_empty() {
                failures.push(format!(
                    "{} ({expected_bindings} binding errors expected):\n  {}",
                    path.display(),
                    errs.join("\n  ")
                ));
            }
        }
    }
    // 21 documents in 2.6, 24 in 3.1 (tests/corpus/README.md).
    assert_eq!(documents, 45, "the corpus changed");
    assert!(
        failures.is_empty(),
        "examples with errors:\n{}",
        failures.join("\n")
    );
}

#[test]
fn specification_example_folders_lint_as_a_whole() {
    for (folder, count) in [("spec-examples-2.6", 21), ("spec-examples-3.1", 24)] {
        let out = compile(&[corpus().join(folder)], &lint());
        assert_eq!(out.documents.len(), count, "{folder}");
        let errs = errors(&out);
        if folder == "spec-examples-3.1" {
            assert!(
                errs.iter().all(|e| e.starts_with("ref-remote ")),
                "{errs:#?}"
            );
            assert!(!errs.is_empty());
        } else {
            // Only the binding errors `known_binding_errors` lists.
            assert!(
                errs.iter()
                    .all(|e| e.starts_with("asyncapi-binding-invalid ")),
                "{errs:#?}"
            );
            assert_eq!(errs.len(), 5, "{errs:#?}");
        }
    }
}

#[test]
fn gemini_example_compiles_to_the_same_routes_in_2_6_and_3_1() {
    let options = Options {
        context: Some("/gemini".into()),
        ..Options::default()
    };
    let plan = |file: &str| {
        let out = compile(&[corpus().join(file)], &options);
        assert!(errors(&out).is_empty(), "{file}: {:#?}", errors(&out));
        out.plan.expect("plan")
    };
    let v2 = plan("spec-examples-2.6/websocket-gemini.yml");
    let v3 = plan("spec-examples-3.1/websocket-gemini-asyncapi.yml");
    let (a2, a3) = (&v2.apis[0], &v3.apis[0]);
    assert_eq!(a2.context, "/gemini/1.0.0");
    assert_eq!(a2.context, a3.context);
    assert_eq!(a2.endpoints.production, "wss://api.gemini.com");
    assert_eq!(a2.endpoints, a3.endpoints);
    assert_eq!(a2.routes.len(), 1);
    assert_eq!(a3.routes.len(), 1);
    let (r2, r3) = (&a2.routes[0], &a3.routes[0]);
    assert_eq!(r2.pattern, "/gemini/1.0.0/v1/marketdata/{symbol}");
    assert_eq!(r2.backend_path, "/v1/marketdata/{symbol}");
    assert_eq!(
        (&r2.pattern, &r2.backend_path, &r2.parameters),
        (&r3.pattern, &r3.backend_path, &r3.parameters)
    );
    let names = |ms: &[portico_compiler::plan::PlanMessage]| {
        ms.iter().map(|m| m.name.clone()).collect::<Vec<_>>()
    };
    assert!(r2.messages.client_to_server.is_empty());
    assert_eq!(names(&r2.messages.server_to_client), ["marketData"]);
    assert_eq!(names(&r3.messages.server_to_client), ["marketData"]);
    assert!(r3.messages.client_to_server.is_empty());
}

struct Row {
    file: String,
    expected: String,
    official: String,
}

fn tck_rows() -> Vec<Row> {
    let text = std::fs::read_to_string(corpus().join("verdicts.tsv")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 3, "bad row: {l:?}");
            Row {
                file: cols[0].to_string(),
                expected: cols[1].to_string(),
                official: cols[2].to_string(),
            }
        })
        .filter(|r| {
            r.file.starts_with("tck/") && (r.expected == "valid" || r.expected == "invalid")
        })
        .collect()
}

#[test]
fn tck_verdicts_agree_with_the_truth_on_at_least_99_percent() {
    let rows = tck_rows();
    assert_eq!(rows.len(), 305, "verdicts.tsv changed");
    let mut agree = 0;
    let mut official_agree = 0;
    let mut disagreements = Vec::new();
    for row in &rows {
        let path = corpus().join(&row.file);
        assert!(path.is_file(), "missing {}", path.display());
        let out = compile(std::slice::from_ref(&path), &lint());
        let verdict = if out.has_errors() { "invalid" } else { "valid" };
        if verdict == row.expected {
            agree += 1;
        } else {
            let why = if out.has_errors() {
                errors(&out).join("; ")
            } else {
                "no errors".to_string()
            };
            disagreements.push(format!(
                "  {} — expected {}, compiler says {} ({why}); official parser says {}",
                row.file, row.expected, verdict, row.official
            ));
        }
        if row.official == row.expected {
            official_agree += 1;
        }
    }
    let total = rows.len();
    let pct = |n: usize| 100.0 * n as f64 / total as f64;
    println!(
        "TCK: the compiler agrees with the truth on {agree}/{total} documents ({:.1}%)",
        pct(agree)
    );
    println!(
        "TCK: the official parser (@asyncapi/parser) agrees on {official_agree}/{total} ({:.1}%)",
        pct(official_agree)
    );
    println!("TCK disagreements ({}):", disagreements.len());
    for d in &disagreements {
        println!("{d}");
    }
    assert!(
        agree * 100 >= total * 99,
        "agreement {agree}/{total} ({:.1}%) is below 99%:\n{}",
        pct(agree),
        disagreements.join("\n")
    );
}

#[test]
fn tck_fragments_are_not_documents() {
    let text = std::fs::read_to_string(corpus().join("verdicts.tsv")).unwrap();
    let fragments: Vec<&str> = text
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols.get(1) == Some(&"fragment")).then_some(cols[0])
        })
        .collect();
    // 10 in the TCK, 3 shared files of public-crossed-refs/.
    assert_eq!(fragments.len(), 13);
    for f in fragments {
        assert!(!is_document(&corpus().join(f)), "{f} has an `asyncapi` key");
    }
}

/// The `verdicts.tsv` rows of `public-crossed-refs/`: (file, expected, official parser's verdict).
fn crossed_ref_rows() -> Vec<(String, String, String)> {
    let text = std::fs::read_to_string(corpus().join("verdicts.tsv")).unwrap();
    text.lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|c| c[0].starts_with("public-crossed-refs/") && c[1] != "fragment")
        .map(|c| (c[0].to_string(), c[1].to_string(), c[2].to_string()))
        .collect()
}

/// Published documents (`public-crossed-refs/`, see the README) whose channel is a `$ref` into
/// another file and whose operation references `#/channels/echo/messages/echo` through it: the
/// pointer crosses that `$ref`. Each is accepted or rejected as the official parser does; the
/// accepted ones have no error at all (no `ref-unresolved`, no operation-messages error) and serve
/// the message the other file defines.
#[test]
fn published_documents_with_crossed_refs_get_the_official_parsers_verdict() {
    let rows = crossed_ref_rows();
    assert_eq!(rows.len(), 3, "the public-crossed-refs rows changed");
    for (file, expected, official) in &rows {
        assert_eq!(expected, official, "{file}: the README records agreement");
        let path = corpus().join(file);
        let out = compile(std::slice::from_ref(&path), &lint());
        assert_eq!(out.documents.len(), 1, "{file}");
        let errs = errors(&out);
        if expected == "valid" {
            assert!(errs.is_empty(), "{file}: {errs:#?}");
            let gateway = Options {
                lint: false,
                context: Some("/echo".to_string()),
                ..lint()
            };
            let out = compile(std::slice::from_ref(&path), &gateway);
            assert!(!out.has_errors(), "{file}: {:#?}", errors(&out));
            let plan = out.plan.expect("a plan");
            let route = &plan.apis[0].routes[0];
            let messages = serde_json::to_value(&route.messages).unwrap();
            assert_eq!(
                messages["serverToClient"][0]["schema"],
                serde_json::json!({"type": "string"}),
                "{file}: the message of commons/messages.yml"
            );
        } else {
            assert!(
                !errs.is_empty() && errs.iter().all(|e| e.starts_with("ref-unresolved ")),
                "{file} must fail with ref-unresolved only: {errs:#?}"
            );
        }
    }
}
