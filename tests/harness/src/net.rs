//! Loopback networking for tests: free ports, readiness polling and a tiny
//! blocking HTTP/1.1 client (enough for emulator management APIs).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::error::{HarnessError, Result};

/// Delay between readiness polls; short, as it only bounds start-up latency.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A port on 127.0.0.1 that was free a moment ago (bind to port 0, read the
/// port, release it). Another process may grab it before the caller binds it,
/// so starters that use it retry on "address in use".
pub fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).map_err(|source| HarnessError::FreePort { source })?;
    let addr = listener
        .local_addr()
        .map_err(|source| HarnessError::FreePort { source })?;
    Ok(addr.port())
}

/// Polls until something accepts TCP connections at `addr`, up to `timeout`.
pub fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> Result<()> {
    let started = Instant::now();
    loop {
        let attempt = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
        match attempt {
            Ok(_) => return Ok(()),
            Err(error) if started.elapsed() >= timeout => {
                return Err(HarnessError::TcpNotReady {
                    addr,
                    waited: started.elapsed(),
                    last_error: error.to_string(),
                });
            }
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// A response from [`http_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as (lossy) UTF-8, for assertions and error messages.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header called `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// One blocking HTTP/1.1 request to a loopback server, `Connection: close`.
///
/// `headers` are sent as given (add `Content-Type` yourself); `Host` and
/// `Content-Length` are added. Meant for management APIs and smoke checks,
/// not for driving the system under test (use the real SDKs for that).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<HttpResponse> {
    let transport = |source: std::io::Error| HarnessError::Http {
        method: method.to_owned(),
        addr,
        path: path.to_owned(),
        source,
    };
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(transport)?;
    // Upper bounds only: a wedged emulator fails the test instead of hanging it.
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .map_err(transport)?;
    stream
        .set_write_timeout(Some(Duration::from_secs(30)))
        .map_err(transport)?;

    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(name);
        request.push_str(": ");
        request.push_str(value);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).map_err(transport)?;
    stream.write_all(body).map_err(transport)?;

    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(transport)?;
    parse_response(&raw).map_err(|problem| HarnessError::HttpMalformed {
        method: method.to_owned(),
        addr,
        path: path.to_owned(),
        problem,
    })
}

fn parse_response(raw: &[u8]) -> Result<HttpResponse, String> {
    let head_end = raw
        .windows(4)
        .position(|window| window == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {} bytes", raw.len()))?;
    let head = std::str::from_utf8(&raw[..head_end]).map_err(|e| format!("headers: {e}"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let rest = &raw[head_end + 4..];
    let chunked = headers
        .iter()
        .any(|(name, value)| name == "transfer-encoding" && value.eq_ignore_ascii_case("chunked"));
    let body = if chunked {
        dechunk(rest)?
    } else {
        rest.to_vec()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest
            .windows(2)
            .position(|window| window == b"\r\n")
            .ok_or("chunk size line not terminated")?;
        let size_text = std::str::from_utf8(&rest[..line_end]).map_err(|e| e.to_string())?;
        let size_hex = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_hex, 16)
            .map_err(|e| format!("chunk size {size_hex:?}: {e}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        let chunk = rest.get(..size).ok_or("chunk shorter than its size")?;
        body.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or("chunk not followed by CRLF")?;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parses_content_length_response() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("text/plain"));
        assert_eq!(response.body, b"ok");
    }

    #[test]
    fn dechunks_chunked_response() {
        let raw = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        let response = parse_response(raw).unwrap();
        assert_eq!(response.status, 404);
        assert_eq!(response.text(), "abcde");
    }

    #[test]
    fn rejects_response_without_header_end() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
