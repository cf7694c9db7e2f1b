//! Watching the specs: which paths, how a replaced folder is found again, and when to compile.
//!
//! **What is watched.** Each root given to the runtime (a spec folder recursively; a single file
//! through its folder, because editors and `compile --out` replace files by rename), the parent of
//! each root (so that deleting and recreating the folder, `mv`-swapping it or replacing it with a
//! link is seen), and the folder of every file the last compilation read outside the roots
//! (`$ref` targets, an apictl `api.yaml`), filtered to exactly those files.
//!
//! **Re-arming.** An inotify watch follows an inode, not a name: once the folder is replaced the old
//! watch sees nothing more. When an event names a root itself, or when a once-a-second check finds
//! that the root's identity (device, inode) changed, the root's watch is dropped and set up again
//! on whatever the name points at now, and a compile follows. A Kubernetes ConfigMap's `..data`
//! symlink swap happens inside the folder and needs no re-arming.
//!
//! **When to compile.** On the first event of a burst, at once (the leading edge: a saved spec
//! serves in the time of one compile), then, if more events arrived meanwhile or within the quiet
//! period (`--reload-debounce-ms`), once more after the burst: an editor's burst of writes costs
//! at most two compiles. A leading result is applied only if no event arrived while it compiled
//! (otherwise it may have read a file mid-write: an in-place save truncates first, and an empty
//! spec is a valid folder without that API); the trailing compile then decides, as soon as the
//! writes pause for 20 ms.
//!
//! **Health** is published in `/plan` (`watch`) and the `portico_watch_healthy` metric: unhealthy
//! while a root cannot be watched (deleted and not back yet), with the reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use serde::Serialize;
use tokio::sync::mpsc;
use tracing::{info, warn};

use crate::reload::{self, Source};
use crate::Gateway;

/// The pause in writes after which a failed leading compile is retried (milliseconds).
const HALF_WRITTEN_QUIET_MS: u64 = 20;

/// The watcher's state as `/plan` shows it.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WatchHealth {
    /// `--watch` is on.
    pub enabled: bool,
    /// Every root is watched.
    pub healthy: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// How many times a root's watch was set up again after the root was replaced.
    pub rearms: u64,
    /// Files outside the roots that the last compilation read and that are watched too.
    pub extra_files: usize,
}

impl Default for WatchHealth {
    /// Not watching (no `--watch`): nothing is wrong.
    fn default() -> Self {
        WatchHealth {
            enabled: false,
            healthy: true,
            problem: None,
            rearms: 0,
            extra_files: 0,
        }
    }
}

/// Device and inode: what a watch follows.
type Identity = (u64, u64);

fn identity(path: &Path) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn parent_of(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

struct Root {
    /// Absolute, not canonical: the name, which may be re-pointed.
    path: PathBuf,
    /// What is watched for this root: the folder itself (recursively), or a file's folder.
    target: PathBuf,
    mode: RecursiveMode,
    /// What `target` was when its watch was set up; `None` when it could not be.
    armed: Option<Identity>,
}

/// The set of watches, and the bookkeeping that keeps them pointed at the right inodes.
struct Watches {
    watcher: RecommendedWatcher,
    roots: Vec<Root>,
    /// Parents of the roots (non-recursive), to see a root replaced.
    parents: BTreeSet<PathBuf>,
    /// Files read outside the roots, and the folders watched for them.
    extra_files: BTreeSet<PathBuf>,
    extra_dirs: BTreeSet<PathBuf>,
    rearms: u64,
}

impl Watches {
    fn new(watcher: RecommendedWatcher, source: &Source) -> Watches {
        let inputs: Vec<PathBuf> = match source {
            Source::Specs { paths, .. } => paths.clone(),
            Source::PlanFile(file) => vec![file.clone()],
        };
        let roots = inputs
            .iter()
            .map(|p| {
                let path = absolute(p);
                let (target, mode) = if path.is_dir() {
                    (path.clone(), RecursiveMode::Recursive)
                } else {
                    (parent_of(&path), RecursiveMode::NonRecursive)
                };
                Root {
                    path,
                    target,
                    mode,
                    armed: None,
                }
            })
            .collect();
        let mut w = Watches {
            watcher,
            roots,
            parents: BTreeSet::new(),
            extra_files: BTreeSet::new(),
            extra_dirs: BTreeSet::new(),
            rearms: 0,
        };
        for i in 0..w.roots.len() {
            let parent = parent_of(&w.roots[i].path);
            if w.parents.insert(parent.clone()) {
                if let Err(e) = w.watcher.watch(&parent, RecursiveMode::NonRecursive) {
                    warn!(path = %parent.display(), error = %e, "cannot watch a root's parent: a replaced root will be found by the periodic check only");
                }
            }
            w.arm(i);
        }
        w
    }

    /// Sets up root `i`'s watch on what its name points at now.
    fn arm(&mut self, i: usize) {
        let root = &mut self.roots[i];
        if root.armed.is_some() {
            let _ = self.watcher.unwatch(&root.target);
        }
        root.armed = None;
        let Some(id) = identity(&root.target) else {
            return;
        };
        if self.watcher.watch(&root.target, root.mode).is_ok() {
            root.armed = Some(id);
        }
    }

    /// Re-arms every root whose identity changed. Returns whether any did.
    fn check_roots(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.roots.len() {
            let now = identity(&self.roots[i].target);
            if now != self.roots[i].armed {
                let was_armed = self.roots[i].armed.is_some();
                self.arm(i);
                if self.roots[i].armed.is_some() {
                    self.rearms += 1;
                    info!(path = %self.roots[i].path.display(), "the watched folder was replaced: watching it again");
                } else if was_armed {
                    warn!(path = %self.roots[i].path.display(), "the watched path is gone: still serving the last plan; it is watched again when it is back");
                }
                changed = true;
            }
        }
        changed
    }

    /// Watches the folders of the files the last compilation read outside the roots.
    fn set_files_read(&mut self, files: &[PathBuf]) {
        let outside: BTreeSet<PathBuf> = files
            .iter()
            .map(|f| absolute(f))
            .filter(|f| !self.roots.iter().any(|r| self.covers(r, f)))
            .collect();
        let dirs: BTreeSet<PathBuf> = outside.iter().map(|f| parent_of(f)).collect();
        for gone in self.extra_dirs.difference(&dirs) {
            if !self.parents.contains(gone) {
                let _ = self.watcher.unwatch(gone);
            }
        }
        for new in dirs.difference(&self.extra_dirs) {
            if !self.parents.contains(new) {
                if let Err(e) = self.watcher.watch(new, RecursiveMode::NonRecursive) {
                    warn!(path = %new.display(), error = %e, "cannot watch a folder holding a file the specs read");
                }
            }
        }
        self.extra_dirs = dirs;
        self.extra_files = outside;
    }

    fn covers(&self, root: &Root, path: &Path) -> bool {
        match root.mode {
            RecursiveMode::Recursive => path.starts_with(&root.path),
            RecursiveMode::NonRecursive => parent_of(path) == root.target,
        }
    }

    /// Whether an event on `paths` can change the compilation (and re-arms a root it names).
    fn relevant(&mut self, paths: &[PathBuf]) -> bool {
        if paths.is_empty() {
            // The watcher lost events (a queue overflow): anything may have changed.
            self.check_roots();
            return true;
        }
        let mut relevant = false;
        for path in paths {
            if self
                .roots
                .iter()
                .any(|r| r.path == *path || r.target == *path)
            {
                // The root itself was created, removed, renamed or re-pointed.
                self.check_roots();
                relevant = true;
            } else if self.roots.iter().any(|r| self.covers(r, path))
                || self.extra_files.contains(path)
            {
                relevant = true;
            }
        }
        relevant
    }

    fn health(&self) -> WatchHealth {
        let missing: Vec<String> = self
            .roots
            .iter()
            .filter(|r| r.armed.is_none())
            .map(|r| r.path.display().to_string())
            .collect();
        WatchHealth {
            enabled: true,
            healthy: missing.is_empty(),
            problem: (!missing.is_empty()).then(|| {
                format!(
                    "cannot watch {} (missing or unreadable); serving the last good plan until it is back",
                    missing.join(", ")
                )
            }),
            rearms: self.rearms,
            extra_files: self.extra_files.len(),
        }
    }
}

/// The running watch: its events, the watches, and the gateway to reload.
struct Watching {
    gateway: Arc<Gateway>,
    source: Source,
    events: mpsc::UnboundedReceiver<Vec<PathBuf>>,
    watches: Watches,
    check_every: Duration,
}

impl Watching {
    fn publish_health(&self) {
        let health = self.watches.health();
        self.gateway.metrics.set_watch_health(&health);
        self.gateway.status.lock().expect("status").watch = health;
    }

    /// Waits for a change that can affect the compilation. `None` when the watcher is gone.
    async fn next_change(&mut self) -> Option<()> {
        let mut tick = tokio::time::interval(self.check_every);
        tick.tick().await;
        loop {
            tokio::select! {
                event = self.events.recv() => {
                    let paths = event?;
                    let relevant = self.watches.relevant(&paths);
                    self.publish_health();
                    if relevant {
                        return Some(());
                    }
                }
                _ = tick.tick() => {
                    let changed = self.watches.check_roots();
                    self.publish_health();
                    if changed {
                        return Some(());
                    }
                }
            }
        }
    }

    /// Waits until no relevant change arrives for `quiet`. Returns whether any arrived (counting
    /// those that queued up before the call), or `None` when the watcher is gone.
    async fn settle(&mut self, quiet: Duration) -> Option<bool> {
        let mut seen = false;
        loop {
            match tokio::time::timeout(quiet, self.next_change()).await {
                Ok(Some(())) => seen = true,
                Ok(None) => return None,
                Err(_) => return Some(seen),
            }
        }
    }

    async fn run(mut self) {
        let quiet = Duration::from_millis(self.gateway.config.reload_debounce_ms);
        self.publish_health();
        while self.next_change().await.is_some() {
            if burst(&mut self, quiet).await.is_none() {
                return;
            }
            self.publish_health();
        }
    }

    /// Watches what a compilation read, then applies its plan or records its failure.
    fn follow(&mut self, result: Result<reload::Loaded, reload::LoadFailure>) {
        let files = match &result {
            Ok(loaded) => &loaded.files_read,
            Err(failure) => &failure.files_read,
        };
        self.watches.set_files_read(files);
        reload::report(&self.gateway, result);
    }

    /// Whether a relevant change is already queued (without waiting).
    fn queued_change(&mut self) -> bool {
        let mut relevant = false;
        while let Ok(paths) = self.events.try_recv() {
            relevant |= self.watches.relevant(&paths);
        }
        relevant
    }
}

/// What one burst of changes needs from the watch: compiling, looking at the events, applying.
/// The decisions ([`burst`]) are written against this, so a test can drive them with a scripted
/// sequence of events and compile results, in any interleaving, without a clock or a file system.
trait BurstSteps {
    /// A compilation's result.
    type Compiled;
    fn succeeded(compiled: &Self::Compiled) -> bool;
    async fn compile(&mut self) -> Self::Compiled;
    /// Whether a relevant change is already queued (without waiting).
    fn queued_change(&mut self) -> bool;
    /// Waits until no relevant change arrives for `quiet`: whether any did, `None` when the
    /// watcher is gone.
    async fn settle(&mut self, quiet: Duration) -> Option<bool>;
    /// Applies the result (or records its failure).
    fn follow(&mut self, compiled: Self::Compiled);
}

impl BurstSteps for Watching {
    type Compiled = Result<reload::Loaded, reload::LoadFailure>;

    fn succeeded(compiled: &Self::Compiled) -> bool {
        compiled.is_ok()
    }

    async fn compile(&mut self) -> Self::Compiled {
        reload::load_blocking(&self.gateway, &self.source).await
    }

    fn queued_change(&mut self) -> bool {
        Watching::queued_change(self)
    }

    async fn settle(&mut self, quiet: Duration) -> Option<bool> {
        Watching::settle(self, quiet).await
    }

    fn follow(&mut self, compiled: Self::Compiled) {
        Watching::follow(self, compiled)
    }
}

/// One burst, from its first event: the leading compile at once, applied only if nothing changed
/// while it ran; then at most one trailing compile. `None` when the watcher is gone.
async fn burst<S: BurstSteps>(steps: &mut S, quiet: Duration) -> Option<()> {
    let leading = steps.compile().await;
    // Events that queued up while it compiled mean the burst is still going: what it read may
    // be a file mid-write (an in-place save truncates first, and an empty spec is a valid folder
    // without that API). Such a result is not applied: applying it could close the connections
    // of an API that is only half saved.
    let busy = steps.queued_change();
    let unapplied = if S::succeeded(&leading) && !busy {
        steps.follow(leading);
        None
    } else {
        Some(leading)
    };
    // A leading result that was not applied is followed as soon as the writes pause, not after
    // the whole quiet period.
    let wait = match unapplied {
        Some(_) => quiet.min(Duration::from_millis(HALF_WRITTEN_QUIET_MS)),
        None => quiet,
    };
    let settled_more = steps.settle(wait).await?;
    if busy || settled_more {
        // Trailing edge: the burst went on; compile what it left.
        let last = steps.compile().await;
        steps.follow(last);
    } else if let Some(result) = unapplied {
        steps.follow(result);
    }
    Some(())
}

/// Starts watching the source. The watches are in place when this returns (so `/readyz` never
/// says ready before a change would be seen); the returned future reloads after each change, until
/// the process ends. `files_read` are the files the initial compilation read.
pub fn watch(
    gateway: Arc<Gateway>,
    source: Source,
    files_read: &[PathBuf],
) -> Result<impl std::future::Future<Output = ()>, String> {
    let (tx, events) = mpsc::unbounded_channel::<Vec<PathBuf>>();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        match event {
            Ok(event) if !matches!(event.kind, notify::EventKind::Access(_)) => {
                let _ = tx.send(event.paths);
            }
            Ok(_) => {}
            // A queue overflow and the like: treat as "anything may have changed".
            Err(_) => {
                let _ = tx.send(Vec::new());
            }
        }
    })
    .map_err(|e| format!("cannot start the file watcher: {e}"))?;
    let mut watches = Watches::new(watcher, &source);
    if watches.roots.iter().all(|r| r.armed.is_none()) {
        let paths: Vec<String> = watches
            .roots
            .iter()
            .map(|r| r.path.display().to_string())
            .collect();
        return Err(format!("cannot watch {}", paths.join(", ")));
    }
    watches.set_files_read(files_read);
    let watching = Watching {
        gateway,
        source,
        events,
        watches,
        check_every: Duration::from_secs(1),
    };
    watching.publish_health();
    Ok(watching.run())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A scripted burst: each compile returns the next result (`Ok(name)` or `Err(name)`), each
    /// look at the queue the next answer, each settle the next answer; what is applied is kept.
    #[derive(Default)]
    struct Script {
        compiles: VecDeque<Result<&'static str, &'static str>>,
        queued: VecDeque<bool>,
        settles: VecDeque<Option<bool>>,
        followed: Vec<Result<&'static str, &'static str>>,
        waits: Vec<Duration>,
    }

    impl BurstSteps for Script {
        type Compiled = Result<&'static str, &'static str>;
        fn succeeded(compiled: &Self::Compiled) -> bool {
            compiled.is_ok()
        }
        async fn compile(&mut self) -> Self::Compiled {
            self.compiles
                .pop_front()
                .expect("no more compiles scripted")
        }
        fn queued_change(&mut self) -> bool {
            self.queued.pop_front().expect("no queue answer scripted")
        }
        async fn settle(&mut self, quiet: Duration) -> Option<bool> {
            self.waits.push(quiet);
            self.settles.pop_front().expect("no settle scripted")
        }
        fn follow(&mut self, compiled: Self::Compiled) {
            self.followed.push(compiled);
        }
    }

    fn run(mut script: Script) -> Script {
        let quiet = Duration::from_millis(300);
        let done = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(async {
                let r = burst(&mut script, quiet).await;
                (r, script)
            });
        let (r, script) = done;
        assert_eq!(r, Some(()));
        assert!(
            script.compiles.is_empty(),
            "a scripted compile did not happen"
        );
        script
    }

    #[test]
    fn a_leading_compile_that_ran_while_the_burst_went_on_is_not_applied() {
        // An in-place save: the leading compile read the truncated file (a valid folder without
        // the API) while the write went on; only the trailing compile of the saved file applies.
        let script = run(Script {
            compiles: [Ok("half-written"), Ok("saved")].into(),
            queued: [true].into(),
            settles: [Some(false)].into(),
            ..Script::default()
        });
        assert_eq!(script.followed, [Ok("saved")]);
        assert_eq!(
            script.waits,
            [Duration::from_millis(HALF_WRITTEN_QUIET_MS)],
            "followed as soon as the writes pause"
        );
    }

    #[test]
    fn a_quiet_leading_compile_is_applied_at_once_and_alone() {
        let script = run(Script {
            compiles: [Ok("saved")].into(),
            queued: [false].into(),
            settles: [Some(false)].into(),
            ..Script::default()
        });
        assert_eq!(script.followed, [Ok("saved")]);
        assert_eq!(script.waits, [Duration::from_millis(300)]);
    }

    #[test]
    fn events_in_the_quiet_period_cause_one_trailing_compile() {
        let script = run(Script {
            compiles: [Ok("first"), Ok("last")].into(),
            queued: [false].into(),
            settles: [Some(true)].into(),
            ..Script::default()
        });
        assert_eq!(script.followed, [Ok("first"), Ok("last")]);
    }

    #[test]
    fn a_failed_leading_compile_is_reported_once_the_writes_pause() {
        let script = run(Script {
            compiles: [Err("broken")].into(),
            queued: [false].into(),
            settles: [Some(false)].into(),
            ..Script::default()
        });
        assert_eq!(script.followed, [Err("broken")]);
        assert_eq!(script.waits, [Duration::from_millis(HALF_WRITTEN_QUIET_MS)]);
    }
}
