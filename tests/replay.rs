//! Pcap replay: the inbound frames of each capture in `pcaps/` (recorded between the Linux
//! kernel and `echo-server --seed 1`, or `tapcat --seed 1` as a client) are fed to a fresh core
//! under the recorded timestamps, with the app emulated in-line: echo-server's services, or
//! tapcat's connect, send, half-close and read to the end.
//!
//! ARP, ICMP and UDP captures must match byte for byte. TCP captures are compared field by
//! field: in the real server the echo application runs on another thread, so how its writes
//! interleave with arriving segments (and so where segment boundaries and ACKs fall) depends
//! on scheduling, and the ISN and timestamps depend on microseconds of clock offset. What must
//! match is, per connection: the SYN-ACK's flags and options, the ISN-relative control segments
//! (FIN, RST) and the exact byte stream the stack sent.

mod common;

use common::TcpCalls;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tapstack::core::Interface;
use tapstack::phy::read_pcap;
use tapstack::time::Instant;
use tapstack::wire::MacAddr;
use tapstack::StackConfig;

/// The echo-server defaults the captures were recorded with: send buffers then held their
/// whole size from the start (no autotuning), which the echo below relies on.
fn recorded_config() -> StackConfig {
    let mut cfg = StackConfig::new(Ipv4Addr::new(10, 0, 0, 2), 24);
    cfg.mac = MacAddr([0x02, 0x00, 0x0a, 0x00, 0x00, 0x02]);
    cfg.seed = 1;
    cfg.tcp.send_autotune = false;
    cfg
}

fn captures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("pcaps/")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "pcap"))
        .collect();
    files.sort();
    files
}

struct Replay {
    iface: Interface,
    echo: tapstack::core::SocketId,
    listeners: Vec<(u16, tapstack::core::SocketId)>,
    conns: Vec<(u16, tapstack::core::SocketId, bool)>,
    client: Option<Client>,
    sent: Vec<Vec<u8>>,
}

/// tapcat as a client: writes `data`, half-closes, reads to the end, closes.
struct Client {
    id: tapstack::core::SocketId,
    data: Vec<u8>,
    written: usize,
    shut: bool,
    open: bool,
}

impl Replay {
    fn new(cfg: StackConfig) -> Replay {
        let mut iface = Interface::new(cfg, Instant::ZERO);
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        let echo = iface.udp_bind(SocketAddrV4::new(ip, 7).into()).unwrap();
        let listeners = [7, 9, 19]
            .into_iter()
            .map(|p| {
                (
                    p,
                    iface.tcp_listen(SocketAddrV4::new(ip, p), 128).unwrap().0,
                )
            })
            .collect();
        Replay {
            iface,
            echo,
            listeners,
            conns: Vec::new(),
            client: None,
            sent: Vec::new(),
        }
    }

    fn serve_client(&mut self, now: Instant) {
        let Some(c) = self.client.as_mut() else {
            return;
        };
        if !c.open || !matches!(self.iface.tcp_connect_result(c.id), Some(Ok(()))) {
            return;
        }
        while c.written < c.data.len() {
            match self.iface.tcp_send(now, c.id, &c.data[c.written..]) {
                Ok(n) => c.written += n,
                Err(_) => break,
            }
        }
        if c.written == c.data.len() && !c.shut {
            self.iface.tcp_shutdown(now, c.id, false, true).unwrap();
            c.shut = true;
        }
        let mut buf = [0u8; 4096];
        loop {
            match self.iface.tcp_recv(now, c.id, &mut buf) {
                Ok(0) => {
                    self.iface.tcp_close(now, c.id);
                    c.open = false;
                    break;
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }

    /// Runs timers up to `now`, serves the echo socket, and collects what the core sends.
    fn step(&mut self, now: Instant) {
        while let Some(t) = self.iface.poll_at().filter(|t| *t <= now) {
            self.iface.poll(t);
            self.collect();
        }
        self.iface.poll(now);
        while let Some(r) = self.iface.udp_recv(self.echo) {
            if let Ok((data, from)) = r {
                self.iface
                    .udp_send(now, self.echo, &data, Some(from))
                    .unwrap();
            }
        }
        self.serve_tcp(now);
        self.serve_client(now);
        self.collect();
    }

    /// echo-server's TCP services: echo (7), discard (9), chargen (19).
    fn serve_tcp(&mut self, now: Instant) {
        for &(port, l) in &self.listeners {
            while let Some(Ok((c, _))) = self.iface.tcp_accept(l) {
                self.conns.push((port, c, true));
            }
        }
        let mut buf = vec![0u8; 65536];
        let block = common::chargen_cycle();
        for (port, c, open) in self.conns.iter_mut() {
            while *open {
                match self.iface.tcp_recv(now, *c, &mut buf) {
                    Ok(0) => {
                        // End of stream: echo and discard close (chargen is closed by the peer).
                        self.iface.tcp_close(now, *c);
                        *open = false;
                    }
                    Ok(n) if *port == 7 => {
                        let sent = self.iface.tcp_send(now, *c, &buf[..n]).unwrap();
                        assert_eq!(sent, n, "the echo fits the send buffer");
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        self.iface.tcp_close(now, *c);
                        *open = false;
                    }
                }
            }
            while *port == 19 && *open {
                match self.iface.tcp_send(now, *c, &block) {
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(_) => {
                        self.iface.tcp_close(now, *c);
                        *open = false;
                    }
                }
            }
        }
    }

    fn collect(&mut self) {
        while let Some(f) = self.iface.pop_transmit() {
            self.sent.push(f);
        }
        while self.iface.pop_event().is_some() {}
    }
}

fn describe(f: &[u8]) -> String {
    format!("{} bytes: {:02x?}", f.len(), &f[..f.len().min(64)])
}

/// The ISN and timestamp clock of a replayed connection differ from the recording (both
/// include a clock term, RFC 6528, and the replay's clock is offset by microseconds). The
/// peer's acknowledgement fields are translated per connection so they refer to what the
/// replayed stack sent, as replay tools do.
#[derive(Default)]
struct Shifts {
    /// Per peer port: (ISN, TSval) of the recorded and of the replayed SYN-ACK.
    recorded: std::collections::HashMap<u16, (u32, u32)>,
    replayed: std::collections::HashMap<u16, (u32, u32)>,
    seen: usize,
}

/// The peer's port, our ISN and TSval, if `frame` is a SYN or SYN-ACK.
fn syn(frame: &[u8]) -> Option<(u16, u32, u32)> {
    let p = etherparse::SlicedPacket::from_ethernet(frame).ok()?;
    let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
        return None;
    };
    if !t.syn() {
        return None;
    }
    let tsval = t.options_iterator().find_map(|o| match o {
        Ok(etherparse::TcpOptionElement::Timestamp(v, _)) => Some(v),
        _ => None,
    });
    Some((
        t.destination_port(),
        t.sequence_number(),
        tsval.unwrap_or(0),
    ))
}

impl Shifts {
    fn recorded(&mut self, frame: &[u8]) {
        if let Some((port, isn, ts)) = syn(frame) {
            self.recorded.insert(port, (isn, ts));
        }
    }

    fn replayed(&mut self, frame: &[u8]) {
        if let Some((port, isn, ts)) = syn(frame) {
            self.replayed.insert(port, (isn, ts));
        }
    }

    /// The frame with its ACK, SACK blocks and TSecr moved into the replay's number space.
    fn translate(&self, frame: &[u8]) -> Vec<u8> {
        let Ok(p) = etherparse::SlicedPacket::from_ethernet(frame) else {
            return frame.to_vec();
        };
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) =
            (&p.net, &p.transport)
        else {
            return frame.to_vec();
        };
        let port = t.source_port();
        let (Some(rec), Some(rep)) = (self.recorded.get(&port), self.replayed.get(&port)) else {
            return frame.to_vec();
        };
        let d_seq = rep.0.wrapping_sub(rec.0);
        let d_ts = rep.1.wrapping_sub(rec.1);
        let mut h = t.to_header();
        if h.ack {
            h.acknowledgment_number = h.acknowledgment_number.wrapping_add(d_seq);
        }
        let opts: Vec<etherparse::TcpOptionElement> = h
            .options_iterator()
            .filter_map(Result::ok)
            .map(|o| match o {
                etherparse::TcpOptionElement::Timestamp(v, e) if e != 0 => {
                    etherparse::TcpOptionElement::Timestamp(v, e.wrapping_add(d_ts))
                }
                etherparse::TcpOptionElement::SelectiveAcknowledgement(first, rest) => {
                    let mv = |(l, r): (u32, u32)| (l.wrapping_add(d_seq), r.wrapping_add(d_seq));
                    etherparse::TcpOptionElement::SelectiveAcknowledgement(
                        mv(first),
                        rest.map(|b| b.map(mv)),
                    )
                }
                o => o,
            })
            .collect();
        h.set_options(&opts).unwrap();
        let payload = t.payload();
        let header = ip.header().to_header();
        h.checksum = h.calc_checksum_ipv4(&header, payload).unwrap();
        let hdr_end = frame.len() - t.slice().len();
        let mut out = frame[..hdr_end].to_vec();
        out.extend_from_slice(&h.to_bytes());
        out.extend_from_slice(payload);
        out
    }
}

/// Replays a capture; returns (recorded outbound frames, replayed outbound frames, inbound count).
fn replay(path: &Path) -> (Vec<Vec<u8>>, Vec<Vec<u8>>, usize) {
    let cfg = recorded_config();
    let frames = read_pcap(path).unwrap();
    assert!(!frames.is_empty(), "{}: empty", path.display());
    let t0 = frames[0].0;
    let at = |ts: Duration| Instant::from_micros(ts.saturating_sub(t0).as_micros() as u64);
    let mut replay = Replay::new(cfg.clone());
    let mut expected = Vec::new();
    let mut shifts = Shifts::default();
    let mut client = client_of(&frames, &cfg);
    for (ts, frame) in &frames {
        if let Some((start, local, remote, data)) = client.take_if(|c| c.0 <= *ts) {
            // tapcat connects when the stack first asks for the server (ARP) or sends its SYN.
            replay.step(at(start));
            let id = replay
                .iface
                .tcp_connect_from(at(start), Some(local.port()), remote)
                .unwrap();
            replay.client = Some(Client {
                id,
                data,
                written: 0,
                shut: false,
                open: true,
            });
            replay.step(at(start));
        }
        if frame.len() >= 12 && frame[6..12] == cfg.mac.0 {
            shifts.recorded(frame);
            expected.push(frame.clone());
        } else {
            replay.step(at(*ts));
            let frame = shifts.translate(frame);
            replay.iface.receive(at(*ts), &frame);
            replay.step(at(*ts));
        }
        for f in &replay.sent[shifts.seen..] {
            shifts.replayed(f);
        }
        shifts.seen = replay.sent.len();
    }
    replay.step(at(frames.last().unwrap().0));
    let inbound = frames.len() - expected.len();
    (expected, replay.sent, inbound)
}

/// If the stack opened a connection in the capture: when tapcat started it (the stack's first
/// ARP request for the server, or else its SYN), from and to where, and what it sent.
fn client_of(
    frames: &[(Duration, Vec<u8>)],
    cfg: &StackConfig,
) -> Option<(Duration, SocketAddrV4, SocketAddrV4, Vec<u8>)> {
    let ours = |f: &[u8]| f.len() >= 12 && f[6..12] == cfg.mac.0;
    let (syn_at, local, remote) = frames.iter().find_map(|(ts, f)| {
        let p = etherparse::SlicedPacket::from_ethernet(f).ok()?;
        let (Some(etherparse::NetSlice::Ipv4(ip)), Some(etherparse::TransportSlice::Tcp(t))) =
            (p.net, p.transport)
        else {
            return None;
        };
        (ours(f) && t.syn() && !t.ack()).then(|| {
            let h = ip.header();
            (
                *ts,
                SocketAddrV4::new(h.source_addr(), t.source_port()),
                SocketAddrV4::new(h.destination_addr(), t.destination_port()),
            )
        })
    })?;
    let arp_at = frames.iter().find_map(|(ts, f)| {
        let p = etherparse::SlicedPacket::from_ethernet(f).ok()?;
        let Some(etherparse::NetSlice::Arp(arp)) = p.net else {
            return None;
        };
        (ours(f)
            && arp.operation() == etherparse::ArpOperation::REQUEST
            && arp.target_protocol_addr() == remote.ip().octets())
        .then_some(*ts)
    });
    let outbound: Vec<Vec<u8>> = frames
        .iter()
        .filter(|(_, f)| ours(f))
        .map(|(_, f)| f.clone())
        .collect();
    let data = conversations(&outbound).remove(&remote.port())?.stream;
    Some((arp_at.unwrap_or(syn_at).min(syn_at), local, remote, data))
}

#[test]
fn ip_captures_replay_byte_exact() {
    let files: Vec<PathBuf> = captures()
        .into_iter()
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with("tcp-"))
        .collect();
    assert!(files.len() >= 4, "captures missing from pcaps/: {files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (expected, sent, inbound) = replay(&path);
        for (i, (want, got)) in expected.iter().zip(&sent).enumerate() {
            assert!(
                want == got,
                "{name}: frame {i} differs\nrecorded: {}\nreplayed: {}",
                describe(want),
                describe(got)
            );
        }
        assert_eq!(
            sent.len(),
            expected.len(),
            "{name}: a different number of frames"
        );
        eprintln!(
            "{name}: {inbound} inbound frames replayed, {} answers byte-exact",
            expected.len()
        );
    }
}

/// What the stack said on one TCP connection, relative to its ISN.
#[derive(Debug, Default, PartialEq)]
struct Conversation {
    /// (flags, window, options) of the SYN-ACK.
    syn_ack: Option<(String, u16, String)>,
    /// Bytes sent, by relative sequence number (first transmission of each byte).
    stream: Vec<u8>,
    /// Relative sequence number of our FIN.
    fin: Option<u32>,
    /// A RST was sent, and its relative acknowledgement.
    rst: Option<u32>,
    /// The highest acknowledgement sent, relative to the peer's ISN (its FIN included).
    acked: u32,
}

/// Groups the stack's TCP segments by the peer's port.
fn conversations(frames: &[Vec<u8>]) -> std::collections::BTreeMap<u16, Conversation> {
    let mut out: std::collections::BTreeMap<u16, (Conversation, u32, Option<u32>)> =
        Default::default();
    for f in frames {
        let Ok(p) = etherparse::SlicedPacket::from_ethernet(f) else {
            continue;
        };
        let Some(etherparse::TransportSlice::Tcp(t)) = p.transport else {
            continue;
        };
        let port = t.destination_port();
        let entry = out.entry(port).or_default();
        let (conv, isn, irs) = entry;
        if t.syn() {
            *isn = t.sequence_number();
            // A SYN-ACK acknowledges the peer's SYN; our own SYN acknowledges nothing.
            *irs = t.ack().then(|| t.acknowledgment_number().wrapping_sub(1));
            let opts: Vec<String> = t
                .options_iterator()
                .filter_map(Result::ok)
                .map(|o| match o {
                    etherparse::TcpOptionElement::Timestamp(_, _) => "TS".into(),
                    o => format!("{o:?}"),
                })
                .collect();
            conv.syn_ack = Some((
                format!("syn={} ack={}", t.syn(), t.ack()),
                t.window_size(),
                opts.join(","),
            ));
            continue;
        }
        // As a client, our first ACK acknowledges the peer's SYN.
        let irs = *irs.get_or_insert(t.acknowledgment_number().wrapping_sub(1));
        if t.rst() {
            conv.rst = Some(t.acknowledgment_number().wrapping_sub(irs));
            continue;
        }
        if t.ack() {
            conv.acked = conv.acked.max(t.acknowledgment_number().wrapping_sub(irs));
        }
        let rel = t.sequence_number().wrapping_sub(*isn).wrapping_sub(1) as usize;
        let payload = t.payload();
        if rel <= conv.stream.len() && rel + payload.len() > conv.stream.len() {
            conv.stream
                .extend_from_slice(&payload[conv.stream.len() - rel..]);
        }
        if t.fin() {
            conv.fin = Some((rel + payload.len()) as u32);
        }
    }
    out.into_iter().map(|(k, (c, _, _))| (k, c)).collect()
}

#[test]
fn tcp_captures_replay_field_by_field() {
    let files: Vec<PathBuf> = captures()
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("tcp-"))
        .collect();
    assert!(
        files.len() >= 5,
        "TCP captures missing from pcaps/: {files:?}"
    );
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let (expected, sent, inbound) = replay(&path);
        let want = conversations(&expected);
        let got = conversations(&sent);
        assert_eq!(
            want.keys().collect::<Vec<_>>(),
            got.keys().collect::<Vec<_>>(),
            "{name}: connections"
        );
        for (port, w) in &want {
            let g = &got[port];
            assert_eq!(g.syn_ack, w.syn_ack, "{name}: SYN-ACK to port {port}");
            assert_eq!(g.rst, w.rst, "{name}: RST to port {port}");
            if name.contains("reset-by-peer") {
                // Chargen writes as fast as the window allows: how much went out before the
                // peer's reset depends on timing, but every byte is the RFC 864 pattern.
                let n = w.stream.len().min(g.stream.len());
                assert!(n > 10_000, "{name}: {n} bytes in common");
                assert_eq!(g.stream[..n], w.stream[..n], "{name}: chargen stream");
            } else {
                assert_eq!(
                    g.stream.len(),
                    w.stream.len(),
                    "{name}: bytes sent to port {port}"
                );
                assert!(
                    g.stream == w.stream,
                    "{name}: stream to port {port} differs"
                );
                assert_eq!(g.fin, w.fin, "{name}: FIN to port {port}");
                assert_eq!(g.acked, w.acked, "{name}: acknowledged from port {port}");
            }
        }
        eprintln!(
            "{name}: {inbound} inbound frames replayed; {} connection(s) match ({} bytes sent)",
            want.len(),
            want.values().map(|c| c.stream.len()).sum::<usize>()
        );
    }
}
