//! Reading spec files: the only I/O the compiler does.
//!
//! [`Files`] reads each file at most once, refuses what cannot be a spec (too large, binary, not
//! UTF-8, empty) with a diagnostic before building anything, and keeps every parsed tree so that
//! `$ref`s into the same file are free.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use crate::diagnostics::Diagnostic;
use crate::source::{parse_text, FileId, Limits, Node, SourceMap, Span};

pub struct Files {
    pub sources: SourceMap,
    trees: HashMap<FileId, Option<Node>>,
    pub limits: Limits,
}

impl Files {
    pub fn new(limits: Limits) -> Self {
        Files {
            sources: SourceMap::default(),
            trees: HashMap::new(),
            limits,
        }
    }

    /// Reads and parses `path` once; later calls return the same id. Problems are pushed to `diags`.
    /// Returns `None` only when the file could not be read at all.
    pub fn load(&mut self, path: &Path, diags: &mut Vec<Diagnostic>) -> Option<FileId> {
        let path = normalize(path);
        if let Some(id) = self.sources.lookup(&path) {
            return Some(id);
        }
        let text = match read_text(&path, self.limits.max_file_bytes) {
            Ok(text) => text,
            Err((code, message, help)) => {
                let id = self.sources.add(path, String::new());
                self.trees.insert(id, None);
                diags.push(
                    Diagnostic::error(code, message)
                        .with_help(help)
                        .at(file_start(id), ""),
                );
                return Some(id);
            }
        };
        let id = self.sources.add(path, text);
        let text = &self.sources.get(id).text;
        if text.trim().is_empty() {
            diags.push(
                Diagnostic::error("input-empty", "the file is empty")
                    .with_help("write an AsyncAPI document here, or delete the file")
                    .at(file_start(id), ""),
            );
            self.trees.insert(id, None);
            return Some(id);
        }
        let (tree, problems) = parse_text(id, text, &self.limits);
        diags.extend(problems.into_iter().map(Diagnostic::from));
        self.trees.insert(id, tree);
        Some(id)
    }

    /// Reads the first of `candidates` that is a regular file: an optional companion file, such as
    /// the `api.yaml` of an apictl project. `None` when none of them exists.
    pub fn load_first_present(
        &mut self,
        candidates: &[PathBuf],
        diags: &mut Vec<Diagnostic>,
    ) -> Option<FileId> {
        let path = candidates.iter().find(|p| p.is_file())?;
        self.load(path, diags)
    }

    /// Every file this compilation read or tried to read that exists, as canonical paths (symlinks
    /// resolved), sorted and without duplicates: what a watcher must watch.
    pub fn read_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .sources
            .files()
            .filter_map(|(_, f)| std::fs::canonicalize(&f.path).ok())
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    pub fn tree(&self, id: FileId) -> Option<&Node> {
        self.trees.get(&id).and_then(Option::as_ref)
    }

    pub fn path(&self, id: FileId) -> &Path {
        &self.sources.get(id).path
    }
}

/// A span pointing at the first character of a file, for problems about the file as a whole.
pub fn file_start(file: FileId) -> Span {
    Span {
        file,
        line: 1,
        col: 1,
        start: 0,
        len: 0,
    }
}

type ReadError = (&'static str, String, String);

fn read_text(path: &Path, max_bytes: u64) -> Result<String, ReadError> {
    use std::io::Read;
    let io_error = |e: std::io::Error| {
        (
            "input-unreadable",
            format!("cannot read {}: {e}", path.display()),
            "check that the file exists and is readable".to_string(),
        )
    };
    // Only regular files: opening a FIFO or a device would block or never end.
    let meta = std::fs::metadata(path).map_err(io_error)?;
    if !meta.is_file() {
        return Err((
            "input-unreadable",
            format!("{} is not a regular file", path.display()),
            "point the compiler at spec files and folders only".to_string(),
        ));
    }
    let file = std::fs::File::open(path).map_err(io_error)?;
    let too_large = || {
        (
            "input-too-large",
            format!("the file is larger than the limit of {}", human_bytes(max_bytes)),
            "an AsyncAPI document this large is almost certainly not one; split it with `$ref`s into smaller files".to_string(),
        )
    };
    let len = file.metadata().map_err(io_error)?.len();
    if len > max_bytes {
        return Err(too_large());
    }
    // Read at most max+1 bytes: the file may grow between stat and read.
    let mut bytes = Vec::with_capacity(len as usize);
    file.take(max_bytes + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large());
    }
    if bytes.contains(&0) {
        return Err((
            "input-not-text",
            "the file contains NUL bytes: it is binary, not YAML or JSON".to_string(),
            "point the compiler at AsyncAPI documents only".to_string(),
        ));
    }
    let bytes = bytes
        .strip_prefix(b"\xEF\xBB\xBF")
        .map(<[u8]>::to_vec)
        .unwrap_or(bytes);
    String::from_utf8(bytes).map_err(|e| {
        (
            "input-not-text",
            format!(
                "the file is not UTF-8 text (invalid byte at offset {})",
                e.utf8_error().valid_up_to()
            ),
            "save the file as UTF-8".to_string(),
        )
    })
}

fn human_bytes(n: u64) -> String {
    if n >= 1024 * 1024 && n.is_multiple_of(1024 * 1024) {
        format!("{} MiB", n / (1024 * 1024))
    } else if n >= 1024 && n.is_multiple_of(1024) {
        format!("{} KiB", n / 1024)
    } else {
        format!("{n} bytes")
    }
}

/// Lexically normalizes a path (`a/./b/../c` → `a/c`) so that one file reached through different
/// `$ref` spellings is read once. Symlinks are not followed: the user's spelling stays.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if matches!(out.components().next_back(), Some(Component::Normal(_))) {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}
