//! The proxy's own counters, printed with the stack's when it stops.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the relays did.
#[derive(Default)]
pub struct Stats {
    pub tcp_relayed: AtomicU64,
    pub tcp_refused: AtomicU64,
    pub tcp_unreachable: AtomicU64,
    pub tcp_failed: AtomicU64,
    pub tcp_resets: AtomicU64,
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    pub udp_flows: AtomicU64,
    pub udp_refused: AtomicU64,
    pub udp_datagrams_up: AtomicU64,
    pub udp_datagrams_down: AtomicU64,
    pub ping_replied: AtomicU64,
    pub ping_unreachable: AtomicU64,
    pub ping_timed_out: AtomicU64,
    pub ping_failed: AtomicU64,
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        writeln!(f, "Proxy:")?;
        writeln!(f, "    {} TCP connections relayed", get(&self.tcp_relayed))?;
        writeln!(
            f,
            "    {} TCP connections refused (upstream refused)",
            get(&self.tcp_refused)
        )?;
        writeln!(
            f,
            "    {} TCP connections answered unreachable (upstream unreachable or timed out)",
            get(&self.tcp_unreachable)
        )?;
        writeln!(
            f,
            "    {} TCP client handshakes failed",
            get(&self.tcp_failed)
        )?;
        writeln!(f, "    {} TCP resets carried", get(&self.tcp_resets))?;
        writeln!(
            f,
            "    {} bytes up (client to upstream)",
            get(&self.bytes_up)
        )?;
        writeln!(
            f,
            "    {} bytes down (upstream to client)",
            get(&self.bytes_down)
        )?;
        writeln!(f, "    {} UDP flows relayed", get(&self.udp_flows))?;
        writeln!(f, "    {} UDP flows refused", get(&self.udp_refused))?;
        writeln!(f, "    {} UDP datagrams up", get(&self.udp_datagrams_up))?;
        writeln!(
            f,
            "    {} UDP datagrams down",
            get(&self.udp_datagrams_down)
        )?;
        writeln!(
            f,
            "    {} pings relayed and answered by their destination",
            get(&self.ping_replied)
        )?;
        writeln!(
            f,
            "    {} pings answered unreachable (an error from upstream)",
            get(&self.ping_unreachable)
        )?;
        writeln!(
            f,
            "    {} pings unanswered upstream (timed out)",
            get(&self.ping_timed_out)
        )?;
        writeln!(
            f,
            "    {} pings dropped: a local error, or {} relayed at once",
            get(&self.ping_failed),
            crate::ping::MAX_PINGS
        )
    }
}
