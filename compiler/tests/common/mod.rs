//! Helpers shared by the integration tests: write documents to a temporary folder, compile them
//! through the library, and assert on diagnostics by code, severity, position and pointer.
//!
//! Positions are given as the first character of a unique piece of the document text (`pos`), so
//! a test names the exact node it expects a diagnostic at, and a document can be edited without
//! recounting lines.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use portico_compiler::{compile, Compilation, Diagnostic, Options, Severity};

/// The workspace root (`compiler/..`).
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("compiler/ has a parent")
        .to_path_buf()
}

/// The vendored AsyncAPI corpus (`tests/corpus` at the workspace root).
pub fn corpus() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/corpus"))
}

/// Removes the first line break and the indentation common to all non-blank lines, so documents
/// can be written indented inside the test that uses them.
pub fn doc(text: &str) -> String {
    let text = text.strip_prefix('\n').unwrap_or(text);
    let indent = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.len() - l.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            out.push_str(if line.ends_with('\n') { "\n" } else { "" });
        } else {
            out.push_str(&line[indent..]);
        }
    }
    out
}

/// Replaces the single occurrence of `from` in `text` (panics if it is absent or repeated, so a
/// variant never silently stays identical to the original).
pub fn edit(text: &str, from: &str, to: &str) -> String {
    let n = text.matches(from).count();
    assert_eq!(n, 1, "`{from}` occurs {n} times in:\n{text}");
    text.replacen(from, to, 1)
}

/// 1-based line and column (in characters) of the only occurrence of `needle` in `text`.
pub fn pos(text: &str, needle: &str) -> (u32, u32) {
    let n = text.matches(needle).count();
    assert_eq!(n, 1, "`{needle}` occurs {n} times in:\n{text}");
    pos_nth(text, needle, 0)
}

/// 1-based line and column of the character right after the only occurrence of `prefix`.
pub fn pos_after(text: &str, prefix: &str) -> (u32, u32) {
    let (line, col) = pos(text, prefix);
    let last_line = prefix.rsplit('\n').next().unwrap_or(prefix);
    if prefix.contains('\n') {
        (
            line + prefix.matches('\n').count() as u32,
            last_line.chars().count() as u32 + 1,
        )
    } else {
        (line, col + prefix.chars().count() as u32)
    }
}

/// 1-based line and column of the `nth` (0-based) occurrence of `needle` in `text`.
pub fn pos_nth(text: &str, needle: &str, nth: usize) -> (u32, u32) {
    let (offset, _) = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` does not occur {} times", nth + 1));
    let before = &text[..offset];
    let line = before.matches('\n').count() as u32 + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = text[line_start..offset].chars().count() as u32 + 1;
    (line, col)
}

/// Writes `text` to `dir/name`, creating parent folders.
pub fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("create parent folder");
    }
    std::fs::write(&path, text).expect("write test file");
    path
}

pub fn gateway() -> Options {
    Options::default()
}

pub fn lint() -> Options {
    Options {
        lint: true,
        ..Options::default()
    }
}

/// One compilation of files in a temporary folder, with the text of the main document.
pub struct Checked {
    pub out: Compilation,
    pub dir: tempfile::TempDir,
    /// The main document (the one `pos` positions refer to).
    pub path: PathBuf,
    pub text: String,
}

/// Writes `text` as `api.yaml` in a new temporary folder and compiles that file.
pub fn check(text: &str, options: &Options) -> Checked {
    check_named("api.yaml", text, options)
}

pub fn check_named(name: &str, text: &str, options: &Options) -> Checked {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), name, text);
    let out = compile(std::slice::from_ref(&path), options);
    Checked {
        out,
        dir,
        path,
        text: text.to_string(),
    }
}

/// Compiles the given paths (files or folders) as they are.
pub fn check_paths(
    dir: tempfile::TempDir,
    main: PathBuf,
    paths: &[PathBuf],
    options: &Options,
) -> Checked {
    let text = std::fs::read_to_string(&main).unwrap_or_default();
    let out = compile(paths, options);
    Checked {
        out,
        dir,
        path: main,
        text,
    }
}

impl Checked {
    /// Every diagnostic, one per line, for failure messages.
    pub fn dump(&self) -> String {
        self.out
            .diagnostics
            .iter()
            .map(|d| self.describe(d))
            .collect::<Vec<_>>()
            .join("\n")
    }

    pub fn describe(&self, d: &Diagnostic) -> String {
        let (file, line, col) = match d.span {
            Some(s) => (
                self.out.files.path(s.file).display().to_string(),
                s.line,
                s.col,
            ),
            None => ("<none>".into(), 0, 0),
        };
        format!(
            "{} {} {file}:{line}:{col} `{}` {}",
            d.severity.as_str(),
            d.code,
            d.pointer,
            d.message
        )
    }

    pub fn codes(&self) -> Vec<&'static str> {
        self.out.diagnostics.iter().map(|d| d.code).collect()
    }

    pub fn all(&self, code: &str) -> Vec<&Diagnostic> {
        self.out
            .diagnostics
            .iter()
            .filter(|d| d.code == code)
            .collect()
    }

    /// The only diagnostic with `code` (panics, listing everything, if there are none or several).
    pub fn one(&self, code: &str) -> &Diagnostic {
        let found = self.all(code);
        assert_eq!(
            found.len(),
            1,
            "expected exactly one `{code}` diagnostic, got:\n{}",
            self.dump()
        );
        found[0]
    }

    /// The diagnostic with `code` at `at` in the main document (panics if there is none).
    pub fn at(&self, code: &str, at: (u32, u32)) -> &Diagnostic {
        self.all(code)
            .into_iter()
            .find(|d| {
                d.span
                    .is_some_and(|s| (s.line, s.col) == at && self.in_main(d))
            })
            .unwrap_or_else(|| {
                panic!(
                    "no `{code}` at {}:{} of the main document; got:\n{}",
                    at.0,
                    at.1,
                    self.dump()
                )
            })
    }

    pub fn in_main(&self, d: &Diagnostic) -> bool {
        d.span
            .is_some_and(|s| self.out.files.path(s.file) == self.path.as_path())
    }

    /// The file a diagnostic points into.
    pub fn file_of(&self, d: &Diagnostic) -> PathBuf {
        self.out
            .files
            .path(d.span.expect("diagnostic has a span").file)
            .to_path_buf()
    }

    /// Asserts that the only `code` diagnostic has this severity, position (in the main document)
    /// and pointer, and returns it.
    pub fn expect(
        &self,
        code: &str,
        severity: Severity,
        at: (u32, u32),
        pointer: &str,
    ) -> &Diagnostic {
        let d = self.one(code);
        self.assert_diag(d, severity, at, pointer);
        d
    }

    pub fn assert_diag(&self, d: &Diagnostic, severity: Severity, at: (u32, u32), pointer: &str) {
        let span = d.span.unwrap_or_else(|| panic!("`{}` has no span", d.code));
        assert_eq!(
            (d.severity, (span.line, span.col), d.pointer.as_str()),
            (severity, at, pointer),
            "wrong severity/position/pointer for `{}` ({})\nall diagnostics:\n{}",
            d.code,
            d.message,
            self.dump()
        );
        assert!(
            self.in_main(d),
            "`{}` points into {} instead of {}",
            d.code,
            self.file_of(d).display(),
            self.path.display()
        );
    }

    /// Asserts no diagnostic has `code`.
    pub fn lacks(&self, code: &str) {
        assert!(
            self.all(code).is_empty(),
            "expected no `{code}`, got:\n{}",
            self.dump()
        );
    }

    /// Asserts there is no error at all (warnings and infos are allowed).
    pub fn no_errors(&self) {
        assert!(
            !self.out.has_errors(),
            "expected no errors, got:\n{}",
            self.dump()
        );
    }

    pub fn has_errors(&self) -> bool {
        self.out.has_errors()
    }
}
