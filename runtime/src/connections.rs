//! The registry of live connections: limits (global and per API) at the handshake, and the handle
//! a reload or a shutdown uses to close connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::relay::CloseCommand;

struct Live {
    api: String,
    route: String,
    closer: watch::Sender<Option<CloseCommand>>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<u64, Live>,
    per_api: HashMap<String, usize>,
}

#[derive(Default)]
pub struct Connections {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
}

/// Why a connection was refused at the handshake.
#[derive(Debug, PartialEq, Eq)]
pub enum LimitError {
    Global(usize),
    PerApi(usize),
}

/// Keeps a connection registered; unregisters it when dropped (whatever ends the connection).
pub struct Registration {
    id: u64,
    connections: Arc<Connections>,
    pub commands: watch::Receiver<Option<CloseCommand>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut inner = self.connections.inner.lock().expect("registry");
        if let Some(live) = inner.live.remove(&self.id) {
            if let Some(n) = inner.per_api.get_mut(&live.api) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    inner.per_api.remove(&live.api);
                }
            }
        }
    }
}

impl Connections {
    /// Registers a connection to `route` of `api` unless a limit is reached.
    pub fn register(
        self: &Arc<Self>,
        api: &str,
        route: &str,
        global_limit: usize,
        api_limit: usize,
    ) -> Result<Registration, LimitError> {
        let mut inner = self.inner.lock().expect("registry");
        if inner.live.len() >= global_limit {
            return Err(LimitError::Global(global_limit));
        }
        let count = inner.per_api.get(api).copied().unwrap_or(0);
        if count >= api_limit {
            return Err(LimitError::PerApi(api_limit));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (closer, commands) = watch::channel(None);
        inner.live.insert(
            id,
            Live {
                api: api.to_string(),
                route: route.to_string(),
                closer,
            },
        );
        *inner.per_api.entry(api.to_string()).or_default() += 1;
        Ok(Registration {
            id,
            connections: self.clone(),
            commands,
        })
    }

    pub fn count(&self) -> usize {
        self.inner.lock().expect("registry").live.len()
    }

    /// Sends a close command to every connection for which `decide(api, route)` returns one.
    /// Returns how many were told to close.
    pub fn close_where(&self, mut decide: impl FnMut(&str, &str) -> Option<CloseCommand>) -> usize {
        let inner = self.inner.lock().expect("registry");
        let mut closed = 0;
        for live in inner.live.values() {
            if let Some(cmd) = decide(&live.api, &live.route) {
                if live.closer.send(Some(cmd)).is_ok() {
                    closed += 1;
                }
            }
        }
        closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_and_registrations_release_on_drop() {
        let c = Arc::new(Connections::default());
        let a = c.register("/a", "/a/x", 3, 2).unwrap();
        let _b = c.register("/a", "/a/x", 3, 2).unwrap();
        assert_eq!(
            c.register("/a", "/a/x", 3, 2).err(),
            Some(LimitError::PerApi(2))
        );
        let _d = c.register("/b", "/b/x", 3, 2).unwrap();
        assert_eq!(
            c.register("/c", "/c/x", 3, 2).err(),
            Some(LimitError::Global(3))
        );
        drop(a);
        assert_eq!(c.count(), 2);
        assert!(c.register("/a", "/a/x", 3, 2).is_ok());
    }

    #[test]
    fn close_where_reaches_only_the_chosen() {
        let c = Arc::new(Connections::default());
        let mut keep = c.register("/a", "/a/keep", 10, 10).unwrap();
        let mut gone = c.register("/a", "/a/gone", 10, 10).unwrap();
        let n = c.close_where(|_, route| {
            (route == "/a/gone").then(|| CloseCommand::new(1001, "route removed"))
        });
        assert_eq!(n, 1);
        assert!(gone.commands.has_changed().unwrap());
        assert_eq!(
            gone.commands.borrow_and_update().as_ref().unwrap().code,
            1001
        );
        assert!(!keep.commands.has_changed().unwrap());
        let _ = keep.commands.borrow_and_update();
    }
}
