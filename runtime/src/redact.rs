//! Removing secrets and internal addresses from text the runtime prints.
//!
//! Diagnostics quote spec lines, and a spec line may hold an endpoint such as
//! `ws://user:password@10.0.0.7:9000/feed`. Anything the runtime logs or shows that may quote a
//! spec goes through [`redact_userinfo`] (logs: operators may see hosts, never credentials) or
//! [`redact_authority`] (`/plan`: neither credentials nor backend hosts).
//!
//! ```
//! use portico_runtime::redact::{redact_authority, redact_userinfo};
//! let line = "endpoint: 'wss://bob:s3cret@10.0.0.7:9000/feed'";
//! assert_eq!(redact_userinfo(line), "endpoint: 'wss://***@10.0.0.7:9000/feed'");
//! assert_eq!(redact_authority(line), "endpoint: 'wss://***/feed'");
//! ```

/// Replaces the user-info of every URL in `text` (`scheme://user:pass@host` → `scheme://***@host`).
pub fn redact_userinfo(text: &str) -> String {
    rewrite_authorities(text, |authority| match authority.rfind('@') {
        Some(at) => format!("***{}", &authority[at..]),
        None => authority.to_string(),
    })
}

/// Replaces the whole authority (user-info, host and port) of every URL in `text` with `***`.
pub fn redact_authority(text: &str) -> String {
    rewrite_authorities(text, |authority| {
        if authority.is_empty() {
            String::new()
        } else {
            "***".to_string()
        }
    })
}

/// Calls `rewrite` on the authority of every `scheme://authority` in `text`. The authority ends at
/// `/`, `?`, `#`, whitespace, a quote or a bracket that closes the text around it.
fn rewrite_authorities(text: &str, rewrite: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let scheme_start = rest[..i]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
            .map_or(0, |j| j + 1);
        let after = &rest[i + 3..];
        let end = after
            .find(|c: char| {
                c.is_whitespace()
                    || matches!(
                        c,
                        '/' | '?' | '#' | '\'' | '"' | '`' | '<' | '>' | ')' | ','
                    )
            })
            .unwrap_or(after.len());
        out.push_str(&rest[..i + 3]);
        if scheme_start < i {
            out.push_str(&rewrite(&after[..end]));
        } else {
            // `://` without a scheme is not a URL.
            out.push_str(&after[..end]);
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_never_survives() {
        for (text, expected) in [
            ("ws://u:p@h:1/x", "ws://***@h:1/x"),
            ("a ws://u@h b wss://x:y@z", "a ws://***@h b wss://***@z"),
            ("'ws://a:b@c@d/'", "'ws://***@d/'"),
            ("ws://h:1/path?q=u:p@x", "ws://h:1/path?q=u:p@x"),
            ("no url here: a@b", "no url here: a@b"),
            ("://u:p@h", "://u:p@h"),
            (
                "│ 3 │   production: ws://admin:hunter2@10.1.1.1:9000",
                "│ 3 │   production: ws://***@10.1.1.1:9000",
            ),
        ] {
            assert_eq!(redact_userinfo(text), expected, "{text}");
        }
    }

    #[test]
    fn authority_is_removed_for_the_plan() {
        assert_eq!(
            redact_authority("endpoint ws://backend.internal:9000/feed is bad"),
            "endpoint ws://***/feed is bad"
        );
        assert_eq!(redact_authority("echo: and mock:"), "echo: and mock:");
    }
}
