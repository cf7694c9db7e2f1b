//! `docs/wso2-migration.md` shows a real export and the real output of `compile` on it: the test
//! fails when the fixture, the compiler's import report or the page drift apart.

mod common;

use std::process::{Command, Stdio};

use common::workspace;

const FIXTURE: &str = "compiler/tests/fixtures/wso2-export";

fn page() -> String {
    std::fs::read_to_string(workspace().join("docs/wso2-migration.md")).unwrap()
}

#[test]
fn the_page_shows_the_fixture_files_verbatim() {
    let page = page();
    for file in ["api.yaml", "Definitions/asyncapi.yaml"] {
        let text =
            std::fs::read_to_string(workspace().join(FIXTURE).join("ChatAPI-1.0.0").join(file))
                .unwrap();
        assert!(
            page.contains(&format!("```yaml\n{text}```")),
            "docs/wso2-migration.md does not show {file} as it is"
        );
    }
}

#[test]
fn the_page_shows_the_real_import_report() {
    let out = Command::new(env!("CARGO_BIN_EXE_compile"))
        .current_dir(workspace().join(FIXTURE))
        .args(["ChatAPI-1.0.0", "--format", "github"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let shown = format!(
        "$ compile ChatAPI-1.0.0 --format github\n{}{}",
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap()
    );
    assert!(
        shown.matches("gateway-import-ignored").count() >= 5,
        "{shown}"
    );
    assert!(
        page().contains(&shown),
        "docs/wso2-migration.md does not show this output:\n{shown}"
    );
}

/// Every setting of the export has its row (or is named in one) in the page's table.
#[test]
fn every_setting_of_the_export_is_in_the_table() {
    let page = page();
    let api =
        std::fs::read_to_string(workspace().join(FIXTURE).join("ChatAPI-1.0.0/api.yaml")).unwrap();
    let table: String = page
        .lines()
        .filter(|l| l.starts_with("| "))
        .collect::<Vec<_>>()
        .join("\n");
    let missing: Vec<&str> = api
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .filter(|l| !l.starts_with(' ') && !l.starts_with('-'))
        .filter_map(|l| l.split(':').next())
        .filter(|key| !table.contains(&format!("`{key}`")) && !table.contains(&format!("`{key}.")))
        .collect();
    assert!(missing.is_empty(), "not in the table: {missing:?}");
}
