//! Per-message cost of the traffic policies, and the handshake's credential stage with an RS256
//! JWT and a scope check against an open route: prints figures, asserts nothing about speed.
//!
//! `cargo bench -p portico-runtime --bench policy` (the RS256 part generates its key pair with the
//! `openssl` command, and is skipped without it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;

use portico_compiler::plan::{
    ApiThrottling, Bucket, Endpoints, Lifecycle, MessageDirection, OperationScopes, PlanApi,
    PlanMessage, Rate, Route, RouteAuth, RouteKind, RouteMessages, RouteSecurity, RouteValidation,
    SourceRef, ValidationPolicy,
};
use portico_runtime::http::RequestHead;
use portico_runtime::policy::auth::{authenticate, Verifiers};
use portico_runtime::policy::message::{ApiTraffic, Direction, Verdict};
use portico_runtime::policy::throttle::ThrottlingConfig;
use portico_runtime::settings::AuthSettings;
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

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid timespec for the call to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut t) };
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// An RSA key pair from the `openssl` command: its private PEM and its public JWK (`kid: bench`).
fn rsa_key(dir: &std::path::Path) -> Option<(Vec<u8>, serde_json::Value)> {
    let pem = dir.join("bench-rsa.pem");
    let made = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(&pem)
        .stderr(std::process::Stdio::null())
        .status()
        .ok()?;
    if !made.success() {
        return None;
    }
    let modulus = std::process::Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&pem)
        .output()
        .ok()?;
    let hex = String::from_utf8(modulus.stdout).ok()?;
    let hex = hex.trim().strip_prefix("Modulus=")?;
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .ok()?;
    let n = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwk =
        json!({"kty": "RSA", "kid": "bench", "alg": "RS256", "use": "sig", "n": n, "e": "AQAB"});
    Some((std::fs::read(&pem).ok()?, jwk))
}

/// The same route, open or requiring a credential with per-direction scopes.
fn handshake_route(secured: bool) -> (PlanApi, Route) {
    let mut api = api(None, None);
    let mut route = api.routes.remove(0);
    if secured {
        route.auth = RouteAuth::Required;
        route.security = RouteSecurity {
            schemes: vec![],
            operations: vec![
                OperationScopes {
                    direction: MessageDirection::ClientToServer,
                    scopes: vec!["chat:write".into()],
                },
                OperationScopes {
                    direction: MessageDirection::ServerToClient,
                    scopes: vec!["chat:read".into()],
                },
            ],
        };
    }
    (api, route)
}

/// The handshake's credential stage (take the credentials out of the request, verify, check the
/// scopes), for an open route and for one requiring an RS256 JWT with scopes.
fn measure_credential_stage(rounds: u32) {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let Some((pem, jwk)) = rsa_key(dir.path()) else {
        println!("credential stage: skipped (no `openssl` command to make an RSA key)");
        return;
    };
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [jwk]}).to_string()).expect("write the JWKS");
    let auth: AuthSettings = toml::from_str(&format!(
        "[jwt]\n[[jwt.issuers]]\nissuer = \"https://idp.bench\"\naudiences = [\"chat\"]\nalgorithms = [\"RS256\"]\njwks_file = \"{}\"\n",
        jwks.display()
    ))
    .expect("settings");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let tls = portico_runtime::backend::tls_config(None).expect("tls");
    let verifiers = runtime
        .block_on(Verifiers::from_settings(&auth, tls))
        .expect("verifiers");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.kid = Some("bench".into());
    let token = jsonwebtoken::encode(
        &header,
        &json!({"iss": "https://idp.bench", "aud": "chat", "sub": "alice", "exp": exp,
                "scope": "chat:read chat:write"}),
        &jsonwebtoken::EncodingKey::from_rsa_pem(&pem).expect("the RSA key"),
    )
    .expect("a token");
    let head = RequestHead {
        method: "GET".into(),
        version: 1,
        path: "/b/1/t".into(),
        query: Some("room=general".into()),
        headers: vec![
            ("host".into(), "gateway.example:9099".into()),
            ("upgrade".into(), "websocket".into()),
            ("connection".into(), "Upgrade".into()),
            (
                "sec-websocket-key".into(),
                "dGhlIHNhbXBsZSBub25jZQ==".into(),
            ),
            ("sec-websocket-version".into(), "13".into()),
            ("authorization".into(), format!("Bearer {token}")),
        ],
    };
    let mut per_handshake = Vec::new();
    for (name, secured) in [
        ("credential stage: open route", false),
        ("credential stage: RS256 JWT + scope check", true),
    ] {
        let (api, route) = handshake_route(secured);
        runtime.block_on(async {
            for _ in 0..rounds / 10 {
                let mut h = head.clone();
                std::hint::black_box(authenticate(&verifiers, &api, &route, &mut h).await)
                    .expect("admitted");
            }
            let (wall, cpu) = (Instant::now(), thread_cpu());
            for _ in 0..rounds {
                let mut h = head.clone();
                let grant = authenticate(&verifiers, &api, &route, &mut h)
                    .await
                    .expect("admitted");
                assert_eq!(grant.is_anonymous(), !secured);
            }
            let (wall, cpu) = (wall.elapsed() / rounds, (thread_cpu() - cpu) / rounds);
            println!(
                "{name:<48} {cpu:>10.2?} CPU per handshake ({wall:.2?} wall, {rounds} handshakes)"
            );
            per_handshake.push(cpu);
        });
    }
    println!(
        "{:<48} {:>10.2?} CPU per handshake",
        "  extra for RS256 + scopes",
        per_handshake[1].saturating_sub(per_handshake[0])
    );
}

fn main() {
    measure_credential_stage(5_000);
    println!();
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
