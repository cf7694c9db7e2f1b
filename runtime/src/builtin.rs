//! Backends the runtime serves itself, so a spec can be tried before its backend exists.
//!
//! * `echo:` sends every message back as it came (text as text, binary as binary), and answers a
//!   close with the same code and reason.
//! * `mock:` plays the API's server-to-client messages for the route: the spec's examples, or the
//!   value the compiler generated from the payload schema when a message has none (both are in the
//!   plan, so the mock needs nothing else). It sends one message right
//!   after the connection opens, one per second after that, and one in reply to each client message.
//!
//! Both run over an in-memory pipe with no HTTP handshake, so they cost no socket and no port.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use portico_compiler::plan::Route;
use serde_json::{json, Value};
use tokio::io::DuplexStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Echo,
    Mock,
}

impl Kind {
    pub fn from_url(url: &str) -> Option<Kind> {
        if url.starts_with("echo:") {
            Some(Kind::Echo)
        } else if url.starts_with("mock:") {
            Some(Kind::Mock)
        } else {
            None
        }
    }
}

pub async fn serve(kind: Kind, socket: WebSocketStream<DuplexStream>, route: Route) {
    match kind {
        Kind::Echo => echo(socket).await,
        Kind::Mock => mock(socket, &route).await,
    }
}

async fn echo(mut socket: WebSocketStream<DuplexStream>) {
    while let Some(Ok(message)) = socket.next().await {
        // Pings are answered by the protocol layer, and so is a close.
        if matches!(message, Message::Text(_) | Message::Binary(_))
            && socket.send(message).await.is_err()
        {
            return;
        }
    }
}

/// The payloads the mock plays, in order: each server-to-client message's examples, else the
/// example the compiler generated from its schema (both are in the plan).
pub fn mock_payloads(route: &Route) -> Vec<Value> {
    let mut out = Vec::new();
    for message in &route.messages.server_to_client {
        if message.examples.is_empty() {
            out.push(
                message
                    .generated_example
                    .clone()
                    .unwrap_or_else(|| json!({"message": message.name})),
            );
        } else {
            out.extend(message.examples.iter().cloned());
        }
    }
    if out.is_empty() {
        out.push(json!({"mock": "this route has no server-to-client messages"}));
    }
    out
}

async fn mock(mut socket: WebSocketStream<DuplexStream>, route: &Route) {
    let payloads = mock_payloads(route);
    let mut next = 0usize;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        let send_now = tokio::select! {
            _ = tick.tick() => true,
            incoming = socket.next() => match incoming {
                Some(Ok(Message::Text(_) | Message::Binary(_))) => true,
                Some(Ok(_)) => false,
                _ => return,
            },
        };
        if send_now {
            let text = payloads[next % payloads.len()].to_string();
            next += 1;
            if socket.send(Message::text(text)).await.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_compiler::plan::{PlanMessage, RouteMessages};

    fn route(server_to_client: Vec<PlanMessage>) -> Route {
        let mut route: Route = serde_json::from_value(json!({
            "kind": "literal", "pattern": "/t/1/x", "topic": "/x", "backendPath": "/x",
            "channels": ["x"], "messages": {}, "auth": "none"
        }))
        .expect("a route");
        route.messages = RouteMessages {
            client_to_server: Vec::new(),
            server_to_client,
        };
        route
    }

    #[test]
    fn the_mock_plays_examples_then_generated_values_from_the_plan() {
        let with_examples = PlanMessage::new(
            "price".into(),
            Some(json!({"type": "number"})),
            vec![json!(1), json!(2)],
        );
        let generated = PlanMessage::new(
            "halt".into(),
            Some(json!({"type": "object", "properties": {"reason": {"enum": ["news"]}}})),
            Vec::new(),
        );
        let neither = PlanMessage::new("raw".into(), None, Vec::new());
        assert_eq!(
            mock_payloads(&route(vec![with_examples, generated, neither])),
            [
                json!(1),
                json!(2),
                json!({"reason": "news"}),
                json!({"message": "raw"})
            ]
        );
        assert_eq!(
            mock_payloads(&route(Vec::new())),
            [json!({"mock": "this route has no server-to-client messages"})]
        );
    }
}
