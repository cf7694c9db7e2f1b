//! The whole pipeline over a set of files and folders: discovery, per-document checks, checks
//! across documents, and the plan.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::diagnostics::{self, Diagnostic};
use crate::files::{file_start, input_kind, normalize, spec_files_under, Files, InputKind};
use crate::model::{self, Api};
use crate::plan::{Plan, PlanApi, SourceRef};
use crate::rules;
use crate::schema::SpecVersion;
use crate::source::{FileId, Limits, Node};

#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Check plain AsyncAPI only (no gateway rules, no plan).
    pub lint: bool,
    /// Context for documents that name none (WSO2 keeps it outside the document).
    pub context: Option<String>,
    pub limits: Limits,
    /// Folders besides the inputs' own that spec files and `$ref` targets may be read from. Reads
    /// are confined to the folders given, the folders of the files given, and these.
    pub allow_roots: Vec<PathBuf>,
}

/// Everything one compilation produced.
pub struct Compilation {
    pub files: Files,
    /// Sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
    /// Present when there are no errors and not linting.
    pub plan: Option<Plan>,
    /// The lowered documents, for the docs generator.
    pub apis: Vec<Api>,
    /// The documents found (files whose root has an `asyncapi` key).
    pub documents: Vec<FileId>,
}

impl Compilation {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// A document found by discovery: its file, and the folder its plan path is relative to.
struct Found {
    path: PathBuf,
    base: PathBuf,
    explicit: bool,
}

/// Compiles every document under `inputs` (files or folders).
pub fn compile(inputs: &[PathBuf], options: &Options) -> Compilation {
    let mut files = Files::new(options.limits.clone());
    let mut diags = Vec::new();
    let mut found = Vec::new();
    allow_roots(inputs, options, &mut files);
    for input in inputs {
        discover(input, &mut found, &mut diags, &mut files);
    }
    // A document named twice (a folder and a file in it, or the same path twice) is one document.
    let mut seen = std::collections::HashSet::new();
    found.retain(|f| seen.insert(f.path.clone()));
    let mut documents = Vec::new();
    let mut apis = Vec::new();
    let mut plan_apis: Vec<(PlanApi, FileId, ContextSource)> = Vec::new();
    for doc in &found {
        let Some(id) = files.load(&doc.path, &mut diags) else {
            continue;
        };
        let Some(root) = files.tree(id) else { continue };
        if root.get("asyncapi").is_none() {
            if doc.explicit && crate::wso2::is_project_file(&doc.path, root) {
                let folder = doc
                    .path
                    .parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                diags.push(Diagnostic::error("asyncapi-missing", "this is a WSO2 apictl project file (`api.yaml`), not an AsyncAPI document")
                    .with_help(format!("compile the project folder instead: `compile {}` reads `Definitions/asyncapi.yaml` with this file's context, version and endpoints", folder.display()))
                    .at(root.span, ""));
            } else if doc.explicit {
                diags.push(Diagnostic::error("asyncapi-missing", "this file has no `asyncapi` key, so it is not an AsyncAPI document")
                    .with_help("add `asyncapi: 3.1.0` (or the version you write) at the top; files that are only `$ref` targets belong in a folder, not on the command line")
                    .at(root.span, ""));
            }
            continue;
        }
        documents.push(id);
        let Some(version) = check_version(root, &mut diags) else {
            continue;
        };
        let Some(resolved) = crate::refs::resolve(&mut files, id, &mut diags) else {
            continue;
        };
        let before_schema = diags.len();
        crate::schema::validate(&resolved.root, version, &mut diags);
        let mut schema_diags = diags.split_off(before_schema);
        rules::bindings::drop_schema_errors_inside_bindings(
            &resolved.root,
            version,
            &mut schema_diags,
        );
        diags.append(&mut schema_diags);
        let first = diags.len();
        rules::asyncapi::check(&files, id, version, &resolved, &mut diags);
        if !options.lint {
            rules::asyncapi::for_gateway(&mut diags[first..]);
        }
        let mut api = model::lower(id, version, &resolved);
        if !options.lint {
            let project = crate::wso2::project_for(&mut files, &doc.path, &mut diags);
            // What api.yaml adds to the document (description, name), and the import report.
            crate::wso2::import(&files, &project, &mut api, &mut diags);
            let source = SourceRef {
                file: relative_display(&doc.path, &doc.base),
                sha256: format!(
                    "sha256:{:x}",
                    Sha256::digest(files.sources.get(id).text.as_bytes())
                ),
            };
            let cx = rules::gateway::Context {
                fallback_context: options.context.as_deref(),
                project: &project,
                source,
            };
            if let Some(plan_api) = rules::gateway::check(&api, &cx, &mut diags) {
                let written = context_source(&files, id, &project);
                plan_apis.push((plan_api, id, written));
            }
        }
        apis.push(api);
    }
    if !options.lint {
        check_contexts_unique(&files, &plan_apis, &mut diags);
    }
    diagnostics::sort(&mut diags);
    dedupe(&mut diags);
    let plan = (!options.lint && !diags.iter().any(Diagnostic::is_error))
        .then(|| Plan::new(plan_apis.into_iter().map(|(a, _, _)| a).collect()));
    Compilation {
        files,
        diagnostics: diags,
        plan,
        apis,
        documents,
    }
}

fn dedupe(diags: &mut Vec<Diagnostic>) {
    let mut seen = std::collections::HashSet::new();
    diags.retain(|d| seen.insert((d.code, d.span.map(|s| (s.file, s.start)), d.message.clone())));
}

fn check_version(root: &Node, diags: &mut Vec<Diagnostic>) -> Option<SpecVersion> {
    let node = root.get("asyncapi")?;
    let text = match (&node.value, node.as_str()) {
        (_, Some(s)) => s.to_string(),
        (crate::source::NodeValue::Number(n), _) => {
            diags.push(
                Diagnostic::error(
                    "asyncapi-version",
                    format!(
                        "`asyncapi: {n}` is a number; the version must be a string like \"3.1.0\""
                    ),
                )
                .with_help(format!("write `asyncapi: '{n}.0'` with quotes"))
                .at(node.span, "/asyncapi"),
            );
            return None;
        }
        _ => {
            diags.push(
                Diagnostic::error(
                    "asyncapi-version",
                    "`asyncapi` must be a version string like \"3.1.0\"",
                )
                .with_help("write `asyncapi: 3.1.0`")
                .at(node.span, "/asyncapi"),
            );
            return None;
        }
    };
    match SpecVersion::parse(&text) {
        Some(v) => Some(v),
        None => {
            diags.push(Diagnostic::error("asyncapi-version", format!("AsyncAPI version `{text}` is not supported"))
                .with_help("Portico reads AsyncAPI 2.0.0 to 2.6.0 and 3.0.0 to 3.1.0; convert older documents with `asyncapi convert`")
                .at(node.span, "/asyncapi"));
            None
        }
    }
}

/// Confines reads to the folders given, the folders of the files given (an apictl project's folder
/// for a `Definitions/` file, where its `api.yaml` is) and the extra roots of `options`.
fn allow_roots(inputs: &[PathBuf], options: &Options, files: &mut Files) {
    for input in inputs {
        let input = normalize(input);
        match input_kind(&input) {
            InputKind::Folder => files.allow_root(&input),
            InputKind::File => files.allow_folder_of(&input),
            InputKind::Missing => {}
        }
    }
    for root in &options.allow_roots {
        files.allow_root(root);
    }
}

/// Finds the documents under `input` (see [`spec_files_under`] for how folders are walked).
fn discover(input: &Path, found: &mut Vec<Found>, diags: &mut Vec<Diagnostic>, files: &mut Files) {
    let input = normalize(input);
    match input_kind(&input) {
        InputKind::Folder => {
            let remaining = files.limits.max_files.saturating_sub(found.len());
            let walk = spec_files_under(&input, remaining);
            for (link, target) in walk.loops {
                let id = files.sources.add(link.clone(), String::new());
                diags.push(
                    Diagnostic::warning(
                        "input-folder-loop",
                        format!(
                            "`{}` leads to `{}`, a folder already searched; it was skipped",
                            link.display(),
                            target.display()
                        ),
                    )
                    .with_help("remove the link, or point it at a folder outside the one given to `compile`")
                    .at(file_start(id), ""),
                );
            }
            if walk.truncated {
                let id = files.sources.add(input.clone(), String::new());
                diags.push(
                    Diagnostic::error(
                        "input-too-many-files",
                        format!(
                            "`{}` holds more than {} spec files (the limit); the rest were not read",
                            input.display(),
                            files.limits.max_files
                        ),
                    )
                    .with_help("compile fewer folders at once, remove stray files, or raise the limit with `compile --max-files N` (`Limits::max_files`)")
                    .at(file_start(id), ""),
                );
            }
            found.extend(walk.files.into_iter().map(|path| Found {
                path,
                base: input.clone(),
                explicit: false,
            }));
        }
        InputKind::File
            if input
                .extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| e.eq_ignore_ascii_case("zip")) =>
        {
            // What `apictl export api` writes. Not read: archives are not confined like folders.
            let id = files.sources.add(input.clone(), String::new());
            let folder = input.with_extension("");
            diags.push(
                Diagnostic::error(
                    "input-archive",
                    format!("`{}` is a zip archive, which `compile` does not read", input.display()),
                )
                .with_help(format!(
                    "unzip it first and compile the project folder: `unzip {} -d {}` then `compile {}`",
                    input.display(),
                    folder.display(),
                    folder.display()
                ))
                .at(file_start(id), ""),
            );
        }
        InputKind::File => {
            let base = input.parent().map(Path::to_path_buf).unwrap_or_default();
            found.push(Found {
                path: input,
                base,
                explicit: true,
            });
        }
        InputKind::Missing => {
            let id = files.sources.add(input.clone(), String::new());
            diags.push(
                Diagnostic::error(
                    "input-unreadable",
                    format!("`{}` does not exist", input.display()),
                )
                .with_help("pass spec files or folders that hold them")
                .at(file_start(id), ""),
            );
        }
    }
}

fn relative_display(path: &Path, base: &Path) -> String {
    let rel = path.strip_prefix(base).unwrap_or(path);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/")
}

/// Contexts (after `{version}` substitution) must be unique across the folder, and so must default
/// contexts.
/// Where an API's context is written: `x-gateway.context`, else `api.yaml`'s `context`, else the
/// document (for `--context`), as a span and a pointer in that file.
type ContextSource = (crate::source::Span, &'static str);

fn context_source(files: &Files, id: FileId, project: &crate::wso2::ApiProject) -> ContextSource {
    let root = files.tree(id);
    if let Some(n) = root
        .and_then(|r| r.get("x-gateway"))
        .and_then(|g| g.get("context"))
    {
        return (n.span, "/x-gateway/context");
    }
    if let Some(n) = &project.context {
        return (n.span, "/data/context");
    }
    (root.map(|r| r.span).unwrap_or(file_start(id)), "")
}

fn check_contexts_unique(
    files: &Files,
    apis: &[(PlanApi, FileId, ContextSource)],
    diags: &mut Vec<Diagnostic>,
) {
    for (i, (api, id, (span, pointer))) in apis.iter().enumerate() {
        for (other, other_id, _) in &apis[..i] {
            let clash = if api.context == other.context {
                Some(api.context.clone())
            } else if api.default_context.is_some() && api.default_context == other.default_context
            {
                Some(format!(
                    "{} (default version)",
                    api.default_context.clone().unwrap_or_default()
                ))
            } else {
                None
            };
            if let Some(path) = clash {
                diags.push(Diagnostic::error("gateway-context-duplicate", format!(
                    "`{}` and `{}` both serve `{path}`",
                    files.path(*id).display(), files.path(*other_id).display()))
                    .with_help("give each API (or each version of it) its own context; at most one version may be the default")
                    .at(*span, *pointer));
            }
        }
    }
}
