//! The WebSocket opening handshake as RFC 6455 §4.2.1 asks a server to check it.
//!
//! A request that does not ask for a WebSocket at all (no `Upgrade: websocket` or no
//! `Connection: upgrade`) gets 426 with the headers that say how to ask. A request that asks but
//! gets it wrong gets 400: HTTP/1.0, a missing, repeated or malformed `Host` (RFC 9112 §3.2), a
//! missing or repeated `Sec-WebSocket-Key`, or one that is not 16 base64-encoded bytes. An
//! unsupported `Sec-WebSocket-Version` gets 426 with `Sec-WebSocket-Version: 13` (§4.4).
//!
//! ```
//! use portico_runtime::http::parse_request_head;
//! use portico_runtime::upgrade::check_upgrade_request;
//! let raw = b"GET /chat HTTP/1.1\r\nHost: gw\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
//!     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
//! let (head, _) = parse_request_head(raw).unwrap().unwrap();
//! assert!(check_upgrade_request(&head).is_ok());
//! ```

use base64::Engine;

use crate::http::RequestHead;
use crate::refusal::Refusal;

/// Checks that `head` is a well-formed WebSocket upgrade request.
pub fn check_upgrade_request(head: &RequestHead) -> Result<(), Refusal> {
    if !head.header_has_token("upgrade", "websocket")
        || !head.header_has_token("connection", "upgrade")
    {
        return Err(Refusal::new(
            426,
            "this is a WebSocket endpoint: connect with a WebSocket client",
        )
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13"));
    }
    if head.version != 1 {
        return Err(Refusal::new(400, "a WebSocket handshake needs HTTP/1.1"));
    }
    let mut hosts = head.all("host");
    match (hosts.next(), hosts.next()) {
        (Some(host), None) if is_valid_host(host.trim()) => {}
        (None, _) => return Err(Refusal::new(400, "the request has no Host header")),
        (Some(_), Some(_)) => {
            return Err(Refusal::new(
                400,
                "the request has more than one Host header",
            ))
        }
        (Some(_), None) => return Err(Refusal::new(400, "the Host header is not a valid host")),
    }
    let mut versions = head.all("sec-websocket-version");
    if !matches!((versions.next(), versions.next()), (Some(v), None) if v.trim() == "13") {
        return Err(Refusal::new(426, "only WebSocket version 13 is supported")
            .header("sec-websocket-version", "13"));
    }
    let mut keys = head.all("sec-websocket-key");
    match (keys.next(), keys.next()) {
        (Some(key), None) if is_valid_key(key.trim()) => Ok(()),
        (None, _) => Err(Refusal::new(400, "the request has no Sec-WebSocket-Key")),
        (Some(_), Some(_)) => Err(Refusal::new(
            400,
            "the request has more than one Sec-WebSocket-Key",
        )),
        (Some(_), None) => Err(Refusal::new(
            400,
            "Sec-WebSocket-Key must be 16 base64-encoded bytes",
        )),
    }
}

/// The client's key, for `Sec-WebSocket-Accept` (call after [`check_upgrade_request`]).
pub fn client_key(head: &RequestHead) -> &str {
    head.header("sec-websocket-key").unwrap_or_default().trim()
}

/// RFC 6455 §4.1: the key is a base64-encoded 16-byte value, so 24 characters with padding.
fn is_valid_key(key: &str) -> bool {
    key.len() == 24
        && base64::engine::general_purpose::STANDARD
            .decode(key)
            .is_ok_and(|bytes| bytes.len() == 16)
}

/// `uri-host [":" port]` (RFC 3986 §3.2.2): a bracketed IP literal, or a name of unreserved,
/// percent-encoded and sub-delimiter characters; then optional digits. Anything else (spaces,
/// quotes, backslashes, `@`, `/`) is refused, so the value can be quoted safely downstream.
fn is_valid_host(host: &str) -> bool {
    let (name, port) = if let Some(rest) = host.strip_prefix('[') {
        let Some((literal, after)) = rest.split_once(']') else {
            return false;
        };
        if literal.is_empty()
            || !literal
                .chars()
                .all(|c| c.is_ascii_hexdigit() || c == ':' || c == '.')
        {
            return false;
        }
        match after {
            "" => ("x", None),
            _ => match after.strip_prefix(':') {
                Some(port) => ("x", Some(port)),
                None => return false,
            },
        }
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (host, None),
        }
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-._~%!$&'()*+,;=".contains(c));
    let port_ok = port.is_none_or(|p| p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    name_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_request_head;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn head(version: &str, headers: &[(&str, &str)]) -> RequestHead {
        let mut raw = format!("GET /chat HTTP/{version}\r\n");
        for (k, v) in headers {
            raw.push_str(&format!("{k}: {v}\r\n"));
        }
        raw.push_str("\r\n");
        parse_request_head(raw.as_bytes()).unwrap().unwrap().0
    }

    fn upgrade(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut h = vec![("Upgrade", "websocket"), ("Connection", "Upgrade")];
        h.extend_from_slice(extra);
        h
    }

    fn status(version: &str, headers: &[(&str, &str)]) -> u16 {
        match check_upgrade_request(&head(version, headers)) {
            Ok(()) => 101,
            Err(r) => r.status,
        }
    }

    const GOOD: [(&str, &str); 3] = [
        ("Host", "gw:9099"),
        ("Sec-WebSocket-Key", KEY),
        ("Sec-WebSocket-Version", "13"),
    ];

    #[test]
    fn a_well_formed_upgrade_passes() {
        assert_eq!(status("1.1", &upgrade(&GOOD)), 101);
        assert_eq!(
            status(
                "1.1",
                &upgrade(&[
                    ("Host", "[::1]:9099"),
                    ("Sec-WebSocket-Key", KEY),
                    ("Sec-WebSocket-Version", "13")
                ])
            ),
            101
        );
    }

    #[test]
    fn http_1_0_upgrades_are_refused_with_400() {
        assert_eq!(status("1.0", &upgrade(&GOOD)), 400);
    }

    #[test]
    fn not_an_upgrade_is_426() {
        assert_eq!(status("1.1", &GOOD), 426);
        let r = check_upgrade_request(&head("1.1", &GOOD)).unwrap_err();
        assert!(r.headers.contains(&("upgrade", "websocket".into())));
    }

    #[test]
    fn host_must_appear_once_and_be_a_host() {
        let key = ("Sec-WebSocket-Key", KEY);
        let ver = ("Sec-WebSocket-Version", "13");
        assert_eq!(status("1.1", &upgrade(&[key, ver])), 400, "missing");
        assert_eq!(
            status("1.1", &upgrade(&[("Host", "a"), ("Host", "b"), key, ver])),
            400,
            "duplicated"
        );
        for bad in [
            "a\\", "a\"b", "", "a b", "a@b", "a/b", "[::1", "[zz]", "a:port", "a:123456",
        ] {
            assert_eq!(
                status("1.1", &upgrade(&[("Host", bad), key, ver])),
                400,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn the_key_must_be_one_16_byte_base64_value() {
        let host = ("Host", "gw");
        let ver = ("Sec-WebSocket-Version", "13");
        assert_eq!(status("1.1", &upgrade(&[host, ver])), 400, "missing");
        assert_eq!(
            status(
                "1.1",
                &upgrade(&[
                    host,
                    ver,
                    ("Sec-WebSocket-Key", KEY),
                    ("Sec-WebSocket-Key", KEY)
                ])
            ),
            400,
            "duplicated"
        );
        for bad in [
            "short",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            "!!!!!!!!!!!!!!!!!!!!!!==",
            "AAAAAAAAAAAAAAAAAAAAAA==AAAA",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        ] {
            assert_eq!(
                status("1.1", &upgrade(&[host, ver, ("Sec-WebSocket-Key", bad)])),
                400,
                "{bad}"
            );
        }
    }

    #[test]
    fn other_versions_get_426_naming_13() {
        let host = ("Host", "gw");
        let key = ("Sec-WebSocket-Key", KEY);
        for v in [
            &[("Sec-WebSocket-Version", "8")][..],
            &[][..],
            &[
                ("Sec-WebSocket-Version", "13"),
                ("Sec-WebSocket-Version", "8"),
            ][..],
        ] {
            let mut h = upgrade(&[host, key]);
            h.extend_from_slice(v);
            let r = check_upgrade_request(&head("1.1", &h)).unwrap_err();
            assert_eq!(r.status, 426);
            assert!(r.headers.contains(&("sec-websocket-version", "13".into())));
        }
    }

    /// The fuzz target's seeds and minimised findings, replayed through its checks.
    mod fuzz_regressions {
        use tokio_tungstenite::tungstenite::http;

        include!("../fuzz/handshake_check.rs");

        #[test]
        fn fuzz_seeds_and_findings_pass_the_handshake_checks() {
            let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
            let mut replayed = 0;
            for dir in ["seeds/handshake", "regressions/handshake"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
                    continue;
                };
                for entry in entries {
                    let path = entry.expect("a directory entry").path();
                    if path.extension().is_some_and(|e| e == "md") {
                        continue;
                    }
                    let data = std::fs::read(&path).expect("a fuzz input");
                    let outcome = std::panic::catch_unwind(|| check_handshake(&data));
                    assert!(outcome.is_ok(), "{} fails the checks", path.display());
                    replayed += 1;
                }
            }
            assert!(replayed >= 4, "only {replayed} inputs");
        }

        /// A small mutation fuzzer that runs in every CI run (the coverage-guided target needs a
        /// nightly, instrumented build): the seeds mutated byte by byte, spliced and salted with
        /// tokens that matter to the parser and the router. Deterministic per seed;
        /// `PORTICO_FUZZ_ITERATIONS` and `PORTICO_FUZZ_SEED` run it longer or differently.
        #[test]
        fn mutations_of_the_seeds_pass_the_handshake_checks() {
            use rand::{Rng, SeedableRng};
            let root =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/handshake");
            let seeds: Vec<Vec<u8>> = std::fs::read_dir(root)
                .expect("the seed folder")
                .map(|e| std::fs::read(e.expect("an entry").path()).expect("a seed"))
                .collect();
            assert!(!seeds.is_empty());
            let env = |name: &str, default: u64| {
                std::env::var(name)
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(default)
            };
            let iterations = env("PORTICO_FUZZ_ITERATIONS", 30_000);
            let mut rng = rand::rngs::StdRng::seed_from_u64(env("PORTICO_FUZZ_SEED", 6455));
            const TOKENS: &[&[u8]] = &[
                b"\r\n",
                b"\r\n\r\n",
                b"%",
                b"%2F",
                b"%00",
                b"/..",
                b"//",
                b"?",
                b"&",
                b"=",
                b":",
                b"{",
                b"}",
                b"\0",
                b"\xff",
                b" ",
                b",",
                b";",
                b"\"",
                b"access_token=",
                b"apikey:",
                b"Upgrade: websocket\r\n",
                b"Sec-WebSocket-Key: ",
                b"Host: ",
                b"X-Forwarded-For: ",
            ];
            for _ in 0..iterations {
                let mut data = seeds[rng.random_range(0..seeds.len())].clone();
                for _ in 0..rng.random_range(1..8) {
                    let at = rng.random_range(0..=data.len());
                    match rng.random_range(0..6) {
                        0 if at < data.len() => data[at] = rng.random(),
                        1 => data.insert(at, rng.random()),
                        2 if at < data.len() => {
                            let end = rng.random_range(at..=data.len().min(at + 16));
                            data.drain(at..end);
                        }
                        3 => {
                            let token = TOKENS[rng.random_range(0..TOKENS.len())];
                            data.splice(at..at, token.iter().copied());
                        }
                        4 => {
                            let other = &seeds[rng.random_range(0..seeds.len())];
                            let from = rng.random_range(0..=other.len());
                            data.splice(at..at, other[from..].iter().copied());
                        }
                        _ => {
                            let end = rng.random_range(at..=data.len());
                            let copy = data[at..end].to_vec();
                            data.splice(end..end, copy);
                        }
                    }
                }
                let outcome = std::panic::catch_unwind(|| check_handshake(&data));
                assert!(
                    outcome.is_ok(),
                    "this input fails the checks (add it to fuzz/regressions/handshake): {:?}",
                    String::from_utf8_lossy(&data)
                );
            }
        }
    }
}
