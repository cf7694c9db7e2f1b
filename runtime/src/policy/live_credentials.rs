//! Live connections follow their credential: one task per gateway closes, with WSO2's 4001, the
//! connections whose credential expires (at `exp` plus the configured skew) and those whose
//! credential is revoked (an API key removed from the watched key file, a `jti` or `sub` added to
//! the watched denylist) as soon as the file's new content is read.
//!
//! One timer for all connections (the registry keeps expiries sorted), woken again when an
//! earlier expiry registers; revocations sweep only the connections holding a revocable
//! credential.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;

use crate::connections::Connections;
use crate::policy::auth::Verifiers;
use crate::relay::CloseCommand;

/// WSO2's close code for invalid or expired credentials.
pub const CREDENTIAL_CLOSE_CODE: u16 = 4001;

fn now_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// How long until `at` (seconds since the Unix epoch) has passed.
fn until(at: u64) -> Duration {
    let deadline = UNIX_EPOCH + Duration::from_secs(at.saturating_add(1));
    deadline
        .duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

async fn changed(rx: &mut Option<watch::Receiver<u64>>) {
    match rx {
        Some(rx) => {
            if rx.changed().await.is_err() {
                // The file is no longer watched: nothing more will come from it.
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

/// Closes the connections whose credential `verifiers` now consider revoked.
pub fn sweep_revoked(connections: &Connections, verifiers: &Verifiers) -> usize {
    let command = CloseCommand::new(CREDENTIAL_CLOSE_CODE, "credential revoked");
    let closed =
        connections.close_revoked(|c| verifiers.revoked(&c.as_grant(), &c.api_name), &command);
    if closed > 0 {
        tracing::info!(closed, "closed connections whose credential was revoked");
    }
    closed
}

/// Runs for the gateway's life: expiries and revocations close their connections with 4001.
pub async fn follow(connections: Arc<Connections>, verifiers: Arc<Verifiers>) {
    let mut keys = verifiers.api_keys.as_ref().map(|w| w.subscribe());
    let mut denylist = verifiers.denylist.as_ref().map(|w| w.subscribe());
    let expired = CloseCommand::new(CREDENTIAL_CLOSE_CODE, "credential expired");
    loop {
        let (closed, next) = connections.close_expired(now_seconds(), &expired);
        if closed > 0 {
            tracing::info!(closed, "closed connections whose credential expired");
        }
        let wait = next.map(until).unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = connections.expiry_added() => {}
            _ = changed(&mut keys) => { sweep_revoked(&connections, &verifiers); }
            _ = changed(&mut denylist) => { sweep_revoked(&connections, &verifiers); }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connections::LiveCredential;
    use crate::policy::denylist::Denylist;
    use crate::policy::watched::Watched;

    #[tokio::test]
    async fn a_denied_jti_closes_its_connection_and_an_expiry_closes_on_time() {
        let dir = tempfile::tempdir().unwrap();
        let deny = dir.path().join("deny.txt");
        std::fs::write(&deny, "").unwrap();
        let verifiers = Arc::new(Verifiers {
            denylist: Some(Watched::open(&deny, Denylist::parse).unwrap()),
            ..Verifiers::default()
        });
        let connections = Arc::new(Connections::default());
        let task = tokio::spawn(follow(connections.clone(), verifiers));
        let cred = |jti: &str, closes_at| LiveCredential {
            api_name: "chat-api".into(),
            jti: Some(jti.into()),
            closes_at,
            ..LiveCredential::default()
        };
        let mut revoked = connections
            .register_with("/a", "/a/x", Some(cred("j1", None)), 10, 10)
            .unwrap();
        let mut kept = connections
            .register_with("/a", "/a/x", Some(cred("j2", None)), 10, 10)
            .unwrap();
        std::fs::write(&deny, "jti:j1\n").unwrap();
        tokio::time::timeout(Duration::from_secs(5), revoked.commands.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(revoked.commands.borrow().as_ref().unwrap().code, 4001);
        assert!(!kept.commands.has_changed().unwrap());

        let mut expiring = connections
            .register_with("/a", "/a/x", Some(cred("j3", Some(now_seconds()))), 10, 10)
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), expiring.commands.changed())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(expiring.commands.borrow().as_ref().unwrap().code, 4001);
        assert!(!kept.commands.has_changed().unwrap());
        let _ = kept.commands.borrow_and_update();
        task.abort();
    }
}
