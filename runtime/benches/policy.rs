//! Per-message cost of the traffic policies: prints figures, asserts nothing about speed.
//!
//! `cargo bench -p portico-runtime --bench policy`

use std::sync::Arc;
use std::time::Instant;

use portico_compiler::plan::{
    ApiThrottling, Bucket, Endpoints, Lifecycle, PlanApi, PlanMessage, Rate, Route, RouteAuth,
    RouteKind, RouteMessages, RouteValidation, SourceRef, ValidationPolicy,
};
use portico_runtime::http::RequestHead;
use portico_runtime::policy::message::{ApiTraffic, Direction, Verdict};
use portico_runtime::policy::throttle::ThrottlingConfig;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn api(throttling: Option<ApiThrottling>, validation: Option<RouteValidation>) -> PlanApi {
    let schema = json!({
        "type": "object",
        "properties": {
            "room": {"type": "string", "maxLength": 64},
            "text": {"type": "string", "maxLength": 1000},
            "sentAt": {"type": "integer", "minimum": 0}
        },
        "required": ["room", "text"]
    });
    PlanApi {
        name: "bench".into(),
        title: "Bench".into(),
        version: "1".into(),
        context: "/b/1".into(),
        context_template: "/b".into(),
        default_context: None,
        lifecycle: Lifecycle::Published,
        endpoints: Endpoints {
            production: "echo:".into(),
            sandbox: None,
        },
        limits: Default::default(),
        origins: vec![],
        throttling,
        source: SourceRef {
            file: "b.yaml".into(),
            sha256: "x".into(),
        },
        routes: vec![Route {
            topic: "/t".into(),
            pattern: "/b/1/t".into(),
            kind: RouteKind::Literal,
            backend_path: "/t".into(),
            parameters: vec![],
            channels: vec!["t".into()],
            messages: RouteMessages {
                client_to_server: vec![PlanMessage {
                    name: "chat".into(),
                    schema: Some(schema),
                    examples: vec![],
                    generated_example: None,
                }],
                server_to_client: vec![],
            },
            scopes: vec![],
            auth: RouteAuth::None,
            handshake: None,
            throttling: None,
            validation,
            security: Default::default(),
        }],
    }
}

fn measure(name: &str, api: PlanApi, message: &Message, rounds: u32) {
    let traffic = Arc::new(
        ApiTraffic::compile(&api, &ThrottlingConfig::default(), Arc::default()).expect("compiles"),
    );
    let head = RequestHead {
        method: "GET".into(),
        version: 1,
        path: "/b/1/t".into(),
        query: None,
        headers: vec![],
    };
    let gate = traffic
        .admit("/b/1/t", &head, Arc::from("client-1"))
        .expect("admitted")
        .gate
        .expect("a gate");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        for _ in 0..rounds / 10 {
            std::hint::black_box(gate.inspect(Direction::ClientToServer, message).await);
        }
        let start = Instant::now();
        let mut forwarded = 0u32;
        for _ in 0..rounds {
            if gate.inspect(Direction::ClientToServer, message).await == Verdict::Forward {
                forwarded += 1;
            }
        }
        let per = start.elapsed() / rounds;
        println!("{name:<48} {per:>10.2?} per message ({forwarded}/{rounds} forwarded)");
    });
}

fn main() {
    let message = Message::text(r#"{"room":"general","text":"hello, world","sentAt":1733000000}"#);
    let rounds = 200_000;
    println!("portico traffic policies, one connection, {rounds} messages each\n");
    let huge = Bucket {
        messages: Some(Rate {
            limit: 1_000_000_000,
            period_seconds: 1,
        }),
        ..Bucket::default()
    };
    measure(
        "throttle: per-client message bucket",
        api(
            Some(ApiThrottling {
                client: Some(huge.clone()),
                ..ApiThrottling::default()
            }),
            None,
        ),
        &message,
        rounds,
    );
    measure(
        "throttle: API + per-client, messages + bytes",
        api(
            Some(ApiThrottling {
                api: Some(Bucket {
                    bytes: huge.messages,
                    ..huge.clone()
                }),
                client: Some(Bucket {
                    bytes: huge.messages,
                    ..huge.clone()
                }),
                ..ApiThrottling::default()
            }),
            None,
        ),
        &message,
        rounds,
    );
    let enforce = RouteValidation {
        client_to_server: ValidationPolicy::Enforce,
        server_to_client: ValidationPolicy::Enforce,
        strict: false,
    };
    measure(
        "validate: small JSON payload (valid)",
        api(None, Some(enforce)),
        &message,
        rounds,
    );
    measure(
        "validate: small JSON payload (invalid)",
        api(None, Some(enforce)),
        &Message::text(r#"{"room":"general","text":5}"#),
        rounds,
    );
    measure(
        "throttle + validate",
        api(
            Some(ApiThrottling {
                client: Some(huge),
                ..ApiThrottling::default()
            }),
            Some(enforce),
        ),
        &message,
        rounds,
    );
}
