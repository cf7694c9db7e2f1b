//! A handshake refusal as a value: the HTTP status, extra headers and a plain-text reason the
//! client gets instead of `101 Switching Protocols`.
//!
//! Every stage of the handshake returns `Result<_, Refusal>`, so the order of the checks reads as
//! one sequence of `?` in [`crate::server`], and exactly one place writes the response.
//!
//! ```
//! use portico_runtime::refusal::Refusal;
//! let r = Refusal::new(503, "the gateway is at its limit of 10 connections").header("retry-after", "5");
//! assert_eq!(r.status, 503);
//! ```

/// Why a handshake was not answered with 101.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// Extra response headers (lower-case names), e.g. `allow`, `retry-after`, `www-authenticate`.
    pub headers: Vec<(&'static str, String)>,
    /// A short plain-text reason for people; never a secret, never a backend address.
    pub text: String,
}

impl Refusal {
    pub fn new(status: u16, text: impl Into<String>) -> Refusal {
        Refusal {
            status,
            headers: Vec::new(),
            text: text.into(),
        }
    }

    pub fn header(mut self, name: &'static str, value: impl Into<String>) -> Refusal {
        self.headers.push((name, value.into()));
        self
    }
}
