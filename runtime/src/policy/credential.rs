//! Finding the credential a client presents, and removing every credential from what the backend
//! sees.
//!
//! Places, in WSO2's order: `Authorization: Bearer`, the `access_token` query parameter, the
//! `apikey` header, the `apikey` query parameter (plus the header or query names the route's
//! apiKey schemes give). Browsers cannot set headers on a WebSocket, so a bearer token may also
//! travel as a subprotocol, following the Kubernetes API server's convention:
//! `base64url.bearer.authorization.k8s.io.<base64url token>`, at most one, beside at least one real
//! subprotocol (it is never the negotiated one).
//!
//! Every credential found is stripped, whether or not it is the one used, so that a second token
//! hidden in another place never reaches the backend.

use base64::Engine;

use crate::http::RequestHead;
use crate::refusal::Refusal;

/// The subprotocol prefix that carries a bearer token.
pub const SUBPROTOCOL_PREFIX: &str = "base64url.bearer.authorization.k8s.io.";

/// What kind of secret was presented.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Jwt,
    ApiKey,
}

/// Where a credential was found, in the order they are tried.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Place {
    AuthorizationHeader,
    AccessTokenQuery,
    ApiKeyHeader(String),
    ApiKeyQuery(String),
    Subprotocol,
}

impl Place {
    pub fn kind(&self) -> Kind {
        match self {
            Place::AuthorizationHeader | Place::AccessTokenQuery | Place::Subprotocol => Kind::Jwt,
            Place::ApiKeyHeader(_) | Place::ApiKeyQuery(_) => Kind::ApiKey,
        }
    }

    /// For refusals: says where, never what.
    pub fn describe(&self) -> String {
        match self {
            Place::AuthorizationHeader => "the Authorization header".into(),
            Place::AccessTokenQuery => "the access_token query parameter".into(),
            Place::ApiKeyHeader(name) => format!("the {name} header"),
            Place::ApiKeyQuery(name) => format!("the {name} query parameter"),
            Place::Subprotocol => "a subprotocol".into(),
        }
    }
}

/// A credential taken out of the request.
#[derive(Clone, PartialEq, Eq)]
pub struct Presented {
    pub place: Place,
    pub secret: String,
}

impl std::fmt::Debug for Presented {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Presented({:?}, <redacted>)", self.place)
    }
}

/// The header and query names API keys may use besides WSO2's `apikey`.
#[derive(Clone, Debug, Default)]
pub struct ApiKeyNames {
    pub headers: Vec<String>,
    pub queries: Vec<String>,
}

/// Removes every credential from `head` (headers, query, subprotocols) and returns them in
/// WSO2's order. Refuses a malformed token subprotocol or an oversized credential.
pub fn take_credentials(
    head: &mut RequestHead,
    names: &ApiKeyNames,
    max_bytes: usize,
) -> Result<Vec<Presented>, Refusal> {
    let mut found = Vec::new();
    let mut header_names: Vec<String> = vec!["apikey".into()];
    header_names.extend(names.headers.iter().map(|n| n.to_ascii_lowercase()));
    let mut query_names: Vec<String> = vec!["apikey".into()];
    query_names.extend(names.queries.iter().cloned());

    // Headers: Authorization (bearer only; other schemes are the backend's business) and keys.
    let mut kept = Vec::with_capacity(head.headers.len());
    for (name, value) in std::mem::take(&mut head.headers) {
        let lower = name.to_ascii_lowercase();
        if lower == "authorization" {
            if let Some(token) = strip_bearer(&value) {
                found.push(Presented {
                    place: Place::AuthorizationHeader,
                    secret: token.to_string(),
                });
                continue;
            }
        } else if header_names.contains(&lower) {
            found.push(Presented {
                place: Place::ApiKeyHeader(lower),
                secret: value.trim().to_string(),
            });
            continue;
        }
        kept.push((name, value));
    }
    head.headers = kept;

    // Query: drop the credential pairs, keep every other pair byte for byte.
    if let Some(query) = head.query.take() {
        let mut rest = Vec::new();
        for pair in query.split('&') {
            let (raw_key, raw_value) = pair.split_once('=').unwrap_or((pair, ""));
            let key = decode(raw_key);
            let place = if key == "access_token" {
                Some(Place::AccessTokenQuery)
            } else if query_names.contains(&key) {
                Some(Place::ApiKeyQuery(key))
            } else {
                None
            };
            match place {
                Some(place) => found.push(Presented {
                    place,
                    secret: decode(raw_value),
                }),
                None => rest.push(pair),
            }
        }
        if !rest.is_empty() {
            head.query = Some(rest.join("&"));
        }
    }

    // Subprotocols: at most one token, beside at least one real protocol.
    let offered: Vec<String> = head
        .headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("sec-websocket-protocol"))
        .flat_map(|(_, v)| v.split(',').map(|p| p.trim().to_string()))
        .filter(|p| !p.is_empty())
        .collect();
    let (tokens, real): (Vec<String>, Vec<String>) = offered
        .into_iter()
        .partition(|p| p.starts_with(SUBPROTOCOL_PREFIX));
    if !tokens.is_empty() {
        if tokens.len() > 1 {
            return Err(Refusal::new(400, "more than one bearer token subprotocol"));
        }
        if real.is_empty() {
            return Err(Refusal::new(
                400,
                "a bearer token subprotocol must be offered beside at least one real subprotocol",
            ));
        }
        let encoded = &tokens[0][SUBPROTOCOL_PREFIX.len()..];
        if encoded.len() > max_bytes.saturating_mul(2) {
            return Err(too_large(max_bytes));
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(encoded.trim_end_matches('='))
            .map_err(|_| unauthorized("the bearer token subprotocol is not base64url"))?;
        let token = String::from_utf8(bytes)
            .map_err(|_| unauthorized("the bearer token subprotocol is not text"))?;
        found.push(Presented {
            place: Place::Subprotocol,
            secret: token,
        });
        head.headers
            .retain(|(k, _)| !k.eq_ignore_ascii_case("sec-websocket-protocol"));
        head.headers
            .push(("Sec-WebSocket-Protocol".into(), real.join(", ")));
    }

    if found.iter().any(|p| p.secret.len() > max_bytes) {
        return Err(too_large(max_bytes));
    }
    found.sort_by(|a, b| a.place.cmp(&b.place));
    Ok(found)
}

fn strip_bearer(value: &str) -> Option<&str> {
    let value = value.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn decode(raw: &str) -> String {
    url::form_urlencoded::parse(format!("k={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A 401 with the challenge WSO2 and RFC 6750 clients expect.
pub fn unauthorized(text: impl Into<String>) -> Refusal {
    Refusal::new(401, text).header("www-authenticate", "Bearer realm=\"portico\"")
}

fn too_large(max: usize) -> Refusal {
    unauthorized(format!("the credential is larger than {max} bytes"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(query: Option<&str>, headers: &[(&str, &str)]) -> RequestHead {
        RequestHead {
            method: "GET".into(),
            version: 1,
            path: "/chat/1.0.0/rooms/a".into(),
            query: query.map(str::to_string),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
    }

    #[test]
    fn every_place_is_found_in_wso2_order_and_stripped() {
        let protocol = format!("chat, {SUBPROTOCOL_PREFIX}{}", b64("sub-token"));
        let mut h = head(
            Some("room=a%20b&access_token=query-token&apikey=query-key&x=1"),
            &[
                ("Host", "gw"),
                ("apikey", "header-key"),
                ("Authorization", "Bearer header-token"),
                ("Sec-WebSocket-Protocol", &protocol),
            ],
        );
        let found = take_credentials(&mut h, &ApiKeyNames::default(), 4096).unwrap();
        let places: Vec<(Place, &str)> = found
            .iter()
            .map(|p| (p.place.clone(), p.secret.as_str()))
            .collect();
        assert_eq!(
            places,
            vec![
                (Place::AuthorizationHeader, "header-token"),
                (Place::AccessTokenQuery, "query-token"),
                (Place::ApiKeyHeader("apikey".into()), "header-key"),
                (Place::ApiKeyQuery("apikey".into()), "query-key"),
                (Place::Subprotocol, "sub-token"),
            ]
        );
        assert_eq!(
            h.query.as_deref(),
            Some("room=a%20b&x=1"),
            "other pairs untouched"
        );
        assert!(h.header("authorization").is_none());
        assert!(h.header("apikey").is_none());
        assert_eq!(h.header("sec-websocket-protocol"), Some("chat"));
        let rest = format!("{h:?}");
        for secret in [
            "header-token",
            "query-token",
            "header-key",
            "query-key",
            &b64("sub-token"),
        ] {
            assert!(
                !rest.contains(secret),
                "{secret} reached the backend's view: {rest}"
            );
        }
        assert!(
            !format!("{found:?}").contains("header-token"),
            "Debug redacts"
        );
    }

    #[test]
    fn custom_api_key_names_from_the_spec_are_found() {
        let mut h = head(Some("key=q"), &[("X-Api-Key", "h")]);
        let names = ApiKeyNames {
            headers: vec!["X-Api-Key".into()],
            queries: vec!["key".into()],
        };
        let found = take_credentials(&mut h, &names, 4096).unwrap();
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].place, Place::ApiKeyHeader("x-api-key".into()));
        assert_eq!(h.query, None);
        assert!(h.headers.is_empty());
    }

    #[test]
    fn other_authorization_schemes_are_left_alone() {
        let mut h = head(None, &[("Authorization", "Basic dTpw")]);
        assert!(take_credentials(&mut h, &ApiKeyNames::default(), 4096)
            .unwrap()
            .is_empty());
        assert_eq!(h.header("authorization"), Some("Basic dTpw"));
    }

    #[test]
    fn hostile_subprotocols_and_sizes_are_refused() {
        let alone = format!("{SUBPROTOCOL_PREFIX}{}", b64("t"));
        let mut h = head(None, &[("Sec-WebSocket-Protocol", &alone)]);
        assert_eq!(
            take_credentials(&mut h, &ApiKeyNames::default(), 4096)
                .unwrap_err()
                .status,
            400
        );
        let two = format!("chat, {alone}, {alone}");
        let mut h = head(None, &[("Sec-WebSocket-Protocol", &two)]);
        assert_eq!(
            take_credentials(&mut h, &ApiKeyNames::default(), 4096)
                .unwrap_err()
                .status,
            400
        );
        let bad = format!("chat, {SUBPROTOCOL_PREFIX}!!!");
        let mut h = head(None, &[("Sec-WebSocket-Protocol", &bad)]);
        let r = take_credentials(&mut h, &ApiKeyNames::default(), 4096).unwrap_err();
        assert_eq!(r.status, 401);
        assert!(r.headers.iter().any(|(k, _)| *k == "www-authenticate"));
        let big = format!("Bearer {}", "a".repeat(5000));
        let mut h = head(None, &[("Authorization", &big)]);
        let r = take_credentials(&mut h, &ApiKeyNames::default(), 4096).unwrap_err();
        assert_eq!(r.status, 401);
        assert!(r.text.contains("larger than 4096"));
        assert!(!r.text.contains("aaaa"));
    }
}
