//! `compile`: validate AsyncAPI documents and build the routing plan (what users run in CI).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
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

    /// Write the plan (DIR/plan.json) here. Without it, `compile` only validates.
    #[arg(long, value_name = "DIR", conflicts_with = "lint")]
    out: Option<PathBuf>,

    /// Check plain AsyncAPI only: no gateway rules, no plan.
    #[arg(long)]
    lint: bool,

    /// Context for documents that do not name one (as WSO2 exports, which keep it outside).
    #[arg(long, value_name = "CONTEXT")]
    context: Option<String>,

    /// How to print diagnostics: human (stderr), json, sarif or github (stdout).
    #[arg(long, default_value = "human", value_parser = ["human", "json", "sarif", "github"])]
    format: String,

    /// Treat warnings as errors for the exit status.
    #[arg(long)]
    deny_warnings: bool,

    /// Hide info-level diagnostics.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let options = Options {
        lint: cli.lint,
        context: cli.context.clone(),
        ..Options::default()
    };
    if let Some(ctx) = &cli.context {
        if !ctx.starts_with('/') {
            eprintln!("error: --context must start with `/` (got `{ctx}`)");
            return ExitCode::from(2);
        }
    }
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
        Format::Sarif => std::io::stdout().write_all(render::sarif(sources, &diags).as_bytes()),
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
    if let (Some(dir), Some(plan)) = (&cli.out, &out.plan) {
        if let Err(e) = write_outputs(dir, plan) {
            eprintln!("error: cannot write to {}: {e}", dir.display());
            return ExitCode::from(2);
        }
        eprintln!(
            "wrote {} ({} APIs, {})",
            dir.join("plan.json").display(),
            plan.apis.len(),
            plan.hash
        );
    }
    ExitCode::SUCCESS
}

/// Writes the plan atomically (temp file + rename), so a runtime watching it never reads half.
fn write_outputs(dir: &std::path::Path, plan: &portico_compiler::Plan) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(".plan.json.tmp");
    std::fs::write(&tmp, plan.to_json())?;
    std::fs::rename(&tmp, dir.join("plan.json"))
}
