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

use portico_compiler::plan::Plan;
use portico_compiler::plan_diff::{Change, PlanDiff};
use portico_compiler::{build, docs_for_plan, BuildOptions, LocatedDiagnostic, Options, Severity};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::docs_site::{public_urls, DocsSite};
use crate::metrics::ResultLabels;
use crate::relay::CloseCommand;
use crate::routes::RouteTable;
use crate::served::Served;
use crate::Gateway;
use portico_compiler::docs::PublicUrls;

/// Where the plan comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// Spec files and folders, compiled by the compiler library.
    Specs {
        paths: Vec<PathBuf>,
        /// How to compile them (`--context`, extra roots).
        options: Options,
    },
    /// A plan file written by `compile --out`.
    PlanFile(PathBuf),
}

/// A plan ready to serve, with its docs already rendered (CPU work done by [`load`], off the
/// async threads).
pub struct Loaded {
    pub plan: Plan,
    pub docs: DocsSite,
    /// Every file the compilation read (for the watcher).
    pub files_read: Vec<PathBuf>,
}

/// Why no plan was built, and what was read trying.
#[derive(Debug)]
pub struct LoadFailure {
    /// The diagnostics rendered for people (logs).
    pub text: String,
    /// The same, located (`/plan`'s `lastReloadError`); empty for a plan file that cannot be read.
    pub diagnostics: Vec<LocatedDiagnostic>,
    pub files_read: Vec<PathBuf>,
}

impl LoadFailure {
    fn new(text: impl Into<String>) -> LoadFailure {
        let text = text.into();
        LoadFailure {
            diagnostics: vec![LocatedDiagnostic {
                code: "plan-unreadable".to_string(),
                severity: Severity::Error,
                message: text.clone(),
                help: None,
                file: None,
                line: None,
                column: None,
                pointer: String::new(),
            }],
            text,
            files_read: Vec::new(),
        }
    }
}

impl std::fmt::Display for LoadFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// Builds the plan and renders its docs (CPU work: call it on a blocking thread). On failure,
/// returns the diagnostics, located and rendered for people.
pub fn load(source: &Source, public_urls: &PublicUrls) -> Result<Loaded, LoadFailure> {
    match source {
        Source::Specs { paths, options } => {
            let options = BuildOptions {
                compile: options.clone(),
                public_urls: public_urls.clone(),
            };
            let built = build(paths, &options).map_err(|report| LoadFailure {
                text: report.text,
                diagnostics: report.diagnostics,
                files_read: report.files_read,
            })?;
            if !built.warnings_text.is_empty() {
                warn!("{}", built.warnings_text.trim_end());
            }
            Ok(Loaded {
                docs: DocsSite::build(&built.plan.hash, built.docs, false),
                plan: built.plan,
                files_read: built.files_read,
            })
        }
        Source::PlanFile(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                LoadFailure::new(format!("cannot read the plan {}: {e}", path.display()))
            })?;
            let plan = Plan::from_json(&text)
                .map_err(|e| LoadFailure::new(format!("{}: {e}", path.display())))?;
            let docs = docs_for_plan(&plan, public_urls);
            Ok(Loaded {
                docs: DocsSite::build(&plan.hash, docs, true),
                plan,
                files_read: vec![path.clone()],
            })
        }
    }
}

/// [`load`] on a blocking thread, with the gateway's docs address.
pub async fn load_blocking(gateway: &Gateway, source: &Source) -> Result<Loaded, LoadFailure> {
    let source = source.clone();
    let public = public_urls(&gateway.config);
    tokio::task::spawn_blocking(move || load(&source, &public))
        .await
        .unwrap_or_else(|e| Err(LoadFailure::new(format!("the compiler panicked: {e}"))))
}

/// A diff as applied: each change with the number of live connections it closed.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedDiff {
    pub old_hash: Option<String>,
    pub new_hash: String,
    pub changes: Vec<AppliedChange>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppliedChange {
    #[serde(flatten)]
    pub change: Change,
    /// Live connections this change closed.
    pub closed: usize,
}

impl AppliedDiff {
    pub fn closed(&self) -> usize {
        self.changes.iter().map(|c| c.closed).sum()
    }
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

/// Serves `loaded`: the one path for startup and every reload. Computes the diff from the plan
/// being served (none at startup), swaps the served state whole, then closes exactly the live
/// connections the diff names (1001 with its reason). A plan with the same hash keeps the route
/// table (and its generation) and only refreshes the docs, whose prose is not in the plan.
/// Returns the applied diff, or `None` when the plan was unchanged.
pub fn apply(gateway: &Gateway, loaded: Loaded) -> Option<AppliedDiff> {
    if let Some(e) = &loaded.docs.error {
        error!("cannot render the API docs: {e}");
    }
    let previous = gateway.served.load_full();
    if let Some(prev) = previous.as_ref().filter(|p| p.hash() == loaded.plan.hash) {
        gateway.served.store(Some(Arc::new(Served {
            plan: prev.plan.clone(),
            table: prev.table.clone(),
            docs: Arc::new(loaded.docs),
            traffic: prev.traffic.clone(),
            generation: prev.generation,
        })));
        return None;
    }
    // What is served is the plan without the APIs no configured verifier can check, so the diff
    // (and the connections it closes) is taken against that.
    let servable_plan = servable(gateway, &loaded.plan);
    let diff = PlanDiff::new(previous.as_ref().map(|p| &*p.plan), &servable_plan);
    let table = Arc::new(RouteTable::new(&servable_plan));
    let traffic = Arc::new(crate::policy::message::TrafficTable::build(
        &servable_plan,
        &gateway.throttling.load(),
        &gateway.metrics.policy,
    ));
    gateway.metrics.set_plan(&loaded.plan.hash);
    gateway.served.store(Some(Arc::new(Served {
        traffic,
        generation: previous.as_ref().map_or(0, |p| p.generation + 1),
        plan: Arc::new(servable_plan),
        table,
        docs: Arc::new(loaded.docs),
    })));
    // After the swap: a handshake that registers after this sweep sees the new generation and
    // re-checks its route (see `server::register`).
    let changes = diff
        .changes
        .into_iter()
        .map(|change| {
            let closed = match &change.closes {
                None => 0,
                Some(reason) => gateway.connections.close_where(|api, route| {
                    (api == change.api && change.route.as_deref().is_none_or(|r| r == route))
                        .then(|| CloseCommand::new(1001, reason.clone()))
                }),
            };
            AppliedChange { change, closed }
        })
        .collect();
    let applied = AppliedDiff {
        old_hash: diff.old_hash,
        new_hash: diff.new_hash,
        changes,
    };
    for c in &applied.changes {
        info!(
            api = %c.change.api,
            route = c.change.route.as_deref().unwrap_or(""),
            change = ?c.change.kind,
            closed = c.closed,
            "plan change"
        );
    }
    gateway.status.lock().expect("status").last_diff = Some(applied.clone());
    Some(applied)
}

/// Recompiles and applies; keeps the running plan if the new one has errors.
pub async fn reload(gateway: &Arc<Gateway>, source: &Source) {
    report(gateway, load_blocking(gateway, source).await);
}

/// Applies a successful load, or keeps the running plan and records why the load failed.
pub fn report(gateway: &Gateway, result: Result<Loaded, LoadFailure>) {
    let outcome = match result {
        Ok(loaded) => {
            gateway.status.lock().expect("status").last_error = None;
            let hash = loaded.plan.hash.clone();
            let apis = loaded.plan.apis.len();
            match apply(gateway, loaded) {
                None => "unchanged",
                Some(applied) => {
                    gateway.status.lock().expect("status").reloads += 1;
                    info!(hash = %hash, apis, closed = applied.closed(), "plan reloaded");
                    "ok"
                }
            }
        }
        Err(failure) => {
            error!(
                "the new specs have errors; still serving the previous plan\n{}",
                crate::redact::redact_userinfo(&failure.text)
            );
            let mut status = gateway.status.lock().expect("status");
            status.failed_reloads += 1;
            status.last_error = Some(failure.diagnostics);
            "failed"
        }
    };
    gateway
        .metrics
        .reloads
        .get_or_create(&ResultLabels { result: outcome })
        .inc();
}
