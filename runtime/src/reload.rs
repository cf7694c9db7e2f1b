//! Loading the plan and reloading it when the watched files change.
//!
//! The journey of a spec change: a file event (create, modify, delete, rename — including an
//! editor's write-to-temp-then-rename and a Kubernetes ConfigMap's `..data` symlink swap, all of
//! which show up as events in the watched folder) → a debounce (a quiet period, so a burst of
//! events compiles once) → [`load`] (the compiler, on a blocking thread) → if it has errors, the
//! running plan stays and the diagnostics are logged and kept for `/plan` → else [`apply`]: the route
//! table is swapped atomically, and only the live connections whose route vanished, or whose API is
//! no longer served, are closed with 1001 and a reason. Everything else keeps running untouched.
//! The API docs (`/docs/` on the admin listener) are rendered again on every successful load.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use portico_compiler::docs::{self, Collected};
use portico_compiler::plan::{Lifecycle, Plan};
use portico_compiler::{compile, Options};
use tokio::sync::mpsc;
use tracing::{error, info, warn};

use crate::admin::{docs_base_url, DocsSite};
use crate::metrics::ResultLabels;
use crate::relay::CloseCommand;
use crate::routes::RouteTable;
use crate::Gateway;

/// Where the plan comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Spec files and folders, compiled by the compiler library.
    Specs {
        paths: Vec<PathBuf>,
        context: Option<String>,
    },
    /// A plan file written by `compile --out`.
    PlanFile(PathBuf),
}

impl Source {
    /// What to watch: spec folders recursively; for a single file (a spec, or the plan), its
    /// folder, because editors and `compile --out` replace files by rename, which a watch on the
    /// file itself would lose after the first save.
    fn watch_paths(&self) -> Vec<(PathBuf, RecursiveMode)> {
        let folder_of = |file: &PathBuf| {
            file.parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."))
        };
        let files: Vec<&PathBuf> = match self {
            Source::Specs { paths, .. } => paths.iter().collect(),
            Source::PlanFile(file) => vec![file],
        };
        files
            .into_iter()
            .map(|p| {
                if p.is_dir() {
                    (p.clone(), RecursiveMode::Recursive)
                } else {
                    (folder_of(p), RecursiveMode::NonRecursive)
                }
            })
            .collect()
    }
}

/// A loaded plan, and what the docs need from the specs it was compiled from (their prose is
/// not in the plan; none when serving a plan file).
pub struct Loaded {
    pub plan: Plan,
    specs: Option<Collected>,
}

impl Loaded {
    /// Renders the docs site for this plan (CPU work: call it off the async threads).
    pub fn docs(&self, base_url: &str) -> DocsSite {
        DocsSite::build(&self.plan, self.specs.as_ref(), base_url)
    }
}

/// Builds the plan. On failure, returns the diagnostics rendered for people.
pub fn load(source: &Source) -> Result<Loaded, String> {
    match source {
        Source::Specs { paths, context } => {
            let options = Options {
                context: context.clone(),
                ..Options::default()
            };
            let out = compile(paths, &options);
            let warnings: Vec<_> = out
                .diagnostics
                .iter()
                .filter(|d| d.severity == portico_compiler::Severity::Warning)
                .cloned()
                .collect();
            if !warnings.is_empty() {
                warn!(
                    "{}",
                    portico_compiler::render::human(&out.files.sources, &warnings, false)
                        .trim_end()
                );
            }
            if out.documents.is_empty() && !out.has_errors() {
                return Err("no AsyncAPI documents found".to_string());
            }
            match &out.plan {
                Some(plan) => Ok(Loaded {
                    plan: plan.clone(),
                    specs: Some(docs::collect(&out)),
                }),
                None => {
                    let problems: Vec<_> = out
                        .diagnostics
                        .iter()
                        .filter(|d| d.is_error())
                        .cloned()
                        .collect();
                    Err(format!(
                        "{}{}",
                        portico_compiler::render::human(&out.files.sources, &problems, false),
                        portico_compiler::render::summary(&out.diagnostics, out.documents.len())
                    ))
                }
            }
        }
        Source::PlanFile(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the plan {}: {e}", path.display()))?;
            Plan::from_json(&text)
                .map(|plan| Loaded { plan, specs: None })
                .map_err(|e| format!("{}: {e}", path.display()))
        }
    }
}

/// Swaps in the plan, closes the connections it no longer serves, and serves its docs. Returns
/// how many connections were closed.
pub fn apply(gateway: &Gateway, loaded: &Loaded) -> usize {
    let site = loaded.docs(&docs_base_url(&gateway.config));
    let closed = swap_table(gateway, &loaded.plan);
    store_docs(gateway, site);
    closed
}

fn store_docs(gateway: &Gateway, site: DocsSite) {
    if let Some(e) = &site.error {
        error!("cannot render the API docs: {e}");
    }
    gateway.docs.store(Some(Arc::new(site)));
}

/// Swaps the route table and closes what it no longer serves.
fn swap_table(gateway: &Gateway, plan: &Plan) -> usize {
    let table = Arc::new(RouteTable::new(&servable(gateway, plan)));
    gateway.table.store(Some(table.clone()));
    gateway.metrics.set_plan(&plan.hash);
    gateway.connections.close_where(|api, route| {
        let Some(entry) = table.api_by_context(api) else {
            return Some(CloseCommand::new(1001, "the API was removed"));
        };
        match entry.api.lifecycle {
            Lifecycle::Blocked => return Some(CloseCommand::new(1001, "the API is blocked")),
            Lifecycle::Retired => return Some(CloseCommand::new(1001, "the API is retired")),
            Lifecycle::Created => return Some(CloseCommand::new(1001, "the API is not published")),
            _ => {}
        }
        (!entry.api.routes.iter().any(|r| r.pattern == route))
            .then(|| CloseCommand::new(1001, "the route was removed"))
    })
}

/// The plan without the APIs whose credentials no configured verifier can check (fail closed).
fn servable(gateway: &Gateway, plan: &Plan) -> Plan {
    let verifiers = gateway.verifiers.load();
    let mut served = plan.clone();
    served.apis.retain(
        |api| match crate::policy::auth::unverifiable(api, &verifiers) {
            Some(why) => {
                error!("{why}");
                false
            }
            None => true,
        },
    );
    served
}

/// Recompiles and applies; keeps the running plan if the new one has errors.
pub async fn reload(gateway: &Arc<Gateway>, source: &Source) {
    let src = source.clone();
    let base_url = docs_base_url(&gateway.config);
    // Compile and render the docs off the async threads.
    let result = tokio::task::spawn_blocking(move || {
        load(&src).map(|loaded| {
            let site = loaded.docs(&base_url);
            (loaded.plan, site)
        })
    })
    .await
    .unwrap_or_else(|e| Err(format!("the compiler panicked: {e}")));
    let mut status = gateway.status.lock().expect("status").clone();
    match result {
        Ok((plan, site)) => {
            let unchanged = gateway
                .table
                .load()
                .as_ref()
                .is_some_and(|t| t.plan_hash == plan.hash);
            status.last_error = None;
            if unchanged {
                gateway
                    .metrics
                    .reloads
                    .get_or_create(&ResultLabels {
                        result: "unchanged",
                    })
                    .inc();
                // The plan is the same, but prose in the specs (descriptions live in the docs, not
                // in the plan) may have changed.
                store_docs(gateway, site);
            } else {
                let closed = swap_table(gateway, &plan);
                store_docs(gateway, site);
                status.reloads += 1;
                gateway
                    .metrics
                    .reloads
                    .get_or_create(&ResultLabels { result: "ok" })
                    .inc();
                info!(hash = %plan.hash, apis = plan.apis.len(), closed, "plan reloaded");
            }
        }
        Err(problems) => {
            status.failed_reloads += 1;
            status.last_error = Some(problems.clone());
            gateway
                .metrics
                .reloads
                .get_or_create(&ResultLabels { result: "failed" })
                .inc();
            error!("the new specs have errors; still serving the previous plan\n{problems}");
        }
    }
    *gateway.status.lock().expect("status") = status;
}

/// Starts watching the source. The watch is in place when this returns (so `/readyz` never says
/// ready before a change would be seen); the returned future reloads after each burst of changes,
/// until the process ends.
pub fn watch(
    gateway: Arc<Gateway>,
    source: Source,
) -> Result<impl std::future::Future<Output = ()>, String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(());
            }
        }
    })
    .map_err(|e| format!("cannot start the file watcher: {e}"))?;
    for (path, mode) in source.watch_paths() {
        watcher
            .watch(&path, mode)
            .map_err(|e| format!("cannot watch {}: {e}", path.display()))?;
    }
    let quiet = Duration::from_millis(gateway.config.reload_debounce_ms);
    Ok(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            // Debounce: wait until no event arrived for `quiet`.
            loop {
                match tokio::time::timeout(quiet, rx.recv()).await {
                    Ok(Some(())) => continue,
                    Ok(None) => return,
                    Err(_) => break,
                }
            }
            reload(&gateway, &source).await;
        }
    })
}
