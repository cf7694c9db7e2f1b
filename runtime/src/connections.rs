//! The registry of live connections: limits (global and per API) at the handshake, the handle a
//! reload or a shutdown uses to close connections, and the credential each connection holds, so
//! that a revoked or expired credential closes its connections.
//!
//! Credentials are indexed by what revokes them (API key name, `jti`, `sub`) and by when they
//! expire, so a revocation or an expiry touches only the connections concerned.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{watch, Notify};

use crate::policy::grant::Grant;
use crate::relay::CloseCommand;

/// What a live connection keeps of its credential: what revokes it and when it expires. Never the
/// credential itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveCredential {
    /// The plan's API name, which an API key's `apis` list names.
    pub api_name: String,
    pub key_name: Option<String>,
    pub jti: Option<String>,
    pub sub: Option<String>,
    /// Seconds since the Unix epoch at which the connection is closed (`exp` plus the skew).
    pub closes_at: Option<u64>,
}

impl LiveCredential {
    /// What `grant` leaves to follow for the API named `api_name`; `None` for anonymous grants
    /// (nothing can revoke them). `skew` is added to the expiry, as the handshake allowed it.
    pub fn of(grant: &Grant, api_name: &str, skew: u64) -> Option<LiveCredential> {
        if grant.key_name.is_none()
            && grant.jti.is_none()
            && grant.sub.is_none()
            && grant.expires_at.is_none()
        {
            return None;
        }
        Some(LiveCredential {
            api_name: api_name.to_string(),
            key_name: grant.key_name.clone(),
            jti: grant.jti.clone(),
            sub: grant.sub.clone(),
            closes_at: grant.expires_at.map(|e| e.saturating_add(skew)),
        })
    }

    /// A grant carrying the identifiers, for the verifiers' revocation rule.
    pub fn as_grant(&self) -> Grant {
        Grant {
            key_name: self.key_name.clone(),
            jti: self.jti.clone(),
            sub: self.sub.clone(),
            ..Grant::default()
        }
    }
}

struct Live {
    api: String,
    route: String,
    credential: Option<LiveCredential>,
    closer: watch::Sender<Option<CloseCommand>>,
}

#[derive(Default)]
struct Inner {
    live: HashMap<u64, Live>,
    per_api: HashMap<String, usize>,
    /// Connections holding a credential that can be revoked (a key name, a `jti` or a `sub`).
    revocable: HashSet<u64>,
    /// `(closes_at, id)`, earliest first.
    expiries: BTreeSet<(u64, u64)>,
}

#[derive(Default)]
pub struct Connections {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    /// Woken when a connection with an expiry registers, so the expiry timer can re-arm.
    expiry_added: Notify,
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
            inner.revocable.remove(&self.id);
            if let Some(at) = live.credential.as_ref().and_then(|c| c.closes_at) {
                inner.expiries.remove(&(at, self.id));
            }
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
        self.register_with(api, route, None, global_limit, api_limit)
    }

    /// [`Connections::register`] for a connection that holds `credential`.
    pub fn register_with(
        self: &Arc<Self>,
        api: &str,
        route: &str,
        credential: Option<LiveCredential>,
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
        let mut expires = false;
        if let Some(c) = &credential {
            if c.key_name.is_some() || c.jti.is_some() || c.sub.is_some() {
                inner.revocable.insert(id);
            }
            if let Some(at) = c.closes_at {
                inner.expiries.insert((at, id));
                expires = true;
            }
        }
        inner.live.insert(
            id,
            Live {
                api: api.to_string(),
                route: route.to_string(),
                credential,
                closer,
            },
        );
        *inner.per_api.entry(api.to_string()).or_default() += 1;
        drop(inner);
        if expires {
            self.expiry_added.notify_one();
        }
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

    /// Sends `command` to every connection holding a credential that `revoked` says is revoked.
    /// Only connections with a revocable credential are looked at.
    pub fn close_revoked(
        &self,
        mut revoked: impl FnMut(&LiveCredential) -> bool,
        command: &CloseCommand,
    ) -> usize {
        let inner = self.inner.lock().expect("registry");
        let mut closed = 0;
        for id in &inner.revocable {
            let Some(live) = inner.live.get(id) else {
                continue;
            };
            if live.credential.as_ref().is_some_and(&mut revoked)
                && live.closer.send(Some(command.clone())).is_ok()
            {
                closed += 1;
            }
        }
        closed
    }

    /// Sends `command` to every connection whose credential's last valid second is before `now`
    /// (seconds since the Unix epoch); returns how many, and the next last valid second.
    pub fn close_expired(&self, now: u64, command: &CloseCommand) -> (usize, Option<u64>) {
        let mut inner = self.inner.lock().expect("registry");
        let mut closed = 0;
        while let Some(&(at, id)) = inner.expiries.first() {
            if at >= now {
                return (closed, Some(at));
            }
            inner.expiries.remove(&(at, id));
            if let Some(live) = inner.live.get(&id) {
                if live.closer.send(Some(command.clone())).is_ok() {
                    closed += 1;
                }
            }
        }
        (closed, None)
    }

    /// Resolves when a connection with an expiry registers (the next expiry may be earlier).
    pub async fn expiry_added(&self) {
        self.expiry_added.notified().await
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

    fn credential(key: Option<&str>, jti: Option<&str>, closes_at: Option<u64>) -> LiveCredential {
        LiveCredential {
            api_name: "chat-api".into(),
            key_name: key.map(Into::into),
            jti: jti.map(Into::into),
            sub: None,
            closes_at,
        }
    }

    #[test]
    fn revocation_reaches_only_the_revoked_credentials() {
        let c = Arc::new(Connections::default());
        let add = |cred| c.register_with("/a", "/a/x", cred, 10, 10).unwrap();
        let key = add(Some(credential(Some("app"), None, None)));
        let mut token = add(Some(credential(None, Some("j1"), None)));
        let anonymous = add(None);
        let cmd = CloseCommand::new(4001, "revoked");
        let n = c.close_revoked(|cred| cred.jti.as_deref() == Some("j1"), &cmd);
        assert_eq!(n, 1);
        assert_eq!(
            token.commands.borrow_and_update().as_ref().unwrap().code,
            4001
        );
        assert!(!key.commands.has_changed().unwrap());
        assert!(!anonymous.commands.has_changed().unwrap());
        assert_eq!(
            c.close_revoked(|_| true, &cmd),
            2,
            "anonymous is never looked at"
        );
        assert!(key.commands.has_changed().unwrap());
        drop(token);
        assert_eq!(c.inner.lock().unwrap().revocable.len(), 1);
    }

    #[test]
    fn expiries_close_in_order_and_leave_the_index_when_done() {
        let c = Arc::new(Connections::default());
        let add = |at| {
            c.register_with("/a", "/a/x", Some(credential(None, None, Some(at))), 10, 10)
                .unwrap()
        };
        let mut early = add(100);
        let late = add(200);
        let cmd = CloseCommand::new(4001, "expired");
        assert_eq!(
            c.close_expired(100, &cmd),
            (0, Some(100)),
            "valid through its last second"
        );
        assert_eq!(c.close_expired(150, &cmd), (1, Some(200)));
        assert!(early.commands.has_changed().unwrap());
        assert!(!late.commands.has_changed().unwrap());
        let _ = early.commands.borrow_and_update();
        drop(late);
        assert_eq!(
            c.close_expired(1000, &cmd),
            (0, None),
            "unregistered leaves the index"
        );
        assert!(LiveCredential::of(&Grant::anonymous(), "x", 30).is_none());
        let g = Grant {
            expires_at: Some(10),
            ..Grant::default()
        };
        assert_eq!(LiveCredential::of(&g, "x", 30).unwrap().closes_at, Some(40));
    }
}
