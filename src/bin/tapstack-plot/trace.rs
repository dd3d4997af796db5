//! A flow from a tapstack trace (`--trace`, one JSON object per line; see `tapstack::trace`):
//! the segments the stack sent on the connection, the ACKs it received, and its own metrics.

use crate::flow::{rel, Flow, Kind, Metrics, Sent};
use serde_json::Value;
use std::collections::HashMap;

/// Reads the records of a trace file (the header line is skipped). A last line cut short (a
/// trace still being written, or a stack killed) is left out.
pub fn read(text: &str) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    let complete = text.ends_with('\n');
    let n = text.lines().count();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if !complete && i + 1 == n && n > 1 => break,
            Err(e) => return Err(format!("line {}: {e}", i + 1)),
        };
        if v.get("name").is_some() {
            out.push(v);
        }
    }
    Ok(out)
}

fn conn_of(v: &Value) -> (String, String) {
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
    (s("local"), s("remote"))
}

fn port(addr: &str) -> Option<u16> {
    addr.rsplit(':').next()?.parse().ok()
}

/// The connection to draw: the one that sent the most data, among those with `port` at either
/// end if given.
pub fn pick(records: &[Value], port_filter: Option<u16>) -> Option<(String, String)> {
    let mut bytes: HashMap<(String, String), u64> = HashMap::new();
    for v in records {
        let conn = conn_of(v);
        if port_filter.is_some_and(|p| port(&conn.0) != Some(p) && port(&conn.1) != Some(p)) {
            continue;
        }
        let len = if v["name"] == "transport:packet_sent" {
            v["data"]["len"].as_u64().unwrap_or(0)
        } else {
            0
        };
        *bytes.entry(conn).or_default() += len;
    }
    bytes
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|(c, _)| c)
}

fn u32_of(v: &Value) -> Option<u32> {
    v.as_u64().and_then(|n| u32::try_from(n).ok())
}

/// The flow of connection `conn` in the trace, times from its first record.
pub fn flow(records: &[Value], conn: &(String, String)) -> Flow {
    let mine: Vec<&Value> = records.iter().filter(|v| &conn_of(v) == conn).collect();
    let t0 = mine.first().and_then(|v| v["time"].as_u64()).unwrap_or(0);
    let secs = |v: &Value| v["time"].as_u64().unwrap_or(t0).saturating_sub(t0) as f64 / 1e6;
    // Our first sequence number: the SYN's, else the first segment's.
    let base = mine
        .iter()
        .find(|v| v["name"] == "transport:packet_sent")
        .and_then(|v| u32_of(&v["data"]["seq"]))
        .unwrap_or(0);
    let mut f = Flow {
        name: format!("{} -> {}", conn.0, conn.1),
        ..Flow::default()
    };
    let mut m = Metrics::default();
    let mut episode: Option<(f64, bool)> = None;
    for v in mine {
        let t = secs(v);
        let d = &v["data"];
        match v["name"].as_str().unwrap_or_default() {
            "transport:packet_sent" => {
                let (Some(seq), Some(len)) = (u32_of(&d["seq"]), d["len"].as_u64()) else {
                    continue;
                };
                if len == 0 {
                    continue;
                }
                let kind = match d["trigger"].as_str() {
                    Some("retransmission") => Kind::Retransmission,
                    Some(_) => Kind::Probe,
                    None => Kind::New,
                };
                let start = rel(seq, base);
                f.sent.push(Sent {
                    t,
                    start,
                    end: start + len as f64,
                    kind,
                });
            }
            "transport:packet_received" => {
                let flags = d["flags"].as_str().unwrap_or_default();
                if let (Some(ack), true) = (u32_of(&d["ack"]), flags.contains('A')) {
                    let ack = rel(ack, base);
                    f.acks.push((t, ack));
                    let wnd = d["window"].as_f64().unwrap_or(0.0);
                    f.window_edge.push((t, ack + wnd));
                }
                if let Some(blocks) = d["sack"].as_array() {
                    for b in blocks {
                        if let (Some(l), Some(r)) = (u32_of(&b[0]), u32_of(&b[1])) {
                            f.sacks.push((t, rel(l, base), rel(r, base)));
                        }
                    }
                }
            }
            "recovery:packet_lost" => {
                if let (Some(s), Some(e)) = (u32_of(&d["start"]), u32_of(&d["end"])) {
                    f.lost.push((t, rel(s, base), rel(e, base)));
                }
            }
            "recovery:loss_timer_updated" if d["timer_type"] == "rto" => f.rtos.push(t),
            "recovery:metrics_updated" => {
                let put = |series: &mut Vec<(f64, f64)>, key: &str, scale: f64| {
                    if let Some(x) = d[key].as_f64() {
                        series.push((t, x * scale));
                    }
                };
                put(&mut m.cwnd, "congestion_window", 1.0);
                put(&mut m.ssthresh, "ssthresh", 1.0);
                put(&mut m.flight, "bytes_in_flight", 1.0);
                put(&mut m.srtt, "smoothed_rtt", 1e-3);
                put(&mut m.rto, "rto", 1e-3);
            }
            "recovery:congestion_state_updated" => {
                let new = d["new"].as_str().unwrap_or_default();
                if let Some((start, loss)) = episode.take() {
                    m.episodes.push((start, t, loss));
                }
                match new {
                    "recovery" | "cwr" => episode = Some((t, false)),
                    "loss" => episode = Some((t, true)),
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if let Some((start, loss)) = episode {
        m.episodes.push((start, f.duration(), loss));
    }
    f.metrics = Some(m);
    f
}
