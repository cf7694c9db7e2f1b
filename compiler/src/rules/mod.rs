//! Rules beyond the JSON Schema, one module per family.
//!
//! * [`asyncapi`] — what the AsyncAPI specification requires of any document (2.x and 3.x).
//! * [`gateway`] — what Portico needs to serve a document (skipped by `compile --lint`).

pub mod asyncapi;
pub mod gateway;
