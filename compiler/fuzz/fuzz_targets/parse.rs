//! Fuzzes the YAML/JSON reader: `parse_text` must return (never panic, never hang, stay within
//! the memory limit) for any UTF-8 text, and the spans it returns must point into the text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portico_compiler::source::{parse_text, FileId, Limits, Node, NodeValue, Span};

fn check_span(text: &str, span: Span) {
    assert!(span.line >= 1, "line is 1-based: {span:?}");
    assert!(span.col >= 1, "column is 1-based: {span:?}");
    assert!(span.start <= text.len(), "start past the end: {span:?}");
    assert!(
        text.is_char_boundary(span.start),
        "start inside a character: {span:?}"
    );
    if strict_positions() && span.start < text.len() && !has_lone_cr(text) {
        // The line and column must name the same place as the byte offset (`\n` ends a line).
        let before = &text[..span.start];
        let line = 1 + before.matches('\n').count();
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let col = 1 + text[line_start..span.start].chars().count();
        assert_eq!(
            (span.line as usize, span.col as usize),
            (line, col),
            "line/column disagree with the byte offset: {span:?}"
        );
    }
}

/// A `\r` not followed by `\n` ends a line for the YAML scanner but not for the line index:
/// known (tests/fuzz_regressions/position-lone-cr.yaml), so skipped to let the fuzzer look further.
fn has_lone_cr(text: &str) -> bool {
    text.match_indices('\r')
        .any(|(i, _)| text.as_bytes().get(i + 1) != Some(&b'\n'))
}

/// `PORTICO_FUZZ_STRICT_POSITIONS=1` also checks that every span's line and column agree with
/// its byte offset. Off by default, so that a known position bug does not stop every run.
fn strict_positions() -> bool {
    static STRICT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *STRICT.get_or_init(|| std::env::var_os("PORTICO_FUZZ_STRICT_POSITIONS").is_some())
}

fuzz_target!(|text: &str| {
    let (node, problems) = parse_text(FileId(0), text, &Limits::default());
    for p in &problems {
        check_span(text, p.span);
    }
    let Some(node) = node else { return };
    // With a duplicate key, a pointer names the first of the keys, so pointers into the later
    // ones do not lead back to their node; check pointers only when keys are unique.
    let unique_keys = !problems.iter().any(|p| p.code == "yaml-duplicate-key");
    // Serialising forces the whole JSON value (and the number formatting) to be built.
    let _ = node.to_json().to_string();
    // Walk the tree: check every span and follow the pointer of every node back to it.
    let mut stack: Vec<(&Node, String)> = vec![(&node, String::new())];
    let mut visited = 0usize;
    while let Some((n, pointer)) = stack.pop() {
        visited += 1;
        check_span(text, n.span);
        if unique_keys && visited <= 2_000 {
            let found = node.pointer(&pointer).map(|n| n.span);
            assert_eq!(
                found,
                Some(n.span),
                "pointer {pointer:?} does not lead back"
            );
            let _ = node.pointer_key_span(&pointer);
        }
        match &n.value {
            NodeValue::Seq(items) => {
                for (i, item) in items.iter().enumerate() {
                    stack.push((item, format!("{pointer}/{i}")));
                }
            }
            NodeValue::Map(entries) => {
                for (k, v) in entries {
                    check_span(text, k.span);
                    let token = portico_compiler::source::escape_pointer_token(&k.name);
                    stack.push((v, format!("{pointer}/{token}")));
                }
            }
            _ => {}
        }
    }
    assert_eq!(visited, node.count());
    // Arbitrary pointers taken from the input itself.
    for line in text.lines().take(8) {
        let _ = node.pointer(line);
        let _ = node.pointer_key_span(line);
    }
});
