//! Descriptions are CommonMark: rendered to HTML (raw HTML escaped, unsafe links dropped) or kept
//! as Markdown with raw HTML escaped, and the small escapes Markdown tables and code need.

/// Whether a link target is safe to put in an `href`: http(s), mailto, or relative.
pub(super) fn safe_url(url: &str) -> bool {
    let lower = url.trim().to_ascii_lowercase();
    match lower.find(':') {
        Some(colon) => {
            let before = &lower[..colon];
            before.contains(['/', '?', '#']) || matches!(before, "http" | "https" | "mailto")
        }
        None => true,
    }
}

/// Renders a description (CommonMark with tables) to HTML. Raw HTML in it is escaped, not passed
/// through; links other than http(s), mailto and relative ones are dropped; images become links
/// (a page never fetches anything); headings are moved below the page's own (h3 and lower).
pub fn markdown_to_html(text: &str) -> String {
    use pulldown_cmark::{html, Event, HeadingLevel, Parser, Tag, TagEnd};
    fn shift(level: HeadingLevel) -> HeadingLevel {
        match level {
            HeadingLevel::H1 => HeadingLevel::H3,
            HeadingLevel::H2 => HeadingLevel::H4,
            HeadingLevel::H3 => HeadingLevel::H5,
            _ => HeadingLevel::H6,
        }
    }
    let mut options = pulldown_cmark::Options::empty();
    options.insert(pulldown_cmark::Options::ENABLE_TABLES);
    options.insert(pulldown_cmark::Options::ENABLE_STRIKETHROUGH);
    let events = Parser::new_ext(text, options).map(|event| match event {
        Event::Html(s) | Event::InlineHtml(s) => Event::Text(s),
        Event::Start(Tag::HtmlBlock) => Event::Start(Tag::Paragraph),
        Event::End(TagEnd::HtmlBlock) => Event::End(TagEnd::Paragraph),
        Event::Start(Tag::Heading {
            level,
            id,
            classes,
            attrs,
        }) => Event::Start(Tag::Heading {
            level: shift(level),
            id,
            classes,
            attrs,
        }),
        Event::End(TagEnd::Heading(level)) => Event::End(TagEnd::Heading(shift(level))),
        Event::Start(Tag::Link {
            link_type,
            dest_url,
            title,
            id,
        })
        | Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Link {
            link_type,
            dest_url: if safe_url(&dest_url) {
                dest_url
            } else {
                "#".into()
            },
            title,
            id,
        }),
        Event::End(TagEnd::Image) => Event::End(TagEnd::Link),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, events);
    out
}

/// [`markdown_to_html`] without the paragraph around a one-paragraph text (for table cells).
pub fn markdown_inline(text: &str) -> String {
    let html = markdown_to_html(text);
    let trimmed = html.trim_end();
    if let Some(inner) = trimmed
        .strip_prefix("<p>")
        .and_then(|s| s.strip_suffix("</p>"))
    {
        if !inner.contains("<p>") {
            return inner.to_string();
        }
    }
    html
}

/// A description for a Markdown page: kept as Markdown, but raw HTML in it is escaped (so it shows
/// as text on GitHub too) and ATX headings are moved two levels down.
pub fn escape_markdown_html(text: &str) -> String {
    use pulldown_cmark::{Event, Parser, Tag};
    let mut inserts: Vec<(usize, &str)> = Vec::new();
    let mut html_ranges: Vec<std::ops::Range<usize>> = Vec::new();
    for (event, range) in Parser::new(text).into_offset_iter() {
        match event {
            Event::Html(_) | Event::InlineHtml(_) => html_ranges.push(range),
            Event::Start(Tag::Heading { .. }) if text[range.start..].starts_with('#') => {
                inserts.push((range.start, "##"))
            }
            _ => {}
        }
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut pending = inserts.into_iter().peekable();
    for (i, c) in text.char_indices() {
        while pending.peek().is_some_and(|(at, _)| *at == i) {
            out.push_str(pending.next().expect("peeked").1);
        }
        let in_html = html_ranges.iter().any(|r| r.contains(&i));
        match c {
            '<' if in_html => out.push_str("&lt;"),
            '>' if in_html => out.push_str("&gt;"),
            _ => out.push(c),
        }
    }
    out
}

/// A URL as HTML (escaped) with line-break opportunities after each `/` and before `?` and `&`, so
/// a long URL wraps between its segments on a narrow screen.
pub fn breakable_url(url: &str) -> String {
    let mut out = String::with_capacity(url.len() + 32);
    for c in url.chars() {
        match c {
            '?' | '&' => out.push_str("<wbr>"),
            _ => {}
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            other => out.push(other),
        }
        if c == '/' {
            out.push_str("<wbr>");
        }
    }
    out.replace("/<wbr>/<wbr>", "//<wbr>")
}

/// Text for a Markdown table cell: on one line, with `|` and HTML escaped.
pub fn markdown_cell(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    escape_markdown_html(&one_line).replace('|', "\\|")
}

/// Inline code for Markdown: backticks around, enough of them for the text.
pub fn markdown_code(text: &str) -> String {
    let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut longest = 0;
    let mut run = 0;
    for c in one_line.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    let fence = "`".repeat(longest + 1);
    let pad = if one_line.starts_with('`') || one_line.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{}{pad}{fence}", one_line.replace('|', "\\|"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_html_in_descriptions_is_text() {
        let html = markdown_to_html(
            "Hi <script>alert(1)</script> *there*\n\n<div onclick=x>block</div>\n",
        );
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("<div"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("<em>there</em>"), "{html}");
    }

    #[test]
    fn dangerous_links_and_images_are_defused() {
        let html = markdown_to_html("[a](javascript:alert(1)) ![b](https://example.com/x.png) [c](#x) [d](https://e.com/?a:b)");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(!html.contains("<img"), "{html}");
        assert!(
            html.contains("href=\"https://example.com/x.png\""),
            "{html}"
        );
        assert!(html.contains("href=\"#x\""), "{html}");
        assert!(html.contains("href=\"https://e.com/?a:b\""), "{html}");
    }

    #[test]
    fn headings_go_below_the_page() {
        assert_eq!(markdown_to_html("# A").trim(), "<h3>A</h3>");
        assert_eq!(
            escape_markdown_html("# A\ntext <b>x</b> `<i>`"),
            "### A\ntext &lt;b&gt;x&lt;/b&gt; `<i>`"
        );
    }

    #[test]
    fn markdown_cells_and_code() {
        assert_eq!(markdown_cell("a | b\nc"), "a \\| b c");
        assert_eq!(markdown_code("a`b"), "``a`b``");
        assert_eq!(
            breakable_url("ws://h/a?b=<x>&c"),
            "ws://<wbr>h/<wbr>a<wbr>?b=&lt;x&gt;<wbr>&amp;c"
        );
    }
}
