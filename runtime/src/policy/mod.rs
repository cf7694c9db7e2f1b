//! Policies the gateway enforces for a route: who may connect (credentials, scopes, key type)
//! and what a live connection may keep doing.
//!
//! The spec (through the plan's `routes[].security`) says what a route requires; the runtime
//! configuration ([`crate::settings`]) says how to verify it.

pub mod apikeys;
pub mod auth;
pub mod credential;
pub mod denylist;
pub mod grant;
pub mod jwt;
pub mod watched;
