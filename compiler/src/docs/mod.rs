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

/// The gateway address the docs show when none is given (`compile --public-url`).
pub const DEFAULT_BASE_URL: &str = "ws://localhost:9099";

/// The gateway's public base URLs the pages show: a `ws://` one, a `wss://` one, or both. Only
/// these are shown, so the docs never offer a `wss://` URL no listener serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrls {
    ws: Option<String>,
    wss: Option<String>,
}

impl PublicUrls {
    /// From one or two URLs (one per scheme), each checked by [`normalize_base_url`].
    pub fn parse<S: AsRef<str>>(urls: &[S]) -> Result<PublicUrls, String> {
        let mut public = PublicUrls {
            ws: None,
            wss: None,
        };
        for url in urls {
            let url = normalize_base_url(url.as_ref())?;
            let slot = if url.starts_with("wss://") {
                &mut public.wss
            } else {
                &mut public.ws
            };
            if let Some(first) = slot.replace(url.clone()) {
                return Err(format!(
                    "`{first}` and `{url}` are both public URLs for the same scheme: give at most one ws:// and one wss:// URL"
                ));
            }
        }
        if public.ws.is_none() && public.wss.is_none() {
            return Err(format!(
                "no public URL given: write one like {DEFAULT_BASE_URL}"
            ));
        }
        Ok(public)
    }

    pub fn ws(&self) -> Option<&str> {
        self.ws.as_deref()
    }

    pub fn wss(&self) -> Option<&str> {
        self.wss.as_deref()
    }

    /// The URL clients should try first: `wss://` when there is one.
    pub fn preferred(&self) -> &str {
        self.wss
            .as_deref()
            .or(self.ws.as_deref())
            .expect("parse keeps at least one URL")
    }
}

impl Default for PublicUrls {
    fn default() -> Self {
        PublicUrls {
            ws: Some(DEFAULT_BASE_URL.to_string()),
            wss: None,
        }
    }
}

/// How pages are rendered.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Where clients reach the gateway.
    pub public_urls: PublicUrls,
    /// Link each API page to its raw spec at `../specs/<api>/<version>.yaml` (as the runtime's
    /// admin listener serves them).
    pub spec_links: bool,
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

/// The `ws://` and `wss://` URLs of `path` that the public URLs serve.
fn public_variants(public: &PublicUrls, path: &str) -> (Option<String>, Option<String>) {
    (
        public.ws().map(|base| format!("{base}{path}")),
        public.wss().map(|base| format!("{base}{path}")),
    )
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
        let both = PublicUrls::parse(&["ws://gw:9099", "https://gw:8099/"]).unwrap();
        assert_eq!(
            (both.ws(), both.wss()),
            (Some("ws://gw:9099"), Some("wss://gw:8099"))
        );
        assert_eq!(both.preferred(), "wss://gw:8099");
        let tls_only = PublicUrls::parse(&["wss://gw"]).unwrap();
        assert_eq!(tls_only.ws(), None);
        assert!(PublicUrls::parse(&["ws://a", "ws://b"]).is_err());
        assert!(PublicUrls::parse::<&str>(&[]).is_err());
    }
}
