//! The API docs of the plan being served (`/docs/` and `/specs/` on the admin listener), rendered
//! by the compiler once per load, off the async threads, and kept in memory with the rest of the
//! served state.

use std::collections::HashMap;

use portico_compiler::docs::{Page, PublicUrls};
use portico_compiler::Docs;

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
    /// The site for the plan with hash `hash`, from the docs the compiler rendered for it.
    /// `from_plan_file`: the plan was read from a file, which does not carry the specs.
    pub fn build(hash: &str, docs: Docs, from_plan_file: bool) -> DocsSite {
        DocsSite {
            hash: hash.to_string(),
            pages: docs
                .pages
                .into_iter()
                .map(|p| (p.path.clone(), p))
                .collect(),
            specs: docs
                .specs
                .into_iter()
                .map(|s| (format!("{}/{}", s.api, s.version), s.text))
                .collect(),
            specs_missing: from_plan_file.then(|| {
                "this runtime serves a compiled plan (--plan), which does not carry the specs; \
                 run the runtime on the spec folder, or read the docs `compile --out` wrote"
                    .to_string()
            }),
            error: docs.error,
        }
    }
}

/// Where the docs say clients reach the gateway: `--public-url` if given, else the listeners this
/// gateway has (`localhost` for a wildcard or loopback address): `ws://` and `--listen`, plus
/// `wss://` and `--tls-listen` when the TLS listener runs. Never a scheme nothing serves.
pub fn public_urls(config: &Config) -> PublicUrls {
    if !config.public_urls.is_empty() {
        match PublicUrls::parse(&config.public_urls) {
            Ok(urls) => return urls,
            Err(e) => tracing::warn!("--public-url ignored: {e}"),
        }
    }
    let url = |scheme: &str, addr: std::net::SocketAddr| {
        let host = match addr.ip() {
            ip if ip.is_unspecified() || ip.is_loopback() => "localhost".to_string(),
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        format!("{scheme}://{host}:{}", addr.port())
    };
    let mut urls = vec![url("ws", config.listen)];
    if config.tls_files().is_some() {
        urls.push(url("wss", config.tls_listen));
    }
    PublicUrls::parse(&urls).expect("listener addresses are valid URLs")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_docs_show_wss_only_when_the_tls_listener_exists() {
        let plain = Config::parse_from(["runtime", "--listen", "0.0.0.0:9099", "x"]);
        let urls = public_urls(&plain);
        assert_eq!((urls.ws(), urls.wss()), (Some("ws://localhost:9099"), None));
        let tls = Config::parse_from([
            "runtime",
            "--tls-listen",
            "10.0.0.1:8443",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "x",
        ]);
        let urls = public_urls(&tls);
        assert_eq!(
            (urls.ws(), urls.wss()),
            (Some("ws://localhost:9099"), Some("wss://10.0.0.1:8443"))
        );
        let proxied = Config::parse_from(["runtime", "--public-url", "wss://api.example.com", "x"]);
        let urls = public_urls(&proxied);
        assert_eq!(
            (urls.ws(), urls.wss()),
            (None, Some("wss://api.example.com"))
        );
        // One file alone does not enable the listener: clap refuses it.
        assert!(Config::try_parse_from(["runtime", "--tls-cert", "c.pem", "x"]).is_err());
    }
}
