//! Fuzzes what the gateway does with a client's request head before it connects a backend: the
//! HTTP head parser, the RFC 6455 checks, the route lookup, the backend URL and the forwarding
//! headers. Nothing may panic, and what reaches a backend must be well formed (the checks are in
//! `handshake_check.rs`, which the runtime's unit tests replay on the seeds and findings).
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../handshake_check.rs");

fuzz_target!(|data: &[u8]| check_handshake(data));
