//! Golden tests of what users read: the human output (no colour), the JSON output and the GitHub
//! annotations for one AsyncAPI 2.6 and one 3.1 document with several problems each.
//!
//! The fixtures are in `tests/fixtures/golden/`, the expected outputs in `tests/golden/`. After an
//! intended change of wording or layout, regenerate them with
//! `UPDATE_GOLDEN=1 cargo test -p portico-compiler --test golden` and review the diff.
//!
//! Paths in the outputs are relative to the crate folder (cargo runs integration tests from it), so
//! the files are the same on every machine.

use std::path::{Path, PathBuf};

use portico_compiler::render;
use portico_compiler::{compile, Compilation, Options};

const FIXTURES: &str = "tests/fixtures/golden";
const GOLDEN: &str = "tests/golden";

fn compile_fixture(name: &str) -> Compilation {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(
        std::env::current_dir().unwrap().canonicalize().unwrap(),
        manifest.canonicalize().unwrap(),
        "golden tests must run from the crate folder (as `cargo test` does) so paths are relative"
    );
    let path = PathBuf::from(FIXTURES).join(name);
    assert!(path.is_file(), "missing fixture {}", path.display());
    compile(&[path], &Options::default())
}

/// Compares `actual` with `tests/golden/<name>`, or rewrites the file when `UPDATE_GOLDEN=1`.
fn assert_golden(name: &str, actual: &str) {
    let path = Path::new(GOLDEN).join(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::create_dir_all(GOLDEN).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {} ({e}); create it with UPDATE_GOLDEN=1",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output, first at line {}:\n  expected: {:?}\n  actual:   {:?}\n\nwhole output:\n{actual}\n(rerun with UPDATE_GOLDEN=1 if the change is intended)",
            path.display(),
            first + 1,
            expected.lines().nth(first).unwrap_or("<end>"),
            actual.lines().nth(first).unwrap_or("<end>"),
        );
    }
}

fn check_goldens(fixture: &str, stem: &str, expected_codes: &[&str]) {
    let out = compile_fixture(fixture);
    // The fixture must keep exercising what the goldens are meant to show.
    let codes: Vec<&str> = out.diagnostics.iter().map(|d| d.code).collect();
    assert_eq!(codes, expected_codes);
    assert!(out.plan.is_none(), "a document with errors yields no plan");

    let sources = &out.files.sources;
    let human = render::human(sources, &out.diagnostics, false);
    assert!(
        !human.contains('\u{1b}'),
        "color=false must not emit escape codes"
    );
    assert_golden(&format!("{stem}.human.txt"), &human);

    let json = render::json(sources, &out.diagnostics);
    let parsed: serde_json::Value = serde_json::from_str(&json).expect("JSON output parses");
    assert_eq!(parsed.as_array().map(Vec::len), Some(expected_codes.len()));
    assert_golden(&format!("{stem}.json"), &json);

    assert_golden(
        &format!("{stem}.github.txt"),
        &render::github(sources, &out.diagnostics),
    );
}

#[test]
fn golden_output_for_an_asyncapi_2_document_with_several_problems() {
    check_goldens(
        "chat-2.6.yaml",
        "chat-2.6",
        &[
            "info-description",
            "schema",
            "asyncapi2-server-variables",
            "asyncapi2-channel-parameters",
            "gateway-mapping-parameter",
            "ref-unresolved",
            "gateway-scope-undeclared",
        ],
    );
}

#[test]
fn golden_output_for_an_asyncapi_3_document_with_several_problems() {
    check_goldens(
        "chat-3.1.yaml",
        "chat-3.1",
        &[
            "channel-trailing-slash",
            "asyncapi3-channel-parameters",
            "gateway-auth-type-invalid",
            "ref-remote",
            "asyncapi3-operation-messages-from-referred-channel",
            "schema",
            "schema",
        ],
    );
}

#[test]
fn summary_line_counts_errors_warnings_and_documents() {
    let out = compile_fixture("chat-2.6.yaml");
    assert_eq!(
        render::summary(&out.diagnostics, out.documents.len()),
        "5 errors, 1 warning in 1 document"
    );
    let out = compile_fixture("chat-3.1.yaml");
    assert_eq!(
        render::summary(&out.diagnostics, out.documents.len()),
        "6 errors, 1 warning in 1 document"
    );
}
