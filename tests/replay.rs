//! Pcap replay: the inbound frames of each capture in `pcaps/` (recorded between the Linux
//! kernel and `echo-server --seed 1`) are fed to a fresh core under the recorded timestamps,
//! with the echo service emulated in-line; the frames the core sends must equal the recorded
//! ones byte for byte (the stack is deterministic under its seed).

mod common;

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tapstack::core::Interface;
use tapstack::phy::read_pcap;
use tapstack::time::Instant;
use tapstack::wire::MacAddr;
use tapstack::StackConfig;

/// The echo-server defaults the captures were recorded with.
fn recorded_config() -> StackConfig {
    let mut cfg = StackConfig::new(Ipv4Addr::new(10, 0, 0, 2), 24);
    cfg.mac = MacAddr([0x02, 0x00, 0x0a, 0x00, 0x00, 0x02]);
    cfg.seed = 1;
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
    sent: Vec<Vec<u8>>,
}

impl Replay {
    fn new(cfg: StackConfig) -> Replay {
        let mut iface = Interface::new(cfg, Instant::ZERO);
        let echo = iface
            .udp_bind(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 7))
            .unwrap();
        Replay {
            iface,
            echo,
            sent: Vec::new(),
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
        self.collect();
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

#[test]
fn every_capture_replays_byte_exact() {
    let files = captures();
    assert!(files.len() >= 4, "captures missing from pcaps/: {files:?}");
    let cfg = recorded_config();
    for path in files {
        let frames = read_pcap(&path).unwrap();
        assert!(!frames.is_empty(), "{}: empty", path.display());
        let t0 = frames[0].0;
        let at = |ts: Duration| Instant::from_micros((ts.saturating_sub(t0)).as_micros() as u64);
        let mut replay = Replay::new(cfg.clone());
        let mut expected = Vec::new();
        for (ts, frame) in &frames {
            if frame.len() >= 12 && frame[6..12] == cfg.mac.0 {
                expected.push(frame.clone());
            } else {
                replay.step(at(*ts));
                replay.iface.receive(at(*ts), frame);
                replay.step(at(*ts));
            }
        }
        let end = at(frames.last().unwrap().0);
        replay.step(end);
        let name = path.file_name().unwrap().to_string_lossy();
        for (i, (want, got)) in expected.iter().zip(&replay.sent).enumerate() {
            assert!(
                want == got,
                "{name}: frame {i} differs\nrecorded: {}\nreplayed: {}",
                describe(want),
                describe(got)
            );
        }
        assert_eq!(
            replay.sent.len(),
            expected.len(),
            "{name}: the replay sent a different number of frames"
        );
        eprintln!(
            "{name}: {} inbound frames replayed, {} answers byte-exact",
            frames.len() - expected.len(),
            expected.len()
        );
    }
}
