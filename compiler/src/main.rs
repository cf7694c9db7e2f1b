//! `compile`: validate AsyncAPI documents and build the routing plan (what users run in CI).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use portico_compiler::docs;
use portico_compiler::plan_diff::PlanDiff;
use portico_compiler::render::{self, Format};
use portico_compiler::{compile, Options, Severity};

/// Validate AsyncAPI documents and compile them into a Portico routing plan.
///
/// Every problem is reported in one run, each with its file, line and column. Exit status: 0 when
/// there are no errors, 1 when there are errors (or warnings with --deny-warnings), 2 on usage or
/// I/O errors.
#[derive(Parser, Debug)]
#[command(name = "compile", version)]
struct Cli {
    /// Spec files and folders. In a folder, every *.yaml, *.yml and *.json whose root has an
    /// `asyncapi` key is an API; other files are fragments that `$ref`s may point to.
    #[arg(required = true, value_name = "PATH")]
    paths: Vec<PathBuf>,

    /// Write the plan (DIR/plan.json) and the API docs (DIR/docs/) here. Without it, `compile`
    /// only validates.
    #[arg(long, value_name = "DIR", conflicts_with = "lint")]
    out: Option<PathBuf>,

    /// Templates for the docs: files in DIR named like the built-ins (index.html.j2, api.html.j2,
    /// api.md.j2, style.css.j2, macros.html.j2) replace them; other files are extra partials.
    #[arg(long, value_name = "DIR", requires = "out")]
    templates: Option<PathBuf>,

    /// Where clients reach the gateway, as the docs show it: a ws:// URL, a wss:// URL, or both
    /// (give the flag twice). Only these are shown. Default: ws://localhost:9099.
    #[arg(
        long = "public-url",
        visible_alias = "docs-base-url",
        value_name = "URL"
    )]
    public_urls: Vec<String>,

    /// Check plain AsyncAPI only: no gateway rules, no plan.
    #[arg(long)]
    lint: bool,

    /// Context for documents that do not name one (as WSO2 exports, which keep it outside). A
    /// missing leading `/` is added, as WSO2's publisher writes it (`{version}/websocket`).
    #[arg(long, value_name = "CONTEXT")]
    context: Option<String>,

    /// Also allow reading spec files and `$ref` targets under DIR (repeatable). By default the
    /// compiler reads only inside the folders given and the folders of the files given.
    #[arg(long = "allow-root", value_name = "DIR")]
    allow_roots: Vec<PathBuf>,

    /// Most files one compilation reads (spec files and `$ref` targets).
    #[arg(long, value_name = "N", default_value_t = portico_compiler::source::Limits::default().max_files)]
    max_files: usize,

    /// Most MiB one compilation reads, all files together.
    #[arg(long, value_name = "N", default_value_t = portico_compiler::source::Limits::default().max_total_bytes / (1024 * 1024))]
    max_total_mib: u64,

    /// How to print diagnostics: human (stderr), json, sarif or github (stdout).
    #[arg(long, default_value = "human", value_parser = ["human", "json", "sarif", "github"])]
    format: String,

    /// Page each SARIF rule's `helpUri` points at, with `#CODE` appended: the diagnostics
    /// reference (`docs/diagnostics.md`) where your team reads it, e.g. a fork or an internal
    /// mirror.
    #[arg(long, value_name = "URL", default_value = render::DEFAULT_HELP_BASE_URL)]
    help_base_url: String,

    /// Treat warnings as errors for the exit status.
    #[arg(long)]
    deny_warnings: bool,

    /// Hide info-level diagnostics.
    #[arg(long, short)]
    quiet: bool,

    /// Compare with a plan compiled earlier (e.g. the one deployed) and print what changes on
    /// stdout: APIs and routes added, removed, re-pointed, and which live connections the change
    /// would close. For review in CI.
    #[arg(long, value_name = "OLD_PLAN.json", conflicts_with = "lint")]
    diff: Option<PathBuf>,

    /// How to print --diff: human or json.
    #[arg(long, default_value = "human", value_parser = ["human", "json"], requires = "diff")]
    diff_format: String,
}

/// Largest plan file `--diff` reads.
const MAX_PLAN_BYTES: u64 = 256 * 1024 * 1024;

/// Reads the plan `--diff` compares with.
fn read_old_plan(path: &std::path::Path) -> Result<portico_compiler::Plan, String> {
    let size = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if size > MAX_PLAN_BYTES {
        return Err(format!("larger than {} MiB", MAX_PLAN_BYTES >> 20));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    portico_compiler::Plan::from_json(&text).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut options = Options {
        lint: cli.lint,
        context: cli.context.clone(),
        allow_roots: cli.allow_roots.clone(),
        ..Options::default()
    };
    options.limits.max_files = cli.max_files;
    options.limits.max_total_bytes = cli.max_total_mib.saturating_mul(1024 * 1024);
    let public_urls = if cli.public_urls.is_empty() {
        Ok(docs::PublicUrls::default())
    } else {
        docs::PublicUrls::parse(&cli.public_urls)
    };
    let docs_options = match public_urls {
        Ok(public_urls) => docs::Options {
            public_urls,
            spec_links: false,
        },
        Err(e) => {
            eprintln!("error: --public-url: {e}");
            return ExitCode::from(2);
        }
    };
    let help_base_url = match render::parse_help_base_url(&cli.help_base_url) {
        Ok(url) => url,
        Err(e) => {
            eprintln!("error: --help-base-url: {e}");
            return ExitCode::from(2);
        }
    };
    let templates = match &cli.templates {
        Some(dir) => match read_templates(dir) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("error: --templates {}: {e}", dir.display());
                return ExitCode::from(2);
            }
        },
        None => docs::Templates::builtin(),
    };
    let old_plan = match &cli.diff {
        Some(path) => match read_old_plan(path) {
            Ok(plan) => Some(plan),
            Err(e) => {
                eprintln!("error: --diff {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => None,
    };
    let out = compile(&cli.paths, &options);
    let mut diags = out.diagnostics.clone();
    if cli.quiet {
        diags.retain(|d| d.severity != Severity::Info);
    }
    let sources = &out.files.sources;
    let format = Format::parse(&cli.format).unwrap_or(Format::Human);
    let printed = match format {
        Format::Human => {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            eprint!("{}", render::human(sources, &diags, color));
            Ok(())
        }
        Format::Json => std::io::stdout().write_all(render::json(sources, &diags).as_bytes()),
        Format::Sarif => std::io::stdout()
            .write_all(render::sarif_with_help(sources, &diags, &help_base_url).as_bytes()),
        Format::Github => std::io::stdout().write_all(render::github(sources, &diags).as_bytes()),
    };
    if printed.is_err() {
        return ExitCode::from(2);
    }
    eprintln!("{}", render::summary(&diags, out.documents.len()));
    // A path that does not exist is a usage error, not a problem in a spec.
    if out.diagnostics.iter().any(|d| d.code == "input-unreadable") {
        return ExitCode::from(2);
    }
    if out.documents.is_empty() && !out.has_errors() {
        eprintln!("error: no AsyncAPI documents found (a document is a .yaml, .yml or .json file with an `asyncapi` key)");
        return ExitCode::from(1);
    }
    let failed = out.has_errors()
        || (cli.deny_warnings && diags.iter().any(|d| d.severity == Severity::Warning));
    if failed {
        return ExitCode::from(1);
    }
    if let (Some(old), Some(plan)) = (&old_plan, &out.plan) {
        let diff = PlanDiff::new(Some(old), plan);
        let text = if cli.diff_format == "json" {
            let mut json = serde_json::to_string_pretty(&diff).expect("a diff serializes");
            json.push('\n');
            json
        } else {
            diff.render_human()
        };
        if std::io::stdout().write_all(text.as_bytes()).is_err() {
            return ExitCode::from(2);
        }
    }
    if let (Some(dir), Some(plan)) = (&cli.out, &out.plan) {
        // Render first: a broken user template writes nothing, not half the outputs.
        let pages = match docs::render_compilation(&out, &docs_options, &templates) {
            Ok(pages) => pages,
            Err(e) => {
                eprintln!("error: cannot render the docs: {e}");
                return ExitCode::from(2);
            }
        };
        if let Err(e) = write_outputs(dir, plan) {
            eprintln!("error: cannot write to {}: {e}", dir.display());
            return ExitCode::from(2);
        }
        if let Err(e) = write_docs(&dir.join("docs"), &pages) {
            eprintln!(
                "error: cannot write the docs to {}: {e}",
                dir.join("docs").display()
            );
            return ExitCode::from(2);
        }
        eprintln!(
            "wrote {} ({} APIs, {}) and {} ({} pages)",
            dir.join("plan.json").display(),
            plan.apis.len(),
            plan.hash,
            dir.join("docs").display(),
            pages.len()
        );
    }
    ExitCode::SUCCESS
}

/// The built-in templates with the files of `dir` laid over them (a user's file wins).
fn read_templates(dir: &std::path::Path) -> Result<docs::Templates, String> {
    let entries = std::fs::read_dir(dir).map_err(|e| e.to_string())?;
    let mut templates = docs::Templates::builtin();
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.starts_with('.') || !path.is_file() {
            continue;
        }
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size > 4 * 1024 * 1024 {
            return Err(format!("{name} is larger than 4 MiB"));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))?;
        templates.set(name, text);
    }
    Ok(templates)
}

/// Writes the docs into a fresh folder and swaps it in, so a reader never sees a mix of two runs
/// and pages of removed APIs do not linger.
fn write_docs(dir: &std::path::Path, pages: &[docs::Page]) -> std::io::Result<()> {
    let parent = dir.parent().unwrap_or(std::path::Path::new("."));
    let tmp = parent.join(".docs.tmp");
    let old = parent.join(".docs.old");
    for stale in [&tmp, &old] {
        if stale.exists() {
            std::fs::remove_dir_all(stale)?;
        }
    }
    std::fs::create_dir_all(&tmp)?;
    for page in pages {
        std::fs::write(tmp.join(&page.path), &page.content)?;
    }
    if dir.exists() {
        std::fs::rename(dir, &old)?;
    }
    std::fs::rename(&tmp, dir)?;
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    Ok(())
}

/// Writes the plan atomically (temp file + rename), so a runtime watching it never reads half.
fn write_outputs(dir: &std::path::Path, plan: &portico_compiler::Plan) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".plan.json.tmp");
    std::fs::write(&tmp, plan.to_json())?;
    std::fs::rename(&tmp, dir.join("plan.json"))
}
