//! Prometheus metrics, served on the admin listener at `/metrics`.
//!
//! Labels never carry secrets or client-controlled values beyond the matched route *pattern*
//! (never the concrete path, which would let clients blow up cardinality). Per-connection handles
//! are looked up once at the handshake, so the per-message cost is an atomic add.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub api: String,
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub api: String,
    /// `client_to_backend` or `backend_to_client`.
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// Who closed first: `client`, `backend` or `gateway`.
    pub initiator: &'static str,
    /// The close code, bucketed by [`close_code_label`] so that peers cannot choose the label set.
    pub code: &'static str,
}

/// The `code` label of a close: the codes RFC 6455 defines (1000–1015) as themselves, the
/// application ranges as `3xxx` (registered) and `4xxx` (private), anything else as `other`.
/// The label set is bounded, whatever codes peers send.
pub fn close_code_label(code: u16) -> &'static str {
    const DEFINED: [&str; 16] = [
        "1000", "1001", "1002", "1003", "1004", "1005", "1006", "1007", "1008", "1009", "1010",
        "1011", "1012", "1013", "1014", "1015",
    ];
    match code {
        1000..=1015 => DEFINED[usize::from(code - 1000)],
        3000..=3999 => "3xxx",
        4000..=4999 => "4xxx",
        _ => "other",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ApiLabels {
    pub api: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PlanLabels {
    pub hash: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub connections_open: Family<RouteLabels, Gauge>,
    pub connections_total: Family<RouteLabels, Counter>,
    pub messages: Family<DirectionLabels, Counter>,
    pub bytes: Family<DirectionLabels, Counter>,
    pub handshakes: Family<StatusLabels, Counter>,
    pub closes: Family<CloseLabels, Counter>,
    pub backend_connect_seconds: HistogramFamily<ApiLabels>,
    pub reloads: Family<ResultLabels, Counter>,
    pub plan: Family<PlanLabels, Gauge>,
    /// 1 while every watched root is watched, 0 while one is missing (see `watch`).
    pub watch_healthy: Gauge,
    pub watch_rearms: Gauge,
    /// Counters of the traffic policies (throttling, validation, handshake refusals).
    pub policy: std::sync::Arc<crate::policy::message::PolicyMetrics>,
}

fn connect_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("portico");
        let m = Metrics {
            connections_open: Family::default(),
            connections_total: Family::default(),
            messages: Family::default(),
            bytes: Family::default(),
            handshakes: Family::default(),
            closes: Family::default(),
            backend_connect_seconds: Family::new_with_constructor(connect_histogram),
            reloads: Family::default(),
            plan: Family::default(),
            watch_healthy: Gauge::default(),
            watch_rearms: Gauge::default(),
            policy: Default::default(),
            registry: Registry::default(),
        };
        m.policy.register(&mut registry);
        registry.register(
            "connections_open",
            "Client connections open now",
            m.connections_open.clone(),
        );
        registry.register(
            "connections",
            "Client connections accepted",
            m.connections_total.clone(),
        );
        registry.register(
            "messages",
            "Messages relayed, by direction",
            m.messages.clone(),
        );
        registry.register(
            "bytes",
            "Payload bytes relayed, by direction",
            m.bytes.clone(),
        );
        registry.register(
            "handshakes",
            "Handshake outcomes by HTTP status",
            m.handshakes.clone(),
        );
        registry.register(
            "closes",
            "Connection closes by initiator and close code",
            m.closes.clone(),
        );
        registry.register(
            "backend_connect_seconds",
            "Time to open the backend WebSocket",
            m.backend_connect_seconds.clone(),
        );
        registry.register(
            "reloads",
            "Plan reloads by result (ok, failed, unchanged)",
            m.reloads.clone(),
        );
        registry.register(
            "plan_info",
            "The plan being served (value 1, hash as label)",
            m.plan.clone(),
        );
        registry.register(
            "watch_healthy",
            "1 while every watched spec root is watched (0: one is missing; see /plan)",
            m.watch_healthy.clone(),
        );
        registry.register(
            "watch_rearms",
            "Times a replaced spec folder was found and watched again",
            m.watch_rearms.clone(),
        );
        Metrics { registry, ..m }
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    /// Marks `hash` as the plan being served (and no other).
    pub fn set_watch_health(&self, health: &crate::watcher::WatchHealth) {
        self.watch_healthy.set(i64::from(health.healthy));
        self.watch_rearms.set(health.rearms as i64);
    }

    pub fn set_plan(&self, hash: &str) {
        self.plan.clear();
        self.plan
            .get_or_create(&PlanLabels {
                hash: hash.to_string(),
            })
            .set(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_code_labels_stay_bounded_whatever_the_peer_sends() {
        let m = Metrics::default();
        for code in 0..=u16::MAX {
            m.closes
                .get_or_create(&CloseLabels {
                    initiator: "client",
                    code: close_code_label(code),
                })
                .inc();
        }
        let text = m.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("portico_closes_total{"))
            .count();
        assert_eq!(series, 16 + 3, "{text}");
        assert!(text.contains(r#"portico_closes_total{initiator="client",code="4xxx"} 1000"#));
        assert_eq!(close_code_label(1000), "1000");
        assert_eq!(close_code_label(1011), "1011");
        assert_eq!(close_code_label(3001), "3xxx");
        assert_eq!(close_code_label(2999), "other");
    }
}

/// Per-connection handles, looked up once.
#[derive(Clone)]
pub struct ConnectionMetrics {
    pub open: Gauge,
    pub up_messages: Counter,
    pub up_bytes: Counter,
    pub down_messages: Counter,
    pub down_bytes: Counter,
}

impl ConnectionMetrics {
    pub fn new(m: &Metrics, api: &str, route: &str) -> Self {
        let labels = RouteLabels {
            api: api.to_string(),
            route: route.to_string(),
        };
        m.connections_total.get_or_create(&labels).inc();
        let dir = |direction| DirectionLabels {
            api: api.to_string(),
            direction,
        };
        // One statement per lookup: `get_or_create` returns a read guard, and holding one while
        // creating another label set of the same family would deadlock.
        let open = m.connections_open.get_or_create(&labels).clone();
        let up_messages = m.messages.get_or_create(&dir("client_to_backend")).clone();
        let up_bytes = m.bytes.get_or_create(&dir("client_to_backend")).clone();
        let down_messages = m.messages.get_or_create(&dir("backend_to_client")).clone();
        let down_bytes = m.bytes.get_or_create(&dir("backend_to_client")).clone();
        ConnectionMetrics {
            open,
            up_messages,
            up_bytes,
            down_messages,
            down_bytes,
        }
    }
}
