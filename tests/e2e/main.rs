//! End-to-end tests: the real `runtime` binary as a child process, real WebSocket clients and
//! backends, on 127.0.0.1 with ephemeral ports (see [`harness`]).
//!
//! One test binary for all of them (each binary links the whole dependency graph); it belongs to
//! the `portico-runtime` package so that Cargo builds the `runtime` binary first and tells us
//! where it is (`CARGO_BIN_EXE_runtime`). Run with `cargo test -p portico-runtime --test e2e`
//! (the Python interop and browser tests need `scripts/setup-test-deps.sh` first).

mod harness;

mod admin;
mod auth;
mod backend_url;
mod browser;
mod builtin;
mod faults;
mod lifecycle_reload;
mod python_interop;
mod redaction;
mod relay;
mod reload;
mod routing;
mod shutdown;
mod tls;
mod traffic;
