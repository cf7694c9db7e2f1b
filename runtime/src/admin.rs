//! The admin listener (default `127.0.0.1:9090`): `/healthz`, `/readyz`, `/metrics`, `/plan`.
//!
//! It shows no secrets: the plan summary lists APIs and routes, never backend URLs.

use std::sync::Arc;

use serde_json::json;
use tokio::net::{TcpListener, TcpStream};

use crate::http::{read_head, write_response};
use crate::Gateway;

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
    let (status, content_type, body) = if head.method != "GET" {
        (405, "text/plain; charset=utf-8", "only GET\n".to_string())
    } else {
        route(&gateway, &head.path)
    };
    let _ = write_response(&mut stream, status, &[], content_type, body.as_bytes()).await;
}

fn route(gateway: &Gateway, path: &str) -> (u16, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    match path {
        "/healthz" => (200, TEXT, "ok\n".into()),
        "/readyz" => {
            if *gateway.shutting_down.borrow() {
                (503, TEXT, "shutting down\n".into())
            } else if gateway.table.load().is_some() {
                (200, TEXT, "ready\n".into())
            } else {
                (503, TEXT, "no plan loaded yet\n".into())
            }
        }
        "/metrics" => (
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            gateway.metrics.encode(),
        ),
        "/plan" => (200, "application/json", plan_summary(gateway)),
        _ => (
            404,
            TEXT,
            "not found: try /healthz, /readyz, /metrics or /plan\n".into(),
        ),
    }
}

fn plan_summary(gateway: &Gateway) -> String {
    let table = gateway.table.load_full();
    let status = gateway.status.lock().expect("status").clone();
    let apis: Vec<_> = table
        .iter()
        .flat_map(|t| t.apis())
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
        "hash": table.as_ref().map(|t| t.plan_hash.clone()),
        "apis": apis,
        "connections": gateway.connections.count(),
        "reloads": status.reloads,
        "failedReloads": status.failed_reloads,
        "lastReloadError": status.last_error,
    }))
    .expect("serializable");
    body.push('\n');
    body
}
