//! Throttling: token buckets counting messages (both directions, as WSO2 counts events) and
//! optionally bytes, for a whole API, per client and per operation; plus per-client caps on
//! concurrent connections and handshakes per second, refused with 429 at the handshake.
//!
//! Decisions go through the [`Limiter`] trait so that a store shared by several gateways can
//! replace the in-process [`LocalLimiter`] later: it is asynchronous and decides a batch (every
//! bucket one message draws from) at once, so a remote store answers in one round trip. The
//! in-process limiter answers immediately with `governor`'s GCRA buckets.
//!
//! Memory stays bounded under many clients: per-client state that is indistinguishable from a
//! fresh bucket is pruned ([`LocalLimiter::prune`], also run by the limiter itself whenever a
//! bucket tracks more than `max_tracked_clients` clients); if pruning cannot bring it under the
//! cap, clients beyond it share one overflow bucket until it can.
//!
//! Tiers (`AsyncGold: 50000/day`) are runtime configuration, the `throttling` section of the
//! configuration file ([`ThrottlingConfig`]); the spec names them.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use portico_compiler::plan::{Bucket, Rate};
use serde::Deserialize;

use crate::refusal::Refusal;

/// The `throttling` section of the runtime configuration.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ThrottlingConfig {
    /// Named tiers the specs refer to (`x-gateway.throttling.client: AsyncGold`).
    #[serde(default)]
    pub tiers: BTreeMap<String, TierConfig>,
    /// Most clients one per-client bucket tracks before the excess shares one bucket.
    #[serde(default = "default_max_tracked_clients")]
    pub max_tracked_clients: usize,
}

fn default_max_tracked_clients() -> usize {
    100_000
}

impl Default for ThrottlingConfig {
    fn default() -> Self {
        ThrottlingConfig {
            tiers: BTreeMap::new(),
            max_tracked_clients: default_max_tracked_clients(),
        }
    }
}

/// A tier: `messages: 1000/min`, optionally `bytes: 10M/day` and a `burst`. A tier with neither
/// rate is unlimited.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TierConfig {
    #[serde(default)]
    pub messages: Option<RateText>,
    #[serde(default)]
    pub bytes: Option<RateText>,
    #[serde(default)]
    pub burst: Option<u64>,
}

/// A rate written as text in the configuration (`1000/min`), checked when it is read.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
#[serde(try_from = "String")]
pub struct RateText(pub Rate);

impl TryFrom<String> for RateText {
    type Error = String;
    fn try_from(text: String) -> Result<Self, String> {
        Rate::parse(&text).map(RateText).ok_or_else(|| {
            format!("`{text}` is not a rate; write a count per unit: `1000/min`, `50/s`, `10K/hour`, `1M/day`")
        })
    }
}

/// A sample `throttling` section with WSO2 API Manager's default tiers for event (async) APIs.
pub const SAMPLE_CONFIG_TOML: &str = r#"[throttling]
max_tracked_clients = 100000

[throttling.tiers.AsyncUnlimited]
# no rate: unlimited

[throttling.tiers.AsyncGold]
messages = "50000/day"

[throttling.tiers.AsyncSilver]
messages = "10000/day"

[throttling.tiers.AsyncBronze]
messages = "5000/day"
"#;

/// A bucket's id in its limiter: the index given by [`LocalLimiter::new`]'s `buckets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BucketId(pub u32);

/// What a bucket counts, for the limiter and for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Messages,
    Bytes,
}

/// A bucket's definition: the rate, the burst, and whether each client has its own.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketSpec {
    pub rate: Rate,
    pub burst: u64,
    pub per_client: bool,
    pub unit: Unit,
}

/// One draw: `cells` messages or bytes from `bucket`, for `client`.
#[derive(Clone, Copy, Debug)]
pub struct Charge<'a> {
    pub bucket: BucketId,
    pub client: &'a Arc<str>,
    pub cells: u32,
}

/// The answer for a batch: every draw fits, or the first bucket that refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    Deny(BucketId),
}

/// Decides draws on token buckets. An implementation for a shared store batches the draws of a
/// message into one request; the in-process one answers at once.
pub trait Limiter: Send + Sync + 'static {
    fn decide(&self, charges: &[Charge<'_>]) -> impl Future<Output = Decision> + Send;
}

/// The in-process limiter: `governor` buckets, per-client state pruned.
pub struct LocalLimiter {
    buckets: Vec<LocalBucket>,
    max_tracked_clients: usize,
    overflow_key: Arc<str>,
    decisions: AtomicU64,
}

enum LocalBucket {
    Shared(DefaultDirectRateLimiter),
    PerClient {
        limiter: DefaultKeyedRateLimiter<Arc<str>>,
        /// Set while pruning cannot bring the tracked clients under the cap.
        full: AtomicBool,
    },
}

/// How often (in decisions) the limiter looks at how many clients it tracks.
const SIZE_CHECK_EVERY: u64 = 64;

pub fn quota(rate: Rate, burst: u64) -> Quota {
    let per_cell =
        Duration::from_secs(rate.period_seconds) / u32::try_from(rate.limit).unwrap_or(u32::MAX);
    let burst =
        NonZeroU32::new(burst.clamp(1, u64::from(u32::MAX)) as u32).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(per_cell.max(Duration::from_nanos(1)))
        .expect("the period is at least 1 ns")
        .allow_burst(burst)
}

impl LocalLimiter {
    pub fn new(buckets: &[BucketSpec], max_tracked_clients: usize) -> LocalLimiter {
        LocalLimiter {
            buckets: buckets
                .iter()
                .map(|spec| {
                    let q = quota(spec.rate, spec.burst);
                    if spec.per_client {
                        LocalBucket::PerClient {
                            limiter: RateLimiter::keyed(q),
                            full: AtomicBool::new(false),
                        }
                    } else {
                        LocalBucket::Shared(RateLimiter::direct(q))
                    }
                })
                .collect(),
            max_tracked_clients: max_tracked_clients.max(1),
            overflow_key: Arc::from("\u{0}overflow"),
            decisions: AtomicU64::new(0),
        }
    }

    /// Forgets clients whose buckets are full again; keeps the table under its cap.
    pub fn prune(&self) {
        for bucket in &self.buckets {
            if let LocalBucket::PerClient { limiter, full } = bucket {
                limiter.retain_recent();
                if limiter.len() > self.max_tracked_clients {
                    full.store(true, Ordering::Relaxed);
                } else {
                    limiter.shrink_to_fit();
                    full.store(false, Ordering::Relaxed);
                }
            }
        }
    }

    /// Clients tracked, summed over the per-client buckets.
    pub fn tracked_clients(&self) -> usize {
        self.buckets
            .iter()
            .map(|b| match b {
                LocalBucket::PerClient { limiter, .. } => limiter.len(),
                LocalBucket::Shared(_) => 0,
            })
            .sum()
    }

    /// [`Limiter::decide`] without a future: the in-process buckets never wait, and the frame
    /// relay decides in the middle of parsing a batch of frames.
    pub fn decide_now(&self, charges: &[Charge<'_>]) -> Decision {
        if self.decisions.fetch_add(1, Ordering::Relaxed) % SIZE_CHECK_EVERY == SIZE_CHECK_EVERY - 1
        {
            let over = self.buckets.iter().any(|b| match b {
                LocalBucket::PerClient { limiter, .. } => limiter.len() > self.max_tracked_clients,
                LocalBucket::Shared(_) => false,
            });
            if over {
                self.prune();
            }
        }
        for charge in charges {
            let Some(bucket) = self.buckets.get(charge.bucket.0 as usize) else {
                // A bucket the limiter was not built with: fail closed.
                return Decision::Deny(charge.bucket);
            };
            let Some(cells) = NonZeroU32::new(charge.cells) else {
                continue;
            };
            let fits = match bucket {
                LocalBucket::Shared(limiter) => matches!(limiter.check_n(cells), Ok(Ok(_))),
                LocalBucket::PerClient { limiter, full } => {
                    let key = if full.load(Ordering::Relaxed) {
                        &self.overflow_key
                    } else {
                        charge.client
                    };
                    matches!(limiter.check_key_n(key, cells), Ok(Ok(_)))
                }
            };
            if !fits {
                return Decision::Deny(charge.bucket);
            }
        }
        Decision::Allow
    }
}

impl Limiter for LocalLimiter {
    fn decide(&self, charges: &[Charge<'_>]) -> impl Future<Output = Decision> + Send {
        std::future::ready(self.decide_now(charges))
    }
}

/// A bucket's limits once its tier is looked up; a rate that is `None` is unlimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedBucket {
    pub messages: Option<Rate>,
    pub bytes: Option<Rate>,
    pub burst: Option<u64>,
}

/// Resolves a plan bucket (limits written in the spec, or a tier name) against the configured
/// tiers; limits written in the spec win over the tier's.
pub fn resolve_bucket(
    bucket: &Bucket,
    config: &ThrottlingConfig,
) -> Result<ResolvedBucket, String> {
    let mut messages = bucket.messages;
    let mut bytes = bucket.bytes;
    let mut burst = bucket.burst;
    if let Some(name) = &bucket.tier {
        let Some(tier) = config.tiers.get(name) else {
            let known: Vec<&str> = config.tiers.keys().map(String::as_str).collect();
            return Err(format!(
                "the throttling tier `{name}` is not defined in the runtime configuration (defined: {})",
                if known.is_empty() { "none".to_string() } else { known.join(", ") }
            ));
        };
        messages = messages.or(tier.messages.map(|r| r.0));
        bytes = bytes.or(tier.bytes.map(|r| r.0));
        burst = burst.or(tier.burst);
    }
    Ok(ResolvedBucket {
        messages,
        bytes,
        burst,
    })
}

/// Per-client caps checked at the handshake: concurrent connections and handshakes per second.
pub struct HandshakeCaps {
    max_connections: Option<u32>,
    handshakes: Option<DefaultKeyedRateLimiter<Arc<str>>>,
    open: Arc<Mutex<HashMap<Arc<str>, u32>>>,
}

/// Held for the life of a connection; releases its slot when dropped.
pub struct ConnectionSlot {
    client: Arc<str>,
    open: Arc<Mutex<HashMap<Arc<str>, u32>>>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.client);
            }
        }
    }
}

impl HandshakeCaps {
    pub fn new(max_connections: Option<u64>, handshakes_per_second: Option<u64>) -> HandshakeCaps {
        HandshakeCaps {
            max_connections: max_connections.map(|n| n.min(u64::from(u32::MAX)) as u32),
            handshakes: handshakes_per_second.map(|n| {
                RateLimiter::keyed(quota(
                    Rate {
                        limit: n,
                        period_seconds: 1,
                    },
                    n,
                ))
            }),
            open: Arc::default(),
        }
    }

    /// Admits a handshake of `client`, or refuses it with 429.
    pub fn admit(&self, client: &Arc<str>) -> Result<ConnectionSlot, Refusal> {
        if let Some(limiter) = &self.handshakes {
            if limiter.check_key(client).is_err() {
                // Cheap and bounded: every refused handshake is a chance to forget idle clients.
                limiter.retain_recent();
                return Err(Refusal::new(
                    429,
                    "too many handshakes from this client; retry in a second",
                )
                .header("retry-after", "1"));
            }
        }
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(client.clone()).or_insert(0);
        if self.max_connections.is_some_and(|max| *n >= max) {
            let max = self.max_connections.unwrap_or(0);
            if *n == 0 {
                open.remove(client);
            }
            return Err(Refusal::new(
                429,
                format!("this client already has {max} open connection(s) to this API, its limit"),
            )
            .header("retry-after", "5"));
        }
        *n += 1;
        Ok(ConnectionSlot {
            client: client.clone(),
            open: self.open.clone(),
        })
    }

    /// Clients with an open connection (for tests and metrics).
    pub fn clients_with_connections(&self) -> usize {
        self.open.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(limit: u64, per_client: bool, unit: Unit) -> BucketSpec {
        BucketSpec {
            rate: Rate {
                limit,
                period_seconds: 3600,
            },
            burst: limit,
            per_client,
            unit,
        }
    }

    fn decide(l: &LocalLimiter, charges: &[Charge<'_>]) -> Decision {
        l.decide_now(charges)
    }

    #[test]
    fn n_messages_pass_and_the_next_is_refused() {
        let limiter = LocalLimiter::new(&[spec(3, false, Unit::Messages)], 10);
        let client: Arc<str> = Arc::from("a");
        let charge = [Charge {
            bucket: BucketId(0),
            client: &client,
            cells: 1,
        }];
        for _ in 0..3 {
            assert_eq!(decide(&limiter, &charge), Decision::Allow);
        }
        assert_eq!(decide(&limiter, &charge), Decision::Deny(BucketId(0)));
    }

    #[test]
    fn per_client_buckets_are_separate() {
        let limiter = LocalLimiter::new(&[spec(2, true, Unit::Messages)], 10);
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        let one = |c| {
            [Charge {
                bucket: BucketId(0),
                client: c,
                cells: 1,
            }]
        };
        assert_eq!(decide(&limiter, &one(&a)), Decision::Allow);
        assert_eq!(decide(&limiter, &one(&a)), Decision::Allow);
        assert_eq!(decide(&limiter, &one(&a)), Decision::Deny(BucketId(0)));
        assert_eq!(decide(&limiter, &one(&b)), Decision::Allow);
    }

    #[test]
    fn bytes_are_counted_and_a_message_larger_than_the_burst_never_fits() {
        let limiter = LocalLimiter::new(&[spec(100, true, Unit::Bytes)], 10);
        let a: Arc<str> = Arc::from("a");
        let bytes = |n| {
            [Charge {
                bucket: BucketId(0),
                client: &a,
                cells: n,
            }]
        };
        assert_eq!(decide(&limiter, &bytes(60)), Decision::Allow);
        assert_eq!(decide(&limiter, &bytes(40)), Decision::Allow);
        assert_eq!(decide(&limiter, &bytes(1)), Decision::Deny(BucketId(0)));
        let fresh = LocalLimiter::new(&[spec(100, true, Unit::Bytes)], 10);
        assert_eq!(decide(&fresh, &bytes(101)), Decision::Deny(BucketId(0)));
    }

    #[test]
    fn an_unknown_bucket_fails_closed() {
        let limiter = LocalLimiter::new(&[], 10);
        let a: Arc<str> = Arc::from("a");
        let charge = [Charge {
            bucket: BucketId(3),
            client: &a,
            cells: 1,
        }];
        assert_eq!(decide(&limiter, &charge), Decision::Deny(BucketId(3)));
    }

    #[test]
    fn pruning_keeps_memory_bounded_under_many_clients() {
        // 1000/s with a burst of 1: a client's bucket is full again 1 ms after its message, so
        // it is indistinguishable from a fresh one and can be forgotten.
        let fast = BucketSpec {
            rate: Rate {
                limit: 1000,
                period_seconds: 1,
            },
            burst: 1,
            per_client: true,
            unit: Unit::Messages,
        };
        // 1/hour: nothing can be forgotten, so the excess must share the overflow bucket.
        let slow = spec(1, true, Unit::Messages);
        for spec in [fast, slow] {
            let cap = 100;
            let limiter = LocalLimiter::new(&[spec], cap);
            let mut peak = 0;
            for i in 0..20_000 {
                let client: Arc<str> = Arc::from(format!("client-{i}"));
                let _ = decide(
                    &limiter,
                    &[Charge {
                        bucket: BucketId(0),
                        client: &client,
                        cells: 1,
                    }],
                );
                peak = peak.max(limiter.tracked_clients());
            }
            assert!(
                peak <= cap + SIZE_CHECK_EVERY as usize + 1,
                "tracked {peak} clients with a cap of {cap}"
            );
        }
    }

    #[test]
    fn the_overflow_bucket_is_shared_while_the_table_is_full() {
        let limiter = LocalLimiter::new(&[spec(1, true, Unit::Messages)], 1);
        for i in 0..SIZE_CHECK_EVERY - 1 {
            let c: Arc<str> = Arc::from(format!("c{i}"));
            let _ = decide(
                &limiter,
                &[Charge {
                    bucket: BucketId(0),
                    client: &c,
                    cells: 1,
                }],
            );
        }
        // The next decision finds the table over its cap and unprunable: new clients share one
        // bucket of 1 message.
        let (x, y): (Arc<str>, Arc<str>) = (Arc::from("x"), Arc::from("y"));
        assert_eq!(
            decide(
                &limiter,
                &[Charge {
                    bucket: BucketId(0),
                    client: &x,
                    cells: 1
                }]
            ),
            Decision::Allow
        );
        assert_eq!(
            decide(
                &limiter,
                &[Charge {
                    bucket: BucketId(0),
                    client: &y,
                    cells: 1
                }]
            ),
            Decision::Deny(BucketId(0))
        );
    }

    #[test]
    fn connections_per_client_are_capped_and_released() {
        let caps = HandshakeCaps::new(Some(2), None);
        let a: Arc<str> = Arc::from("a");
        let first = caps.admit(&a).expect("1st");
        let _second = caps.admit(&a).expect("2nd");
        let refused = caps.admit(&a).err().expect("3rd refused");
        assert_eq!(refused.status, 429);
        assert!(
            caps.admit(&Arc::from("b")).is_ok(),
            "other clients are not affected"
        );
        drop(first);
        assert!(caps.admit(&a).is_ok(), "a closed connection frees its slot");
    }

    #[test]
    fn slots_of_gone_clients_are_forgotten() {
        let caps = HandshakeCaps::new(Some(1), None);
        for i in 0..100 {
            let slot = caps.admit(&Arc::from(format!("c{i}"))).expect("admitted");
            drop(slot);
        }
        assert_eq!(caps.clients_with_connections(), 0);
    }

    #[test]
    fn handshakes_per_second_are_capped() {
        let caps = HandshakeCaps::new(None, Some(2));
        let a: Arc<str> = Arc::from("a");
        assert!(caps.admit(&a).is_ok());
        assert!(caps.admit(&a).is_ok());
        let refused = caps.admit(&a).err().expect("3rd in the same second");
        assert_eq!(refused.status, 429);
        assert!(refused.headers.iter().any(|(k, _)| *k == "retry-after"));
    }

    #[test]
    fn tiers_come_from_the_configuration() {
        #[derive(Deserialize)]
        struct File {
            throttling: ThrottlingConfig,
        }
        let file: File = toml::from_str(SAMPLE_CONFIG_TOML).expect("the sample parses");
        let config = file.throttling;
        assert_eq!(config.tiers.len(), 4);
        let gold = Bucket {
            tier: Some("AsyncGold".into()),
            ..Bucket::default()
        };
        let gold = resolve_bucket(&gold, &config).expect("defined");
        assert_eq!(
            gold.messages,
            Some(Rate {
                limit: 50_000,
                period_seconds: 86_400
            })
        );
        assert_eq!(gold.bytes, None);
        let unlimited = Bucket {
            tier: Some("AsyncUnlimited".into()),
            ..Bucket::default()
        };
        assert_eq!(
            resolve_bucket(&unlimited, &config).unwrap(),
            ResolvedBucket {
                messages: None,
                bytes: None,
                burst: None
            }
        );
        let unknown = Bucket {
            tier: Some("Platinum".into()),
            ..Bucket::default()
        };
        let error = resolve_bucket(&unknown, &config).unwrap_err();
        assert!(
            error.contains("Platinum") && error.contains("AsyncGold"),
            "{error}"
        );
    }

    #[test]
    fn a_bad_rate_in_the_configuration_is_an_error_that_says_how_to_write_it() {
        let error =
            toml::from_str::<ThrottlingConfig>("[tiers.Gold]\nmessages = \"1000/minutes\"\n")
                .unwrap_err()
                .to_string();
        assert!(error.contains("1000/min"), "{error}");
        let error = toml::from_str::<ThrottlingConfig>("[tiers.Gold]\nmesages = \"1000/min\"\n")
            .unwrap_err()
            .to_string();
        assert!(error.contains("mesages"), "{error}");
    }
}
