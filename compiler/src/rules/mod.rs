//! Rules beyond the JSON Schema, one module per family.
//!
//! * [`asyncapi`] — what the AsyncAPI specification requires of any document (2.x and 3.x).
//! * [`bindings`] — protocol bindings against the binding schemas of `@asyncapi/specs`.
//! * [`v3_links`] — AsyncAPI 3 links: operations, replies, channels and servers refer to each other
//!   by Reference Objects, each within what it links to.
//! * [`gateway`] — what Portico needs to serve a document (skipped by `compile --lint`).

pub mod asyncapi;
pub mod bindings;
pub mod gateway;
pub mod v3_links;
