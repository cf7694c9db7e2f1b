//! API keys: a watched TOML file holding only SHA-256 hashes of the keys, with per key a name, a
//! key type, the APIs it may call and a tier. A key removed from the file stops working at once.
//!
//! ```toml
//! [[keys]]
//! name = "mobile-app"
//! sha256 = "<hex of sha256(key)>"
//! type = "production"          # or "sandbox"
//! apis = ["chat-api"]          # API names from the plan; "*" for every API
//! tier = "Gold"                # optional, for throttling
//! ```
//!
//! A new entry, with its key printed once: see `docs/security.md`.

use std::collections::HashMap;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::policy::grant::{Grant, KeyType};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    #[serde(default)]
    keys: Vec<ApiKey>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub name: String,
    sha256: String,
    #[serde(rename = "type", default)]
    pub key_type: KeyType,
    pub apis: Vec<String>,
    pub tier: Option<String>,
}

/// The keys of the file, by hash.
#[derive(Debug, Default, Clone)]
pub struct ApiKeys {
    by_hash: HashMap<String, ApiKey>,
}

impl ApiKeys {
    pub fn parse(text: &str) -> Result<ApiKeys, String> {
        let file: KeyFile = toml::from_str(text).map_err(|e| format!("not a key file: {e}"))?;
        let mut by_hash = HashMap::new();
        for key in file.keys {
            let hash = key.sha256.to_ascii_lowercase();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "key `{}`: sha256 must be 64 hex digits (the hash, never the key)",
                    key.name
                ));
            }
            if key.apis.is_empty() {
                return Err(format!(
                    "key `{}`: `apis` is empty (use [\"*\"] for all)",
                    key.name
                ));
            }
            if by_hash.insert(hash, key.clone()).is_some() {
                return Err(format!("key `{}`: the same hash appears twice", key.name));
            }
        }
        Ok(ApiKeys { by_hash })
    }

    /// The hash stored for a key.
    pub fn hash(key: &str) -> String {
        format!("{:x}", Sha256::digest(key.as_bytes()))
    }

    /// The grant of `key` for the API named `api`, or why not.
    pub fn verify(&self, key: &str, api: &str) -> Result<Grant, String> {
        let entry = self
            .by_hash
            .get(&ApiKeys::hash(key))
            .ok_or("the API key is not known")?;
        if !entry.apis.iter().any(|a| a == "*" || a == api) {
            return Err(format!(
                "the API key `{}` is not allowed for this API",
                entry.name
            ));
        }
        Ok(Grant {
            credential_id: format!("apikey:{}", entry.name),
            key_name: Some(entry.name.clone()),
            key_type: entry.key_type,
            tier: entry.tier.clone(),
            client: Some(format!("apikey:{}", entry.name)),
            ..Grant::default()
        })
    }

    /// Whether the key named `name` is still in the file and allowed for `api` (revocation).
    pub fn still_grants(&self, name: &str, api: &str) -> bool {
        self.by_hash
            .values()
            .any(|k| k.name == name && k.apis.iter().any(|a| a == "*" || a == api))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_hash.values().map(|k| k.name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(key: &str) -> String {
        format!(
            "[[keys]]\nname = \"app\"\nsha256 = \"{}\"\ntype = \"sandbox\"\napis = [\"chat-api\"]\ntier = \"Gold\"\n",
            ApiKeys::hash(key)
        )
    }

    #[test]
    fn a_known_key_grants_its_type_and_tier_for_its_apis_only() {
        let keys = ApiKeys::parse(&file("s3cret-key")).unwrap();
        let g = keys.verify("s3cret-key", "chat-api").unwrap();
        assert_eq!(g.key_type, KeyType::Sandbox);
        assert_eq!(g.tier.as_deref(), Some("Gold"));
        assert_eq!(g.key_name.as_deref(), Some("app"));
        assert!(keys.verify("s3cret-key", "other-api").is_err());
        assert!(keys
            .verify("guess", "chat-api")
            .unwrap_err()
            .contains("not known"));
    }

    #[test]
    fn the_file_holds_hashes_only() {
        let e = ApiKeys::parse(&file("k").replace(&ApiKeys::hash("k"), "plain-key")).unwrap_err();
        assert!(e.contains("64 hex digits"), "{e}");
        assert!(
            !e.contains("plain-key"),
            "the error must not echo what may be a key"
        );
        assert!(ApiKeys::parse("[[keys]]\nname = \"x\"\n").is_err());
        assert!(ApiKeys::parse(&file("k").replace("[\"chat-api\"]", "[]")).is_err());
        let twice = format!("{}{}", file("k"), file("k"));
        assert!(ApiKeys::parse(&twice).is_err());
        assert!(ApiKeys::parse("").unwrap().names().next().is_none());
    }
}
