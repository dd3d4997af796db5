//! Reading a request head off a connection, bounded in size and time, and parsing it
//! (RFC 9112 §2-§5).

use std::io::{self, Read};
use std::time::{Duration, Instant};
use tapstack::TcpStream;

/// Largest request line plus headers.
pub const MAX_HEAD: usize = 8 * 1024;
/// Longest a started head may take to arrive.
const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor: u8,
    pub headers: Vec<(String, String)>,
}

/// Why no head came.
#[derive(Debug)]
pub enum HeadError {
    /// The peer closed or went quiet between requests.
    Idle,
    /// A head started but did not complete in time (408).
    TimedOut,
    /// Over [`MAX_HEAD`] (431).
    TooLarge,
    Io(io::Error),
}

/// Buffers a connection's input; bytes after one head stay for the next (pipelining).
#[derive(Default)]
pub struct HeadReader {
    buf: Vec<u8>,
}

impl HeadReader {
    /// The next head, without its final empty line.
    pub fn next(&mut self, mut s: &TcpStream) -> Result<Vec<u8>, HeadError> {
        let start = Instant::now();
        let mut chunk = [0u8; 4096];
        loop {
            // Empty lines before a request line are ignored (RFC 9112 §2.2).
            let blank = self.buf.iter().take_while(|b| matches!(b, b'\r' | b'\n'));
            let blank = blank.count();
            self.buf.drain(..blank);
            match head_end(&self.buf) {
                Some(end) if end <= MAX_HEAD => return Ok(self.buf.drain(..end).collect()),
                Some(_) => return Err(HeadError::TooLarge),
                None => {}
            }
            if self.buf.len() > MAX_HEAD {
                return Err(HeadError::TooLarge);
            }
            if !self.buf.is_empty() && start.elapsed() > HEAD_TIMEOUT {
                return Err(HeadError::TimedOut);
            }
            match s.read(&mut chunk) {
                Ok(0) => return Err(HeadError::Idle),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && self.buf.is_empty() => {
                    return Err(HeadError::Idle)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Err(HeadError::TimedOut),
                Err(e) => return Err(HeadError::Io(e)),
            }
        }
    }
}

/// The length of the head including the empty line that ends it, if it is all there.
fn head_end(buf: &[u8]) -> Option<usize> {
    buf.iter().enumerate().find_map(|(i, &b)| {
        if b != b'\n' {
            return None;
        }
        match buf.get(i + 1..) {
            Some([b'\n', ..]) => Some(i + 2),
            Some([b'\r', b'\n', ..]) => Some(i + 3),
            _ => None,
        }
    })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses a head; `Err` carries the status to answer with.
pub fn parse(head: &[u8]) -> Result<Request, u16> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let line = lines.next().ok_or(400u16)?;
    let [method, target, version] = line.split(' ').collect::<Vec<_>>()[..] else {
        return Err(400);
    };
    if !is_token(method)
        || !target.starts_with('/')
        || target.bytes().any(|b| b <= b' ' || b == 0x7f)
    {
        return Err(400);
    }
    let minor = match version {
        "HTTP/1.1" => 1,
        "HTTP/1.0" => 0,
        v if v.len() == 8 && v.starts_with("HTTP/") && v.as_bytes()[6] == b'.' => return Err(505),
        _ => return Err(400),
    };
    let mut headers = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        // No obsolete line folding, no space before the colon (RFC 9112 §5.1-§5.2).
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        if !is_token(name) {
            return Err(400);
        }
        let value = value.trim_matches([' ', '\t']);
        if value.chars().any(|c| c.is_ascii_control() && c != '\t') {
            return Err(400);
        }
        headers.push((name.to_string(), value.to_string()));
    }
    let req = Request {
        method: method.to_string(),
        target: target.to_string(),
        minor,
        headers,
    };
    // HTTP/1.1 requests carry exactly one Host (RFC 9112 §3.2).
    if minor == 1 && req.values("host").count() != 1 {
        return Err(400);
    }
    Ok(req)
}

impl Request {
    /// Every value of the header `name`.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn has_token(&self, header: &str, token: &str) -> bool {
        self.values(header)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    /// Whether the connection ends after this request: `Connection: close`, or HTTP/1.0
    /// without `keep-alive`.
    pub fn wants_close(&self) -> bool {
        self.has_token("connection", "close")
            || (self.minor == 0 && !self.has_token("connection", "keep-alive"))
    }

    /// Whether a body follows the head; `Err(400)` for a malformed or conflicting length.
    pub fn has_body(&self) -> Result<bool, u16> {
        if self.values("transfer-encoding").next().is_some() {
            return Ok(true);
        }
        let mut len = None;
        for v in self.values("content-length").flat_map(|v| v.split(',')) {
            let v = v.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(400);
            }
            let n: u64 = v.parse().map_err(|_| 400u16)?;
            if len.is_some_and(|l| l != n) {
                return Err(400);
            }
            len = Some(n);
        }
        Ok(len.unwrap_or(0) > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request() {
        let r = parse(b"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nConnection: Keep-Alive, close\r\n")
            .unwrap();
        assert_eq!(
            (r.method.as_str(), r.target.as_str(), r.minor),
            ("GET", "/a%20b?x=1", 1)
        );
        assert!(r.wants_close());
        assert!(parse(b"GET / HTTP/1.0").unwrap().wants_close());
        assert!(!parse(b"GET / HTTP/1.1\nHost: h").unwrap().wants_close());
    }

    #[test]
    fn rejects_malformed_heads() {
        for head in [
            &b"GET / HTTP/1.1"[..],
            b"GET  / HTTP/1.1\r\nHost: h",
            b"GET / HTTP/1.1\r\nHost : h",
            b"GET / HTTP/1.1\r\nHost: h\r\n folded",
            b"GET / HTTP/1.1\r\nHost: h\r\nHost: i",
            b"GET http://h/ HTTP/1.1\r\nHost: h",
            b"G@T / HTTP/1.1\r\nHost: h",
            b"GET / HTTQ/1.1\r\nHost: h",
        ] {
            assert_eq!(
                parse(head).unwrap_err(),
                400,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
        assert_eq!(parse(b"GET / HTTP/2.0").unwrap_err(), 505);
    }

    #[test]
    fn finds_the_end_of_a_head() {
        assert_eq!(head_end(b"GET / HTTP/1.0\r\n\r\nrest"), Some(18));
        assert_eq!(head_end(b"GET / HTTP/1.0\n\nrest"), Some(16));
        assert_eq!(head_end(b"GET / HTTP/1.0\r\nHost: x\r\n"), None);
    }

    #[test]
    fn checks_content_length() {
        let r = |h: &[u8]| parse(h).unwrap().has_body();
        assert_eq!(r(b"GET / HTTP/1.0\r\nContent-Length: 0"), Ok(false));
        assert_eq!(r(b"GET / HTTP/1.0\r\nContent-Length: 5"), Ok(true));
        assert_eq!(r(b"GET / HTTP/1.0\r\nContent-Length: 5, 6"), Err(400));
        assert_eq!(r(b"GET / HTTP/1.0\r\nContent-Length: -1"), Err(400));
    }
}
