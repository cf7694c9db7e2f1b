//! The authentication stage of the handshake, and the fail-closed check of a plan's APIs.
//!
//! [`authenticate`] takes every credential out of the request (the backend never sees one),
//! picks the first one the route accepts in WSO2's order, verifies it and checks it is not
//! revoked, holds the scopes of one of the route's operations and suits the API's endpoints.
//! Missing or invalid credentials are 401 with `WWW-Authenticate`; a valid credential that is not
//! enough is 403. [`unverifiable`] says why an API cannot be served with the verifiers at hand.

use std::sync::Arc;

use portico_compiler::plan::{Lifecycle, PlanApi, Route, RouteAuth, SchemeKind};

use crate::http::RequestHead;
use crate::policy::apikeys::ApiKeys;
use crate::policy::credential::{self, unauthorized, ApiKeyNames, Kind, Place};
use crate::policy::denylist::Denylist;
use crate::policy::grant::{Grant, KeyType};
use crate::policy::jwt::JwtVerifier;
use crate::policy::watched::Watched;
use crate::refusal::Refusal;
use crate::settings::AuthSettings;

/// Largest credential accepted when no JWT settings say otherwise.
const DEFAULT_MAX_CREDENTIAL_BYTES: usize = 8 * 1024;

/// The verifiers the runtime configuration sets up.
#[derive(Default)]
pub struct Verifiers {
    pub jwt: Option<JwtVerifier>,
    pub api_keys: Option<Arc<Watched<ApiKeys>>>,
    pub denylist: Option<Arc<Watched<Denylist>>>,
    /// `--allow-unauthenticated`: serve routes whose credential cannot be checked.
    pub allow_unauthenticated: bool,
}

impl Verifiers {
    pub async fn from_settings(
        auth: &AuthSettings,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Verifiers, String> {
        let jwt = match &auth.jwt {
            Some(s) => Some(
                JwtVerifier::new(s, tls)
                    .await
                    .map_err(|e| format!("auth.jwt: {e}"))?,
            ),
            None => None,
        };
        let api_keys = match &auth.api_keys {
            Some(s) => Some(
                Watched::open(&s.file, ApiKeys::parse)
                    .map_err(|e| format!("auth.api_keys: {e}"))?,
            ),
            None => None,
        };
        let denylist = match &auth.denylist {
            Some(s) => Some(
                Watched::open(&s.file, Denylist::parse)
                    .map_err(|e| format!("auth.denylist: {e}"))?,
            ),
            None => None,
        };
        Ok(Verifiers {
            jwt,
            api_keys,
            denylist,
            allow_unauthenticated: auth.allow_unauthenticated,
        })
    }

    /// The leeway granted on `exp` and `nbf`: a live connection is closed at `exp` plus this.
    pub fn skew_seconds(&self) -> u64 {
        self.jwt.as_ref().map(|j| j.skew_seconds).unwrap_or(0)
    }

    fn max_bytes(&self) -> usize {
        self.jwt
            .as_ref()
            .map(|j| j.max_token_bytes)
            .unwrap_or(DEFAULT_MAX_CREDENTIAL_BYTES)
    }

    /// Whether a grant was revoked since it was issued (key gone from the file, `jti`/`sub`
    /// denied). Anonymous grants never are.
    pub fn revoked(&self, grant: &Grant, api: &str) -> bool {
        if let Some(deny) = &self.denylist {
            if deny.get().denies(grant) {
                return true;
            }
        }
        match (&grant.key_name, &self.api_keys) {
            (Some(name), Some(keys)) => !keys.get().still_grants(name, api),
            (Some(_), None) => true,
            (None, _) => false,
        }
    }
}

/// Whether a route needs a credential checked (PROTOTYPED APIs and `x-auth-type: None` are open).
pub fn requires_credential(api: &PlanApi, route: &Route) -> bool {
    route.auth == RouteAuth::Required && api.lifecycle != Lifecycle::Prototyped
}

/// The places a route accepts credentials in; `None` means every place.
fn accepted_places(route: &Route) -> (Vec<Place>, ApiKeyNames) {
    let jwt_places = [
        Place::AuthorizationHeader,
        Place::AccessTokenQuery,
        Place::Subprotocol,
    ];
    let default_key_places = [
        Place::ApiKeyHeader("apikey".into()),
        Place::ApiKeyQuery("apikey".into()),
    ];
    let mut names = ApiKeyNames::default();
    let mut places = Vec::new();
    if route.security.schemes.is_empty() {
        places.extend(jwt_places.iter().cloned());
        places.extend(default_key_places.iter().cloned());
    }
    for scheme in &route.security.schemes {
        match &scheme.kind {
            SchemeKind::Bearer | SchemeKind::Oauth2 | SchemeKind::OpenIdConnect => {
                places.extend(jwt_places.iter().cloned())
            }
            SchemeKind::ApiKey {
                location,
                name: Some(name),
            } if location == "header" => {
                names.headers.push(name.clone());
                places.push(Place::ApiKeyHeader(name.to_ascii_lowercase()));
            }
            SchemeKind::ApiKey {
                location,
                name: Some(name),
            } if location == "query" => {
                names.queries.push(name.clone());
                places.push(Place::ApiKeyQuery(name.clone()));
            }
            SchemeKind::ApiKey { .. } => places.extend(default_key_places.iter().cloned()),
            SchemeKind::Unsupported { .. } => {}
        }
    }
    (places, names)
}

/// The authentication stage: strips every credential from `head` and returns what the accepted
/// one grants, or the refusal.
pub async fn authenticate(
    verifiers: &Verifiers,
    api: &PlanApi,
    route: &Route,
    head: &mut RequestHead,
) -> Result<Grant, Refusal> {
    let (places, names) = accepted_places(route);
    let presented = credential::take_credentials(head, &names, verifiers.max_bytes())?;
    if !requires_credential(api, route) {
        return Ok(Grant::anonymous());
    }
    if verifiers.allow_unauthenticated && !verifiable(route, verifiers) {
        // The operator chose to serve what cannot be checked (logged at every start).
        return Ok(Grant::anonymous());
    }
    if presented.is_empty() {
        return Err(unauthorized("a credential is required for this route"));
    }
    let Some(chosen) = presented.iter().find(|p| places.contains(&p.place)) else {
        return Err(unauthorized(format!(
            "this route does not accept a credential in {}",
            presented[0].place.describe()
        )));
    };
    let mut grant = match chosen.place.kind() {
        Kind::Jwt => match &verifiers.jwt {
            Some(jwt) => jwt.verify(&chosen.secret).await.map_err(unauthorized)?,
            None => return Err(unauthorized("this gateway does not accept JWTs")),
        },
        Kind::ApiKey => match &verifiers.api_keys {
            Some(keys) => keys
                .get()
                .verify(&chosen.secret, &api.name)
                .map_err(unauthorized)?,
            None => return Err(unauthorized("this gateway does not accept API keys")),
        },
    };
    if verifiers.revoked(&grant, &api.name) {
        return Err(unauthorized("the credential has been revoked"));
    }
    if !grant.may_connect(&route.security) {
        let needed: Vec<String> = route
            .security
            .operations
            .iter()
            .map(|op| format!("[{}]", op.scopes.join(" ")))
            .collect();
        return Err(Refusal::new(
            403,
            format!(
                "the credential lacks the scopes this route needs (one of {})",
                needed.join(", ")
            ),
        ));
    }
    if grant.key_type == KeyType::Sandbox && api.endpoints.sandbox.is_none() {
        return Err(Refusal::new(
            403,
            "sandbox credentials are refused: this API has no sandbox endpoint",
        ));
    }
    if let Some((name, value)) = grant.forwarded_header.take() {
        head.headers.push((name.clone(), value.clone()));
        grant.forwarded_header = Some((name, value));
    }
    Ok(grant)
}

/// Whether some configured verifier can check a credential this route accepts.
fn verifiable(route: &Route, verifiers: &Verifiers) -> bool {
    let jwt = verifiers.jwt.is_some();
    let keys = verifiers.api_keys.is_some();
    let schemes = &route.security.schemes;
    if schemes.is_empty() {
        return jwt || keys;
    }
    schemes.iter().any(|s| match s.kind {
        SchemeKind::Bearer | SchemeKind::Oauth2 | SchemeKind::OpenIdConnect => jwt,
        SchemeKind::ApiKey { .. } => keys,
        SchemeKind::Unsupported { .. } => false,
    })
}

/// Why `api` cannot be served with these verifiers (fail closed), or `None` when it can.
pub fn unverifiable(api: &PlanApi, verifiers: &Verifiers) -> Option<String> {
    if verifiers.allow_unauthenticated || api.lifecycle == Lifecycle::Prototyped {
        return None;
    }
    for route in api.routes.iter().filter(|r| r.auth == RouteAuth::Required) {
        if verifiable(route, verifiers) {
            continue;
        }
        let schemes = &route.security.schemes;
        let wanted = if schemes.is_empty() {
            "a credential".to_string()
        } else {
            schemes
                .iter()
                .map(|s| match &s.kind {
                    SchemeKind::ApiKey { .. } => {
                        format!("`{}` (an API key: set auth.api_keys.file)", s.name)
                    }
                    SchemeKind::Unsupported { declared } => {
                        format!("`{}` ({declared}, which the gateway cannot check)", s.name)
                    }
                    _ => format!("`{}` (a JWT: set auth.jwt.issuers)", s.name),
                })
                .collect::<Vec<_>>()
                .join(" or ")
        };
        return Some(format!(
            "the API `{}` is not served: its route `{}` requires {wanted} and no matching verifier is configured; configure one in --config (auth.jwt or auth.api_keys), mark the topic `x-auth-type: None`, or start with --allow-unauthenticated",
            api.name, route.pattern
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::jwt::tests::{claims, es256_key, settings, sign, tls, TestKey};
    use portico_compiler::plan::{
        Endpoints, MessageDirection, OperationScopes, RouteKind, RouteMessages, RouteSecurity,
        SecurityRequirement, SourceRef,
    };
    use serde_json::json;

    const KEY: &str = "k3y-for-tests-only";

    fn route(auth: RouteAuth, schemes: Vec<SecurityRequirement>) -> Route {
        Route {
            topic: "/rooms".into(),
            pattern: "/chat/1.0.0/rooms".into(),
            kind: RouteKind::Literal,
            backend_path: "/rooms".into(),
            parameters: vec![],
            channels: vec!["rooms".into()],
            messages: RouteMessages::default(),
            scopes: vec![],
            auth,
            security: RouteSecurity {
                schemes,
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
            },
            handshake: None,
            throttling: None,
            validation: None,
        }
    }

    fn api(routes: Vec<Route>, sandbox: bool) -> PlanApi {
        PlanApi {
            name: "chat-api".into(),
            title: "Chat API".into(),
            version: "1.0.0".into(),
            context: "/chat/1.0.0".into(),
            context_template: "/chat/{version}".into(),
            default_context: None,
            lifecycle: Lifecycle::Published,
            endpoints: Endpoints {
                production: "echo:".into(),
                sandbox: sandbox.then(|| "mock:".into()),
            },
            limits: Default::default(),
            source: SourceRef {
                file: "chat.yaml".into(),
                sha256: "sha256:00".into(),
            },
            origins: vec![],
            throttling: None,
            routes,
        }
    }

    fn head(query: Option<&str>, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            version: 1,
            path: "/chat/1.0.0/rooms".into(),
            query: query.map(str::to_string),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    struct Fixture {
        dir: tempfile::TempDir,
        key: TestKey,
        verifiers: Verifiers,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let key = es256_key("k1");
        let jwt = JwtVerifier::new(&settings(dir.path(), &[&key]), tls())
            .await
            .unwrap();
        let keys = dir.path().join("keys.toml");
        std::fs::write(
            &keys,
            key_file(&[("app", "production"), ("sbx", "sandbox")]),
        )
        .unwrap();
        let deny = dir.path().join("deny.txt");
        std::fs::write(&deny, "").unwrap();
        let verifiers = Verifiers {
            jwt: Some(jwt),
            api_keys: Some(Watched::open(&keys, ApiKeys::parse).unwrap()),
            denylist: Some(Watched::open(&deny, Denylist::parse).unwrap()),
            allow_unauthenticated: false,
        };
        Fixture {
            dir,
            key,
            verifiers,
        }
    }

    fn key_file(entries: &[(&str, &str)]) -> String {
        entries
            .iter()
            .map(|(name, kind)| {
                format!(
                    "[[keys]]\nname = \"{name}\"\nsha256 = \"{}\"\ntype = \"{kind}\"\napis = [\"chat-api\"]\n",
                    ApiKeys::hash(&format!("{KEY}-{name}"))
                )
            })
            .collect()
    }

    fn jwt_scheme() -> SecurityRequirement {
        SecurityRequirement {
            name: "oauth".into(),
            kind: SchemeKind::Oauth2,
        }
    }

    fn key_scheme(location: &str, name: &str) -> SecurityRequirement {
        SecurityRequirement {
            name: "key".into(),
            kind: SchemeKind::ApiKey {
                location: location.into(),
                name: Some(name.into()),
            },
        }
    }

    #[tokio::test]
    async fn a_valid_token_with_a_scope_connects_and_is_stripped() {
        let f = fixture().await;
        let token = sign(&f.key, &claims(json!({"scope": "chat:read"})));
        let bearer = format!("Bearer {token}");
        let mut h = head(Some("x=1"), &[("Authorization", &bearer)]);
        let r = route(RouteAuth::Required, vec![]);
        let g = authenticate(&f.verifiers, &api(vec![], false), &r, &mut h)
            .await
            .unwrap();
        assert_eq!(g.sub.as_deref(), Some("alice"));
        assert!(h.header("authorization").is_none());
        assert_eq!(
            h.header("x-claims"),
            Some(r#"{"sub":"alice"}"#),
            "forwarded claims"
        );
        assert!(g.may_send(&r.security, MessageDirection::ServerToClient));
        assert!(!g.may_send(&r.security, MessageDirection::ClientToServer));
    }

    #[tokio::test]
    async fn refusals_are_401_or_403_with_a_reason() {
        let f = fixture().await;
        let r = route(RouteAuth::Required, vec![]);
        let a = api(vec![], false);
        let status = |res: Result<Grant, Refusal>| res.map(|_| 200).unwrap_or_else(|e| e.status);
        // Missing.
        let e = authenticate(&f.verifiers, &a, &r, &mut head(None, &[]))
            .await
            .unwrap_err();
        assert_eq!(e.status, 401);
        assert!(e
            .headers
            .iter()
            .any(|(k, v)| *k == "www-authenticate" && v.starts_with("Bearer")));
        // Invalid.
        let mut h = head(Some("access_token=garbage"), &[]);
        assert_eq!(
            status(authenticate(&f.verifiers, &a, &r, &mut h).await),
            401
        );
        // Missing scope.
        let token = sign(&f.key, &claims(json!({"scope": "other"})));
        let mut h = head(Some(&format!("access_token={token}")), &[]);
        let e = authenticate(&f.verifiers, &a, &r, &mut h)
            .await
            .unwrap_err();
        assert_eq!(e.status, 403);
        assert!(e.text.contains("chat:read"), "{}", e.text);
        assert!(h.query.is_none(), "stripped even when refused");
        // Unknown API key; then a known one, which has no scopes: fail closed on scoped routes.
        let mut h = head(Some("apikey=guess"), &[]);
        assert_eq!(
            status(authenticate(&f.verifiers, &a, &r, &mut h).await),
            401
        );
        let mut unscoped = r.clone();
        unscoped.security.operations.clear();
        let good = format!("{KEY}-app");
        let mut h = head(None, &[("apikey", &good)]);
        assert_eq!(
            status(authenticate(&f.verifiers, &a, &r, &mut h).await),
            403
        );
        let mut h = head(None, &[("apikey", &good)]);
        let g = authenticate(&f.verifiers, &a, &unscoped, &mut h)
            .await
            .unwrap();
        assert_eq!(g.key_name.as_deref(), Some("app"));
    }

    #[tokio::test]
    async fn a_credential_in_a_place_the_route_does_not_allow_is_refused() {
        let f = fixture().await;
        let a = api(vec![], false);
        let mut only_header_key = route(RouteAuth::Required, vec![key_scheme("header", "X-Key")]);
        only_header_key.security.operations.clear();
        let token = sign(&f.key, &claims(json!({})));
        let bearer = format!("Bearer {token}");
        let mut h = head(None, &[("Authorization", &bearer)]);
        let e = authenticate(&f.verifiers, &a, &only_header_key, &mut h)
            .await
            .unwrap_err();
        assert_eq!(e.status, 401);
        assert!(e.text.contains("Authorization header"), "{}", e.text);
        let good = format!("{KEY}-app");
        let mut h = head(Some(&format!("apikey={good}")), &[]);
        assert_eq!(
            authenticate(&f.verifiers, &a, &only_header_key, &mut h)
                .await
                .unwrap_err()
                .status,
            401,
            "the query is not where this route takes keys"
        );
        let mut h = head(None, &[("X-Key", &good)]);
        assert!(authenticate(&f.verifiers, &a, &only_header_key, &mut h)
            .await
            .is_ok());
        assert!(h.header("x-key").is_none());
        // A JWT-only route refuses API keys.
        let mut jwt_only = route(RouteAuth::Required, vec![jwt_scheme()]);
        jwt_only.security.operations.clear();
        let mut h = head(None, &[("apikey", &good)]);
        assert_eq!(
            authenticate(&f.verifiers, &a, &jwt_only, &mut h)
                .await
                .unwrap_err()
                .status,
            401
        );
    }

    #[tokio::test]
    async fn sandbox_credentials_need_a_sandbox_endpoint() {
        let f = fixture().await;
        let mut r = route(RouteAuth::Required, vec![]);
        r.security.operations.clear();
        let sbx = format!("{KEY}-sbx");
        let mut h = head(None, &[("apikey", &sbx)]);
        let e = authenticate(&f.verifiers, &api(vec![], false), &r, &mut h)
            .await
            .unwrap_err();
        assert_eq!(e.status, 403);
        assert!(e.text.contains("sandbox"));
        let mut h = head(None, &[("apikey", &sbx)]);
        let g = authenticate(&f.verifiers, &api(vec![], true), &r, &mut h)
            .await
            .unwrap();
        assert_eq!(g.key_type, KeyType::Sandbox);
        let token = sign(&f.key, &claims(json!({"keytype": "SANDBOX"})));
        let mut h = head(Some(&format!("access_token={token}")), &[]);
        let e = authenticate(&f.verifiers, &api(vec![], false), &r, &mut h)
            .await
            .unwrap_err();
        assert_eq!(e.status, 403);
    }

    #[tokio::test]
    async fn revoked_keys_and_tokens_stop_working() {
        let f = fixture().await;
        let mut r = route(RouteAuth::Required, vec![]);
        r.security.operations.clear();
        let a = api(vec![], false);
        let token = sign(&f.key, &claims(json!({})));
        let bearer = format!("Bearer {token}");
        let good = format!("{KEY}-app");
        let g_jwt = authenticate(
            &f.verifiers,
            &a,
            &r,
            &mut head(None, &[("Authorization", &bearer)]),
        )
        .await
        .unwrap();
        let g_key = authenticate(&f.verifiers, &a, &r, &mut head(None, &[("apikey", &good)]))
            .await
            .unwrap();
        assert!(!f.verifiers.revoked(&g_jwt, "chat-api"));
        let mut deny = f.verifiers.denylist.as_ref().unwrap().subscribe();
        std::fs::write(f.dir.path().join("deny.txt"), "jti:t-1\n").unwrap();
        let mut keys = f.verifiers.api_keys.as_ref().unwrap().subscribe();
        std::fs::write(
            f.dir.path().join("keys.toml"),
            key_file(&[("sbx", "sandbox")]),
        )
        .unwrap();
        let second = std::time::Duration::from_secs(1);
        tokio::time::timeout(second, deny.changed())
            .await
            .unwrap()
            .unwrap();
        tokio::time::timeout(second, keys.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(f.verifiers.revoked(&g_jwt, "chat-api"));
        assert!(f.verifiers.revoked(&g_key, "chat-api"));
        let e = authenticate(
            &f.verifiers,
            &a,
            &r,
            &mut head(None, &[("Authorization", &bearer)]),
        )
        .await
        .unwrap_err();
        assert_eq!(
            (e.status, e.text.as_str()),
            (401, "the credential has been revoked")
        );
        let e = authenticate(&f.verifiers, &a, &r, &mut head(None, &[("apikey", &good)]))
            .await
            .unwrap_err();
        assert_eq!(e.status, 401);
    }

    #[tokio::test]
    async fn open_routes_and_prototypes_need_nothing_but_are_still_stripped() {
        let f = fixture().await;
        let r = route(RouteAuth::None, vec![]);
        let mut h = head(Some("apikey=x"), &[]);
        let g = authenticate(&f.verifiers, &api(vec![], false), &r, &mut h)
            .await
            .unwrap();
        assert_eq!(g, Grant::anonymous());
        assert!(h.query.is_none());
        let mut proto = api(vec![], false);
        proto.lifecycle = Lifecycle::Prototyped;
        let required = route(RouteAuth::Required, vec![]);
        assert!(
            authenticate(&f.verifiers, &proto, &required, &mut head(None, &[]))
                .await
                .is_ok()
        );
    }

    #[test]
    fn unverifiable_apis_are_not_served_unless_allowed() {
        let none = Verifiers::default();
        let a = api(vec![route(RouteAuth::Required, vec![])], false);
        let e = unverifiable(&a, &none).unwrap();
        assert!(
            e.contains("chat-api")
                && e.contains("auth.jwt")
                && e.contains("--allow-unauthenticated"),
            "{e}"
        );
        let open = api(vec![route(RouteAuth::None, vec![])], false);
        assert!(unverifiable(&open, &none).is_none());
        let mut proto = a.clone();
        proto.lifecycle = Lifecycle::Prototyped;
        assert!(unverifiable(&proto, &none).is_none());
        let allowed = Verifiers {
            allow_unauthenticated: true,
            ..Verifiers::default()
        };
        assert!(unverifiable(&a, &allowed).is_none());
        let mut h = head(None, &[]);
        let g = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(authenticate(&allowed, &a, &a.routes[0], &mut h))
            .unwrap();
        assert_eq!(
            g,
            Grant::anonymous(),
            "--allow-unauthenticated admits what cannot be checked"
        );
        let unsupported = api(
            vec![route(
                RouteAuth::Required,
                vec![SecurityRequirement {
                    name: "basic".into(),
                    kind: SchemeKind::Unsupported {
                        declared: "http basic".into(),
                    },
                }],
            )],
            false,
        );
        let e = unverifiable(&unsupported, &none).unwrap();
        assert!(e.contains("cannot check"), "{e}");
    }

    #[tokio::test]
    async fn a_verifier_of_the_wrong_kind_does_not_make_an_api_servable() {
        let f = fixture().await;
        let only_keys = Verifiers {
            api_keys: f.verifiers.api_keys.clone(),
            ..Verifiers::default()
        };
        let jwt_route = api(vec![route(RouteAuth::Required, vec![jwt_scheme()])], false);
        assert!(unverifiable(&jwt_route, &only_keys)
            .unwrap()
            .contains("a JWT"));
        let key_route = api(
            vec![route(RouteAuth::Required, vec![key_scheme("query", "k")])],
            false,
        );
        assert!(unverifiable(&key_route, &only_keys).is_none());
        assert!(unverifiable(&jwt_route, &f.verifiers).is_none());
    }
}
