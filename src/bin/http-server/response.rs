//! Writing responses: status line and headers, small bodies, and files streamed in chunks.

use std::fs::File;
use std::io::{self, Read, Write};
use std::time::SystemTime;
use tapstack::TcpStream;

/// Bytes read from a file and handed to the stack per write.
const FILE_CHUNK: usize = 256 * 1024;

pub fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK",
        301 => "Moved Permanently",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// One response head.
pub struct Head<'a> {
    pub code: u16,
    pub content_type: &'a str,
    pub length: u64,
    pub close: bool,
    pub extra: &'a [(&'a str, &'a str)],
}

impl Head<'_> {
    fn bytes(&self) -> Vec<u8> {
        let mut h = format!(
            "HTTP/1.1 {} {}\r\nServer: tapstack-http\r\nDate: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: {}\r\n",
            self.code,
            reason(self.code),
            http_date(SystemTime::now()),
            self.content_type,
            self.length,
            if self.close { "close" } else { "keep-alive" },
        );
        for (name, value) in self.extra {
            h.push_str(&format!("{name}: {value}\r\n"));
        }
        h.push_str("\r\n");
        h.into_bytes()
    }
}

/// Sends a head and an in-memory body (left out for HEAD); returns the body bytes sent.
pub fn send_body(mut s: &TcpStream, head: &Head, body: &[u8], head_only: bool) -> io::Result<u64> {
    let mut out = head.bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    s.write_all(&out)?;
    Ok(if head_only { 0 } else { body.len() as u64 })
}

/// Sends a head and then the file, one chunk at a time, the head in the same write as the
/// first chunk (no short segment of its own). A file that shrank meanwhile aborts the
/// connection: its promised length cannot be kept.
pub fn send_file(
    mut s: &TcpStream,
    head: &Head,
    mut file: File,
    head_only: bool,
) -> io::Result<u64> {
    let mut buf = head.bytes();
    if head_only {
        s.write_all(&buf)?;
        return Ok(0);
    }
    let mut filled = buf.len();
    let chunk = usize::try_from(head.length).map_or(FILE_CHUNK, |l| l.min(FILE_CHUNK));
    buf.resize(filled + chunk, 0);
    let mut left = head.length;
    loop {
        if filled == buf.len() || left == 0 {
            s.write_all(&buf[..filled])?;
            filled = 0;
            if left == 0 {
                return Ok(head.length);
            }
        }
        let want = (buf.len() - filled).min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = match file.read(&mut buf[filled..filled + want]) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shrank while being sent",
                ))
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        filled += n;
        left -= n as u64;
    }
}

/// An IMF-fixdate (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let u = tapstack::cli::Utc::at(t);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        u.weekday, u.day, u.month_name, u.year, u.hour, u.minute, u.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn formats_dates() {
        let t = |s| http_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(t(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(t(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(t(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }
}
