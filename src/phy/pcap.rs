use super::Device;
use crate::stats::Counters;
use crate::time::Instant;
use crate::wire::{Medium, ETHERNET_HEADER_LEN};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapReader, PcapWriter};
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::blocks::section_header::{SectionHeaderBlock, SectionHeaderOption};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::{DataLink, Endianness, TsResolution};
use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter};
use std::os::fd::RawFd;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Bytes kept of each frame, as tcpdump's default snap length.
const SNAPLEN: u32 = 262_144;

/// pcapng's `if_tsresol` for nanoseconds (10^-9 s).
const NANOSECONDS: u8 = 9;

/// Records every frame received and sent by the inner device into a capture file that tcpdump
/// and Wireshark read, with nanosecond timestamps: classic pcap or pcapng, with the Ethernet
/// link type, or `LINKTYPE_RAW` (bare IP packets) over a TUN.
pub struct PcapDevice<D> {
    inner: D,
    writer: Option<Writer>,
    /// Bytes of each frame left out of the capture: the made-up Ethernet header over a TUN.
    skip: usize,
    /// Wall-clock time at `Instant::ZERO`, fixed at the first frame.
    base: Option<Duration>,
    stamps: Stamps,
}

enum Writer {
    Pcap(PcapWriter<BufWriter<File>>),
    PcapNg(PcapNgWriter<BufWriter<File>>),
}

/// Where a frame's timestamp comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stamps {
    /// The time the driver passed in, anchored to the wall clock at the first frame: a
    /// simulation's virtual time shows as real intervals.
    Injected,
    /// The wall clock when the frame is actually read from or written to the device.
    WallClock,
}

/// What a pcapng capture says about itself: the interface's name and a comment (the apps put
/// the stack's address and seed there).
#[derive(Clone, Debug, Default)]
pub struct CaptureInfo {
    /// The interface the frames crossed (`if_name`).
    pub if_name: String,
    /// A comment on the capture (`shb_comment`).
    pub comment: String,
}

impl<D: Device> PcapDevice<D> {
    /// A classic pcap capture stamped with the time the driver passes in (virtual time in
    /// simulations).
    pub fn create(inner: D, path: &Path) -> io::Result<Self> {
        let writer = pcap_writer(&inner, path)?;
        Ok(Self::with_writer(inner, writer, Stamps::Injected))
    }

    /// A classic pcap capture stamped with the wall clock as each frame crosses the device.
    pub fn create_wall_clock(inner: D, path: &Path) -> io::Result<Self> {
        let writer = pcap_writer(&inner, path)?;
        Ok(Self::with_writer(inner, writer, Stamps::WallClock))
    }

    /// A pcapng capture stamped with the wall clock, naming the interface and carrying a
    /// comment.
    pub fn create_pcapng(inner: D, path: &Path, info: &CaptureInfo) -> io::Result<Self> {
        let section = SectionHeaderBlock {
            endianness: Endianness::native(),
            options: vec![
                SectionHeaderOption::UserApplication(Cow::Owned(format!(
                    "tapstack {}",
                    env!("CARGO_PKG_VERSION")
                ))),
                SectionHeaderOption::Comment(Cow::Owned(info.comment.clone())),
            ],
            ..Default::default()
        };
        let mut writer =
            PcapNgWriter::with_section_header(create(path)?, section).map_err(io::Error::other)?;
        let interface = InterfaceDescriptionBlock {
            linktype: link_type(&inner),
            snaplen: SNAPLEN,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(info.if_name.clone())),
                InterfaceDescriptionOption::IfTsResol(NANOSECONDS),
            ],
        };
        writer
            .write_pcapng_block(interface)
            .map_err(io::Error::other)?;
        Ok(Self::with_writer(
            inner,
            Writer::PcapNg(writer),
            Stamps::WallClock,
        ))
    }

    fn with_writer(inner: D, writer: Writer, stamps: Stamps) -> Self {
        let skip = match inner.capabilities().medium {
            Medium::Ethernet => 0,
            Medium::Ip => ETHERNET_HEADER_LEN,
        };
        PcapDevice {
            inner,
            writer: Some(writer),
            skip,
            base: None,
            stamps,
        }
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
        let data = frame.get(self.skip..).unwrap_or_default();
        let written = match &mut self.writer {
            None => return,
            Some(Writer::Pcap(w)) => w
                .write_packet(&PcapPacket::new(ts, data.len() as u32, data))
                .map(drop),
            Some(Writer::PcapNg(w)) => w
                .write_pcapng_block(EnhancedPacketBlock {
                    interface_id: 0,
                    timestamp: ts,
                    original_len: data.len() as u32,
                    data: Cow::Borrowed(data),
                    options: Vec::new(),
                })
                .map(drop),
        };
        if let Err(e) = written {
            log::error!("capture stopped: {e}");
            self.writer = None;
        }
    }
}

fn create(path: &Path) -> io::Result<BufWriter<File>> {
    File::create(path)
        .map(BufWriter::new)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot create {}: {e}", path.display())))
}

/// The capture's link type: Ethernet, or `LINKTYPE_RAW` over a bare-IP link.
fn link_type(device: &impl Device) -> DataLink {
    match device.capabilities().medium {
        Medium::Ethernet => DataLink::ETHERNET,
        Medium::Ip => DataLink::RAW,
    }
}

fn pcap_writer(inner: &impl Device, path: &Path) -> io::Result<Writer> {
    let header = PcapHeader {
        snaplen: SNAPLEN,
        datalink: link_type(inner),
        ts_resolution: TsResolution::NanoSecond,
        endianness: Endianness::native(),
        ..Default::default()
    };
    PcapWriter::with_header(create(path)?, header)
        .map(Writer::Pcap)
        .map_err(io::Error::other)
}

impl<D> Drop for PcapDevice<D> {
    fn drop(&mut self) {
        let mut file = match self.writer.take() {
            None => return,
            Some(Writer::Pcap(w)) => w.into_writer(),
            Some(Writer::PcapNg(w)) => w.into_inner(),
        };
        if let Err(e) = io::Write::flush(&mut file) {
            log::error!("capture incomplete: {e}");
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

    fn rx_gso_size(&self) -> Option<u16> {
        self.inner.rx_gso_size()
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

    /// The inner device's, but frames come whole (no `gather`), to be recorded.
    fn capabilities(&self) -> super::DeviceCapabilities {
        super::DeviceCapabilities {
            gather: false,
            ..self.inner.capabilities()
        }
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
