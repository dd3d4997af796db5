//! One connection: requests in a loop while keep-alive lasts.

use crate::files::{self, Resolved};
use crate::request::{self, HeadError, HeadReader, Request};
use crate::response::{self, Head};
use crate::stats::HttpStats;
use std::fs::File;
use std::io::{self, Read};
use std::net::Shutdown;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tapstack::TcpStream;

/// How long an idle keep-alive connection (or a stalled read) is kept.
const IDLE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a write may wait for a client that does not read.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long, and how much, is read and discarded after the last response.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
const DRAIN_MAX: usize = 256 * 1024;

pub struct Server {
    pub root: PathBuf,
    pub stats: HttpStats,
}

/// Serves `s` until the client or a response closes it.
pub fn serve(server: &Server, s: &TcpStream) -> io::Result<()> {
    // Each response leaves whole in one write, so Nagle has nothing to coalesce and could only
    // hold a short tail back (nginx sets TCP_NODELAY on keep-alive connections too).
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IDLE_TIMEOUT))?;
    s.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut reader = HeadReader::default();
    loop {
        let code = match reader.next(s) {
            Ok(head) => match request::parse(&head) {
                Ok(req) => {
                    server.stats.requests.fetch_add(1, Relaxed);
                    if respond(server, s, &req)? {
                        continue;
                    }
                    return finish(s);
                }
                Err(code) => code,
            },
            Err(HeadError::Idle) => return Ok(()),
            Err(HeadError::TimedOut) => 408,
            Err(HeadError::TooLarge) => 431,
            Err(HeadError::Io(e)) => return Err(e),
        };
        server.stats.requests.fetch_add(1, Relaxed);
        error(server, s, code, &[], false, true)?;
        return finish(s);
    }
}

/// Answers one request; true if the connection stays open.
fn respond(server: &Server, s: &TcpStream, req: &Request) -> io::Result<bool> {
    let head_only = req.method == "HEAD";
    let has_body = match req.has_body() {
        Ok(b) => b,
        Err(code) => return error(server, s, code, &[], head_only, true).map(|()| false),
    };
    // A request body is never read, so the connection cannot carry another request.
    let close = req.wants_close() || has_body;
    if !matches!(req.method.as_str(), "GET" | "HEAD") {
        let allow = [("Allow", "GET, HEAD")];
        return error(server, s, 405, &allow, false, close).map(|()| !close);
    }
    match files::resolve(&server.root, &req.target) {
        Ok(Resolved::File(path, len)) => match File::open(&path) {
            Ok(file) => {
                let head = Head {
                    code: 200,
                    content_type: files::content_type(&path),
                    length: len,
                    close,
                    extra: &[],
                };
                server.stats.status(200);
                let sent = response::send_file(s, &head, file, head_only)?;
                server.stats.body(sent);
            }
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                error(server, s, 403, &[], head_only, close)?
            }
            Err(_) => error(server, s, 404, &[], head_only, close)?,
        },
        Ok(Resolved::Listing(page)) => {
            let head = Head {
                code: 200,
                content_type: "text/html; charset=utf-8",
                length: page.len() as u64,
                close,
                extra: &[],
            };
            server.stats.status(200);
            let sent = response::send_body(s, &head, page.as_bytes(), head_only)?;
            server.stats.body(sent);
        }
        Ok(Resolved::Redirect(to)) => {
            error(server, s, 301, &[("Location", &to)], head_only, close)?
        }
        Err(code) => error(server, s, code, &[], head_only, close)?,
    }
    Ok(!close)
}

/// A response with a one-line text body naming the status.
fn error(
    server: &Server,
    s: &TcpStream,
    code: u16,
    extra: &[(&str, &str)],
    head_only: bool,
    close: bool,
) -> io::Result<()> {
    let body = format!("{code} {}\n", response::reason(code));
    let head = Head {
        code,
        content_type: "text/plain; charset=utf-8",
        length: body.len() as u64,
        close,
        extra,
    };
    server.stats.status(code);
    let sent = response::send_body(s, &head, body.as_bytes(), head_only)?;
    server.stats.body(sent);
    Ok(())
}

/// Half-closes, then reads what the client still sends (bounded) so that closing does not
/// turn into a reset that could destroy the response in flight.
fn finish(mut s: &TcpStream) -> io::Result<()> {
    s.shutdown(Shutdown::Write)?;
    s.set_read_timeout(Some(DRAIN_TIMEOUT))?;
    let mut buf = [0u8; 16 * 1024];
    let mut drained = 0;
    while drained < DRAIN_MAX {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
}
