//! Keeping URL credentials out of everything the compiler prints.
//!
//! A spec may (wrongly) hold `ws://user:password@backend`, and diagnostics quote both values and
//! source lines, which end up in CI logs, stderr and the runtime's `/plan`. Every text that leaves
//! the compiler goes through [`user_info`] (messages, help) or [`mask_user_info`] (source excerpts,
//! where columns must stay put).
//!
//! What counts as user-info: the part before the last `@` of a URL authority, that is a word
//! following `//` (`ws://alice@host`), or a word with a `:` before its `@` (`alice:secret@host`, as an
//! AsyncAPI 3 `host` is written without a scheme). A plain e-mail address (`team@example.com`) is
//! left alone.

use std::borrow::Cow;

/// `text` with every URL user-info replaced by `***`.
pub fn user_info(text: &str) -> Cow<'_, str> {
    replace(text, |_| "***".to_string())
}

/// `text` with every URL user-info replaced by as many `*` as it has characters, so that columns
/// after it do not move (for source excerpts with a caret).
pub fn mask_user_info(text: &str) -> Cow<'_, str> {
    replace(text, |secret| "*".repeat(secret.chars().count()))
}

/// Whether `text` holds URL user-info.
pub fn has_user_info(text: &str) -> bool {
    matches!(user_info(text), Cow::Owned(_))
}

/// Characters that end a word: a user-info never contains them (in a URL they are delimiters or
/// would be percent-encoded), and around URLs in YAML, JSON and prose they are what surrounds it.
fn is_delimiter(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '/' | '\'' | '"' | '`' | '<' | '>' | '(' | ')' | ',' | '[' | ']' | '\\'
        )
}

fn replace(text: &str, with: impl Fn(&str) -> String) -> Cow<'_, str> {
    if !text.contains('@') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut word_start = 0;
    let flush = |out: &mut String, start: usize, end: usize| {
        let word = &text[start..end];
        if let Some(at) = word.rfind('@') {
            let secret = &word[..at];
            let after_slashes = text[..start].ends_with("//");
            if !secret.is_empty() && (after_slashes || secret.contains(':')) {
                out.push_str(&with(secret));
                out.push_str(&word[at..]);
                return true;
            }
        }
        out.push_str(word);
        false
    };
    for (i, c) in text.char_indices() {
        if is_delimiter(c) {
            changed |= flush(&mut out, word_start, i);
            out.push(c);
            word_start = i + c.len_utf8();
        }
    }
    changed |= flush(&mut out, word_start, text.len());
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_in_urls_is_replaced() {
        let cases = [
            ("ws://user:password@host:8080/x", "ws://***@host:8080/x"),
            ("wss://token@host", "wss://***@host"),
            (
                "url: 'ws://a:b@h' and ws://c@d/",
                "url: 'ws://***@h' and ws://***@d/",
            ),
            (
                "host: user:secret@broker.example.com",
                "host: ***@broker.example.com",
            ),
            ("ws://us%40er:p@ss@host", "ws://***@host"),
            ("`ws://u:p@h`", "`ws://***@h`"),
        ];
        for (text, want) in cases {
            assert_eq!(user_info(text), want, "{text}");
            assert!(has_user_info(text), "{text}");
        }
    }

    #[test]
    fn text_without_user_info_is_unchanged() {
        for text in [
            "ws://host:8080/path",
            "contact team@example.com",
            "git@github.com:org/repo",
            "a @ b",
            "",
        ] {
            assert_eq!(user_info(text), text);
            assert!(!has_user_info(text), "{text}");
        }
    }

    #[test]
    fn masking_keeps_the_length_in_characters() {
        let text = "    url: ws://üser:pw@host";
        let masked = mask_user_info(text);
        assert_eq!(masked, "    url: ws://*******@host");
        assert_eq!(masked.chars().count(), text.chars().count());
    }
}
