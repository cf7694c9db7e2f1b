// The checks of the `handshake` fuzz target, shared with the regression test that replays the
// seeds and findings (`upgrade.rs`). Included with `include!`: the includer brings `http` (the
// `http` crate) into scope.

use std::net::SocketAddr;
use std::sync::OnceLock;

use portico_runtime::forwarding::backend_headers;
use portico_runtime::http::{parse_request_head, HeadError};
use portico_runtime::routes::{backend_url, canonical_name, Lookup, RouteTable};
use portico_runtime::upgrade::{check_upgrade_request, client_key};

/// Runs one input through the head parser and the handshake decision, asserting the invariants.
pub fn check_handshake(data: &[u8]) {
    let head = match parse_request_head(data) {
        Ok(Some((head, len))) => {
            assert!(len <= data.len());
            head
        }
        Ok(None) | Err(HeadError::Malformed(_)) => return,
        Err(HeadError::Io) => panic!("the parser does no I/O"),
    };
    if let Err(refusal) = check_upgrade_request(&head) {
        assert!(
            matches!(refusal.status, 400 | 426),
            "unexpected status {}",
            refusal.status
        );
        assert!(!refusal.text.is_empty());
        return;
    }
    assert_eq!(client_key(&head).len(), 24);
    assert_eq!(head.all("host").count(), 1);

    let peers: [SocketAddr; 2] = ["10.1.2.3:4000".parse().unwrap(), "[2001:db8::7]:1".parse().unwrap()];
    for peer in peers {
        for (name, value) in backend_headers(&head, peer, &["x-request-id".to_string()], false) {
            assert!(http::HeaderName::from_bytes(name.as_bytes()).is_ok(), "{name}");
            if matches!(name.as_str(), "x-forwarded-for" | "forwarded") {
                assert!(
                    http::HeaderValue::from_str(&value).is_ok(),
                    "{name}: {value:?}"
                );
            }
        }
    }

    let Lookup::Found(m) = table().lookup(&head.path) else {
        return;
    };
    let url = backend_url(&m.api.api.endpoints.production, &m, head.query.as_deref());
    let uri: http::Uri = url.parse().unwrap_or_else(|e| panic!("{url:?}: {e}"));
    let path = uri.path();
    assert!(path.starts_with("/base"), "{url}");
    assert!(!path.contains("//"), "{url}");
    if let Some(query) = uri.query() {
        for pair in query.split(['&', ';']) {
            let name = canonical_name(pair);
            assert!(name != "access_token" && name != "apikey", "{url}");
        }
        // The mapping's own parameter appears once.
        if m.route.topic == "/rooms/{id}" {
            let rooms = query.split(['&', ';']).filter(|p| canonical_name(p) == "room").count();
            assert_eq!(rooms, 1, "{url}");
        }
    }
}

/// One API with a mapped template, a literal and a `/*` topic.
fn table() -> &'static RouteTable {
    use portico_compiler::plan::*;
    static TABLE: OnceLock<RouteTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let context = "/chat/1";
        let route = |topic: &str, backend: &str| {
            let pattern = format!("{context}{topic}");
            Route {
                kind: route_kind(&pattern),
                pattern,
                topic: topic.into(),
                backend_path: backend.into(),
                parameters: vec![],
                channels: vec![],
                messages: RouteMessages::default(),
                scopes: vec![],
                auth: RouteAuth::None,
                security: Default::default(),
                handshake: None,
                throttling: None,
                validation: None,
            }
        };
        let mut routes = vec![
            route("/rooms/{id}", "/rooms?room={id}"),
            route("/plain", "/plain"),
            route("/*", "/{*}"),
        ];
        routes.sort_by(route_order);
        RouteTable::new(&Plan::new(vec![PlanApi {
            name: "chat".into(),
            title: "Chat".into(),
            version: "1".into(),
            context: context.into(),
            context_template: context.into(),
            default_context: None,
            lifecycle: Lifecycle::Published,
            endpoints: Endpoints {
                production: "ws://backend:9000/base".into(),
                sandbox: None,
            },
            limits: Default::default(),
            source: SourceRef {
                file: "chat.yaml".into(),
                sha256: "0".into(),
            },
            origins: vec![],
            throttling: None,
            routes,
        }]))
    })
}
