//! Portico's runtime: serves a routing plan as a WebSocket gateway.
//!
//! # Architecture invariant
//! The runtime reads specs only through `portico_compiler` and otherwise knows nothing but the
//! [`Plan`](portico_compiler::Plan). The route table it serves is immutable and swapped whole
//! ([`arc_swap`]); a connection keeps the route it matched for its lifetime, and a reload closes only
//! the connections whose route vanished or whose API stopped being served.
//!
//! The journey of a message: [`server`] accepts, reads the handshake, matches a route in the current
//! [`routes::RouteTable`], checks limits ([`connections`]), connects the backend ([`backend`],
//! [`builtin`]) and only then completes the upgrade; [`frame_relay`] forwards frames both ways (or
//! [`relay`], messages, when a route's policies need whole messages). The journey
//! of a spec change: [`reload`] watches, recompiles, swaps and closes what vanished. [`admin`]
//! serves health, readiness, metrics, the plan summary and the API docs.

// Lets code shared with the fuzz target name this crate the same way from inside and outside.
extern crate self as portico_runtime;

pub mod admin;
pub mod backend;
pub mod builtin;
pub mod config;
pub mod connections;
pub mod docs_site;
pub mod forwarding;
pub mod frame_relay;
pub mod http;
pub mod metrics;
pub mod policy;
pub mod redact;
pub mod refusal;
pub mod relay;
pub mod reload;
pub mod routes;
pub mod served;
pub mod server;
pub mod settings;
pub mod tls_listener;
pub mod upgrade;
pub mod watcher;

use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::config::Config;
use crate::connections::Connections;
use crate::metrics::Metrics;
use crate::served::Served;

/// Everything the listeners share.
pub struct Gateway {
    pub config: Config,
    /// What is served (routes, docs); `None` until the first successful load.
    pub served: ArcSwapOption<Served>,
    pub metrics: Metrics,
    pub connections: Arc<Connections>,
    pub tls: Arc<rustls::ClientConfig>,
    pub ws_config: WebSocketConfig,
    pub status: Mutex<ReloadStatus>,
    /// The credentials' verifiers from `--config` (none until loaded: routes needing one are
    /// not served).
    pub verifiers: arc_swap::ArcSwap<policy::auth::Verifiers>,
    /// Named throttling tiers from `--config`'s `throttling` section.
    pub throttling: arc_swap::ArcSwap<policy::throttle::ThrottlingConfig>,
    /// Failed credential checks per client address (429 before the check beyond them).
    pub credential_failures: policy::credential_failures::CredentialFailures,
    /// Flips to `true` when shutdown begins.
    pub shutting_down: watch::Sender<bool>,
}

/// What the admin endpoint reports about reloads.
#[derive(Default, Clone, Debug)]
pub struct ReloadStatus {
    pub reloads: u64,
    pub failed_reloads: u64,
    /// Diagnostics of the last failed compile, located (cleared by a good one).
    pub last_error: Option<Vec<portico_compiler::LocatedDiagnostic>>,
    /// The last plan change applied, with the connections each change closed.
    pub last_diff: Option<reload::AppliedDiff>,
    /// The file watcher's state (`enabled: false` without `--watch`).
    pub watch: watcher::WatchHealth,
}

impl Gateway {
    pub fn new(config: Config) -> Result<Arc<Gateway>, String> {
        let ca = match &config.backend_ca {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("cannot read --backend-ca {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let tls = backend::tls_config(ca.as_deref())?;
        let ws_config = WebSocketConfig::default()
            .read_buffer_size(config.read_buffer_bytes.max(256))
            .write_buffer_size(8 * 1024)
            .max_write_buffer_size(config.max_message_bytes.saturating_mul(2).max(64 * 1024))
            .max_message_size(Some(config.max_message_bytes))
            .max_frame_size(Some(config.max_frame_bytes));
        let (shutting_down, _) = watch::channel(false);
        let verifiers = policy::auth::Verifiers {
            allow_unauthenticated: config.allow_unauthenticated,
            ..Default::default()
        };
        let credential_failures = policy::credential_failures::CredentialFailures::new(
            config.max_credential_failures_per_ip,
        );
        Ok(Arc::new(Gateway {
            config,
            served: ArcSwapOption::empty(),
            metrics: Metrics::default(),
            connections: Arc::new(Connections::default()),
            tls,
            ws_config,
            status: Mutex::new(ReloadStatus::default()),
            verifiers: arc_swap::ArcSwap::from_pointee(verifiers),
            throttling: arc_swap::ArcSwap::from_pointee(Default::default()),
            credential_failures,
            shutting_down,
        }))
    }
}
