//! Policies the gateway enforces for a route: who may connect (credentials, scopes, key type,
//! origins, the ws binding's handshake contract) and what a live connection may keep doing
//! (throttling, message validation).
//!
//! The spec (through the plan's routes) says what a route requires; the runtime configuration
//! ([`crate::settings`]) says how to verify it (keys, secrets, tiers).

pub mod apikeys;
pub mod auth;
pub mod credential;
pub mod credential_failures;
pub mod denylist;
pub mod grant;
pub mod handshake_contract;
pub mod jwt;
pub mod live_credentials;
pub mod message;
pub mod origin;
pub mod throttle;
pub mod validate;
pub mod watched;
