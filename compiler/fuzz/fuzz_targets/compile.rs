//! Fuzzes the whole pipeline on real files: read (size, NUL, UTF-8, BOM checks), parse, `$ref`
//! resolution across files, JSON Schema, AsyncAPI and gateway rules, the plan, and every
//! diagnostic renderer (the caret/excerpt code sees arbitrary positions in arbitrary text).
//!
//! The input is split at its first two NUL bytes into up to three files of a WSO2-style project:
//!
//! ```text
//! <scratch>/Definitions/asyncapi.yaml   bytes before the first NUL
//! <scratch>/Definitions/common.yaml     bytes between the first and second NUL (a `$ref` target)
//! <scratch>/api.yaml                    the rest (WSO2 project metadata; may hold NULs itself)
//! ```
//!
//! An input without NUL is just `asyncapi.yaml`, as the seeds are.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use portico_compiler::render;
use portico_compiler::{compile, Compilation, Options, Severity};

/// One scratch folder per fuzzing process, reused by every run (files are rewritten each time).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("portico-fuzz-compile-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("Definitions")).expect("scratch folder");
        dir
    })
}

fn put(path: &Path, bytes: Option<&[u8]>) {
    match bytes {
        Some(bytes) => std::fs::write(path, bytes).expect("write scratch file"),
        None => {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn check(out: &Compilation) {
    for d in &out.diagnostics {
        if let Some(span) = d.span {
            let text = &out.files.sources.get(span.file).text;
            assert!(span.line >= 1, "{}: line is 1-based: {span:?}", d.code);
            assert!(span.col >= 1, "{}: column is 1-based: {span:?}", d.code);
            assert!(
                span.start <= text.len(),
                "{}: start past the end: {span:?}",
                d.code
            );
        } else {
            assert!(
                d.severity != Severity::Error,
                "error {} has no location",
                d.code
            );
        }
    }
    let sources = &out.files.sources;
    let _ = render::human(sources, &out.diagnostics, false);
    let _ = render::json(sources, &out.diagnostics);
    let _ = render::sarif(sources, &out.diagnostics);
    let _ = render::github(sources, &out.diagnostics);
    let _ = render::summary(&out.diagnostics, out.documents.len());
    if let Some(plan) = &out.plan {
        let json = plan.to_json();
        assert!(
            portico_compiler::Plan::from_json(&json).is_ok(),
            "the plan does not read back: {json}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = scratch();
    let mut parts = data.splitn(3, |b| *b == 0);
    put(&dir.join("Definitions/asyncapi.yaml"), parts.next());
    put(&dir.join("Definitions/common.yaml"), parts.next());
    put(&dir.join("api.yaml"), parts.next());
    let inputs = [dir.to_path_buf()];
    check(&compile(&inputs, &Options::default()));
    check(&compile(
        &inputs,
        &Options {
            lint: true,
            ..Options::default()
        },
    ));
});
