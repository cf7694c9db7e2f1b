//! Reading spec files and listing spec folders: the only I/O the compiler does.
//!
//! [`Files`] reads each file at most once, refuses what cannot be a spec (too large, binary, not
//! UTF-8, empty) with a diagnostic before building anything, and keeps every parsed tree so that
//! `$ref`s into the same file are free.
//!
//! Reading is confined and bounded, because a spec is data and must not be a way to read the host:
//! * every file read must lie, once symlinks are resolved, inside one of the **roots** (the folders
//!   given to the compiler, the folders of the files given, and any extra root the user allows);
//!   anything else is refused with `input-outside-root` (or `ref-outside-root` at the `$ref`);
//! * one compilation reads at most [`Limits::max_files`] files and [`Limits::max_total_bytes`]
//!   bytes in all;
//! * [`spec_files_under`] walks a folder once per canonical directory, so symlink loops
//!   (`loop -> .`) end instead of multiplying.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use crate::diagnostics::Diagnostic;
use crate::source::{parse_text, FileId, Limits, Node, SourceMap, Span};

pub struct Files {
    pub sources: SourceMap,
    trees: HashMap<FileId, Option<Node>>,
    pub limits: Limits,
    /// Folders reads are confined to, as given and canonicalised. Empty: no confinement (a
    /// `Files` used on its own, outside [`crate::compile`]).
    roots: Vec<Root>,
    /// Files refused because they lie outside the roots.
    outside: HashSet<FileId>,
    /// Files not read because the budget was spent (their placeholder holds the diagnostic).
    unread: HashSet<FileId>,
    files_read: usize,
    bytes_read: u64,
    /// Whether the file-count or byte budget was exceeded (reported once, then reads stop).
    budget_exhausted: bool,
}

/// A folder the compiler may read from.
#[derive(Clone, Debug)]
pub struct Root {
    /// As the user spelt it, for messages.
    pub shown: PathBuf,
    /// With symlinks resolved, for the containment check.
    pub canonical: PathBuf,
}

impl Files {
    pub fn new(limits: Limits) -> Self {
        Files {
            sources: SourceMap::default(),
            trees: HashMap::new(),
            limits,
            roots: Vec::new(),
            outside: HashSet::new(),
            unread: HashSet::new(),
            files_read: 0,
            bytes_read: 0,
            budget_exhausted: false,
        }
    }

    /// Allows reads under `dir` (and everything below it). A folder that does not exist adds
    /// nothing.
    pub fn allow_root(&mut self, dir: &Path) {
        let Ok(canonical) = std::fs::canonicalize(dir) else {
            return;
        };
        if !self.roots.iter().any(|r| r.canonical == canonical) {
            self.roots.push(Root {
                shown: normalize(dir),
                canonical,
            });
        }
    }

    /// Allows reads in the folder of the spec file `file`: as spelt, and where it really lives if it
    /// is a link; for a file in an apictl project's `Definitions/`, the project folder too (where
    /// its `api.yaml` is).
    pub fn allow_folder_of(&mut self, file: &Path) {
        let parent = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let parent = if parent.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            parent
        };
        self.allow_root(&parent);
        if let Some(real) = std::fs::canonicalize(file)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
        {
            self.allow_root(&real);
        }
        if parent.file_name().and_then(|n| n.to_str()) == Some("Definitions") {
            if let Some(project) = parent.parent() {
                self.allow_root(project);
            }
        }
    }

    /// The root that holds `path` (after resolving symlinks), if any.
    pub fn root_of(&self, path: &Path) -> Option<&Root> {
        let canonical = std::fs::canonicalize(path).ok()?;
        self.roots
            .iter()
            .filter(|r| canonical.starts_with(&r.canonical))
            .max_by_key(|r| r.canonical.components().count())
    }

    /// Whether `id` was refused because it lies outside the roots.
    pub fn is_outside_roots(&self, id: FileId) -> bool {
        self.outside.contains(&id)
    }

    /// The roots reads are confined to.
    pub fn roots(&self) -> &[Root] {
        &self.roots
    }

    /// Reads and parses `path` once; later calls return the same id. Problems are pushed to `diags`.
    /// Returns `None` only when the file could not be read at all, or when the compilation's file or
    /// byte budget is spent (reported once).
    pub fn load(&mut self, path: &Path, diags: &mut Vec<Diagnostic>) -> Option<FileId> {
        let path = normalize(path);
        if let Some(id) = self.sources.lookup(&path) {
            return (!self.unread.contains(&id)).then_some(id);
        }
        if self.budget_exhausted {
            return None;
        }
        // Read what the path resolves to (not the path again), so that a link swapped after the
        // check cannot redirect the read outside the roots.
        let read_path = match self.confine(&path) {
            Ok(read_path) => read_path,
            Err(message) => {
                let id = self.sources.add(path, String::new());
                self.trees.insert(id, None);
                self.outside.insert(id);
                diags.push(
                    Diagnostic::error("input-outside-root", message)
                        .with_help(OUTSIDE_ROOT_HELP)
                        .at(file_start(id), ""),
                );
                return Some(id);
            }
        };
        self.files_read += 1;
        if self.files_read > self.limits.max_files {
            return self.exhaust(
                &path,
                diags,
                "input-too-many-files",
                format!(
                    "this compilation reads more than {} files (the limit); `{}` and later files were not read",
                    self.limits.max_files,
                    path.display()
                ),
            );
        }
        let text = match read_text(&read_path, self.limits.max_file_bytes) {
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
        self.bytes_read += text.len() as u64;
        if self.bytes_read > self.limits.max_total_bytes {
            return self.exhaust(
                &path,
                diags,
                "input-total-too-large",
                format!(
                    "the files of this compilation add up to more than {} (the limit); `{}` and later files were not read",
                    human_bytes(self.limits.max_total_bytes),
                    path.display()
                ),
            );
        }
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

    /// Where `path` may be read from: its canonical form, if it lies inside a root. A path that
    /// does not resolve (missing, dangling link) is returned as is, for the read to report.
    fn confine(&self, path: &Path) -> Result<PathBuf, String> {
        if self.roots.is_empty() {
            return Ok(path.to_path_buf());
        }
        let Ok(canonical) = std::fs::canonicalize(path) else {
            return Ok(path.to_path_buf());
        };
        if self
            .roots
            .iter()
            .any(|r| canonical.starts_with(&r.canonical))
        {
            return Ok(canonical);
        }
        let roots: Vec<String> = self
            .roots
            .iter()
            .map(|r| format!("`{}`", r.shown.display()))
            .collect();
        let resolved = if canonical == path {
            String::new()
        } else {
            format!(" (it resolves to `{}`)", canonical.display())
        };
        Err(format!(
            "`{}`{resolved} is outside the folders the compiler may read: {}",
            path.display(),
            roots.join(", ")
        ))
    }

    /// Reports a spent budget once and stops all further reads.
    fn exhaust(
        &mut self,
        path: &Path,
        diags: &mut Vec<Diagnostic>,
        code: &'static str,
        message: String,
    ) -> Option<FileId> {
        self.budget_exhausted = true;
        let id = self.sources.add(path.to_path_buf(), String::new());
        self.trees.insert(id, None);
        self.unread.insert(id);
        let help = match code {
            "input-too-many-files" => "compile fewer folders at once, remove stray files, or raise the limit with `compile --max-files N` (`Limits::max_files`)",
            _ => "compile fewer folders at once, remove stray files, or raise the limit with `compile --max-total-mib N` (`Limits::max_total_bytes`)",
        };
        diags.push(
            Diagnostic::error(code, message)
                .with_help(help)
                .at(file_start(id), ""),
        );
        None
    }

    pub fn tree(&self, id: FileId) -> Option<&Node> {
        self.trees.get(&id).and_then(Option::as_ref)
    }

    pub fn path(&self, id: FileId) -> &Path {
        &self.sources.get(id).path
    }
}

/// What to do about a read outside the roots.
pub const OUTSIDE_ROOT_HELP: &str = "keep spec files and the files their `$ref`s name inside the folders given to `compile`, or allow another folder with `compile --allow-root DIR` (`Options::allow_roots` for the library)";

/// What a walk of a spec folder found.
#[derive(Debug, Default)]
pub struct Walk {
    /// Candidate spec files (`*.yaml`, `*.yml`, `*.json`), in sorted order.
    pub files: Vec<PathBuf>,
    /// Links to a folder already walked (an ancestor or a sibling reached twice), skipped.
    pub loops: Vec<(PathBuf, PathBuf)>,
    /// Whether the walk stopped at `max_files`.
    pub truncated: bool,
}

/// Lists the spec files under `dir`, depth first in sorted order. Hidden entries are skipped (this
/// also skips Kubernetes ConfigMap internals such as `..data` while following the symlinks that
/// point into them), and so are `node_modules` and `target`. Each directory is walked once by its
/// canonical path: a link back to an ancestor or to a folder already walked is recorded in
/// [`Walk::loops`] and not entered. At most `max_files` files are listed.
pub fn spec_files_under(dir: &Path, max_files: usize) -> Walk {
    let mut walk = Walk::default();
    let mut visited: HashSet<PathBuf> = HashSet::new();
    if let Ok(canonical) = std::fs::canonicalize(dir) {
        visited.insert(canonical);
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        let mut subdirs = Vec::new();
        for path in entries {
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            if name.starts_with('.') || name == "node_modules" || name == "target" {
                continue;
            }
            if path.is_dir() {
                match std::fs::canonicalize(&path) {
                    Ok(canonical) if visited.insert(canonical.clone()) => subdirs.push(path),
                    Ok(canonical) => walk.loops.push((normalize(&path), canonical)),
                    Err(_) => {}
                }
            } else if is_spec_name(name) {
                if walk.files.len() >= max_files {
                    walk.truncated = true;
                    return walk;
                }
                walk.files.push(normalize(&path));
            }
        }
        subdirs.reverse();
        stack.extend(subdirs);
    }
    walk
}

/// What a path given to the compiler is.
pub enum InputKind {
    Folder,
    File,
    Missing,
}

pub fn input_kind(path: &Path) -> InputKind {
    if path.is_dir() {
        InputKind::Folder
    } else if path.is_file() {
        InputKind::File
    } else {
        InputKind::Missing
    }
}

fn is_spec_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".yaml") || lower.ends_with(".yml") || lower.ends_with(".json")
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
