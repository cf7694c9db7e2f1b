//! The runtime configuration file (`--config FILE`, YAML or TOML) with `PORTICO_*` environment
//! overrides: the deployment material the spec must never hold (JWKS locations, secrets' files,
//! API key files, tiers).
//!
//! The file is read into one JSON-like tree; every variable named `PORTICO_<A>__<B>__<C>` then
//! sets the key `a.b.c` (the name is lower-cased; `__` separates levels, a single `_` stays part
//! of the key, so `PORTICO_AUTH__JWT__SKEW_SECONDS=30` sets `auth.jwt.skew_seconds`). A value that
//! parses as JSON (`30`, `true`, `["a","b"]`) is taken as such, anything else as a string.
//! Variables without `__` (`PORTICO_LOG`) are not settings.
//!
//! Each section is read by its owner with [`Settings::section`] into a typed struct that denies
//! unknown fields; an unknown key is an error naming its full path (`auth.jwt.skwe_seconds`), and
//! so is an unknown top-level section.
//!
//! Parsers: `toml` for TOML and `serde-saphyr` for YAML (a maintained, pure-Rust YAML 1.2 parser
//! with serde support; `serde_yaml` is unmaintained).
//!
//! ```
//! use portico_runtime::settings::Settings;
//! let yaml = "auth:\n  jwt:\n    skew_seconds: 5\n    issuers: []\n";
//! let s = Settings::from_text(yaml, "yaml", std::iter::empty()).unwrap();
//! let auth: portico_runtime::settings::AuthSettings = s.section("auth").unwrap().unwrap();
//! assert_eq!(auth.jwt.unwrap().skew_seconds, 5);
//! ```

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

/// The top-level sections the file may hold. A section's owner adds its name here.
pub const SECTIONS: [&str; 3] = ["auth", "tls", "throttling"];

const ENV_PREFIX: &str = "PORTICO_";

/// The parsed configuration: the file's tree with the environment applied.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    tree: Map<String, Value>,
    /// Where the file is, for resolving relative paths in it (`.` without a file).
    base: PathBuf,
}

impl Settings {
    /// Reads `path` (by extension: `.toml`, else YAML) and the process environment. Without a
    /// path only the environment counts.
    pub fn load(path: Option<&Path>) -> Result<Settings, String> {
        let env = std::env::vars();
        let Some(path) = path else {
            return Settings::from_text("", "yaml", env);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read --config {}: {e}", path.display()))?;
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => "toml",
            _ => "yaml",
        };
        let mut settings = Settings::from_text(&text, format, env)
            .map_err(|e| format!("--config {}: {e}", path.display()))?;
        settings.base = path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        Ok(settings)
    }

    /// Parses `text` as `format` (`yaml` or `toml`) and applies the `PORTICO_*__*` variables of
    /// `env`.
    pub fn from_text(
        text: &str,
        format: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Settings, String> {
        let root: Value = if text.trim().is_empty() {
            Value::Object(Map::new())
        } else if format == "toml" {
            toml::from_str(text).map_err(|e| format!("not valid TOML: {e}"))?
        } else {
            serde_saphyr::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?
        };
        let mut tree = match root {
            Value::Object(map) => map,
            Value::Null => Map::new(),
            _ => return Err("the configuration must be a mapping of sections".to_string()),
        };
        for (name, value) in env {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if !rest.contains("__") {
                continue;
            }
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.iter().any(String::is_empty) {
                return Err(format!("{name}: empty key between `__` separators"));
            }
            let parsed = serde_json::from_str(&value).unwrap_or(Value::String(value));
            set_path(&mut tree, &path, parsed).map_err(|e| format!("{name}: {e}"))?;
        }
        if let Some(unknown) = tree.keys().find(|k| !SECTIONS.contains(&k.as_str())) {
            return Err(format!(
                "unknown section `{unknown}` (known: {})",
                SECTIONS.join(", ")
            ));
        }
        Ok(Settings {
            tree,
            base: PathBuf::from("."),
        })
    }

    /// The section `name` as `T`, `None` when absent. Errors name the full key path.
    pub fn section<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, String> {
        let Some(value) = self.tree.get(name) else {
            return Ok(None);
        };
        serde_path_to_error::deserialize(value.clone())
            .map(Some)
            .map_err(|e| {
                let path = e.path().to_string();
                let at = if path == "." {
                    name.to_string()
                } else {
                    format!("{name}.{path}")
                };
                format!("{at}: {}", e.into_inner())
            })
    }

    /// A path from the file, relative to the file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base.join(path)
        }
    }

    /// The `auth` section, defaulted when absent.
    pub fn auth(&self) -> Result<AuthSettings, String> {
        let mut auth: AuthSettings = self.section("auth")?.unwrap_or_default();
        auth.resolve_paths(self);
        Ok(auth)
    }
}

fn set_path(tree: &mut Map<String, Value>, path: &[String], value: Value) -> Result<(), String> {
    let (last, parents) = path
        .split_last()
        .expect("split on __ gives at least one part");
    let mut node = tree;
    for key in parents {
        let entry = node
            .entry(key.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        node = match entry {
            Value::Object(map) => map,
            _ => return Err(format!("`{key}` is not a section")),
        };
    }
    node.insert(last.clone(), value);
    Ok(())
}

/// `auth`: how credentials are verified.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Serve routes that require a credential even without a verifier (logged at every start).
    #[serde(default)]
    pub allow_unauthenticated: bool,
    pub jwt: Option<JwtSettings>,
    pub api_keys: Option<ApiKeySettings>,
    /// A watched file of revoked JWT `jti` and `sub` values.
    pub denylist: Option<DenylistSettings>,
}

impl AuthSettings {
    fn resolve_paths(&mut self, settings: &Settings) {
        if let Some(jwt) = &mut self.jwt {
            for issuer in &mut jwt.issuers {
                for file in [&mut issuer.jwks_file, &mut issuer.hmac_secret_file]
                    .into_iter()
                    .flatten()
                {
                    *file = settings.resolve(file);
                }
            }
        }
        if let Some(keys) = &mut self.api_keys {
            keys.file = settings.resolve(&keys.file);
        }
        if let Some(deny) = &mut self.denylist {
            deny.file = settings.resolve(&deny.file);
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSettings {
    /// Leeway for `exp` and `nbf`, and the grace before a live connection is closed at `exp`.
    #[serde(default = "default_skew")]
    pub skew_seconds: u64,
    /// Largest accepted token, in bytes.
    #[serde(default = "default_max_token")]
    pub max_token_bytes: usize,
    pub issuers: Vec<IssuerSettings>,
    /// A claim whose value marks a sandbox token (WSO2: `keytype: SANDBOX`).
    pub sandbox_claim: Option<ClaimMatch>,
    /// Verified claims forwarded to the backend as JSON in one header.
    pub forward_claims: Option<ForwardClaims>,
}

fn default_skew() -> u64 {
    60
}

fn default_max_token() -> usize {
    8 * 1024
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssuerSettings {
    /// The exact `iss` value.
    pub issuer: String,
    /// Accepted `aud` values; empty accepts tokens without an audience check.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// The algorithm allowlist (`RS256`, `PS256`, `ES256`, `EdDSA`, `HS256`, ...).
    pub algorithms: Vec<String>,
    /// A JWKS document on disk (re-read when it changes).
    pub jwks_file: Option<PathBuf>,
    /// A JWKS served over https (cached, refreshed in the background).
    pub jwks_url: Option<String>,
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh_seconds: u64,
    /// A PEM CA bundle to trust for `jwks_url` besides the public roots.
    pub jwks_ca_file: Option<PathBuf>,
    /// An HMAC secret: the bytes of this file (trailing newline trimmed) ...
    pub hmac_secret_file: Option<PathBuf>,
    /// ... or of this environment variable.
    pub hmac_secret_env: Option<String>,
    /// The claim holding scopes: a space-separated string or a list (`scope`, else `scp`).
    pub scope_claim: Option<String>,
    /// Accept this issuer's tokens that carry no `exp`. Off by default (fail closed): such a
    /// token would be valid forever and its connections never closed for expiry; with this on,
    /// only the denylist ends them.
    #[serde(default)]
    pub allow_tokens_without_exp: bool,
}

fn default_jwks_refresh() -> u64 {
    300
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimMatch {
    pub claim: String,
    pub value: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardClaims {
    pub header: String,
    pub claims: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySettings {
    pub file: PathBuf,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DenylistSettings {
    pub file: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn yaml_and_toml_read_the_same_settings() {
        let yaml = "auth:\n  jwt:\n    skew_seconds: 7\n    issuers:\n      - issuer: https://idp\n        algorithms: [RS256]\n";
        let toml = "[auth.jwt]\nskew_seconds = 7\n[[auth.jwt.issuers]]\nissuer = \"https://idp\"\nalgorithms = [\"RS256\"]\n";
        for (text, format) in [(yaml, "yaml"), (toml, "toml")] {
            let s = Settings::from_text(text, format, env(&[])).unwrap();
            let jwt = s.auth().unwrap().jwt.unwrap();
            assert_eq!(jwt.skew_seconds, 7, "{format}");
            assert_eq!(jwt.issuers[0].algorithms, vec!["RS256"]);
            assert_eq!(jwt.max_token_bytes, 8 * 1024, "defaults apply");
        }
    }

    #[test]
    fn environment_variables_set_nested_keys_and_win_over_the_file() {
        let s = Settings::from_text(
            "auth:\n  jwt:\n    skew_seconds: 7\n    issuers: []\n",
            "yaml",
            env(&[
                ("PORTICO_AUTH__JWT__SKEW_SECONDS", "30"),
                ("PORTICO_AUTH__API_KEYS__FILE", "/etc/keys.toml"),
                ("PORTICO_LOG", "debug"),
                ("OTHER__X", "1"),
            ]),
        )
        .unwrap();
        let auth = s.auth().unwrap();
        assert_eq!(auth.jwt.unwrap().skew_seconds, 30);
        assert_eq!(auth.api_keys.unwrap().file, PathBuf::from("/etc/keys.toml"));
    }

    #[test]
    fn unknown_keys_are_errors_with_their_path() {
        let s = Settings::from_text(
            "auth:\n  jwt:\n    skwe_seconds: 7\n    issuers: []\n",
            "yaml",
            env(&[]),
        )
        .unwrap();
        let e = s.auth().unwrap_err();
        assert!(e.starts_with("auth.jwt"), "{e}");
        assert!(e.contains("skwe_seconds"), "{e}");

        let e = Settings::from_text("auht: {}\n", "yaml", env(&[])).unwrap_err();
        assert!(e.contains("unknown section `auht`"), "{e}");

        let e = Settings::from_text("", "yaml", env(&[("PORTICO_AUTHX__A", "1")])).unwrap_err();
        assert!(e.contains("authx"), "{e}");
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(Settings::from_text("auth: [1", "yaml", env(&[])).is_err());
        assert!(Settings::from_text("[auth", "toml", env(&[])).is_err());
        assert!(Settings::from_text("- 1\n", "yaml", env(&[])).is_err());
        assert!(Settings::from_text("", "yaml", env(&[("PORTICO_AUTH____X", "1")])).is_err());
        let s = Settings::from_text("auth: 3\n", "yaml", env(&[])).unwrap();
        assert!(s.auth().is_err());
        let e = Settings::from_text(
            "auth:\n  allow_unauthenticated: true\n",
            "yaml",
            env(&[("PORTICO_AUTH__ALLOW_UNAUTHENTICATED__X", "1")]),
        )
        .unwrap_err();
        assert!(e.contains("not a section"), "{e}");
    }

    #[test]
    fn a_generic_section_reads_into_the_callers_type() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Throttling {
            tiers: std::collections::BTreeMap<String, String>,
        }
        let s = Settings::from_text(
            "[throttling.tiers]\nGold = \"5000/min\"\n",
            "toml",
            env(&[("PORTICO_THROTTLING__TIERS__SILVER", "2000/min")]),
        )
        .unwrap();
        let t: Throttling = s.section("throttling").unwrap().unwrap();
        assert_eq!(t.tiers["Gold"], "5000/min", "file keys keep their case");
        assert_eq!(t.tiers["silver"], "2000/min");
        assert!(s.section::<Throttling>("tls").unwrap().is_none());
    }

    #[test]
    fn relative_paths_resolve_against_the_files_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("portico.yaml");
        std::fs::write(&path, "auth:\n  api_keys:\n    file: keys.toml\n").unwrap();
        let s = Settings::load(Some(&path)).unwrap();
        assert_eq!(
            s.auth().unwrap().api_keys.unwrap().file,
            dir.path().join("keys.toml")
        );
    }
}
