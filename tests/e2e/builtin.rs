//! The built-in backends: `mock:` plays the spec's server-to-client examples (or values generated
//! from the schema), `echo:` echoes.

use crate::harness::*;
use tokio_tungstenite::tungstenite::Message;

const MOCK_SPEC: &str = r#"asyncapi: 3.0.0
info: {title: Ticker, version: '1', description: Prices.}
x-gateway: {context: /ticker, endpoints: {production: 'mock:'}}
channels:
  prices:
    address: /prices
    x-auth-type: None
    messages:
      price:
        payload:
          type: object
          properties:
            symbol: {type: string}
            value: {type: number}
        examples:
          - payload: {symbol: ACME, value: 12.5}
      halt:
        payload:
          type: object
          required: [reason]
          properties:
            reason: {type: string, enum: [volatility, news]}
operations:
  sendPrices:
    action: send
    channel: {$ref: '#/channels/prices'}
"#;

fn text_of(m: Message) -> serde_json::Value {
    match m {
        Message::Text(t) => serde_json::from_str(t.as_str()).expect("mock sends JSON"),
        other => panic!("expected text, got {other:?}"),
    }
}

#[tokio::test]
async fn mock_plays_examples_then_generated_values_in_turn() {
    let g = Gateway::builder()
        .spec("ticker.yaml", MOCK_SPEC)
        .start()
        .await;
    let mut client = connect(&g.url("/ticker/1/prices")).await;
    // One message as soon as the connection opens: the first example.
    let first = text_of(recv_data(&mut client).await);
    assert_eq!(first, serde_json::json!({"symbol": "ACME", "value": 12.5}));
    // A client message is answered with the next payload: generated from `halt`'s schema.
    futures_util::SinkExt::send(&mut client, Message::text("next please"))
        .await
        .unwrap();
    let second = text_of(recv_data(&mut client).await);
    assert_eq!(second, serde_json::json!({"reason": "volatility"}));
    // And round again.
    let third = text_of(recv_data(&mut client).await);
    assert_eq!(third, first);
}
