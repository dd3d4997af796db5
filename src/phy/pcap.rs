use super::Device;
use crate::stats::Counters;
use crate::time::Instant;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};
use std::fs::File;
use std::io::{self, BufWriter};
use std::os::fd::RawFd;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Records every frame received and sent by the inner device into a pcap file (Ethernet link
/// type, nanosecond timestamps) that tcpdump and Wireshark read.
pub struct PcapDevice<D> {
    inner: D,
    writer: Option<PcapWriter<BufWriter<File>>>,
    /// Wall-clock time at `Instant::ZERO`, fixed at the first frame.
    base: Option<Duration>,
    stamps: Stamps,
}

/// Where a capture's timestamps come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stamps {
    /// The time the stack passes in (virtual in simulations: reproducible captures).
    Injected,
    /// The wall clock when the frame is actually read or written (a real device): frames of
    /// one loop iteration get distinct times, and a request and its answer show their true
    /// gap, as tcpdump on the device would.
    WallClock,
}

impl<D: Device> PcapDevice<D> {
    /// A capture stamped with the time the stack passes in (see
    /// [`PcapDevice::create_wall_clock`] for a real device).
    pub fn create(inner: D, path: &Path) -> io::Result<Self> {
        Self::open(inner, path, Stamps::Injected)
    }

    /// A capture stamped with the wall clock at each read and write, in nanoseconds.
    pub fn create_wall_clock(inner: D, path: &Path) -> io::Result<Self> {
        Self::open(inner, path, Stamps::WallClock)
    }

    fn open(inner: D, path: &Path, stamps: Stamps) -> io::Result<Self> {
        let file = File::create(path).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display()))
        })?;
        let header = PcapHeader {
            snaplen: 262_144,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
            ..Default::default()
        };
        let writer =
            PcapWriter::with_header(BufWriter::new(file), header).map_err(io::Error::other)?;
        Ok(PcapDevice {
            inner,
            writer: Some(writer),
            base: None,
            stamps,
        })
    }

    fn record(&mut self, now: Instant, frame: &[u8]) {
        let wall = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
        };
        let ts = match self.stamps {
            Stamps::WallClock => wall(),
            Stamps::Injected => {
                let since_zero = Duration::from_micros(now.total_micros());
                *self
                    .base
                    .get_or_insert_with(|| wall().saturating_sub(since_zero))
                    + since_zero
            }
        };
        if let Some(w) = &mut self.writer {
            let packet = PcapPacket::new(ts, frame.len() as u32, frame);
            if let Err(e) = w.write_packet(&packet) {
                log::error!("pcap capture stopped: {e}");
                self.writer = None;
            }
        }
    }
}

impl<D> Drop for PcapDevice<D> {
    fn drop(&mut self) {
        if let Some(w) = self.writer.take() {
            if let Err(e) = io::Write::flush(&mut w.into_writer()) {
                log::error!("pcap capture incomplete: {e}");
            }
        }
    }
}

impl<D: Device> Device for PcapDevice<D> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let got = self.inner.recv(now, buf)?;
        if let Some(n) = got {
            match self.inner.rx_partial_checksum() {
                // The capture shows the checksum the frame would carry on a wire.
                Some((start, offset)) => {
                    let mut copy = buf[..n].to_vec();
                    crate::wire::complete_partial_checksum(&mut copy, start, offset);
                    self.record(now, &copy);
                }
                None => self.record(now, &buf[..n]),
            }
        }
        Ok(got)
    }

    fn rx_partial_checksum(&self) -> Option<(usize, usize)> {
        self.inner.rx_partial_checksum()
    }

    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        self.inner.send(now, frame)?;
        self.record(now, frame);
        Ok(())
    }

    /// Records the super-segment whole, as tcpdump on a tap with TSO shows it.
    fn send_tso(&mut self, now: Instant, frame: &[u8], mss: u16) -> io::Result<()> {
        self.inner.send_tso(now, frame, mss)?;
        self.record(now, frame);
        Ok(())
    }

    fn capabilities(&self) -> super::DeviceCapabilities {
        self.inner.capabilities()
    }

    fn rx_checksum_verified(&self) -> bool {
        self.inner.rx_checksum_verified()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn poll_fd(&self) -> Option<RawFd> {
        self.inner.poll_fd()
    }

    fn poll_at(&self) -> Option<Instant> {
        self.inner.poll_at()
    }

    fn poll(&mut self, now: Instant) -> io::Result<()> {
        self.inner.poll(now)
    }

    fn add_counters(&self, counters: &mut Counters) {
        self.inner.add_counters(counters)
    }
}

/// Reads an Ethernet pcap file into `(timestamp, frame)` pairs.
pub fn read_pcap(path: &Path) -> io::Result<Vec<(Duration, Vec<u8>)>> {
    let file = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))?;
    let mut reader = PcapReader::new(file).map_err(io::Error::other)?;
    if reader.header().datalink != DataLink::ETHERNET {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: not an Ethernet capture", path.display()),
        ));
    }
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.map_err(io::Error::other)?;
        frames.push((packet.timestamp, packet.data.into_owned()));
    }
    Ok(frames)
}
