//! TCP's lecture, drawn by the stack itself: two sans-IO cores joined in virtual time by a
//! 20 Mbit/s path with a 20 ms round trip and a 64 KiB drop-tail queue. The sender's trace
//! shows slow start overshooting the queue, the fast recovery that follows, congestion
//! avoidance, then a 400 ms outage: two tail loss probes are lost, the retransmission timeout
//! fires and collapses the window, and the D-SACK for the data that had arrived before the
//! outage undoes it.
//!
//! ```text
//! cargo run --release --example trace_lecture -- lecture.trace
//! cargo run --release --features cli --bin tapstack-plot -- --trace lecture.trace
//! ```
//!
//! Virtual time makes it the same trace at every run, on any machine.

use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tapstack::core::Interface;
use tapstack::phy::{memory_pair, Device, PathConfig, PathEmulator};
use tapstack::time::{earliest, Instant};
use tapstack::trace::TraceOutput;
use tapstack::wire::MacAddr;
use tapstack::StackConfig;

/// Bytes sent.
const SIZE: usize = 4 << 20;
/// When the path goes dark for [`OUTAGE`], from the start of the transfer.
const OUTAGE_AT: Duration = Duration::from_millis(1100);
const OUTAGE: Duration = Duration::from_millis(400);

struct Node {
    iface: Interface,
    dev: Box<dyn Device>,
}

fn config(last: u8) -> StackConfig {
    let mut c = StackConfig::new(Ipv4Addr::new(10, 0, 0, last), 24);
    c.mac = MacAddr([2, 0, 0, 0, 0, last]);
    c.seed = u64::from(last);
    c
}

/// Moves frames at `now` until nothing moves; `dark` drops every frame on the link.
fn settle(nodes: &mut [Node; 2], now: Instant, dark: bool) {
    let mut buf = vec![0u8; 65536];
    loop {
        let mut moved = false;
        for node in nodes.iter_mut() {
            node.iface.poll(now);
            node.dev.poll(now).expect("device");
            while let Some(n) = node.dev.recv(now, &mut buf).expect("device") {
                node.iface.receive(now, &buf[..n]);
                moved = true;
            }
            while let Some(frame) = node.iface.pop_transmit() {
                moved = true;
                if !dark {
                    // A full queue drops, as a router's does.
                    let _ = node.dev.send(now, &frame);
                }
            }
        }
        if !moved {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let path = std::env::args().nth(1).unwrap_or("lecture.trace".into());
    let link = PathConfig {
        rate: 2_500_000,
        delay: Duration::from_millis(10),
        queue: 64 * 1024,
        ecn_threshold: None,
    };
    let (da, db) = memory_pair(1500)?;
    let mut sender = config(1);
    sender.tcp.trace = true;
    let mut nodes = [
        Node {
            iface: Interface::new(sender, Instant::ZERO),
            dev: Box::new(PathEmulator::new(Box::new(da), link)),
        },
        Node {
            iface: Interface::new(config(2), Instant::ZERO),
            dev: Box::new(PathEmulator::new(Box::new(db), link)),
        },
    ];
    let server: SocketAddr = "10.0.0.2:80".parse().expect("address");
    let now = Instant::ZERO;
    let (listener, _) = nodes[1]
        .iface
        .with_tcp(now, |tcp, _| tcp.listen(server, 1))?;
    let client = nodes[0]
        .iface
        .with_tcp(now, |tcp, st| tcp.connect(now, None, server, st))?;
    let data: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
    let (mut sent, mut got, mut conn) = (0, 0, None);
    let mut buf = vec![0u8; 1 << 16];
    let mut now = Instant::ZERO;
    let mut start = None;
    while got < SIZE {
        assert!(now < Instant::from_secs(60), "stalled at {got} bytes");
        let dark =
            start.is_some_and(|s: Instant| now >= s + OUTAGE_AT && now < s + OUTAGE_AT + OUTAGE);
        settle(&mut nodes, now, dark);
        if conn.is_none() {
            conn = nodes[1]
                .iface
                .with_tcp(now, |tcp, _| tcp.accept(listener))
                .transpose()?
                .map(|(id, _)| id);
        }
        if let Some(id) = conn {
            start.get_or_insert(now);
            while sent < SIZE {
                let r = nodes[0]
                    .iface
                    .with_tcp(now, |tcp, st| tcp.send(client, now, &data[sent..], st));
                match r {
                    Ok(n) => sent += n,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
            loop {
                let r = nodes[1]
                    .iface
                    .with_tcp(now, |tcp, st| tcp.recv(id, now, &mut buf, st));
                match r {
                    Ok(n) if n > 0 => got += n,
                    Ok(_) => break,
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        // On to the next event, at most a millisecond on (the application's next turn).
        let next = [
            nodes[0].iface.poll_at(),
            nodes[1].iface.poll_at(),
            nodes[0].dev.poll_at(),
            nodes[1].dev.poll_at(),
        ]
        .into_iter()
        .fold(None, earliest);
        let step = now + Duration::from_millis(1);
        now = next
            .map_or(step, |t| t.min(step))
            .max(now + Duration::from_micros(1));
    }
    nodes[0]
        .iface
        .with_tcp(now, |tcp, st| tcp.close(client, now, st));
    settle(&mut nodes, now, false);
    let mut records = Vec::new();
    nodes[0].iface.take_trace(&mut records);
    let out = TraceOutput::create(&path)?;
    out.write_header(std::time::SystemTime::UNIX_EPOCH)?;
    out.write(&records)?;
    let c = nodes[0].iface.counters();
    println!(
        "{path}: {} records; {SIZE} bytes in {:.2} s of virtual time, {} retransmitted \
         segments, {} fast retransmits, {} timeouts, {} tail loss probes",
        records.len(),
        (now - Instant::ZERO).as_secs_f64(),
        c.tcp_retrans_segs,
        c.tcp_fast_retransmits,
        c.tcp_timeouts,
        c.tcp_loss_probes
    );
    Ok(())
}
