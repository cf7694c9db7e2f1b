//! `x-gateway.origins`: which browser origins may open a connection to an API.
//!
//! The check reads the request's `Origin` header (browsers always send it on a WebSocket
//! handshake; other clients usually do not). With an allowlist, a missing or unlisted origin is
//! refused with 403 before anything else is done for the connection; without one, any origin is
//! accepted. Patterns are compared case-insensitively; `https://*.example.com` matches any
//! subdomain (at any depth) of `example.com` over https, not `example.com` itself.

use crate::refusal::Refusal;

/// Refuses a handshake whose `Origin` is not allowed. `allowed` comes from the plan (lowercased by
/// the compiler); empty means any origin.
pub fn check_origin(allowed: &[String], origin: Option<&str>) -> Result<(), Refusal> {
    if allowed.is_empty() || allowed.iter().any(|a| a == "*") {
        return Ok(());
    }
    let Some(origin) = origin.map(str::trim).filter(|o| !o.is_empty()) else {
        return Err(Refusal::new(
            403,
            "this API accepts connections only from listed origins, and the request has no Origin header",
        ));
    };
    let origin = origin.to_ascii_lowercase();
    if allowed
        .iter()
        .any(|pattern| origin_matches(pattern, &origin))
    {
        return Ok(());
    }
    // The origin is the client's own value; clip it so the reason stays short.
    let shown: String = origin.chars().take(100).collect();
    Err(Refusal::new(
        403,
        format!("the origin `{shown}` is not allowed to connect to this API"),
    ))
}

/// `pattern` and `origin` are lowercase. `*.` as the first host label matches one or more labels.
fn origin_matches(pattern: &str, origin: &str) -> bool {
    if pattern == origin {
        return true;
    }
    let Some((scheme, host)) = pattern.split_once("://*.") else {
        return false;
    };
    let Some(rest) = origin
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
    else {
        return false;
    };
    // `rest` must be `<one or more labels>.<host>` exactly (ports included in `host`).
    match rest.strip_suffix(host) {
        Some(prefix) => {
            prefix.len() > 1
                && prefix.ends_with('.')
                && prefix[..prefix.len() - 1]
                    .split('.')
                    .all(|label| !label.is_empty() && !label.contains([':', '/', '@']))
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn no_allowlist_accepts_any_origin_and_none() {
        assert!(check_origin(&[], Some("https://evil.example")).is_ok());
        assert!(check_origin(&[], None).is_ok());
        assert!(check_origin(&allowed(&["*"]), Some("https://x.y")).is_ok());
    }

    #[test]
    fn exact_origins_match_case_insensitively() {
        let list = allowed(&["https://app.example.com"]);
        assert!(check_origin(&list, Some("https://APP.example.com")).is_ok());
        let refused = check_origin(&list, Some("https://app.example.com.evil.io")).unwrap_err();
        assert_eq!(refused.status, 403);
        assert!(refused.text.contains("not allowed"), "{}", refused.text);
        assert_eq!(
            check_origin(&list, Some("http://app.example.com"))
                .unwrap_err()
                .status,
            403
        );
    }

    #[test]
    fn a_missing_origin_is_refused_when_there_is_an_allowlist() {
        let list = allowed(&["https://app.example.com"]);
        let refused = check_origin(&list, None).unwrap_err();
        assert_eq!(refused.status, 403);
        assert!(refused.text.contains("no Origin"), "{}", refused.text);
    }

    #[test]
    fn wildcards_match_subdomains_only() {
        let list = allowed(&["https://*.example.com"]);
        assert!(check_origin(&list, Some("https://a.example.com")).is_ok());
        assert!(check_origin(&list, Some("https://a.b.example.com")).is_ok());
        for refused in [
            "https://example.com",
            "https://.example.com",
            "http://a.example.com",
            "https://a.example.com:8443",
            "https://aexample.com",
            "https://a.example.com.evil.io",
            "https://evil.io/.example.com",
            "https://user@a.example.com",
        ] {
            assert!(
                check_origin(&list, Some(refused)).is_err(),
                "{refused} should be refused"
            );
        }
        let with_port = allowed(&["https://*.example.com:8443"]);
        assert!(check_origin(&with_port, Some("https://a.example.com:8443")).is_ok());
        assert!(check_origin(&with_port, Some("https://a.example.com")).is_err());
    }
}
