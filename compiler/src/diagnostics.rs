//! Diagnostics: what is wrong, where exactly, and what to do about it.
//!
//! A [`Diagnostic`] carries a stable `code` (users grep for it and suppress by it), a severity, a
//! message saying what is wrong, a help text saying what to do, and the location of the offending
//! node (file, 1-based line and column) with its JSON pointer. Renderers for humans, JSON, SARIF and
//! GitHub annotations live in [`crate::render`].

use serde::Serialize;

use crate::source::{ParseProblem, Span};

#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub help: Option<String>,
    /// Where the offending node is; `None` only for problems that are about no file (usage).
    pub span: Option<Span>,
    /// JSON pointer of the offending node inside its document (`""` for the root).
    pub pointer: String,
}

impl Diagnostic {
    /// Messages and help quote spec values: URL user-info in them is redacted here, once for
    /// every renderer and for the runtime.
    pub fn error(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: crate::redact::user_info(&message.into()).into_owned(),
            help: None,
            span: None,
            pointer: String::new(),
        }
    }

    pub fn warning(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn info(code: &'static str, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Info,
            ..Diagnostic::error(code, message)
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(crate::redact::user_info(&help.into()).into_owned());
        self
    }

    pub fn at(mut self, span: Span, pointer: impl Into<String>) -> Self {
        self.span = Some(span);
        self.pointer = pointer.into();
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl From<ParseProblem> for Diagnostic {
    fn from(p: ParseProblem) -> Self {
        Diagnostic::error(p.code, p.message)
            .with_help(p.help)
            .at(p.span, "")
    }
}

/// Cuts `text` to at most `max` characters, marking the cut with `…`: diagnostics quote values
/// from the spec, which may be arbitrarily long.
pub fn clip(text: &str, max: usize) -> String {
    if text.chars().count() > max {
        let kept: String = text.chars().take(max.saturating_sub(1)).collect();
        format!("{kept}…")
    } else {
        text.to_string()
    }
}

/// Orders diagnostics the way a reader wants them: by file, then position, then code.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        let key = |d: &Diagnostic| {
            d.span.map(|s| (s.file, s.line, s.col)).unwrap_or((
                crate::source::FileId(u32::MAX),
                0,
                0,
            ))
        };
        key(a)
            .cmp(&key(b))
            .then(a.severity.cmp(&b.severity))
            .then(a.code.cmp(b.code))
            .then(a.message.cmp(&b.message))
    });
}
