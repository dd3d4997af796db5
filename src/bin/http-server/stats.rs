//! The server's own counters, printed before the stack's.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

#[derive(Default)]
pub struct HttpStats {
    pub connections: AtomicU64,
    pub rejected: AtomicU64,
    pub requests: AtomicU64,
    /// Responses by status class, 1xx..5xx.
    pub classes: [AtomicU64; 5],
    pub body_bytes: AtomicU64,
}

impl HttpStats {
    /// Counts a response by its status class; called before it is sent, so that a client
    /// that has it sees it counted.
    pub fn status(&self, code: u16) {
        if let Some(c) = self.classes.get(usize::from(code / 100).wrapping_sub(1)) {
            c.fetch_add(1, Relaxed);
        }
    }

    pub fn body(&self, bytes: u64) {
        self.body_bytes.fetch_add(bytes, Relaxed);
    }
}

impl fmt::Display for HttpStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "Http:")?;
        let line = |f: &mut fmt::Formatter<'_>, v: &AtomicU64, what: &str| {
            writeln!(f, "    {} {what}", v.load(Relaxed))
        };
        line(f, &self.connections, "connections accepted")?;
        line(f, &self.rejected, "connections refused over the limit")?;
        line(f, &self.requests, "requests")?;
        for (i, c) in self.classes.iter().enumerate() {
            line(f, c, &format!("{}xx responses", i + 1))?;
        }
        line(f, &self.body_bytes, "body bytes sent")
    }
}
