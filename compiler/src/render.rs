//! Diagnostics rendered for people (rustc/miette style), for tools (JSON, SARIF 2.1.0) and for
//! GitHub Actions (workflow annotations).

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteDiagnostic, MietteError,
    MietteSpanContents, SourceCode, SourceSpan, SpanContents,
};
use serde_json::{json, Value};

use crate::diagnostics::{Diagnostic, Severity};
use crate::redact;
use crate::source::{SourceFile, SourceMap, Span};

/// Output formats of `compile --format`.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Github,
}

impl Format {
    pub fn parse(text: &str) -> Option<Format> {
        Some(match text {
            "human" => Format::Human,
            "json" => Format::Json,
            "sarif" => Format::Sarif,
            "github" => Format::Github,
            _ => return None,
        })
    }
}

fn path_of(sources: &SourceMap, d: &Diagnostic) -> Option<String> {
    d.span.map(|s| {
        sources
            .get(s.file)
            .path
            .to_string_lossy()
            .replace('\\', "/")
    })
}

/// One diagnostic as the JSON object `--format json` prints.
pub fn to_json(sources: &SourceMap, d: &Diagnostic) -> Value {
    json!({
        "code": d.code,
        "severity": d.severity.as_str(),
        "message": redact::user_info(&d.message),
        "help": d.help.as_deref().map(redact::user_info),
        "file": path_of(sources, d),
        "line": d.span.map(|s| s.line),
        "column": d.span.map(|s| s.col),
        "pointer": d.pointer,
    })
}

pub fn json(sources: &SourceMap, diags: &[Diagnostic]) -> String {
    let all: Vec<Value> = diags.iter().map(|d| to_json(sources, d)).collect();
    let mut s = serde_json::to_string_pretty(&all).expect("serializable");
    s.push('\n');
    s
}

/// Human output: the source line with a caret under the offending node, the code, and the help.
pub fn human(sources: &SourceMap, diags: &[Diagnostic], color: bool) -> String {
    let theme = if color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_context_lines(1)
        .with_width(100);
    let mut out = String::new();
    for d in diags {
        let severity = match d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        };
        let mut report = MietteDiagnostic::new(redact::user_info(&d.message).into_owned())
            .with_code(d.code)
            .with_severity(severity);
        if let Some(help) = &d.help {
            report = report.with_help(redact::user_info(help).into_owned());
        }
        let rendered = match d.span {
            Some(span) => {
                let file = sources.get(span.file);
                let label = if d.pointer.is_empty() {
                    "here".to_string()
                } else {
                    d.pointer.clone()
                };
                let (excerpt, offset, len) = Excerpt::around(file, span);
                report = report.with_label(LabeledSpan::new(Some(label), offset, len));
                let report = miette::Report::new(report).with_source_code(excerpt);
                let mut s = String::new();
                handler
                    .render_report(&mut s, report.as_ref())
                    .map(|_| s)
                    .unwrap_or_else(|_| format!("{}: {}\n", d.code, d.message))
            }
            None => {
                let mut s = String::new();
                handler
                    .render_report(&mut s, &report)
                    .map(|_| s)
                    .unwrap_or_else(|_| format!("{}: {}\n", d.code, d.message))
            }
        };
        out.push_str(&rendered);
        out.push('\n');
    }
    out
}

/// A one-line summary: `2 errors, 1 warning in 3 documents`.
pub fn summary(diags: &[Diagnostic], documents: usize) -> String {
    let count = |s: Severity| diags.iter().filter(|d| d.severity == s).count();
    let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
    format!(
        "{}, {} in {}",
        plural(count(Severity::Error), "error"),
        plural(count(Severity::Warning), "warning"),
        plural(documents, "document")
    )
}

/// GitHub Actions workflow commands (`::error file=…,line=…,col=…,title=…::message`).
pub fn github(sources: &SourceMap, diags: &[Diagnostic]) -> String {
    let escape_data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let escape_prop = |s: &str| escape_data(s).replace(':', "%3A").replace(',', "%2C");
    let mut out = String::new();
    for d in diags {
        let level = match d.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "notice",
        };
        let mut props = Vec::new();
        if let (Some(path), Some(span)) = (path_of(sources, d), d.span) {
            props.push(format!("file={}", escape_prop(&path)));
            props.push(format!("line={}", span.line));
            props.push(format!("col={}", span.col));
        }
        props.push(format!("title={}", escape_prop(d.code)));
        let mut message = redact::user_info(&d.message).into_owned();
        if let Some(help) = &d.help {
            message.push_str("\nhelp: ");
            message.push_str(&redact::user_info(help));
        }
        out.push_str(&format!(
            "::{level} {}::{}\n",
            props.join(","),
            escape_data(&message)
        ));
    }
    out
}

/// A relative path as a URI reference: every byte outside RFC 3986's unreserved set and `/` is
/// percent-encoded (spec folders often have spaces).
fn uri_of(path: &str) -> String {
    const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'/')
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(path, PATH).to_string()
}

/// Where a diagnostic's file is, as a SARIF `artifactLocation.uri`: an absolute path becomes a
/// `file://` URI (SARIF forbids relative references that begin with `/`), a relative path stays
/// a percent-encoded relative reference, resolved by code-scanning tools against the checkout.
fn artifact_uri(path: &std::path::Path) -> String {
    if path.is_absolute() {
        if let Ok(url) = url::Url::from_file_path(path) {
            return url.to_string();
        }
    }
    uri_of(&path.to_string_lossy().replace('\\', "/"))
}

/// Where `compile --format sarif` points each rule's `helpUri` by default: the diagnostics page
/// of the project's repository, one anchor per code.
pub const DEFAULT_HELP_BASE_URL: &str =
    "https://github.com/portico/portico/blob/main/docs/diagnostics.md";

/// The tool's home page, SARIF's `informationUri`.
pub const INFORMATION_URI: &str = "https://github.com/portico/portico";

/// Checks a `--help-base-url`: an absolute `http(s)` URL without a fragment (each rule adds its
/// own `#code`) and without user-info (it is published in every report).
pub fn parse_help_base_url(text: &str) -> Result<String, String> {
    let url =
        url::Url::parse(text).map_err(|e| format!("`{text}` is not an absolute URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{text}` is not an http:// or https:// URL"));
    }
    if url.fragment().is_some() {
        return Err(format!(
            "`{text}` has a `#` fragment; give the page, each rule adds its own `#code`"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL has user-info; it would be published in every report".to_string());
    }
    Ok(text.to_string())
}

/// A diagnostic code as a SARIF rule `name`: PascalCase (`ref-unresolved` → `RefUnresolved`), as
/// SARIF asks, so that it reads as a name rather than repeating the `id`.
pub fn rule_name(code: &str) -> String {
    code.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// SARIF 2.1.0 with the default `helpUri` base, for GitHub code scanning and other SARIF consumers.
pub fn sarif(sources: &SourceMap, diags: &[Diagnostic]) -> String {
    sarif_with_help(sources, diags, DEFAULT_HELP_BASE_URL)
}

/// SARIF 2.1.0; each rule's `helpUri` is `help_base_url#code`, the code's row in
/// `docs/diagnostics.md`.
pub fn sarif_with_help(sources: &SourceMap, diags: &[Diagnostic], help_base_url: &str) -> String {
    let mut codes: Vec<&str> = diags.iter().map(|d| d.code).collect();
    codes.sort_unstable();
    codes.dedup();
    let rules: Vec<Value> = codes
        .iter()
        .map(|c| {
            json!({
                "id": c,
                "name": rule_name(c),
                "helpUri": format!("{help_base_url}#{c}"),
            })
        })
        .collect();
    let results: Vec<Value> = diags
        .iter()
        .map(|d| {
            let level = match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
                Severity::Info => "note",
            };
            let mut text = redact::user_info(&d.message).into_owned();
            if let Some(help) = &d.help {
                text.push_str(" (help: ");
                text.push_str(&redact::user_info(help));
                text.push(')');
            }
            let mut result = json!({
                "ruleId": d.code,
                "ruleIndex": codes.iter().position(|c| *c == d.code),
                "level": level,
                "message": {"text": text},
            });
            if let Some(span) = d.span {
                let path = &sources.get(span.file).path;
                result["locations"] = json!([{
                    "physicalLocation": {
                        "artifactLocation": {"uri": artifact_uri(path)},
                        "region": {"startLine": span.line, "startColumn": span.col}
                    },
                    "logicalLocations": [{"fullyQualifiedName": d.pointer, "kind": "member"}]
                }]);
            }
            result
        })
        .collect();
    let log = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "portico-compile",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": INFORMATION_URI,
                "rules": rules,
            }},
            "results": results,
        }]
    });
    let mut s = serde_json::to_string_pretty(&log).expect("serializable");
    s.push('\n');
    s
}

/// The lines around a diagnostic, cut to a window around its column so that a minified JSON file
/// or a 20,000-character line prints as one readable line, with the real line numbers.
struct Excerpt {
    name: String,
    text: String,
    first_line: usize,
    line_count: usize,
    /// 0-based line and column of the diagnostic, for the `file:line:col` header.
    at: (usize, usize),
}

/// Widest excerpt line, in characters.
const EXCERPT_WIDTH: usize = 100;

impl Excerpt {
    /// Returns the excerpt, and the caret's offset and length inside it.
    fn around(file: &SourceFile, span: Span) -> (Excerpt, usize, usize) {
        let line_count = file.line_count();
        let line_index = (span.line as usize)
            .saturating_sub(1)
            .min(line_count.saturating_sub(1));
        let first = line_index.saturating_sub(1);
        let last = (line_index + 1).min(line_count.saturating_sub(1));
        let col = span.col.saturating_sub(1) as usize;
        let window_start = col.saturating_sub(EXCERPT_WIDTH / 2);
        let mut text = String::new();
        let mut offset = 0;
        let mut len = 1;
        for i in first..=last {
            // Masked, not cut out: the caret's column must not move.
            let line = redact::mask_user_info(file.line_text(i + 1));
            let chars: Vec<char> = line.chars().collect();
            let cut_left = window_start > 0 && chars.len() > EXCERPT_WIDTH;
            let start = if cut_left {
                window_start.min(chars.len())
            } else {
                0
            };
            let end = (start + EXCERPT_WIDTH).min(chars.len());
            let cut_right = end < chars.len();
            let prefix = if cut_left { "…" } else { "" };
            if i == line_index {
                let caret_chars = col.saturating_sub(start).min(end - start);
                let before: String = chars[start..start + caret_chars].iter().collect();
                offset = text.len() + prefix.len() + before.len();
                let span_text = &file.text[span.start.min(file.text.len())..];
                let span_chars = span_text[..span.len.min(span_text.len())].chars().count();
                let visible = span_chars.min(end - start - caret_chars).max(1);
                len = chars[start + caret_chars..(start + caret_chars + visible).min(end)]
                    .iter()
                    .map(|c| c.len_utf8())
                    .sum::<usize>()
                    .max(if end > start + caret_chars { 1 } else { 0 });
            }
            text.push_str(prefix);
            text.extend(&chars[start..end]);
            if cut_right {
                text.push('…');
            }
            text.push('\n');
        }
        let excerpt = Excerpt {
            name: file.path.display().to_string(),
            text,
            first_line: first,
            line_count: last + 1 - first,
            at: (span.line.saturating_sub(1) as usize, col),
        };
        (excerpt, offset, len)
    }
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        _span: &SourceSpan,
        before: usize,
        after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        // miette reads the bare span (no context) only to print the `file:line:col` header.
        if before == 0 && after == 0 {
            return Ok(Box::new(MietteSpanContents::new_named(
                self.name.clone(),
                self.text.as_bytes(),
                (0, self.text.len()).into(),
                self.at.0,
                self.at.1,
                1,
            )));
        }
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            self.text.as_bytes(),
            (0, self.text.len()).into(),
            self.first_line,
            0,
            self.line_count,
        )))
    }
}
