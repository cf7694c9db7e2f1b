//! The API docs of the plan being served (`/docs/` and `/specs/` on the admin listener), rendered
//! once per load off the async threads and kept in memory with the rest of the served state.

use std::collections::HashMap;

use portico_compiler::docs::{self, Collected, Page, Templates};
use portico_compiler::plan::Plan;

use crate::config::Config;

/// The docs of the plan being served, rendered once per (re)load and kept in memory.
#[derive(Debug, Default)]
pub struct DocsSite {
    /// The hash of the plan they document.
    pub hash: String,
    /// By file name (`index.html`, `chat-api-1.0.0.html`, ...).
    pub pages: HashMap<String, Page>,
    /// Raw specs by `<api>/<version>`.
    pub specs: HashMap<String, String>,
    /// Why `/specs/` has nothing to serve, when it has not.
    pub specs_missing: Option<String>,
    /// Why there are no pages, when rendering failed.
    pub error: Option<String>,
}

impl DocsSite {
    /// Renders the docs of `plan`: from the specs when `collected` has them (descriptions, message
    /// examples), else from the plan alone (serving `--plan`).
    pub fn build(plan: &Plan, collected: Option<&Collected>, base_url: &str) -> DocsSite {
        let options = docs::Options {
            base_url: base_url.to_string(),
            spec_links: collected.is_some(),
        };
        let empty = Collected::default();
        let source = collected.unwrap_or(&empty);
        let mut site = DocsSite {
            hash: plan.hash.clone(),
            ..DocsSite::default()
        };
        match docs::render(source, Some(plan), &options, &Templates::builtin()) {
            Ok(pages) => {
                site.pages = pages.into_iter().map(|p| (p.path.clone(), p)).collect();
            }
            Err(e) => site.error = Some(e),
        }
        match collected {
            Some(c) => {
                site.specs = docs::spec_files(c, plan)
                    .into_iter()
                    .map(|(api, version, text)| (format!("{api}/{version}"), text.to_string()))
                    .collect();
            }
            None => site.specs_missing = Some(
                "this runtime serves a compiled plan (--plan), which does not carry the specs; \
                     run the runtime on the spec folder, or read the docs `compile --out` wrote"
                    .to_string(),
            ),
        }
        site
    }
}

/// The gateway address the docs show: `--docs-base-url` (env `PORTICO_DOCS_BASE_URL`) if set
/// (`ws://` or `wss://`, e.g. the public address of a TLS proxy in front), else `ws://` and the
/// listen address (`localhost` for a wildcard address).
pub fn docs_base_url(config: &Config) -> String {
    if let Some(text) = &config.docs_base_url {
        match docs::normalize_base_url(text) {
            Ok(url) => return url,
            Err(e) => tracing::warn!("--docs-base-url ignored: {e}"),
        }
    }
    let addr = config.listen;
    let host = match addr.ip() {
        ip if ip.is_unspecified() || ip.is_loopback() => "localhost".to_string(),
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    format!("ws://{host}:{}", addr.port())
}
