//! What a verified credential grants a connection: who it is (for revocation and throttling), its
//! key type (which endpoint), its scopes (which directions) and when it stops being valid.

use std::collections::BTreeSet;

use portico_compiler::plan::{MessageDirection, RouteSecurity};

/// Production or sandbox: picks the API's endpoint (WSO2's key types).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyType {
    #[default]
    Production,
    Sandbox,
}

/// The credential behind a connection. Holds identifiers, never the credential itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// `jwt:<iss>#<sub>` or `apikey:<name>`: for logs, metrics and throttling.
    pub credential_id: String,
    /// The API key's name, for revocation when it leaves the key file.
    pub key_name: Option<String>,
    pub key_type: KeyType,
    pub scopes: BTreeSet<String>,
    /// The API key's tier, for throttling.
    pub tier: Option<String>,
    /// Seconds since the Unix epoch after which the credential is invalid.
    pub expires_at: Option<u64>,
    pub sub: Option<String>,
    pub jti: Option<String>,
    /// A header carrying verified claims to the backend (`x-jwt-claims: {...}`).
    pub forwarded_header: Option<(String, String)>,
    /// Who the per-client limits count this credential as: `jwt:<iss>#sub:<sub>` (else
    /// `#azp:<azp>`) or `apikey:<name>`; `None` when the credential names no one. Names only,
    /// never the credential.
    pub client: Option<String>,
}

impl Grant {
    /// The grant of an open route: nobody in particular.
    pub fn anonymous() -> Grant {
        Grant {
            credential_id: "anonymous".to_string(),
            ..Grant::default()
        }
    }

    /// Whether this is the grant of a route whose credential is not checked (open topics,
    /// PROTOTYPED APIs, `--allow-unauthenticated`): no scope applies to it.
    pub fn is_anonymous(&self) -> bool {
        self.credential_id == "anonymous"
    }

    /// The key of this connection's per-client limits (buckets, connection and handshake caps):
    /// the credential's identity, or the peer's address when there is none (open routes, a token
    /// without `sub` or `azp`). Prefixed by kind, so a key name cannot pose as an address.
    pub fn client_key(&self, peer: std::net::IpAddr) -> std::sync::Arc<str> {
        match &self.client {
            Some(client) => std::sync::Arc::from(client.as_str()),
            None => std::sync::Arc::from(format!("addr:{peer}")),
        }
    }

    fn holds(&self, scopes: &[String]) -> bool {
        scopes.iter().all(|s| self.scopes.contains(s))
    }

    /// The handshake rule: the scopes of at least one operation of the route (or none needed).
    pub fn may_connect(&self, security: &RouteSecurity) -> bool {
        security.operations.is_empty()
            || security.operations.iter().any(|op| self.holds(&op.scopes))
    }

    /// The message rule: a direction with operations needs the scopes of one of them; a direction
    /// the spec declares no operation for is not restricted here (message validation decides).
    pub fn may_send(&self, security: &RouteSecurity, direction: MessageDirection) -> bool {
        let mut ops = security
            .operations
            .iter()
            .filter(|op| op.direction == direction)
            .peekable();
        ops.peek().is_none() || ops.any(|op| self.holds(&op.scopes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_compiler::plan::OperationScopes;

    fn security() -> RouteSecurity {
        RouteSecurity {
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
        }
    }

    fn with(scopes: &[&str]) -> Grant {
        Grant {
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            ..Grant::default()
        }
    }

    #[test]
    fn the_client_key_is_the_identity_else_the_address() {
        let peer: std::net::IpAddr = "192.0.2.7".parse().unwrap();
        assert_eq!(&*Grant::anonymous().client_key(peer), "addr:192.0.2.7");
        let named = Grant {
            client: Some("apikey:mobile".into()),
            ..Grant::default()
        };
        assert_eq!(&*named.client_key(peer), "apikey:mobile");
    }

    #[test]
    fn connecting_needs_the_scopes_of_one_operation() {
        assert!(!with(&[]).may_connect(&security()));
        assert!(!with(&["other"]).may_connect(&security()));
        assert!(with(&["chat:read"]).may_connect(&security()));
        assert!(with(&[]).may_connect(&RouteSecurity::default()));
    }

    #[test]
    fn each_direction_needs_its_own_scopes() {
        let reader = with(&["chat:read"]);
        assert!(reader.may_send(&security(), MessageDirection::ServerToClient));
        assert!(!reader.may_send(&security(), MessageDirection::ClientToServer));
        let both = with(&["chat:read", "chat:write"]);
        assert!(both.may_send(&security(), MessageDirection::ClientToServer));
        let mut only_down = security();
        only_down.operations.remove(0);
        assert!(reader.may_send(&only_down, MessageDirection::ClientToServer));
    }
}
