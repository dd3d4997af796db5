//! The per-connection trace (`tcp::trace`) of a deterministic simulation: a 256 KiB transfer
//! over a 100 Mbit/s, 10 ms path that drops 2% of frames. Compared with a golden trace field
//! by field; made again, the trace is the same; turned off, nothing is traced at all.
//!
//! After a deliberate change to TCP's behaviour, write the golden trace again with
//! `TAPSTACK_BLESS=1 cargo test --test sim_trace` and review its diff.

mod common;

use common::*;
use std::io::ErrorKind;
use std::time::Duration;
use tapstack::core::SocketId;
use tapstack::phy::{FaultConfig, PathConfig};
use tapstack::tcp::trace::{CongestionState, TraceEvent, TraceRecord};
use tapstack::trace::Json;

const GOLDEN: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/golden/trace-2pct-loss.jsonl"
);
const SIZE: usize = 256 * 1024;
/// 100 Mbit/s with a 10 ms round trip and a 64 KiB queue.
const PATH: PathConfig = PathConfig {
    rate: 12_500_000,
    delay: Duration::from_millis(5),
    queue: 64 * 1024,
    ecn_threshold: None,
};

/// The transfer, traced on the sender (a) if `trace`: what b received, a's trace and counters.
fn transfer(trace: bool) -> (Vec<u8>, Vec<TraceRecord>, tapstack::Counters) {
    let mut a = config(1, 1);
    a.tcp.trace = trace;
    let path = PATH;
    let faults = FaultConfig {
        drop_pct: 2.0,
        seed: 7,
        ..FaultConfig::default()
    };
    let mut sim = Sim::with_path(a, config(2, 2), faults, Some(path));
    let (c, s) = connect_despite_loss(&mut sim);
    let got = move_data(&mut sim, c, s, &pattern(SIZE, 3), |_, _| {});
    let now = sim.now;
    sim.a.iface.tcp_close(now, c);
    sim.b.iface.tcp_close(now, s);
    sim.advance(Duration::from_secs(1));
    let mut records = Vec::new();
    sim.a.iface.take_trace(&mut records);
    (got, records, sim.a.iface.counters())
}

/// Moves `data` from a (connection `c`) to b (`s`) in 1 ms steps, calling `each_step` with
/// the bytes b has so far before each; returns what b received.
fn move_data(
    sim: &mut Sim,
    c: SocketId,
    s: SocketId,
    data: &[u8],
    mut each_step: impl FnMut(&mut Sim, usize),
) -> Vec<u8> {
    let (mut sent, mut got) = (0, Vec::with_capacity(data.len()));
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = sim.now + Duration::from_secs(60);
    while got.len() < data.len() {
        assert!(sim.now < deadline, "stalled at {} bytes", got.len());
        each_step(sim, got.len());
        let now = sim.now;
        while sent < data.len() {
            match sim.a.iface.tcp_send(now, c, &data[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        sim.advance(Duration::from_millis(1));
        loop {
            match sim.b.iface.tcp_recv(sim.now, s, &mut buf) {
                Ok(0) => panic!("early end of stream"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
    }
    got
}

fn lines(records: &[TraceRecord]) -> Vec<String> {
    records.iter().map(|r| Json(r).to_string()).collect()
}

#[test]
fn the_trace_of_a_lossy_transfer_matches_the_golden_trace_field_by_field() {
    let (got, records, _) = transfer(true);
    assert_eq!(sha256(&got), sha256(&pattern(SIZE, 3)));
    let ours = lines(&records);
    if std::env::var_os("TAPSTACK_BLESS").is_some() {
        std::fs::write(GOLDEN, ours.join("\n") + "\n").unwrap();
    }
    let golden = std::fs::read_to_string(GOLDEN).expect("the golden trace");
    let golden: Vec<&str> = golden.lines().collect();
    for (i, (ours, theirs)) in ours.iter().zip(&golden).enumerate() {
        let a: serde_json::Value = serde_json::from_str(ours).expect("our line is JSON");
        let b: serde_json::Value = serde_json::from_str(theirs).expect("golden line is JSON");
        for key in ["time", "name", "local", "remote"] {
            assert_eq!(a[key], b[key], "line {}: {key}", i + 1);
        }
        let (da, db) = (
            a["data"].as_object().unwrap(),
            b["data"].as_object().unwrap(),
        );
        for (k, v) in db {
            assert_eq!(
                da.get(k),
                Some(v),
                "line {} ({}): data.{k}",
                i + 1,
                b["name"]
            );
        }
        for k in da.keys() {
            assert!(
                db.contains_key(k),
                "line {} ({}): data.{k} is new",
                i + 1,
                a["name"]
            );
        }
    }
    assert_eq!(ours.len(), golden.len(), "records");
}

#[test]
fn the_trace_of_a_lossy_transfer_records_its_segments_losses_and_recoveries() {
    let (_, records, counters) = transfer(true);
    assert_eq!(counters.tcp_trace_records, records.len() as u64);
    let count = |name: &str| records.iter().filter(|r| r.event.name() == name).count();
    assert!(count("transport:packet_sent") > 100);
    assert!(count("transport:packet_received") > 50);
    assert!(count("recovery:metrics_updated") > 50);
    assert!(count("recovery:packet_lost") > 0);
    let retransmissions = records
        .iter()
        .filter(|r| matches!(&r.event, TraceEvent::PacketSent(s) if s.trigger.is_some()));
    assert!(retransmissions.count() as u64 >= counters.tcp_retrans_segs);
    let recoveries = records.iter().filter(|r| {
        matches!(
            r.event,
            TraceEvent::CongestionStateUpdated {
                new: CongestionState::Recovery,
                trigger: Some(_),
                ..
            }
        )
    });
    assert!(recoveries.count() > 0, "no fast recovery traced");
    let states: Vec<&str> = records
        .iter()
        .filter_map(|r| match r.event {
            TraceEvent::StateUpdated { new, .. } => Some(tapstack::trace::state_name(new)),
            _ => None,
        })
        .collect();
    assert_eq!(states[..2], ["syn_sent", "established"]);
    assert!(states.contains(&"time_wait") || states.contains(&"closed"));
    // Time never goes back.
    assert!(records.windows(2).all(|w| w[0].time <= w[1].time));
}

#[test]
fn the_same_simulation_gives_the_same_trace() {
    assert_eq!(transfer(true).1, transfer(true).1);
}

#[test]
fn an_untraced_stack_makes_no_trace_record_at_all() {
    let (got, records, counters) = transfer(false);
    assert_eq!(sha256(&got), sha256(&pattern(SIZE, 3)));
    assert!(records.is_empty());
    assert_eq!(counters.tcp_trace_records, 0);
    assert!(counters.tcp_retrans_segs > 0, "the run had losses to trace");
}

/// The sender goes dark for 600 ms in the middle of a transfer: the trace shows the tail loss
/// probes sent and lost, the probe and retransmission timers expiring, the data deemed lost by
/// the timeout and the loss phase it opens, with their reasons.
#[test]
fn an_outage_is_traced_as_probes_a_timeout_and_the_loss_phase() {
    let mut a = config(1, 1);
    a.tcp.trace = true;
    let path = PATH;
    let mut sim = Sim::with_path(a, config(2, 2), FaultConfig::default(), Some(path));
    let dark = std::rc::Rc::new(std::cell::Cell::new(false));
    let filter_dark = dark.clone();
    sim.a_out_filter = Some(Box::new(move |_| !filter_dark.get()));
    let (c, s) = connect_despite_loss(&mut sim);
    let data = pattern(SIZE, 5);
    let mut went_dark = false;
    let got = move_data(&mut sim, c, s, &data, |sim, got| {
        // Dark from the first 64 KiB received, for 600 ms.
        if got >= 64 * 1024 && !went_dark {
            went_dark = true;
            dark.set(true);
            sim.advance(Duration::from_millis(600));
            dark.set(false);
        }
    });
    assert_eq!(sha256(&got), sha256(&data));
    let mut records = Vec::new();
    sim.a.iface.take_trace(&mut records);
    let counters = sim.a.iface.counters();
    assert!(
        counters.tcp_timeouts > 0 && counters.tcp_loss_probes > 0,
        "{counters}"
    );
    let lines = lines(&records);
    let has = |needle: &str| lines.iter().any(|l| l.contains(needle));
    for needle in [
        "\"trigger\":\"tail_loss_probe\"",
        "\"timer_type\":\"pto\"",
        "\"timer_type\":\"rto\"",
        "\"name\":\"recovery:packet_lost\"",
        "\"new\":\"loss\",\"trigger\":\"rto\"",
        "\"trigger\":\"retransmission\"",
    ] {
        assert!(has(needle), "no {needle} in the trace");
    }
    let rto_losses = records.iter().filter(
        |r| matches!(r.event, TraceEvent::PacketLost { trigger, .. } if trigger.name() == "rto"),
    );
    assert!(rto_losses.count() > 0);
    // Each timeout is in the trace, as many as the counter saw.
    let rtos = lines
        .iter()
        .filter(|l| l.contains("\"timer_type\":\"rto\""))
        .count();
    assert_eq!(rtos as u64, counters.tcp_timeouts);
}
