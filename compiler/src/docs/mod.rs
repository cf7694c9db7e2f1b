//! API documentation for consumers, rendered from the same specs as the plan: one HTML and one
//! Markdown page per API, and an index.
//!
//! Pure: [`collect`] takes what a [`Compilation`](crate::compile::Compilation) found (the lowered
//! model, never the raw tree), [`render`] turns it (with the plan, when
//! there is one) into [`Page`]s through minijinja templates; writing them is the caller's business
//! (`compile --out`, or the runtime's admin listener). The built-in templates live in the
//! workspace's `templates/` folder and are compiled into the binary; [`Templates::set`] overrides
//! them one by one. The variables templates see are documented in `docs/docs-generation.md`.
//!
//! Three sources are supported:
//!
//! * specs **and** a plan (`compile --out`, the runtime serving specs): descriptions, messages and
//!   parameters come from the specs, gateway URLs, lifecycle, limits and access from the plan;
//! * specs only ([`render`] with no plan, e.g. `--lint`-style documents that are not gateway
//!   APIs): plain AsyncAPI docs, without gateway URLs;
//! * a plan only (the runtime serving `--plan`): everything the plan knows, without prose.
//!
//! The parts: `templates` (the templates and their filters), `collect` (what the specs say),
//! `view` (what templates see), `render` (pages), `api_view` (one API's page),
//! `snippets` (example URLs and client code), `schema_table` (schemas as tables) and
//! `markdown` (descriptions).
//!
//! ```
//! use portico_compiler::docs::{render, Collected, Options, Templates};
//! use portico_compiler::plan::Plan;
//! let pages = render(&Collected::default(), Some(&Plan::new(vec![])), &Options::default(),
//!     &Templates::builtin()).unwrap();
//! assert_eq!(pages[0].path, "index.html");
//! ```

mod api_view;
mod collect;
mod markdown;
mod render;
mod schema_table;
mod snippets;
mod templates;
mod view;

pub use collect::{collect, Collected, SourceApi};
pub use markdown::{
    breakable_url, escape_markdown_html, markdown_cell, markdown_code, markdown_inline,
    markdown_to_html,
};
pub use render::{render, render_compilation, spec_files};
pub use templates::{Templates, BUILTIN_TEMPLATES};

/// The gateway address used in URLs when none is given (`compile --docs-base-url`).
pub const DEFAULT_BASE_URL: &str = "ws://localhost:9099";

/// How pages are rendered.
#[derive(Clone, Debug)]
pub struct Options {
    /// `ws://host:port` or `wss://host:port` of the gateway, without a trailing `/`. Both the `ws`
    /// and the `wss` variant of it are shown.
    pub base_url: String,
    /// Link each API page to its raw spec at `../specs/<api>/<version>.yaml` (as the runtime's
    /// admin listener serves them).
    pub spec_links: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            base_url: DEFAULT_BASE_URL.to_string(),
            spec_links: false,
        }
    }
}

/// Checks and normalizes a gateway base URL: `ws://` or `wss://` (or `http(s)://`, read as the
/// matching WebSocket scheme), a host, optionally a port and a path prefix; no query or fragment.
pub fn normalize_base_url(text: &str) -> Result<String, String> {
    let text = text.trim();
    let (scheme, rest) = text
        .split_once("://")
        .ok_or_else(|| format!("`{text}` is not a URL: write it like {DEFAULT_BASE_URL}"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "ws" | "http" => "ws",
        "wss" | "https" => "wss",
        other => {
            return Err(format!(
                "`{other}://` is not a WebSocket scheme: use ws:// or wss://"
            ))
        }
    };
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("`{text}` has no host"));
    }
    if rest.contains(['?', '#', ' ', '"', '\'', '<', '>', '\\']) {
        return Err(format!(
            "`{text}` may not contain a query, a fragment, spaces or quotes"
        ));
    }
    Ok(format!("{scheme}://{}", rest.trim_end_matches('/')))
}

/// The `ws://` and `wss://` variants of a base URL.
fn base_variants(base: &str) -> (String, String) {
    let rest = base.split_once("://").map(|(_, r)| r).unwrap_or(base);
    (format!("ws://{rest}"), format!("wss://{rest}"))
}

/// One rendered file, with its path relative to the docs folder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page {
    pub path: String,
    pub content: String,
}

impl Page {
    pub fn content_type(&self) -> &'static str {
        if self.path.ends_with(".html") {
            "text/html; charset=utf-8"
        } else if self.path.ends_with(".md") {
            "text/markdown; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert_eq!(
            normalize_base_url("wss://gw.example.com/").unwrap(),
            "wss://gw.example.com"
        );
        assert_eq!(
            normalize_base_url("https://gw:8443/ws").unwrap(),
            "wss://gw:8443/ws"
        );
        assert!(normalize_base_url("ftp://x").is_err());
        assert!(normalize_base_url("ws://x?y").is_err());
        assert!(normalize_base_url("localhost").is_err());
    }
}
