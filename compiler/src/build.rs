//! The compiler as the runtime uses it: specs in; a plan, its docs and its warnings out, or a
//! report of why there is no plan.
//!
//! The runtime compiles (`runtime --watch` serves a spec folder), but it should know nothing of the
//! compiler's inside: not its source map, its diagnostics' spans, its renderers or its docs
//! pipeline. This module is that boundary: [`build`] for spec folders, [`docs_for_plan`] for a
//! plan file, and owned, located values the runtime can log, serve and keep.
//!
//! ```no_run
//! use portico_compiler::{build, BuildOptions};
//! use portico_compiler::docs::PublicUrls;
//! let public_urls = PublicUrls::parse(&["ws://localhost:9099"]).unwrap();
//! let options = BuildOptions { compile: Default::default(), public_urls };
//! match build(&["specs".into()], &options) {
//!     Ok(built) => println!("{} APIs, {} pages", built.plan.apis.len(), built.docs.pages.len()),
//!     Err(report) => eprintln!("{}", report.text),
//! }
//! ```

use std::path::PathBuf;

use serde::Serialize;

use crate::compile::{compile, Compilation, Options};
use crate::diagnostics::{Diagnostic, Severity};
use crate::docs;
use crate::plan::Plan;
use crate::source::SourceMap;

/// What [`build`] does.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    pub compile: Options,
    /// Where the docs say clients reach the gateway.
    pub public_urls: docs::PublicUrls,
}

/// A plan, ready to serve, with its docs.
#[derive(Clone, Debug)]
pub struct Built {
    pub plan: Plan,
    pub docs: Docs,
    /// Warnings and infos, located (for logs and /plan).
    pub warnings: Vec<LocatedDiagnostic>,
    /// The same, rendered for people (human renderer, no colour); empty when none.
    pub warnings_text: String,
    /// Every file this compilation read (specs, $ref targets, api.yaml), canonical paths, sorted.
    pub files_read: Vec<PathBuf>,
}

/// Why no plan was built.
#[derive(Clone, Debug)]
pub struct Report {
    /// Errors first, then the rest.
    pub diagnostics: Vec<LocatedDiagnostic>,
    /// Human rendering (no colour) of the same, then the summary line.
    pub text: String,
    pub files_read: Vec<PathBuf>,
}

/// A diagnostic with its location spelled out (no spans into a source map the caller lacks).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LocatedDiagnostic {
    pub code: String,
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
    /// The file as it was named (forward slashes); `None` for problems about no file.
    pub file: Option<String>,
    /// 1-based.
    pub line: Option<u32>,
    /// 1-based.
    pub column: Option<u32>,
    /// JSON pointer of the offending node (`""` for the document root).
    pub pointer: String,
}

/// The rendered docs site of a plan and the raw specs behind it.
#[derive(Clone, Debug, Default)]
pub struct Docs {
    /// `index.html`, and an HTML and a Markdown page per API.
    pub pages: Vec<docs::Page>,
    /// The spec of each plan API, as written (empty when the docs come from a plan file).
    pub specs: Vec<SpecFile>,
    /// why pages are missing
    pub error: Option<String>,
}

/// One API version's spec as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecFile {
    pub api: String,
    pub version: String,
    pub text: String,
}

/// Compiles `paths` (spec files and folders) into a plan and its docs.
///
/// `Err` when there are errors, and also when no AsyncAPI document was found (a runtime serving
/// an empty folder serves nothing by mistake).
pub fn build(paths: &[PathBuf], options: &BuildOptions) -> Result<Built, Report> {
    let out = compile(paths, &options.compile);
    let files_read = out.files.read_paths();
    if out.documents.is_empty() && !out.has_errors() {
        let message = "no AsyncAPI documents found";
        return Err(Report {
            diagnostics: vec![LocatedDiagnostic {
                code: "input-no-documents".into(),
                severity: Severity::Error,
                message: message.into(),
                help: Some(
                    "a document is a .yaml, .yml or .json file with an `asyncapi` key".into(),
                ),
                file: None,
                line: None,
                column: None,
                pointer: String::new(),
            }],
            text: message.to_string(),
            files_read,
        });
    }
    let Some(plan) = out.plan.clone() else {
        return Err(report(&out, files_read));
    };
    let warnings: Vec<Diagnostic> = out
        .diagnostics
        .iter()
        .filter(|d| !d.is_error())
        .cloned()
        .collect();
    let warnings_text = if warnings.is_empty() {
        String::new()
    } else {
        crate::render::human(&out.files.sources, &warnings, false)
    };
    let docs = docs_for_compilation(&out, &plan, &options.public_urls);
    Ok(Built {
        warnings: located(&out.files.sources, &warnings),
        warnings_text,
        docs,
        plan,
        files_read,
    })
}

/// Docs for a plan served from a plan file: from the plan alone (no prose, no specs).
pub fn docs_for_plan(plan: &Plan, public_urls: &docs::PublicUrls) -> Docs {
    render_docs(&docs::Collected::default(), plan, public_urls, false)
}

fn docs_for_compilation(out: &Compilation, plan: &Plan, public_urls: &docs::PublicUrls) -> Docs {
    let collected = docs::collect(out);
    let mut rendered = render_docs(&collected, plan, public_urls, true);
    rendered.specs = docs::spec_files(&collected, plan)
        .into_iter()
        .map(|(api, version, text)| SpecFile {
            api: api.to_string(),
            version: version.to_string(),
            text: text.to_string(),
        })
        .collect();
    rendered
}

fn render_docs(
    collected: &docs::Collected,
    plan: &Plan,
    public_urls: &docs::PublicUrls,
    specs: bool,
) -> Docs {
    let options = docs::Options {
        public_urls: public_urls.clone(),
        spec_links: specs,
    };
    match docs::render(collected, Some(plan), &options, &docs::Templates::builtin()) {
        Ok(pages) => Docs {
            pages,
            ..Docs::default()
        },
        Err(e) => Docs {
            error: Some(e),
            ..Docs::default()
        },
    }
}

fn report(out: &Compilation, files_read: Vec<PathBuf>) -> Report {
    let (mut ordered, rest): (Vec<Diagnostic>, Vec<Diagnostic>) = out
        .diagnostics
        .iter()
        .cloned()
        .partition(Diagnostic::is_error);
    ordered.extend(rest);
    let text = format!(
        "{}{}",
        crate::render::human(&out.files.sources, &ordered, false),
        crate::render::summary(&out.diagnostics, out.documents.len())
    );
    Report {
        diagnostics: located(&out.files.sources, &ordered),
        text,
        files_read,
    }
}

fn located(sources: &SourceMap, diags: &[Diagnostic]) -> Vec<LocatedDiagnostic> {
    diags
        .iter()
        .map(|d| LocatedDiagnostic {
            code: d.code.to_string(),
            severity: d.severity,
            message: d.message.clone(),
            help: d.help.clone(),
            file: d.span.map(|s| {
                sources
                    .get(s.file)
                    .path
                    .to_string_lossy()
                    .replace('\\', "/")
            }),
            line: d.span.map(|s| s.line),
            column: d.span.map(|s| s.col),
            pointer: d.pointer.clone(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "asyncapi: 3.0.0
info: {title: Chat, version: 1.0.0, description: Talk in rooms.}
x-gateway: {context: /chat, endpoints: {production: 'ws://backend:8080'}}
channels:
  room:
    address: /rooms/{roomId}
    x-auth-type: None
    parameters: {roomId: {}}
    messages:
      said:
        payload: {$ref: 'shared.yaml#/Said'}
operations:
  say:
    action: receive
    channel: {$ref: '#/channels/room'}
";

    fn options() -> BuildOptions {
        BuildOptions {
            compile: Options::default(),
            public_urls: crate::docs::PublicUrls::parse(&["wss://gw.example.com"]).unwrap(),
        }
    }

    #[test]
    fn a_good_folder_builds_a_plan_its_docs_and_the_files_it_read() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("chat.yaml"), GOOD).unwrap();
        std::fs::write(
            dir.path().join("shared.yaml"),
            "Said: {type: object, properties: {text: {type: string}}}\n",
        )
        .unwrap();
        let built = build(&[dir.path().to_path_buf()], &options()).expect("builds");
        assert_eq!(built.plan.apis.len(), 1);
        // `said` has a schema and no example: the plan carries one generated for the mock.
        let said = &built.plan.apis[0].routes[0].messages.client_to_server[0];
        assert_eq!(
            said.generated_example,
            Some(serde_json::json!({"text": "string"}))
        );
        assert!(built.docs.error.is_none());
        let page = built
            .docs
            .pages
            .iter()
            .find(|p| p.path == "chat-1.0.0.md")
            .expect("an API page");
        assert!(page
            .content
            .contains("wss://gw.example.com/chat/1.0.0/rooms/{roomId}"));
        assert!(page.content.contains("Talk in rooms."));
        assert_eq!(
            built.docs.specs,
            [SpecFile {
                api: "chat".into(),
                version: "1.0.0".into(),
                text: GOOD.into()
            }]
        );
        let canonical = dir.path().canonicalize().unwrap();
        assert_eq!(
            built.files_read,
            [canonical.join("chat.yaml"), canonical.join("shared.yaml")]
        );
        assert_eq!(built.warnings.is_empty(), built.warnings_text.is_empty());
    }

    #[test]
    fn warnings_are_located_and_rendered() {
        let dir = tempfile::tempdir().unwrap();
        // An example that does not match its schema is worth a warning, not an error.
        let spec = GOOD.replace(
            "payload: {$ref: 'shared.yaml#/Said'}",
            "payload: {$ref: 'shared.yaml#/Said'}\n        examples: [{payload: 42}]",
        );
        std::fs::write(dir.path().join("chat.yaml"), spec).unwrap();
        std::fs::write(dir.path().join("shared.yaml"), "Said: {type: string}\n").unwrap();
        let built = build(&[dir.path().to_path_buf()], &options()).expect("builds");
        assert!(!built.warnings.is_empty());
        for w in &built.warnings {
            assert_ne!(w.severity, Severity::Error);
            assert!(
                built.warnings_text.contains(&w.code),
                "{}",
                built.warnings_text
            );
        }
    }

    #[test]
    fn a_folder_with_errors_gives_a_report_with_located_diagnostics() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("chat.yaml"), GOOD).unwrap();
        // shared.yaml is missing: the `$ref` cannot be resolved.
        std::fs::write(dir.path().join("other.yaml"), "asyncapi: 3.0.0\ninfo: {}\n").unwrap();
        let report = build(&[dir.path().to_path_buf()], &options()).expect_err("errors");
        assert!(!report.diagnostics.is_empty());
        let first_non_error = report
            .diagnostics
            .iter()
            .position(|d| d.severity != Severity::Error)
            .unwrap_or(report.diagnostics.len());
        assert!(report.diagnostics[first_non_error..]
            .iter()
            .all(|d| d.severity != Severity::Error));
        let missing_info = report
            .diagnostics
            .iter()
            .find(|d| d.code == "gateway-version-missing")
            .expect("other.yaml has no version");
        assert!(missing_info
            .file
            .as_deref()
            .unwrap()
            .ends_with("/other.yaml"));
        assert_eq!(missing_info.pointer, "/info");
        assert_eq!(missing_info.severity, Severity::Error);
        assert_eq!(missing_info.line, Some(2));
        assert!(missing_info.column.is_some());
        assert!(report.text.contains("other.yaml"), "{}", report.text);
        assert!(
            report.text.trim_end().ends_with("in 2 documents"),
            "{}",
            report.text
        );
        assert!(!report.text.contains('\u{1b}'), "no colour");
        assert!(report
            .files_read
            .contains(&dir.path().canonicalize().unwrap().join("other.yaml")));
    }

    #[test]
    fn an_empty_folder_is_a_report() {
        let dir = tempfile::tempdir().unwrap();
        let report = build(&[dir.path().to_path_buf()], &options()).expect_err("nothing");
        assert_eq!(report.text, "no AsyncAPI documents found");
        assert_eq!(report.diagnostics[0].code, "input-no-documents");
        assert!(report.files_read.is_empty());
    }

    #[test]
    fn a_plan_alone_gives_pages_without_specs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("chat.yaml"), GOOD).unwrap();
        std::fs::write(dir.path().join("shared.yaml"), "Said: {type: string}\n").unwrap();
        let built = build(&[dir.path().to_path_buf()], &options()).expect("builds");
        let plan = Plan::from_json(&built.plan.to_json()).unwrap();
        let docs = docs_for_plan(
            &plan,
            &crate::docs::PublicUrls::parse(&["ws://h:1"]).unwrap(),
        );
        assert!(docs.specs.is_empty());
        assert!(docs.error.is_none());
        let page = docs
            .pages
            .iter()
            .find(|p| p.path == "chat-1.0.0.md")
            .unwrap();
        assert!(page.content.contains("ws://h:1/chat/1.0.0/rooms/{roomId}"));
        assert!(
            !page.content.contains("Talk in rooms."),
            "no prose without specs"
        );
    }
}
