//! The trace on disk: one JSON object per line, in qlog's shape.
//!
//! The first line is a header: `{"qlog_format":"JSON-lines", ..., "reference_time": T}`, where
//! `T` is the wall clock (microseconds since the Unix epoch) at the stack's time zero. Every
//! other line is one [`TraceRecord`]:
//!
//! ```text
//! {"time":1520,"name":"transport:packet_sent","local":"10.0.0.2:7","remote":"10.0.0.1:40000",
//!  "data":{"seq":1,"ack":2,"len":1448,"flags":"A","window":65535}}
//! ```
//!
//! `time` is the stack's own clock in microseconds (virtual time in a simulation), so a
//! replay gives the same trace. The events and their data are those of
//! [`crate::tcp::trace::TraceEvent`]:
//!
//! | name | data |
//! | --- | --- |
//! | `transport:packet_sent`, `transport:packet_received` | `seq`, `ack`, `len`, `flags` (`S`, `A`, `F`, `R`, `P`, `U`), `window` (bytes), `sack` (`[[l, r], ...]`), `tsval`, `tsecr`, `tso_mss`, `trigger` (`retransmission`, `probe`, `tail_loss_probe`) |
//! | `transport:connection_state_updated` | `old`, `new` (RFC 9293 names: `syn_sent`, `established`, ...) |
//! | `recovery:metrics_updated` | what changed of `congestion_window`, `ssthresh`, `bytes_in_flight`, `snd_wnd`, `rcv_wnd` (bytes), `smoothed_rtt`, `rtt_variance`, `rto` (µs), `pacing_rate` (bytes/s) |
//! | `recovery:congestion_state_updated` | `old`, `new` (`slow_start`, `congestion_avoidance`, `recovery`, `loss`, `cwr`; with BBR its states, `Startup`, `ProbeBW_UP`, ...), `trigger` (`rack`, `sack`, `dupacks`, `rto`, `tlp_repair`, `ecn`, `undo_dsack`, `undo_eifel`) |
//! | `recovery:packet_lost` | `start`, `end`: what of this sequence range is not SACKed is deemed lost; `trigger` (`rack`, `sack`, `dupacks`, `rto`); each range once |
//! | `recovery:loss_timer_updated` | `event_type` (`expired`), `timer_type` (`rto`, `pto`, `reorder`, `persist`) |
//!
//! `tapstack-plot` (feature `cli`) draws a trace: the time-sequence graph, cwnd and RTT.

use crate::tcp::trace::{TraceEvent, TraceRecord, METRICS};
use crate::tcp::State;
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Where a stack writes its trace ([`crate::StackConfig::trace`]): shared, so that the
/// configuration stays `Clone`.
#[derive(Clone)]
pub struct TraceOutput(Arc<Mutex<Sink>>);

struct Sink {
    w: Box<dyn Write + Send>,
    /// The header line is written once, whoever writes first.
    header_written: bool,
}

impl fmt::Debug for TraceOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TraceOutput")
    }
}

impl TraceOutput {
    /// A trace written to `w` (buffered here).
    pub fn new(w: impl Write + Send + 'static) -> TraceOutput {
        TraceOutput(Arc::new(Mutex::new(Sink {
            w: Box::new(BufWriter::new(w)),
            header_written: false,
        })))
    }

    /// A trace written to a new file at `path`.
    pub fn create(path: impl AsRef<Path>) -> io::Result<TraceOutput> {
        Ok(TraceOutput::new(std::fs::File::create(path)?))
    }

    /// Writes the header line, unless one was written already (an output shared by two
    /// stacks): `reference_time` is the wall clock at the stack's time zero.
    pub fn write_header(&self, reference_time: std::time::SystemTime) -> io::Result<()> {
        let us = reference_time
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_micros());
        let mut sink = self.lock();
        if std::mem::replace(&mut sink.header_written, true) {
            return Ok(());
        }
        writeln!(
            sink.w,
            "{{\"qlog_format\":\"JSON-lines\",\"title\":\"tapstack TCP trace\",\"time_format\":\"relative\",\"time_unit\":\"us\",\"reference_time\":{us}}}"
        )?;
        sink.w.flush()
    }

    /// Writes `records`, one line each, and flushes.
    pub fn write(&self, records: &[TraceRecord]) -> io::Result<()> {
        let mut sink = self.lock();
        for r in records {
            writeln!(sink.w, "{}", Json(r))?;
        }
        sink.w.flush()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Sink> {
        // A writer poisoned by a panic elsewhere still takes lines.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A record as one JSON object.
pub struct Json<'a>(pub &'a TraceRecord);

/// The RFC 9293 name of a state, in the trace's snake case.
pub fn state_name(s: State) -> &'static str {
    match s {
        State::Listen => "listen",
        State::SynSent => "syn_sent",
        State::SynReceived => "syn_received",
        State::Established => "established",
        State::FinWait1 => "fin_wait_1",
        State::FinWait2 => "fin_wait_2",
        State::CloseWait => "close_wait",
        State::Closing => "closing",
        State::LastAck => "last_ack",
        State::TimeWait => "time_wait",
        State::Closed => "closed",
    }
}

impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self.0;
        write!(
            f,
            "{{\"time\":{},\"name\":\"{}\",\"local\":\"{}\",\"remote\":\"{}\",\"data\":{{",
            r.time.total_micros(),
            r.event.name(),
            r.local,
            r.remote
        )?;
        match &r.event {
            TraceEvent::PacketSent(s) | TraceEvent::PacketReceived(s) => {
                write!(f, "\"seq\":{}", s.seq)?;
                if let Some(a) = s.ack {
                    write!(f, ",\"ack\":{a}")?;
                }
                f.write_str(",\"flags\":\"")?;
                let fl = s.flags;
                for (on, c) in [
                    (fl.syn, "S"),
                    (fl.ack, "A"),
                    (fl.fin, "F"),
                    (fl.rst, "R"),
                    (fl.psh, "P"),
                    (fl.urg, "U"),
                ] {
                    if on {
                        f.write_str(c)?;
                    }
                }
                write!(f, "\",\"len\":{},\"window\":{}", s.len, s.window)?;
                if s.sack[0].is_some() {
                    f.write_str(",\"sack\":[")?;
                    for (i, (l, r)) in s.sack.iter().flatten().enumerate() {
                        let sep = if i > 0 { "," } else { "" };
                        write!(f, "{sep}[{l},{r}]")?;
                    }
                    f.write_str("]")?;
                }
                if let Some((val, ecr)) = s.ts {
                    write!(f, ",\"tsval\":{val},\"tsecr\":{ecr}")?;
                }
                if let Some(m) = s.tso_mss {
                    write!(f, ",\"tso_mss\":{m}")?;
                }
                if let Some(t) = s.trigger {
                    write!(f, ",\"trigger\":\"{}\"", t.name())?;
                }
            }
            TraceEvent::StateUpdated { old, new } => {
                if let Some(old) = old {
                    write!(f, "\"old\":\"{}\",", state_name(*old))?;
                }
                write!(f, "\"new\":\"{}\"", state_name(*new))?;
            }
            TraceEvent::MetricsUpdated(m) => {
                let mut sep = "";
                for (name, v) in METRICS.iter().zip(m) {
                    if let Some(v) = v {
                        write!(f, "{sep}\"{name}\":{v}")?;
                        sep = ",";
                    }
                }
            }
            TraceEvent::CongestionStateUpdated { old, new, trigger } => {
                if let Some(old) = old {
                    write!(f, "\"old\":\"{}\",", old.name())?;
                }
                write!(f, "\"new\":\"{}\"", new.name())?;
                if let Some(t) = trigger {
                    write!(f, ",\"trigger\":\"{}\"", t.name())?;
                }
            }
            TraceEvent::PacketLost {
                start,
                end,
                trigger,
            } => write!(
                f,
                "\"start\":{start},\"end\":{end},\"trigger\":\"{}\"",
                trigger.name()
            )?,
            TraceEvent::TimerExpired(t) => write!(
                f,
                "\"event_type\":\"expired\",\"timer_type\":\"{}\"",
                t.name()
            )?,
        }
        f.write_str("}}")
    }
}
