//! What a picture shows of one direction of one connection, from a trace or from a pcap:
//! sequence numbers relative to the first one seen, times in seconds from the connection's
//! first record.

/// Why a data segment left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// New data.
    New,
    /// Data sent before.
    Retransmission,
    /// A zero-window, keep-alive or tail loss probe.
    Probe,
}

/// A data segment: `[start, end)` at `t`.
#[derive(Clone, Copy, Debug)]
pub struct Sent {
    /// When it left, in seconds.
    pub t: f64,
    /// Its first byte, relative.
    pub start: f64,
    /// One past its last byte.
    pub end: f64,
    /// Why it left.
    pub kind: Kind,
}

/// A step of a series over time.
pub type Series = Vec<(f64, f64)>;

/// The sender's view over time: what the trace alone knows.
#[derive(Debug, Default)]
pub struct Metrics {
    /// The congestion window, bytes.
    pub cwnd: Series,
    /// ssthresh, bytes (absent while infinite).
    pub ssthresh: Series,
    /// Bytes in flight.
    pub flight: Series,
    /// Smoothed RTT, ms.
    pub srtt: Series,
    /// Retransmission timeout, ms.
    pub rto: Series,
    /// Fast recoveries (`false`) and timeout recoveries (`true`): start, end.
    pub episodes: Vec<(f64, f64, bool)>,
}

/// One direction of one connection.
#[derive(Debug, Default)]
pub struct Flow {
    /// "local -> remote", for titles.
    pub name: String,
    /// The data segments sent.
    pub sent: Vec<Sent>,
    /// The cumulative ACK received, as steps.
    pub acks: Series,
    /// The receive window's right edge (ACK + window), as steps.
    pub window_edge: Series,
    /// SACK blocks received: `(t, left, right)`.
    pub sacks: Vec<(f64, f64, f64)>,
    /// Ranges deemed lost: `(t, start, end)`.
    pub lost: Vec<(f64, f64, f64)>,
    /// Retransmission timeouts.
    pub rtos: Vec<f64>,
    /// What only a trace knows.
    pub metrics: Option<Metrics>,
}

impl Flow {
    /// The last time anything happened.
    pub fn duration(&self) -> f64 {
        let last = |s: &Series| s.last().map_or(0.0, |p| p.0);
        self.sent
            .iter()
            .map(|s| s.t)
            .fold(last(&self.acks), f64::max)
    }

    /// The highest sequence number shown.
    pub fn top(&self) -> f64 {
        let edge = self.window_edge.iter().map(|p| p.1);
        self.sent
            .iter()
            .map(|s| s.end)
            .chain(edge)
            .fold(1.0, f64::max)
    }
}

/// Sequence number `seq` relative to `base`, in bytes: negative just below it (an ACK of a
/// trace started mid-connection), within 2 GiB either way.
pub fn rel(seq: u32, base: u32) -> f64 {
    f64::from(seq.wrapping_sub(base) as i32)
}
