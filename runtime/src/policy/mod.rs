//! Traffic policies from the spec: who may connect, what a handshake must carry, how fast
//! messages may flow, and what they must look like.
pub mod handshake_contract;
pub mod message;
pub mod origin;
pub mod throttle;
pub mod validate;
