//! The admin listener (default `127.0.0.1:9090`): `/healthz`, `/readyz`, `/metrics`, `/plan`, and
//! the API docs at `/docs/` with each API's spec at `/specs/<api>/<version>.yaml`.
//!
//! It shows no secrets: the plan summary and the docs list APIs and routes, never backend URLs.
//! (The raw specs are the documents as written: whatever their authors put in them, such as
//! `x-gateway.endpoints`, is in them.)

use std::sync::Arc;

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::http::{read_head, write_response};
use crate::Gateway;

/// An admin response.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

impl Response {
    fn new(status: u16, content_type: &'static str, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, TEXT, body)
    }
}

const TEXT: &str = "text/plain; charset=utf-8";

pub async fn serve(gateway: Arc<Gateway>, listener: TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let gateway = gateway.clone();
        tokio::spawn(async move { handle(gateway, stream).await });
    }
}

async fn handle(gateway: Arc<Gateway>, mut stream: TcpStream) {
    let head = match tokio::time::timeout(std::time::Duration::from_secs(5), read_head(&mut stream))
        .await
    {
        Ok(Ok((head, _))) => head,
        _ => return,
    };
    let response = if !host_allowed(&head, &gateway.config.admin_hosts) {
        Response::text(
            403,
            "this Host is not the admin listener's (see --admin-host)\n",
        )
    } else if head.method != "GET" {
        Response::text(405, "only GET\n")
    } else {
        route(&gateway, &head.path)
    };
    let _ = write_response(
        &mut stream,
        response.status,
        &response.headers,
        response.content_type,
        response.body.as_bytes(),
    )
    .await;
}

/// Whether the request names this listener: exactly one `Host` that is an IP address, `localhost`
/// or one of `extra` (`--admin-host`), with any port. DNS rebinding needs a host *name* that an
/// attacker controls, so IP literals are always safe; other names must be configured.
pub fn host_allowed(head: &crate::http::RequestHead, extra: &[String]) -> bool {
    let mut hosts = head.all("host");
    let (Some(host), None) = (hosts.next(), hosts.next()) else {
        return false;
    };
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(rest) => match rest.split_once(']') {
            Some((literal, port)) if port.is_empty() || port.starts_with(':') => {
                return literal.parse::<std::net::Ipv6Addr>().is_ok();
            }
            _ => return false,
        },
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.parse::<std::net::Ipv4Addr>().is_ok()
        || name.eq_ignore_ascii_case("localhost")
        || extra.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Answers one admin request.
pub fn route(gateway: &Gateway, path: &str) -> Response {
    match path {
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" => {
            if *gateway.shutting_down.borrow() {
                Response::text(503, "shutting down\n")
            } else if gateway.served.load().is_some() {
                Response::text(200, "ready\n")
            } else {
                Response::text(503, "no plan loaded yet\n")
            }
        }
        "/metrics" => Response::new(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            gateway.metrics.encode(),
        ),
        "/plan" => Response::new(200, "application/json", plan_summary(gateway)),
        "/docs" => {
            let mut r = Response::text(301, "the docs are at /docs/\n");
            r.headers.push(("location", "/docs/".to_string()));
            r
        }
        _ if path.starts_with("/docs/") => docs_page(gateway, &path["/docs/".len()..]),
        _ if path.starts_with("/specs/") => spec(gateway, &path["/specs/".len()..]),
        _ => Response::text(
            404,
            "not found: try /healthz, /readyz, /metrics, /plan or /docs/\n",
        ),
    }
}

fn docs_page(gateway: &Gateway, name: &str) -> Response {
    let Some(served) = gateway.served.load_full() else {
        return Response::text(
            503,
            "the docs are rendered when a plan is loaded; none is yet\n",
        );
    };
    let site = &served.docs;
    if let Some(e) = &site.error {
        return Response::text(500, format!("the docs could not be rendered: {e}\n"));
    }
    let name = if name.is_empty() { "index.html" } else { name };
    match site.pages.get(name) {
        Some(page) => {
            let mut r = Response::new(200, page.content_type(), page.content.clone());
            r.headers.push(("cache-control", "no-cache".to_string()));
            r
        }
        None => Response::text(404, format!("no page `{name}` in the docs: see /docs/\n")),
    }
}

fn spec(gateway: &Gateway, rest: &str) -> Response {
    let Some(served) = gateway.served.load_full() else {
        return Response::text(503, "no plan loaded yet\n");
    };
    let site = &served.docs;
    if let Some(why) = &site.specs_missing {
        return Response::text(404, format!("no specs: {why}\n"));
    }
    let key = rest.strip_suffix(".yaml").unwrap_or("");
    match site.specs.get(key) {
        Some(text) => {
            let mut r = Response::new(200, "application/yaml; charset=utf-8", text.clone());
            r.headers.push(("cache-control", "no-cache".to_string()));
            r
        }
        None => {
            let mut known: Vec<String> = site
                .specs
                .keys()
                .map(|k| format!("/specs/{k}.yaml"))
                .collect();
            known.sort();
            Response::text(
                404,
                format!(
                    "no spec at /specs/{rest}: the served ones are {}\n",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ),
            )
        }
    }
}

fn plan_summary(gateway: &Gateway) -> String {
    let served = gateway.served.load_full();
    let status = gateway.status.lock().expect("status").clone();
    let apis: Vec<_> = served
        .iter()
        .flat_map(|s| s.table.apis())
        .map(|entry| {
            let api = &entry.api;
            json!({
                "title": api.title,
                "version": api.version,
                "context": api.context,
                "defaultContext": api.default_context,
                "lifecycle": api.lifecycle.as_str(),
                "source": api.source.file,
                "routes": api.routes.iter().map(|r| json!({
                    "pattern": r.pattern,
                    "kind": r.kind,
                    "auth": r.auth,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let mut body = serde_json::to_string_pretty(&json!({
        "hash": served.as_ref().map(|s| s.hash().to_string()),
        "apis": apis,
        "connections": gateway.connections.count(),
        "reloads": status.reloads,
        "failedReloads": status.failed_reloads,
        "lastReloadError": status.last_error,
        "lastDiff": status.last_diff,
        "watch": status.watch,
    }))
    .expect("serializable");
    body.push('\n');
    body
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;
    use crate::config::Config;
    use crate::docs_site::public_urls;
    use crate::reload::{self, Source};

    const SPEC: &str = "asyncapi: 3.1.0
info:
  title: Chat API
  version: 1.0.0
  description: Talk in rooms.
x-gateway:
  context: /chat
  endpoints:
    production: ws://secret-backend.internal:8080
channels:
  room:
    address: /rooms/{roomId}
    parameters:
      roomId: {}
    messages:
      said:
        payload:
          type: object
          properties:
            text: {type: string}
operations:
  say:
    action: receive
    channel:
      $ref: '#/channels/room'
";

    fn gateway(args: &[&str]) -> Arc<Gateway> {
        let mut argv = vec!["runtime", "--listen", "0.0.0.0:9099"];
        argv.extend_from_slice(args);
        Gateway::new(Config::parse_from(argv)).expect("gateway")
    }

    fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn serves_the_docs_and_the_specs_of_the_plan() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "chat.yaml", SPEC);
        let specs = dir.path().to_str().unwrap();
        let g = gateway(&[specs]);
        assert_eq!(route(&g, "/docs/").status, 503, "nothing before a plan");
        let source = Source::Specs {
            paths: vec![dir.path().to_path_buf()],
            options: Default::default(),
        };
        let loaded = reload::load(&source, &public_urls(&g.config)).unwrap();
        let plan = loaded.plan.clone();
        reload::apply(&g, loaded);

        let index = route(&g, "/docs/");
        assert_eq!(index.status, 200, "{}", index.body);
        assert_eq!(index.content_type, "text/html; charset=utf-8");
        assert!(index.body.contains(&plan.hash));
        assert!(index.body.contains("href=\"chat-api-1.0.0.html\""));
        let redirect = route(&g, "/docs");
        assert_eq!(redirect.status, 301);
        assert_eq!(redirect.headers, [("location", "/docs/".to_string())]);

        let page = route(&g, "/docs/chat-api-1.0.0.html");
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("Talk in rooms."),
            "the specs' prose is there"
        );
        assert!(page
            .body
            .replace("<wbr>", "")
            .contains("ws://localhost:9099/chat/1.0.0/rooms/{roomId}"));
        assert!(page
            .body
            .replace("&#x2f;", "/")
            .contains("href=\"../specs/chat-api/1.0.0.yaml\""));
        let md = route(&g, "/docs/chat-api-1.0.0.md");
        assert_eq!(md.content_type, "text/markdown; charset=utf-8");
        for r in [&index, &page, &md] {
            assert!(!r.body.contains("secret-backend"), "a backend URL leaked");
        }
        assert_eq!(route(&g, "/docs/nothing.html").status, 404);
        assert_eq!(route(&g, "/docs/../plan").status, 404);

        let spec = route(&g, "/specs/chat-api/1.0.0.yaml");
        assert_eq!(spec.status, 200);
        assert_eq!(spec.body, SPEC);
        let missing = route(&g, "/specs/chat-api/9.9.9.yaml");
        assert_eq!(missing.status, 404);
        assert!(
            missing.body.contains("/specs/chat-api/1.0.0.yaml"),
            "{}",
            missing.body
        );
    }

    #[test]
    fn a_plan_file_gives_docs_but_no_specs() {
        let dir = tempfile::tempdir().unwrap();
        let spec = write(dir.path(), "chat.yaml", SPEC);
        let out = portico_compiler::compile(&[spec], &portico_compiler::Options::default());
        let plan_path = write(dir.path(), "plan.json", &out.plan.unwrap().to_json());
        let g = gateway(&["--plan", plan_path.to_str().unwrap()]);
        let loaded = reload::load(&Source::PlanFile(plan_path), &Default::default()).unwrap();
        reload::apply(&g, loaded);
        let page = route(&g, "/docs/chat-api-1.0.0.md");
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page
            .body
            .contains("`ws://localhost:9099/chat/1.0.0/rooms/{roomId}`"));
        assert!(page.body.contains("### Message `said`"));
        let spec = route(&g, "/specs/chat-api/1.0.0.yaml");
        assert_eq!(spec.status, 404);
        assert!(spec.body.contains("--plan"), "{}", spec.body);
    }

    #[tokio::test]
    async fn a_reload_renders_the_docs_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "chat.yaml", SPEC);
        let g = gateway(&[dir.path().to_str().unwrap()]);
        let source = Source::Specs {
            paths: vec![dir.path().to_path_buf()],
            options: Default::default(),
        };
        reload::reload(&g, &source).await;
        assert!(route(&g, "/docs/chat-api-1.0.0.html")
            .body
            .contains("Talk in rooms."));
        std::fs::write(&path, SPEC.replace("Talk in rooms.", "Chat in rooms.")).unwrap();
        reload::reload(&g, &source).await;
        let page = route(&g, "/docs/chat-api-1.0.0.html");
        assert!(page.body.contains("Chat in rooms."));
        assert!(page.body.contains(g.served.load().as_ref().unwrap().hash()));
        assert_eq!(
            route(&g, "/specs/chat-api/1.0.0.yaml").body,
            SPEC.replace("Talk in rooms.", "Chat in rooms.")
        );
        // A broken spec keeps the docs of the plan being served.
        std::fs::write(&path, "asyncapi: 3.1.0\ninfo: {}\n").unwrap();
        reload::reload(&g, &source).await;
        // `/plan` reports why, as located diagnostics (not box-drawn text).
        let plan: serde_json::Value = serde_json::from_str(&route(&g, "/plan").body).unwrap();
        let first = &plan["lastReloadError"][0];
        assert!(first["code"].is_string(), "{plan}");
        assert!(first["line"].as_u64().is_some_and(|l| l >= 1), "{plan}");
        assert!(
            first["file"].as_str().unwrap().ends_with("chat.yaml"),
            "{plan}"
        );
        assert!(!plan.to_string().contains('╭'), "{plan}");
        assert!(route(&g, "/docs/chat-api-1.0.0.html")
            .body
            .contains("Chat in rooms."));
    }

    #[test]
    fn only_ip_literals_localhost_and_configured_names_reach_the_admin_listener() {
        let head = |hosts: &[&str]| {
            let mut raw = String::from("GET /plan HTTP/1.1\r\n");
            for h in hosts {
                raw.push_str(&format!("Host: {h}\r\n"));
            }
            raw.push_str("\r\n");
            crate::http::parse_request_head(raw.as_bytes())
                .unwrap()
                .unwrap()
                .0
        };
        let extra = vec!["gw.internal".to_string()];
        for ok in [
            "127.0.0.1:9090",
            "127.0.0.1",
            "[::1]:9090",
            "localhost:9090",
            "LOCALHOST",
            "gw.internal:9090",
        ] {
            assert!(host_allowed(&head(&[ok]), &extra), "{ok}");
        }
        for bad in [
            "evil.example:9090",
            "evil.example",
            "127.0.0.1.evil.example",
            "[::1",
            "[evil]:1",
            "",
        ] {
            assert!(!host_allowed(&head(&[bad]), &extra), "{bad}");
        }
        assert!(!host_allowed(&head(&[]), &extra), "no Host");
        assert!(
            !host_allowed(&head(&["localhost", "localhost"]), &extra),
            "two"
        );
        assert!(
            !host_allowed(&head(&["gw.internal"]), &[]),
            "not configured"
        );
    }

    #[test]
    fn the_public_url_follows_the_listen_address() {
        let g = gateway(&["x"]);
        assert_eq!(public_urls(&g.config).ws(), Some("ws://localhost:9099"));
        let g = Gateway::new(Config::parse_from([
            "runtime",
            "--listen",
            "10.0.0.5:80",
            "x",
        ]))
        .unwrap();
        assert_eq!(public_urls(&g.config).ws(), Some("ws://10.0.0.5:80"));
    }
}
