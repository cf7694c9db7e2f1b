//! JWT verification: per issuer an algorithm allowlist, audiences, and keys from a JWKS (a file or
//! an https URL) or an HMAC secret (a file or an environment variable).
//!
//! The issuer is picked by the token's `iss` before verification; its allowlist decides the
//! algorithm, and the algorithm's family decides the key: HMAC algorithms only ever use the
//! configured secret, public-key algorithms only the JWKS. So `alg: none` (not an algorithm the
//! decoder knows) and algorithm confusion (an RSA public key used as an HMAC secret) are refused.
//!
//! JWKS are cached. A background task refreshes them; a token whose `kid` is unknown triggers a
//! refetch, at most one per [`JwksSource::refetch_interval`]; when the identity provider is down,
//! the last good keys keep serving.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use base64::Engine;
use jsonwebtoken::jwk::{AlgorithmParameters, JwkSet};
use jsonwebtoken::{errors::ErrorKind, Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::policy::grant::{Grant, KeyType};
use crate::settings::{IssuerSettings, JwtSettings};

/// Largest JWKS document accepted.
const MAX_JWKS_BYTES: usize = 1024 * 1024;

/// Where a JWKS comes from.
#[derive(Clone, Debug)]
pub enum JwksLocation {
    File(PathBuf),
    Url(url::Url),
}

impl JwksLocation {
    /// For logs: the file, or the URL's host and path (never user-info or query).
    pub fn describe(&self) -> String {
        match self {
            JwksLocation::File(p) => p.display().to_string(),
            JwksLocation::Url(u) => format!("https://{}{}", u.host_str().unwrap_or("?"), u.path()),
        }
    }
}

/// A cached JWKS.
pub struct JwksSource {
    pub location: JwksLocation,
    keys: ArcSwap<JwkSet>,
    last_refetch: Mutex<Option<Instant>>,
    /// Least time between two refetches caused by unknown `kid`s.
    pub refetch_interval: Duration,
    tls: Arc<rustls::ClientConfig>,
}

impl JwksSource {
    /// Loads the keys once; failing here is a configuration error.
    pub async fn open(
        location: JwksLocation,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Arc<JwksSource>, String> {
        let source = JwksSource {
            location,
            keys: ArcSwap::from_pointee(JwkSet { keys: vec![] }),
            last_refetch: Mutex::new(None),
            refetch_interval: Duration::from_secs(10),
            tls,
        };
        let keys = source.fetch().await?;
        source.keys.store(Arc::new(keys));
        Ok(Arc::new(source))
    }

    pub fn keys(&self) -> Arc<JwkSet> {
        self.keys.load_full()
    }

    async fn fetch(&self) -> Result<JwkSet, String> {
        let bytes = match &self.location {
            JwksLocation::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| format!("cannot read the JWKS {}: {e}", path.display()))?,
            JwksLocation::Url(url) => https_get(url, &self.tls)
                .await
                .map_err(|e| format!("cannot fetch the JWKS {}: {e}", self.location.describe()))?,
        };
        if bytes.len() > MAX_JWKS_BYTES {
            return Err(format!(
                "the JWKS {} is larger than {MAX_JWKS_BYTES} bytes",
                self.location.describe()
            ));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "the JWKS {} is not a JWK set: {e}",
                self.location.describe()
            )
        })
    }

    /// Fetches again; on failure the last good keys stay.
    pub async fn refresh(&self) -> Result<(), String> {
        let keys = self.fetch().await?;
        self.keys.store(Arc::new(keys));
        Ok(())
    }

    /// A refetch for an unknown `kid`, unless one happened less than the interval ago.
    async fn refetch_for_unknown_kid(&self) -> bool {
        {
            let mut last = self.last_refetch.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < self.refetch_interval) {
                return false;
            }
            *last = Some(Instant::now());
        }
        match self.refresh().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "JWKS refetch failed; the last good keys keep serving");
                false
            }
        }
    }

    /// Refreshes every `period` until the source is dropped.
    pub fn spawn_refresh(self: &Arc<Self>, period: Duration) {
        let weak: Weak<JwksSource> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(source) = weak.upgrade() else { return };
                if let Err(e) = source.refresh().await {
                    tracing::warn!(error = %e, "JWKS refresh failed; the last good keys keep serving");
                }
            }
        });
    }
}

/// A bounded `GET` over https (`Connection: close`, body read to the end).
async fn https_get(url: &url::Url, tls: &Arc<rustls::ClientConfig>) -> Result<Vec<u8>, String> {
    if url.scheme() != "https" {
        return Err("a JWKS URL must be https".into());
    }
    let host = url.host_str().ok_or("the URL has no host")?.to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let tcp = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    .map_err(|_| "connect timed out".to_string())?
    .map_err(|e| format!("connect failed: {e}"))?;
    let name = rustls::pki_types::ServerName::try_from(host.clone())
        .map_err(|_| "the host is not a valid TLS name".to_string())?;
    let mut stream = tokio_rustls::TlsConnector::from(tls.clone())
        .connect(name, tcp)
        .await
        .map_err(|e| format!("TLS failed: {e}"))?;
    let mut target = url.path().to_string();
    if let Some(q) = url.query() {
        target.push('?');
        target.push_str(q);
    }
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {host}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    );
    let exchange = async {
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("write failed: {e}"))?;
        let (head, mut body) = crate::http::read_response_head(&mut stream)
            .await
            .map_err(|e| format!("bad response: {e:?}"))?;
        if head.status != 200 {
            return Err(format!("status {}", head.status));
        }
        let mut rest = Vec::new();
        (&mut stream)
            .take((MAX_JWKS_BYTES + 1) as u64)
            .read_to_end(&mut rest)
            .await
            .map_err(|e| format!("read failed: {e}"))?;
        body.extend(rest);
        Ok(body)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "timed out".to_string())?
}

struct Issuer {
    settings: IssuerSettings,
    algorithms: Vec<Algorithm>,
    hmac: Option<Vec<u8>>,
    jwks: Option<Arc<JwksSource>>,
}

/// Verifies JWTs for the configured issuers.
pub struct JwtVerifier {
    issuers: Vec<Issuer>,
    pub skew_seconds: u64,
    pub max_token_bytes: usize,
    settings: JwtSettings,
}

impl JwtVerifier {
    /// Builds the verifier: reads secrets, loads every JWKS once and starts their refresh.
    pub async fn new(
        settings: &JwtSettings,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<JwtVerifier, String> {
        let mut issuers = Vec::new();
        for s in &settings.issuers {
            let who = format!("issuer {}", s.issuer);
            let mut algorithms = Vec::new();
            for name in &s.algorithms {
                let alg: Algorithm = name
                    .parse()
                    .map_err(|_| format!("{who}: unknown algorithm `{name}`"))?;
                algorithms.push(alg);
            }
            if algorithms.is_empty() {
                return Err(format!("{who}: `algorithms` is empty"));
            }
            let hmac = match (&s.hmac_secret_file, &s.hmac_secret_env) {
                (Some(path), _) => Some(
                    std::fs::read(path)
                        .map(trim_newline)
                        .map_err(|e| format!("{who}: cannot read {}: {e}", path.display()))?,
                ),
                (None, Some(var)) => Some(
                    std::env::var(var)
                        .map_err(|_| format!("{who}: the variable {var} is not set"))?
                        .into_bytes(),
                ),
                (None, None) => None,
            };
            if hmac.as_ref().is_some_and(|h| h.len() < 32) {
                return Err(format!("{who}: the HMAC secret is shorter than 32 bytes"));
            }
            let location = match (&s.jwks_file, &s.jwks_url) {
                (Some(path), None) => Some(JwksLocation::File(path.clone())),
                (None, Some(u)) => Some(JwksLocation::Url(
                    url::Url::parse(u).map_err(|e| format!("{who}: jwks_url: {e}"))?,
                )),
                (Some(_), Some(_)) => {
                    return Err(format!("{who}: give jwks_file or jwks_url, not both"))
                }
                (None, None) => None,
            };
            let uses_hmac = algorithms.iter().any(|a| is_hmac(*a));
            let uses_keys = algorithms.iter().any(|a| !is_hmac(*a));
            if uses_hmac && hmac.is_none() {
                return Err(format!(
                    "{who}: an HS* algorithm is allowed but no hmac_secret_file or hmac_secret_env is set"
                ));
            }
            if uses_keys && location.is_none() {
                return Err(format!(
                    "{who}: a public-key algorithm is allowed but no jwks_file or jwks_url is set"
                ));
            }
            let jwks = match location {
                Some(location) => {
                    let tls = match &s.jwks_ca_file {
                        Some(ca) => {
                            let pem = std::fs::read(ca)
                                .map_err(|e| format!("{who}: cannot read {}: {e}", ca.display()))?;
                            crate::backend::tls_config(Some(&pem))?
                        }
                        None => tls.clone(),
                    };
                    let source = JwksSource::open(location, tls)
                        .await
                        .map_err(|e| format!("{who}: {e}"))?;
                    source.spawn_refresh(Duration::from_secs(s.jwks_refresh_seconds.max(1)));
                    Some(source)
                }
                None => None,
            };
            issuers.push(Issuer {
                settings: s.clone(),
                algorithms,
                hmac,
                jwks,
            });
        }
        Ok(JwtVerifier {
            issuers,
            skew_seconds: settings.skew_seconds,
            max_token_bytes: settings.max_token_bytes,
            settings: settings.clone(),
        })
    }

    /// The JWKS sources, so tests and operators can tune or refresh them.
    pub fn jwks_sources(&self) -> Vec<Arc<JwksSource>> {
        self.issuers.iter().filter_map(|i| i.jwks.clone()).collect()
    }

    /// Verifies `token` and returns what it grants; the error is a reason safe to show.
    pub async fn verify(&self, token: &str) -> Result<Grant, String> {
        if token.len() > self.max_token_bytes {
            return Err(format!(
                "the token is larger than {} bytes",
                self.max_token_bytes
            ));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| "the token is not a JWT with a supported algorithm".to_string())?;
        let iss = unverified_issuer(token).ok_or("the token has no issuer (`iss`)")?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.settings.issuer == iss)
            .ok_or("the token's issuer is not accepted")?;
        if !issuer.algorithms.contains(&header.alg) {
            return Err(format!(
                "the algorithm {:?} is not allowed for this issuer",
                header.alg
            ));
        }
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.leeway = self.skew_seconds;
        validation.validate_nbf = true;
        validation.set_issuer(&[&issuer.settings.issuer]);
        // A token without `exp` would never expire, nor its connections: refused unless the
        // operator accepts that for this issuer.
        if issuer.settings.allow_tokens_without_exp {
            validation.set_required_spec_claims(&["iss"]);
        } else {
            validation.set_required_spec_claims(&["exp", "iss"]);
        }
        if issuer.settings.audiences.is_empty() {
            validation.validate_aud = false;
        } else {
            validation.set_audience(&issuer.settings.audiences);
        }

        let claims: Value = if is_hmac(header.alg) {
            let secret = issuer.hmac.as_deref().ok_or("no HMAC secret")?;
            decode(token, &DecodingKey::from_secret(secret), &validation)?
        } else {
            let source = issuer.jwks.as_ref().ok_or("no JWKS")?;
            let mut keys = candidate_keys(&source.keys(), header.kid.as_deref(), header.alg);
            if keys.is_empty() && header.kid.is_some() && source.refetch_for_unknown_kid().await {
                keys = candidate_keys(&source.keys(), header.kid.as_deref(), header.alg);
            }
            if keys.is_empty() {
                return Err("no key of the issuer matches the token's `kid`".into());
            }
            let mut last = String::new();
            let mut verified = None;
            for key in keys {
                match decode(token, &key, &validation) {
                    Ok(claims) => {
                        verified = Some(claims);
                        break;
                    }
                    Err(e) => last = e,
                }
            }
            verified.ok_or(last)?
        };
        Ok(self.grant(issuer, &claims))
    }

    fn grant(&self, issuer: &Issuer, claims: &Value) -> Grant {
        let text = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_string);
        let scope_claims: Vec<&str> = match &issuer.settings.scope_claim {
            Some(c) => vec![c.as_str()],
            None => vec!["scope", "scp"],
        };
        let mut scopes = std::collections::BTreeSet::new();
        for name in scope_claims {
            match claims.get(name) {
                Some(Value::String(s)) => scopes.extend(s.split_whitespace().map(str::to_string)),
                Some(Value::Array(items)) => {
                    scopes.extend(items.iter().filter_map(Value::as_str).map(str::to_string))
                }
                _ => {}
            }
        }
        let sandbox = self.settings.sandbox_claim.as_ref().is_some_and(|m| {
            claims
                .get(&m.claim)
                .and_then(Value::as_str)
                .is_some_and(|v| v.eq_ignore_ascii_case(&m.value))
        });
        let forwarded_header = self.settings.forward_claims.as_ref().map(|f| {
            let selected: BTreeMap<&str, &Value> = f
                .claims
                .iter()
                .filter_map(|c| claims.get(c).map(|v| (c.as_str(), v)))
                .collect();
            (
                f.header.to_ascii_lowercase(),
                serde_json::to_string(&selected).unwrap_or_default(),
            )
        });
        let sub = text("sub");
        let client = match (&sub, text("azp")) {
            (Some(sub), _) => Some(format!("jwt:{}#sub:{sub}", issuer.settings.issuer)),
            (None, Some(azp)) => Some(format!("jwt:{}#azp:{azp}", issuer.settings.issuer)),
            (None, None) => None,
        };
        Grant {
            credential_id: format!(
                "jwt:{}#{}",
                issuer.settings.issuer,
                sub.as_deref().or(text("azp").as_deref()).unwrap_or("?")
            ),
            key_name: None,
            key_type: if sandbox {
                KeyType::Sandbox
            } else {
                KeyType::Production
            },
            scopes,
            tier: None,
            expires_at: claims.get("exp").and_then(Value::as_u64),
            sub,
            jti: text("jti"),
            forwarded_header,
            client,
        }
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Value, String> {
    jsonwebtoken::decode::<Value>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| {
            match e.kind() {
                ErrorKind::MissingRequiredClaim(claim) if claim == "exp" => {
                    "the token has no expiry (`exp`), which this issuer requires"
                }
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::ImmatureSignature => "the token is not valid yet (`nbf`)",
                ErrorKind::InvalidIssuer => "the token's issuer is not accepted",
                ErrorKind::InvalidAudience => "the token's audience is not accepted",
                ErrorKind::InvalidSignature => "the token's signature is invalid",
                ErrorKind::InvalidAlgorithm => "the token's algorithm does not match its key",
                ErrorKind::MissingRequiredClaim(_) => "the token has no issuer (`iss`)",
                _ => "the token is malformed",
            }
            .to_string()
        })
}

/// The keys a token may have been signed with: by `kid` when it has one, and of the algorithm's
/// family (an RSA key never verifies an EC token, and nothing from a JWKS verifies HMAC).
fn candidate_keys(set: &JwkSet, kid: Option<&str>, alg: Algorithm) -> Vec<DecodingKey> {
    set.keys
        .iter()
        .filter(|k| kid.is_none() || k.common.key_id.as_deref() == kid)
        .filter(|k| {
            matches!(
                (&k.algorithm, alg),
                (
                    AlgorithmParameters::RSA(_),
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                ) | (
                    AlgorithmParameters::EllipticCurve(_),
                    Algorithm::ES256 | Algorithm::ES384
                ) | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
            )
        })
        .filter_map(|k| DecodingKey::from_jwk(k).ok())
        .collect()
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn trim_newline(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    bytes
}

/// The `iss` claim, read before verification only to pick the issuer's keys.
fn unverified_issuer(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use std::sync::Arc;

    pub const ISSUER: &str = "https://idp.test";
    pub const HMAC_ISSUER: &str = "https://hmac.test";
    pub const SECRET: &str = "0123456789abcdef0123456789abcdef-test-secret";

    /// An ES256 key pair: its private PEM and its public JWK with `kid`.
    pub struct TestKey {
        pub pem: String,
        pub jwk: Value,
        pub kid: String,
    }

    pub fn es256_key(kid: &str) -> TestKey {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let raw = kp.public_key_raw();
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        TestKey {
            pem: kp.serialize_pem(),
            jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                        "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
            kid: kid.to_string(),
        }
    }

    pub fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    pub fn claims(extra: Value) -> Value {
        let mut c = json!({"iss": ISSUER, "aud": "chat", "sub": "alice", "jti": "t-1",
                           "exp": now() + 600, "scope": "chat:read chat:write"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    pub fn sign(key: &TestKey, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(
            &header,
            claims,
            &EncodingKey::from_ec_pem(key.pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    pub fn sign_hmac(secret: &[u8], claims: &Value) -> String {
        jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    /// Settings for an ES256 issuer reading `jwks` and an HS256 issuer reading `secret`.
    pub fn settings(dir: &std::path::Path, keys: &[&TestKey]) -> JwtSettings {
        let jwks = dir.join("jwks.json");
        write_jwks(&jwks, keys);
        let secret = dir.join("hmac.secret");
        std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
        let text = format!(
            "skew_seconds: 30\nmax_token_bytes: 4096\nsandbox_claim: {{claim: keytype, value: SANDBOX}}\nforward_claims: {{header: X-Claims, claims: [sub]}}\nissuers:\n  - issuer: {ISSUER}\n    audiences: [chat]\n    algorithms: [ES256]\n    jwks_file: {}\n  - issuer: {HMAC_ISSUER}\n    algorithms: [HS256]\n    hmac_secret_file: {}\n",
            jwks.display(),
            secret.display()
        );
        serde_saphyr::from_str(&text).unwrap()
    }

    pub fn write_jwks(path: &std::path::Path, keys: &[&TestKey]) {
        let set = json!({"keys": keys.iter().map(|k| k.jwk.clone()).collect::<Vec<_>>()});
        std::fs::write(path, set.to_string()).unwrap();
    }

    pub fn tls() -> Arc<rustls::ClientConfig> {
        crate::backend::tls_config(None).unwrap()
    }

    #[tokio::test]
    async fn a_valid_token_grants_its_claims() {
        let dir = tempfile::tempdir().unwrap();
        let key = es256_key("k1");
        let v = JwtVerifier::new(&settings(dir.path(), &[&key]), tls())
            .await
            .unwrap();
        let g = v.verify(&sign(&key, &claims(json!({})))).await.unwrap();
        assert_eq!(g.sub.as_deref(), Some("alice"));
        assert_eq!(g.jti.as_deref(), Some("t-1"));
        assert!(g.scopes.contains("chat:write"));
        assert_eq!(g.key_type, KeyType::Production);
        assert_eq!(g.credential_id, format!("jwt:{ISSUER}#alice"));
        assert_eq!(
            g.forwarded_header,
            Some(("x-claims".into(), r#"{"sub":"alice"}"#.into()))
        );
        let sandbox = v
            .verify(&sign(
                &key,
                &claims(json!({"keytype": "SANDBOX", "scp": ["a"]})),
            ))
            .await
            .unwrap();
        assert_eq!(sandbox.key_type, KeyType::Sandbox);
        let hmac = v
            .verify(&sign_hmac(
                SECRET.as_bytes(),
                &claims(json!({"iss": HMAC_ISSUER})),
            ))
            .await
            .unwrap();
        assert_eq!(hmac.sub.as_deref(), Some("alice"));
    }

    #[tokio::test]
    async fn hostile_tokens_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let key = es256_key("k1");
        let v = JwtVerifier::new(&settings(dir.path(), &[&key]), tls())
            .await
            .unwrap();
        let refused = |token: String| {
            let v = &v;
            async move { v.verify(&token).await.unwrap_err() }
        };
        let e = refused(sign(&key, &claims(json!({"exp": now() - 120})))).await;
        assert!(e.contains("expired"), "{e}");
        // Within the skew, still accepted.
        assert!(v
            .verify(&sign(&key, &claims(json!({"exp": now() - 5}))))
            .await
            .is_ok());
        let e = refused(sign(&key, &claims(json!({"nbf": now() + 300})))).await;
        assert!(e.contains("not valid yet"), "{e}");
        let e = refused(sign(&key, &claims(json!({"iss": "https://evil.test"})))).await;
        assert!(e.contains("issuer"), "{e}");
        let e = refused(sign(&key, &claims(json!({"aud": "other"})))).await;
        assert!(e.contains("audience"), "{e}");
        let mut no_exp = claims(json!({}));
        no_exp.as_object_mut().unwrap().remove("exp");
        let e = refused(sign(&key, &no_exp)).await;
        assert!(e.contains("exp"), "{e}");
        // An HMAC token for an issuer that allows only ES256.
        let e = refused(sign_hmac(SECRET.as_bytes(), &claims(json!({})))).await;
        assert!(e.contains("not allowed"), "{e}");
        // alg: none.
        let b64 = |b: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let none = format!(
            "{}.{}.",
            b64(r#"{"alg":"none","typ":"JWT"}"#),
            b64(&claims(json!({})).to_string())
        );
        let e = refused(none).await;
        assert!(e.contains("supported algorithm"), "{e}");
        // A tampered payload (scopes widened) keeps the old signature.
        let good = sign(&key, &claims(json!({})));
        let parts: Vec<&str> = good.split('.').collect();
        let widened = b64(&claims(json!({"scope": "admin"})).to_string());
        let e = refused(format!("{}.{}.{}", parts[0], widened, parts[2])).await;
        assert!(e.contains("signature"), "{e}");
        // Signed by a key the issuer does not publish, under a known kid.
        let e = refused(sign(&es256_key("k1"), &claims(json!({})))).await;
        assert!(e.contains("signature"), "{e}");
        let e = refused(format!("{}x", "a".repeat(5000))).await;
        assert!(e.contains("larger than 4096"), "{e}");
        let e = refused("not-a-token".into()).await;
        assert!(!e.contains("not-a-token"), "reasons never echo the token");
    }

    #[tokio::test]
    async fn a_token_without_exp_is_refused_unless_its_issuer_accepts_them() {
        let dir = tempfile::tempdir().unwrap();
        let key = es256_key("k1");
        let mut no_exp = claims(json!({}));
        no_exp.as_object_mut().unwrap().remove("exp");
        let token = sign(&key, &no_exp);
        let strict = JwtVerifier::new(&settings(dir.path(), &[&key]), tls())
            .await
            .unwrap();
        let e = strict.verify(&token).await.unwrap_err();
        assert_eq!(
            e, "the token has no expiry (`exp`), which this issuer requires",
            "a clear reason"
        );
        let mut s = settings(dir.path(), &[&key]);
        s.issuers[0].allow_tokens_without_exp = true;
        let lenient = JwtVerifier::new(&s, tls()).await.unwrap();
        let g = lenient.verify(&token).await.expect("accepted when allowed");
        assert_eq!(
            g.expires_at, None,
            "never closed for expiry: only revocation ends it"
        );
        // Allowing a missing `exp` does not allow an expired one.
        let e = lenient
            .verify(&sign(&key, &claims(json!({"exp": now() - 120}))))
            .await
            .unwrap_err();
        assert!(e.contains("expired"), "{e}");
        // The other issuer keeps requiring it.
        let mut hmac_no_exp = claims(json!({"iss": HMAC_ISSUER}));
        hmac_no_exp.as_object_mut().unwrap().remove("exp");
        let e = lenient
            .verify(&sign_hmac(SECRET.as_bytes(), &hmac_no_exp))
            .await
            .unwrap_err();
        assert!(e.contains("`exp`"), "{e}");
    }

    #[tokio::test]
    async fn the_client_key_is_sub_else_azp_and_never_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let key = es256_key("k1");
        let v = JwtVerifier::new(&settings(dir.path(), &[&key]), tls())
            .await
            .unwrap();
        let g = v
            .verify(&sign(&key, &claims(json!({"azp": "app"}))))
            .await
            .unwrap();
        assert_eq!(
            g.client.as_deref(),
            Some(format!("jwt:{ISSUER}#sub:alice").as_str())
        );
        let mut by_azp = claims(json!({"azp": "app"}));
        by_azp.as_object_mut().unwrap().remove("sub");
        let g = v.verify(&sign(&key, &by_azp)).await.unwrap();
        assert_eq!(
            g.client.as_deref(),
            Some(format!("jwt:{ISSUER}#azp:app").as_str())
        );
        let mut nobody = claims(json!({}));
        nobody.as_object_mut().unwrap().remove("sub");
        let g = v.verify(&sign(&key, &nobody)).await.unwrap();
        assert_eq!(g.client, None, "keyed by the address instead");
    }

    #[tokio::test]
    async fn an_rsa_or_ec_public_key_used_as_an_hmac_secret_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let key = es256_key("k1");
        let mut s = settings(dir.path(), &[&key]);
        // One issuer allowing both families, as a careless operator might.
        s.issuers[0].algorithms = vec!["ES256".into(), "HS256".into()];
        s.issuers[0].hmac_secret_file = Some(dir.path().join("hmac.secret"));
        let v = JwtVerifier::new(&s, tls()).await.unwrap();
        let public = key.jwk.to_string();
        let forged = sign_hmac(public.as_bytes(), &claims(json!({})));
        let e = v.verify(&forged).await.unwrap_err();
        assert!(e.contains("signature"), "{e}");
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_the_jwks_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let old = es256_key("k1");
        let v = JwtVerifier::new(&settings(dir.path(), &[&old]), tls())
            .await
            .unwrap();
        let new = es256_key("k2");
        let token = sign(&new, &claims(json!({})));
        // The identity provider rotates: the same token is accepted without a restart.
        write_jwks(&dir.path().join("jwks.json"), &[&old, &new]);
        assert!(v.verify(&token).await.is_ok());
        // A flood of unknown kids does not refetch more than once per interval.
        let newer = es256_key("k3");
        write_jwks(&dir.path().join("jwks.json"), &[&newer]);
        let e = v
            .verify(&sign(&newer, &claims(json!({}))))
            .await
            .unwrap_err();
        assert!(e.contains("kid"), "{e}");
        assert!(v.verify(&token).await.is_ok(), "cached keys still serve");
    }

    #[tokio::test]
    async fn bad_configuration_is_refused_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let key = es256_key("k1");
        let mut s = settings(dir.path(), &[&key]);
        s.issuers[0].algorithms = vec!["XS999".into()];
        assert!(JwtVerifier::new(&s, tls())
            .await
            .err()
            .unwrap()
            .contains("unknown algorithm"));
        let mut s = settings(dir.path(), &[&key]);
        s.issuers[1].hmac_secret_file = None;
        assert!(JwtVerifier::new(&s, tls())
            .await
            .err()
            .unwrap()
            .contains("hmac_secret"));
        let mut s = settings(dir.path(), &[&key]);
        std::fs::write(dir.path().join("short"), "short").unwrap();
        s.issuers[1].hmac_secret_file = Some(dir.path().join("short"));
        assert!(JwtVerifier::new(&s, tls())
            .await
            .err()
            .unwrap()
            .contains("32 bytes"));
        let mut s = settings(dir.path(), &[&key]);
        std::fs::write(dir.path().join("jwks.json"), "{").unwrap();
        s.issuers.truncate(1);
        assert!(JwtVerifier::new(&s, tls())
            .await
            .err()
            .unwrap()
            .contains("not a JWK set"));
    }

    /// Serves `body` over https on loopback with a certificate for `localhost` from a fresh CA,
    /// until the returned sender is dropped. Returns the port and the CA (PEM).
    async fn https_server(
        body: Arc<std::sync::Mutex<String>>,
    ) -> (u16, String, tokio::sync::oneshot::Sender<()>) {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec!["localhost".to_string()])
            .unwrap()
            .signed_by(&leaf_key, &issuer)
            .unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
                };
                let acceptor = acceptor.clone();
                let body = body.lock().unwrap().clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let _ = crate::http::read_head(&mut tls).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        (port, ca.pem(), stop)
    }

    #[tokio::test]
    async fn a_jwks_over_https_is_fetched_and_survives_the_idp_going_down() {
        let dir = tempfile::tempdir().unwrap();
        let key = es256_key("k1");
        let body = Arc::new(std::sync::Mutex::new(
            json!({"keys": [key.jwk]}).to_string(),
        ));
        let (port, ca, stop) = https_server(body).await;
        std::fs::write(dir.path().join("ca.pem"), ca).unwrap();
        let mut s = settings(dir.path(), &[&key]);
        s.issuers.truncate(1);
        s.issuers[0].jwks_file = None;
        s.issuers[0].jwks_url = Some(format!("https://localhost:{port}/.well-known/jwks.json"));
        s.issuers[0].jwks_ca_file = Some(dir.path().join("ca.pem"));
        let v = JwtVerifier::new(&s, tls()).await.unwrap();
        let token = sign(&key, &claims(json!({})));
        assert!(v.verify(&token).await.is_ok());
        // Without the test CA the same URL is refused: the certificate is checked.
        let mut untrusted = s.clone();
        untrusted.issuers[0].jwks_ca_file = None;
        let e = JwtVerifier::new(&untrusted, tls()).await.err().unwrap();
        assert!(e.contains("TLS"), "{e}");
        drop(stop);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let source = &v.jwks_sources()[0];
        assert!(source.refresh().await.is_err(), "the IdP is down");
        assert!(
            v.verify(&token).await.is_ok(),
            "the last good keys keep serving"
        );
    }
}
