//! The compiler against the official AsyncAPI parser (`@asyncapi/parser`) on mutated documents.
//!
//! `scripts/differential.py --record` starts from small valid documents (2.4, 2.6, 3.0, 3.1),
//! applies one mutation at a time (a class of mistake each), asks the official parser about every
//! result and writes `tests/differential/verdicts.tsv`: the official verdict, and Portico's expected
//! verdict, which differs only where the difference is deliberate (with the reason, also listed in
//! `docs/diagnostics.md`). This test needs no Node.js: every document must get exactly the
//! expected verdict from `compile --lint`, so an undocumented disagreement fails it.
//!
//! Run with `--nocapture` to see the agreement figure.

use std::path::PathBuf;

use portico_compiler::{compile, Options};

fn folder() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/differential"))
}

struct Row {
    file: String,
    official: String,
    official_codes: String,
    expected: String,
    reason: String,
}

fn rows() -> Vec<Row> {
    let text = std::fs::read_to_string(folder().join("verdicts.tsv")).expect("verdicts.tsv");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 5, "bad row: {l:?}");
            Row {
                file: cols[0].into(),
                official: cols[1].into(),
                official_codes: cols[2].into(),
                expected: cols[3].into(),
                reason: cols[4].into(),
            }
        })
        .collect()
}

#[test]
fn mutated_documents_get_the_official_verdict_except_documented_differences() {
    let rows = rows();
    assert!(rows.len() >= 100, "only {} documents", rows.len());
    let options = Options {
        lint: true,
        ..Options::default()
    };
    let mut agree = 0;
    let mut deliberate = 0;
    let mut wrong = Vec::new();
    for row in &rows {
        assert!(
            ["valid", "invalid"].contains(&row.official.as_str())
                && ["valid", "invalid"].contains(&row.expected.as_str()),
            "bad verdicts for {}",
            row.file
        );
        // A difference without a reason is not a documented difference.
        assert_eq!(
            row.expected != row.official,
            !row.reason.is_empty(),
            "{}: a reason exactly when the verdicts differ",
            row.file
        );
        let out = compile(&[folder().join(&row.file)], &options);
        assert_eq!(out.documents.len(), 1, "{}", row.file);
        let verdict = if out.has_errors() { "invalid" } else { "valid" };
        if verdict != row.expected {
            let errors: Vec<String> = out
                .diagnostics
                .iter()
                .filter(|d| d.is_error())
                .map(|d| format!("{}: {}", d.code, d.message))
                .collect();
            wrong.push(format!(
                "  {}: compiler says {verdict}, expected {} (official: {} [{}]) {errors:?}",
                row.file, row.expected, row.official, row.official_codes
            ));
        } else if verdict == row.official {
            agree += 1;
        } else {
            deliberate += 1;
        }
    }
    println!(
        "differential: the compiler agrees with the official parser on {agree}/{} mutated documents; \
         {deliberate} deliberate differences; {} unexplained",
        rows.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "unexplained:\n{}", wrong.join("\n"));
}

/// The mutations that motivated this test, so they cannot silently drop out of the recording.
#[test]
fn the_recorded_mutations_cover_the_classes_of_issue_nine() {
    let rows = rows();
    for needle in [
        "v3-channel-servers-name",
        "v2-channel-servers-undeclared",
        "v3-op-message-into-components",
        "v3-op-channel-string",
        "v3-empty-ref",
        "v3-parameters-without-address",
        "v2-trait-id-makes-duplicate",
        "v2-trait-id-removes-duplicate",
        "v2-message-example-mismatch",
        "v3-message-example-mismatch",
        "v3-reply-message-other-channel",
        "v3-discriminator-not-required",
    ] {
        let found = rows.iter().filter(|r| r.file.contains(needle)).count();
        assert!(found >= 2, "`{needle}` is recorded for {found} versions");
    }
}
