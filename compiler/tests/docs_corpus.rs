//! Every document of the AsyncAPI specification's examples (`tests/corpus/spec-examples-*`, see
//! its README) renders into docs without error, WebSocket or not: documents that are not gateway
//! APIs are rendered as plain AsyncAPI docs (from the specs alone, no plan).

mod common;

use std::path::{Path, PathBuf};

use common::corpus;
use portico_compiler::docs::{self, Options, Templates};
use portico_compiler::source::{parse_text, FileId, Limits};
use portico_compiler::{compile, Options as CompileOptions};

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

fn is_document(path: &Path) -> bool {
    let text = std::fs::read_to_string(path).unwrap();
    let (root, _) = parse_text(FileId(0), &text, &Limits::default());
    root.is_some_and(|r| r.get("asyncapi").is_some())
}

#[test]
fn every_specification_example_renders() {
    let lint = CompileOptions {
        lint: true,
        // Examples compiled one file at a time `$ref` their siblings (`../common/…`).
        allow_roots: vec![corpus()],
        ..CompileOptions::default()
    };
    let mut documents = 0;
    let mut failures = Vec::new();
    for folder in ["spec-examples-2.6", "spec-examples-3.1"] {
        let dir = corpus().join(folder);
        assert!(dir.is_dir(), "missing corpus folder {}", dir.display());
        for path in files_under(&dir) {
            if !is_document(&path) {
                continue;
            }
            documents += 1;
            let out = compile(std::slice::from_ref(&path), &lint);
            assert_eq!(out.apis.len(), 1, "{} was not lowered", path.display());
            let pages =
                match docs::render_compilation(&out, &Options::default(), &Templates::builtin()) {
                    Ok(pages) => pages,
                    Err(e) => {
                        failures.push(format!("{}: {e}", path.display()));
                        continue;
                    }
                };
            assert_eq!(
                pages.len(),
                3,
                "{}: index, HTML and Markdown",
                path.display()
            );
            let api = &out.apis[0];
            let html = &pages[1].content;
            let md = &pages[2].content;
            // Every channel and every message of the model is on the page.
            for channel in &api.channels {
                let shown = channel.address.clone().unwrap_or(channel.id.clone());
                if !md.contains(&format!("### Channel `{shown}`")) {
                    failures.push(format!("{}: channel {shown} missing", path.display()));
                }
                for op in &channel.operations {
                    for message in &op.messages {
                        if !md.contains(&format!("### Message `{}`", message.name)) {
                            failures.push(format!(
                                "{}: message {} missing",
                                path.display(),
                                message.name
                            ));
                        }
                    }
                }
            }
            assert!(!html.contains("<script"), "{}", path.display());
            assert!(html.ends_with("</html>\n"), "{}", path.display());
        }
    }
    assert!(documents >= 40, "only {documents} documents in the corpus");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The whole corpus folder at once: one site, unique page names even for documents that share a
/// title and version. With `PORTICO_DOCS_DUMP=DIR`, the site is also written to `DIR`, to look at.
#[test]
fn a_folder_of_examples_renders_as_one_site() {
    let lint = CompileOptions {
        lint: true,
        ..CompileOptions::default()
    };
    let out = compile(&[corpus().join("spec-examples-3.1")], &lint);
    let pages = docs::render_compilation(&out, &Options::default(), &Templates::builtin())
        .expect("renders");
    if let Some(dir) = std::env::var_os("PORTICO_DOCS_DUMP") {
        std::fs::create_dir_all(&dir).unwrap();
        for page in &pages {
            std::fs::write(Path::new(&dir).join(&page.path), &page.content).unwrap();
        }
    }
    assert_eq!(pages.len(), 1 + 2 * out.apis.len());
    let mut names: Vec<&str> = pages.iter().map(|p| p.path.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), pages.len(), "page names must be unique");
    let index = &pages[0].content;
    for page in &pages[1..] {
        if page.path.ends_with(".html") {
            assert!(
                index.contains(&format!("href=\"{}\"", page.path)),
                "{}",
                page.path
            );
        }
    }
}
