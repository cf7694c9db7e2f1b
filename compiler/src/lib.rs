//! Portico's compiler: AsyncAPI documents in; located diagnostics, a routing plan and docs out.
//!
//! # Architecture invariant
//! The compiler reads the spec files it is given (and the files their `$ref`s name) and does no
//! other I/O: no network, no clock, no environment. It never fails as a whole: [`compile`] returns
//! whatever it could build together with every diagnostic, like a compiler front end.
//!
//! ```no_run
//! use portico_compiler::{compile, Options};
//! let out = compile(&["specs".into()], &Options::default());
//! for d in &out.diagnostics {
//!     eprintln!("{}: {}", d.code, d.message);
//! }
//! if let Some(plan) = &out.plan {
//!     println!("{}", plan.to_json());
//! }
//! ```
//!
//! The pipeline, per document: [`files`] (read, bounded) → [`source`] (parse with positions) →
//! [`refs`] (resolve `$ref`s) → [`schema`] (official JSON Schema) → [`rules::asyncapi`] →
//! [`model`] (lower 2.x/3.x into one shape) → [`rules::gateway`]; then across the folder
//! [`plan`] (routes, conflicts, hash).

pub mod compile;
pub mod diagnostics;
pub mod docs;
pub mod examples;
pub mod files;
pub mod model;
pub mod plan;
pub mod plan_diff;
pub mod refs;
pub mod render;
pub mod rules;
pub mod schema;
pub mod source;
pub mod suggest;
pub mod wso2;

pub use compile::{compile, Compilation, Options};
pub use diagnostics::{Diagnostic, Severity};
pub use plan::Plan;
