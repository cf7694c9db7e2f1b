//! The request headers the gateway sends to a backend: `Origin`, the `--forward-header`
//! allowlist, and the forwarding headers that tell the backend who the client is.
//!
//! Clients are not trusted, so what they send is never copied raw into a forwarding header:
//! * `X-Forwarded-For` is rebuilt from every client `X-Forwarded-For` header, keeping only the
//!   entries that are IP addresses (at most [`MAX_FORWARDED_HOPS`] of them, the nearest ones), and
//!   the client's own address is appended. A stray byte drops that entry, not the whole header.
//! * `Forwarded` (RFC 7239) names the client and the `Host` it asked for, each as a quoted string
//!   with `\` and `"` escaped (§4, RFC 9110 §5.6.4); a `Host` that is not visible ASCII is left out.

use std::net::{IpAddr, SocketAddr};

use crate::http::RequestHead;

/// How many earlier hops of `X-Forwarded-For` are kept (the ones nearest to the gateway).
pub const MAX_FORWARDED_HOPS: usize = 16;

/// Headers sent to the backend, lower-case names.
pub fn backend_headers(
    head: &RequestHead,
    peer: SocketAddr,
    forward_headers: &[String],
    over_tls: bool,
) -> Vec<(String, String)> {
    let proto = if over_tls { "https" } else { "http" };
    let mut out = Vec::new();
    for (name, value) in &head.headers {
        let lower = name.to_ascii_lowercase();
        if lower == "origin"
            || forward_headers
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&lower))
        {
            out.push((lower, value.clone()));
        }
    }
    let client_ip = peer.ip();
    out.push(("x-forwarded-for".into(), x_forwarded_for(head, client_ip)));
    out.push(("x-forwarded-proto".into(), proto.into()));
    let mut forwarded = format!("for={};proto={proto}", node(client_ip));
    if let Some(host) = head.header("host").map(str::trim) {
        if !host.is_empty() && host.bytes().all(|b| b.is_ascii_graphic()) {
            forwarded.push_str(";host=");
            forwarded.push_str(&quoted(host));
        }
    }
    out.push(("forwarded".into(), forwarded));
    out
}

/// The earlier hops the client claims (IP addresses only), then the client's address.
fn x_forwarded_for(head: &RequestHead, client_ip: IpAddr) -> String {
    let claimed: Vec<IpAddr> = head
        .all("x-forwarded-for")
        .flat_map(|v| v.split(','))
        .filter_map(|part| part.trim().parse::<IpAddr>().ok())
        .collect();
    let keep = claimed.len().saturating_sub(MAX_FORWARDED_HOPS);
    claimed[keep..]
        .iter()
        .chain(std::iter::once(&client_ip))
        .map(IpAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// RFC 7239 §6: an IPv4 node is a token; an IPv6 node is bracketed, so it must be quoted.
fn node(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => quoted(&format!("[{v6}]")),
    }
}

/// An RFC 9110 quoted-string: `"` and `\` escaped with a backslash.
fn quoted(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::parse_request_head;

    fn head(headers: &[(&str, &str)]) -> RequestHead {
        let mut raw = b"GET / HTTP/1.1\r\n".to_vec();
        for (k, v) in headers {
            raw.extend_from_slice(format!("{k}: ").as_bytes());
            raw.extend_from_slice(v.as_bytes());
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(b"\r\n");
        parse_request_head(&raw).unwrap().unwrap().0
    }

    fn header(out: &[(String, String)], name: &str) -> String {
        out.iter().find(|(k, _)| k == name).unwrap().1.clone()
    }

    const PEER: &str = "10.0.0.9:5000";

    #[test]
    fn every_client_xff_header_is_kept_in_sanitised_parts() {
        let h = head(&[
            ("X-Forwarded-For", "1.1.1.1, bogus, 2.2.2.2"),
            ("X-Forwarded-For", "3.3.3.3,\u{e9}vil, ::1"),
        ]);
        let out = backend_headers(&h, PEER.parse().unwrap(), &[], false);
        assert_eq!(
            header(&out, "x-forwarded-for"),
            "1.1.1.1, 2.2.2.2, 3.3.3.3, ::1, 10.0.0.9"
        );
    }

    #[test]
    fn a_non_ascii_xff_keeps_the_valid_entries() {
        let mut raw = b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4, \xff\xfe\r\n\r\n".to_vec();
        raw.truncate(raw.len());
        let (h, _) = parse_request_head(&raw).unwrap().unwrap();
        let out = backend_headers(&h, PEER.parse().unwrap(), &[], false);
        let xff = header(&out, "x-forwarded-for");
        assert_eq!(xff, "1.2.3.4, 10.0.0.9");
        assert!(xff.is_ascii());
    }

    #[test]
    fn the_hop_list_is_bounded() {
        let many = (0..100)
            .map(|i| format!("10.1.0.{i}"))
            .collect::<Vec<_>>()
            .join(",");
        let out = backend_headers(
            &head(&[("X-Forwarded-For", &many)]),
            PEER.parse().unwrap(),
            &[],
            false,
        );
        let xff = header(&out, "x-forwarded-for");
        assert_eq!(xff.split(", ").count(), MAX_FORWARDED_HOPS + 1);
        assert!(xff.starts_with("10.1.0.84, "), "{xff}");
    }

    #[test]
    fn forwarded_quotes_and_escapes_per_rfc_7239() {
        let out = backend_headers(&head(&[("Host", "a\\")]), PEER.parse().unwrap(), &[], false);
        assert_eq!(
            header(&out, "forwarded"),
            r#"for=10.0.0.9;proto=http;host="a\\""#
        );
        let out = backend_headers(
            &head(&[("Host", "x\"y")]),
            "[2001:db8::1]:80".parse().unwrap(),
            &[],
            false,
        );
        assert_eq!(
            header(&out, "forwarded"),
            r#"for="[2001:db8::1]";proto=http;host="x\"y""#
        );
    }

    #[test]
    fn origin_and_the_allowlist_are_forwarded_lower_case() {
        let h = head(&[
            ("Origin", "https://app"),
            ("X-Request-Id", "r1"),
            ("Cookie", "c"),
        ]);
        let out = backend_headers(
            &h,
            PEER.parse().unwrap(),
            &["x-request-id".to_string()],
            false,
        );
        assert_eq!(header(&out, "origin"), "https://app");
        assert_eq!(header(&out, "x-request-id"), "r1");
        assert!(!out.iter().any(|(k, _)| k == "cookie"));
    }

    #[test]
    fn tls_clients_are_forwarded_as_https() {
        let out = backend_headers(&head(&[]), PEER.parse().unwrap(), &[], true);
        assert_eq!(header(&out, "x-forwarded-proto"), "https");
        assert_eq!(header(&out, "forwarded"), "for=10.0.0.9;proto=https");
        let out = backend_headers(&head(&[]), PEER.parse().unwrap(), &[], false);
        assert_eq!(header(&out, "x-forwarded-proto"), "http");
    }
}
