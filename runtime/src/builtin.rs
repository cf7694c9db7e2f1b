//! Backends the runtime serves itself, so a spec can be tried before its backend exists.
//!
//! * `echo:` sends every message back as it came (text as text, binary as binary), and answers a
//!   close with the same code and reason.
//! * `mock:` plays the API's server-to-client messages for the route: the spec's examples, or a
//!   value generated from the payload schema when a message has none. It sends one message right
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

/// The payloads the mock plays, in order.
pub fn mock_payloads(route: &Route) -> Vec<Value> {
    let mut out = Vec::new();
    for message in &route.messages.server_to_client {
        if message.examples.is_empty() {
            let generated = message
                .schema
                .as_ref()
                .map(|s| example_from_schema(s, 0))
                .unwrap_or_else(|| json!({"message": message.name}));
            out.push(generated);
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

/// A plausible value for a JSON Schema: the first example, default, const or enum value; else one
/// built from the type (objects get their properties, arrays one item). The same generator as
/// the docs' examples ([`portico_compiler::examples`]).
pub fn example_from_schema(schema: &Value, depth: usize) -> Value {
    portico_compiler::examples::from_schema_at_depth(schema, depth)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_examples_follow_the_schema() {
        let schema = json!({
            "type": "object",
            "properties": {
                "user": {"type": "string"},
                "n": {"type": "integer", "minimum": 3},
                "kind": {"enum": ["a", "b"]},
                "tags": {"type": "array", "items": {"type": "string", "format": "email"}},
                "at": {"type": "string", "format": "date-time"}
            }
        });
        assert_eq!(
            example_from_schema(&schema, 0),
            json!({"user": "string", "n": 3, "kind": "a", "tags": ["user@example.com"], "at": "2024-01-01T00:00:00Z"})
        );
    }
}
