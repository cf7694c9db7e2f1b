//! A file read into a value and read again whenever it changes, keeping the last good value
//! when the new content is invalid.
//!
//! Polls the file's length, modification time and content hash twice a second: revocations (a key
//! removed, a `jti` denied) must take effect within a second, and polling is immune to the
//! editors' rename-over tricks and to filesystems without change events.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwap;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

const POLL: Duration = Duration::from_millis(400);

/// The current value of a watched file.
pub struct Watched<T> {
    pub path: PathBuf,
    value: ArcSwap<T>,
    /// Bumped after every successful reload, for those who act on changes (revocation).
    changes: watch::Sender<u64>,
}

impl<T: Send + Sync + 'static> Watched<T> {
    /// Reads the file once (an error here is a configuration error) and starts watching it.
    pub fn open(
        path: &Path,
        parse: impl Fn(&str) -> Result<T, String> + Send + Sync + 'static,
    ) -> Result<Arc<Watched<T>>, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value = parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let (changes, _) = watch::channel(0);
        let watched = Arc::new(Watched {
            path: path.to_path_buf(),
            value: ArcSwap::from_pointee(value),
            changes,
        });
        let weak = Arc::downgrade(&watched);
        let digest = Sha256::digest(text.as_bytes()).to_vec();
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(poll(weak, digest, parse));
        }
        Ok(watched)
    }

    pub fn get(&self) -> Arc<T> {
        self.value.load_full()
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

async fn poll<T: Send + Sync + 'static>(
    weak: Weak<Watched<T>>,
    mut digest: Vec<u8>,
    parse: impl Fn(&str) -> Result<T, String>,
) {
    loop {
        tokio::time::sleep(POLL).await;
        let Some(watched) = weak.upgrade() else {
            return;
        };
        let Ok(text) = tokio::fs::read_to_string(&watched.path).await else {
            continue;
        };
        let now = Sha256::digest(text.as_bytes()).to_vec();
        if now == digest {
            continue;
        }
        digest = now;
        match parse(&text) {
            Ok(value) => {
                watched.value.store(Arc::new(value));
                watched.changes.send_modify(|n| *n += 1);
                tracing::info!(file = %watched.path.display(), "reloaded");
            }
            Err(e) => tracing::warn!(
                file = %watched.path.display(),
                error = %e,
                "not reloaded; the last good content stays in force"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_is_picked_up_and_a_bad_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.txt");
        std::fs::write(&path, "1").unwrap();
        let parse = |t: &str| t.trim().parse::<u32>().map_err(|e| e.to_string());
        let w = Watched::open(&path, parse).unwrap();
        let mut changes = w.subscribe();
        assert_eq!(*w.get(), 1);
        std::fs::write(&path, "2").unwrap();
        tokio::time::timeout(Duration::from_secs(5), changes.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(*w.get(), 2);
        std::fs::write(&path, "not a number").unwrap();
        tokio::time::sleep(POLL * 3).await;
        assert_eq!(*w.get(), 2, "the last good value stays");
        assert!(Watched::open(&dir.path().join("missing"), parse).is_err());
    }
}
