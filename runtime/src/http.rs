//! The little HTTP/1.1 both listeners speak: read one bounded request head, write one response.
//!
//! The WebSocket listener must decide (route, limits, backend) *before* it answers the upgrade, so
//! it reads the head itself rather than through a callback-style WebSocket acceptor; `httparse`
//! does the parsing.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Largest request head accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: String,
    /// The HTTP minor version: 1 for HTTP/1.1, 0 for HTTP/1.0.
    pub version: u8,
    /// Path without the query.
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
}

impl RequestHead {
    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header, by case-insensitive name, in order.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a comma-separated header contains a token (case-insensitive).
    pub fn header_has_token(&self, name: &str, token: &str) -> bool {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .flat_map(|(_, v)| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }
}

#[derive(Debug)]
pub enum HeadError {
    /// The peer closed or the read failed before a full head arrived.
    Io,
    /// Not HTTP, or a head larger than [`MAX_HEAD_BYTES`].
    Malformed(&'static str),
}

/// Reads one request head. Returns it and the bytes read past it (a client may send its first
/// WebSocket frame right behind the handshake).
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(RequestHead, Vec<u8>), HeadError> {
    read_until_parsed(stream, "request", parse_request_head).await
}

/// Parses a request head from the start of `buf`: `Ok(None)` while it is incomplete, else the head
/// and its length in bytes. A pure function, so that it can be fuzzed without sockets.
pub fn parse_request_head(buf: &[u8]) -> Result<Option<(RequestHead, usize)>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = req.parse(buf).map_err(|e| match e {
        httparse::Error::TooManyHeaders => HeadError::Malformed("too many headers"),
        _ => HeadError::Malformed("not an HTTP/1.1 request"),
    })?;
    let httparse::Status::Complete(len) = status else {
        return Ok(None);
    };
    let target = req.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p.to_string(), Some(q.to_string())),
        None => (target.to_string(), None),
    };
    let head = RequestHead {
        method: req.method.unwrap_or("").to_string(),
        version: req.version.unwrap_or(0),
        path,
        query,
        headers: owned_headers(req.headers),
    };
    Ok(Some((head, len)))
}

fn owned_headers(headers: &[httparse::Header<'_>]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|h| {
            (
                h.name.to_string(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect()
}

/// Reads until `parse` recognizes a complete head (it returns the head and its length), bounded by
/// [`MAX_HEAD_BYTES`]. Returns the head and the bytes read past it.
async fn read_until_parsed<S: AsyncRead + Unpin, T>(
    stream: &mut S,
    what: &'static str,
    mut parse: impl FnMut(&[u8]) -> Result<Option<(T, usize)>, HeadError>,
) -> Result<(T, Vec<u8>), HeadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| HeadError::Io)?;
        if n == 0 {
            return Err(HeadError::Io);
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some((head, len)) = parse(&buf)? {
            return Ok((head, buf[len..].to_vec()));
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Err(HeadError::Malformed(if what == "request" {
                "request head too large"
            } else {
                "response head too large"
            }));
        }
    }
}

/// Reason phrases for the statuses the gateway sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        101 => "Switching Protocols",
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        403 => "Forbidden",
        408 => "Request Timeout",
        404 => "Not Found",
        405 => "Method Not Allowed",
        410 => "Gone",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Error",
    }
}

/// Writes a complete response with a body and closes nothing (the caller drops the stream).
pub async fn write_response<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    extra_headers: &[(&str, String)],
    content_type: &str,
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in extra_headers {
        head.push_str(k);
        head.push_str(": ");
        head.push_str(v);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(body).await?;
    stream.flush().await
}

/// A plain-text error response, the body ending with a newline.
pub async fn write_text<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u16,
    extra_headers: &[(&str, String)],
    text: &str,
) -> std::io::Result<()> {
    let body = format!("{text}\n");
    write_response(
        stream,
        status,
        extra_headers,
        "text/plain; charset=utf-8",
        body.as_bytes(),
    )
    .await
}

/// A response head: status, headers, and the bytes read past it.
#[derive(Debug)]
pub struct ResponseHead {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response head (the backend's answer to an upgrade). Returns it and the bytes read
/// past it: a backend may send its first frames right behind the 101.
pub async fn read_response_head<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(ResponseHead, Vec<u8>), HeadError> {
    read_until_parsed(stream, "response", |buf| {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let status = response
            .parse(buf)
            .map_err(|_| HeadError::Malformed("not an HTTP/1.1 response"))?;
        let httparse::Status::Complete(len) = status else {
            return Ok(None);
        };
        let head = ResponseHead {
            status: response.code.unwrap_or(0),
            headers: owned_headers(response.headers),
        };
        Ok(Some((head, len)))
    })
    .await
}
