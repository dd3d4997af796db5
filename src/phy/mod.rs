//! Devices: where frames come from and go to. The runtime drives any [`Device`]; wrappers
//! ([`PcapDevice`], [`FaultInjector`], [`PathEmulator`]) stack on top of the real ones ([`TapDevice`],
//! [`TunDevice`], [`MemoryDevice`]).

mod fault;
mod memory;
mod path;
mod pcap;
mod tap;
pub(crate) mod wake;

pub use crate::wire::Medium;
pub use fault::{FaultConfig, FaultInjector};
pub use memory::{memory_pair, MemoryDevice};
pub use path::{PathConfig, PathEmulator};
pub use pcap::{read_pcap, CaptureInfo, PcapDevice};
pub use tap::{TapDevice, TunDevice};
pub use wake::WakeFd;

use crate::stats::Counters;
use crate::time::Instant;
use std::io;
use std::os::fd::RawFd;

/// What a device does for the stack beyond carrying frames (smoltcp's `DeviceCapabilities`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceCapabilities {
    /// Splits TCP super-segments itself (TSO): [`Device::send_tso`] hands them over whole.
    pub tso: bool,
    /// What the link carries: Ethernet frames, or bare IP packets that the device frames and
    /// unframes at its boundary (see [`Medium`]).
    pub medium: Medium,
    /// Writes a frame given in parts ([`Device::send_gather`]), so that a super-segment's
    /// data goes from the connection's send buffer to the kernel with no copy between. A
    /// device without it (a capture, the fault injector) gets frames whole.
    pub gather: bool,
}

/// A link that carries Ethernet frames. Methods never block.
pub trait Device: Send {
    /// Copies the next received frame into `buf`; `Ok(None)` when none is waiting.
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>>;

    /// Sends one frame.
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()>;

    /// Sends a TCP super-segment, or a UDP super-datagram, whose pieces carry `mss` payload
    /// bytes and whose checksum is partial (see [`crate::wire::gso`]). A device without TSO
    /// splits it in software and sends the pieces, so loss, reordering and captures below it
    /// see wire frames.
    fn send_tso(&mut self, now: Instant, frame: &[u8], mss: u16) -> io::Result<()> {
        send_in_pieces(self, now, frame, mss)
    }

    /// Sends a frame given as its headers (`head`, up to and including the TCP header) and
    /// its payload (`data`, in two slices), as one write; a super-segment if `tso_mss` is set,
    /// as [`Device::send_tso`] takes it. Called only on a device whose capabilities say
    /// [`DeviceCapabilities::gather`]; this default gathers the parts into one frame.
    fn send_gather(
        &mut self,
        now: Instant,
        head: &[u8],
        data: [&[u8]; 2],
        tso_mss: Option<u16>,
    ) -> io::Result<()> {
        send_joined(self, now, head, data, tso_mss)
    }

    /// What the device offloads.
    fn capabilities(&self) -> DeviceCapabilities {
        DeviceCapabilities::default()
    }

    /// The IP MTU of the link (largest Ethernet payload).
    fn mtu(&self) -> usize;

    /// A descriptor that polls readable when [`Device::recv`] may have a frame.
    fn poll_fd(&self) -> Option<RawFd>;

    /// When the device has work of its own (a held frame to release), if ever.
    fn poll_at(&self) -> Option<Instant> {
        None
    }

    /// Does the device's own timed work.
    fn poll(&mut self, _now: Instant) -> io::Result<()> {
        Ok(())
    }

    /// Adds the device's counters (fault injection) to the stack's.
    fn add_counters(&self, _counters: &mut Counters) {}

    /// Whether the device itself vouches for the TCP/UDP checksum of the frame `recv` last
    /// returned (Linux's CHECKSUM_UNNECESSARY): the core then skips verifying it.
    fn rx_checksum_verified(&self) -> bool {
        false
    }

    /// Where the transport checksum of the frame `recv` last returned was left partial, as
    /// (start, offset) (see [`crate::wire::complete_partial_checksum`]): the kernel vouches
    /// for the data but never computed the sum. A layer that shows or alters frames (a
    /// capture, fault injection) completes it; the core does not need it.
    fn rx_partial_checksum(&self) -> Option<(usize, usize)> {
        None
    }

    /// The payload bytes per wire frame of the TCP super-segment `recv` last returned, if the
    /// device was told (virtio's `gso_size`): what a layer that splits it again needs.
    fn rx_gso_size(&self) -> Option<u16> {
        None
    }
}

/// Joins a frame given in parts into one buffer and sends it with [`Device::send_tso`] or
/// [`Device::send`]: what a device that cannot write parts does (a copy and an allocation,
/// which the runtime spares such devices by joining the parts itself).
pub fn send_joined<D: Device + ?Sized>(
    dev: &mut D,
    now: Instant,
    head: &[u8],
    data: [&[u8]; 2],
    tso_mss: Option<u16>,
) -> io::Result<()> {
    send_frame(dev, now, &[head, data[0], data[1]].concat(), tso_mss)
}

/// Sends a whole frame: a super-segment (`tso_mss`) with [`Device::send_tso`], for the device
/// to split, or one frame with [`Device::send`].
pub fn send_frame<D: Device + ?Sized>(
    dev: &mut D,
    now: Instant,
    frame: &[u8],
    tso_mss: Option<u16>,
) -> io::Result<()> {
    match tso_mss {
        Some(mss) => dev.send_tso(now, frame, mss),
        None => dev.send(now, frame),
    }
}

/// Splits a TCP super-segment or UDP super-datagram in software (GSO) and sends the pieces
/// with [`Device::send`].
pub fn send_in_pieces<D: Device + ?Sized>(
    dev: &mut D,
    now: Instant,
    frame: &[u8],
    mss: u16,
) -> io::Result<()> {
    let pieces = crate::wire::gso::segment(frame, usize::from(mss)).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a TCP or UDP super-segment",
        )
    })?;
    pieces.iter().try_for_each(|piece| dev.send(now, piece))
}

impl<D: Device + ?Sized> Device for Box<D> {
    fn recv(&mut self, now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        (**self).recv(now, buf)
    }
    fn send(&mut self, now: Instant, frame: &[u8]) -> io::Result<()> {
        (**self).send(now, frame)
    }
    fn send_tso(&mut self, now: Instant, frame: &[u8], mss: u16) -> io::Result<()> {
        (**self).send_tso(now, frame, mss)
    }
    fn send_gather(
        &mut self,
        now: Instant,
        head: &[u8],
        data: [&[u8]; 2],
        tso_mss: Option<u16>,
    ) -> io::Result<()> {
        (**self).send_gather(now, head, data, tso_mss)
    }
    fn capabilities(&self) -> DeviceCapabilities {
        (**self).capabilities()
    }
    fn mtu(&self) -> usize {
        (**self).mtu()
    }
    fn poll_fd(&self) -> Option<RawFd> {
        (**self).poll_fd()
    }
    fn poll_at(&self) -> Option<Instant> {
        (**self).poll_at()
    }
    fn poll(&mut self, now: Instant) -> io::Result<()> {
        (**self).poll(now)
    }
    fn add_counters(&self, counters: &mut Counters) {
        (**self).add_counters(counters)
    }
    fn rx_checksum_verified(&self) -> bool {
        (**self).rx_checksum_verified()
    }
    fn rx_partial_checksum(&self) -> Option<(usize, usize)> {
        (**self).rx_partial_checksum()
    }
    fn rx_gso_size(&self) -> Option<u16> {
        (**self).rx_gso_size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A device that hands over one frame, vouching for its checksum and saying where it
    /// was left partial, as the tap does.
    struct Fake {
        frame: Option<Vec<u8>>,
        partial: Option<(usize, usize)>,
    }

    impl Device for Fake {
        fn recv(&mut self, _: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
            Ok(self.frame.take().map(|f| {
                buf[..f.len()].copy_from_slice(&f);
                f.len()
            }))
        }
        fn send(&mut self, _: Instant, _: &[u8]) -> io::Result<()> {
            Ok(())
        }
        fn mtu(&self) -> usize {
            1500
        }
        fn poll_fd(&self) -> Option<RawFd> {
            None
        }
        fn rx_checksum_verified(&self) -> bool {
            true
        }
        fn rx_partial_checksum(&self) -> Option<(usize, usize)> {
            self.partial
        }
    }

    /// The apps box their device: every method, the checksum fast path included, goes through.
    #[test]
    fn a_boxed_device_forwards_checksum_verification() {
        let boxed: Box<dyn Device> = Box::new(partial_device());
        assert!(boxed.rx_checksum_verified());
        assert_eq!(boxed.rx_partial_checksum(), Some((TCP_AT, 16)));
    }

    const TCP_AT: usize = 14 + 20;

    /// A TCP frame whose checksum the kernel left partial, from a device that says so.
    fn partial_device() -> Fake {
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 9, 1, 1000)
            .write(&mut frame, &[7u8; 3000])
            .unwrap();
        let partial = crate::wire::gso::pseudo_header_partial(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            frame.len() - TCP_AT,
        );
        frame[TCP_AT + 16..TCP_AT + 18].copy_from_slice(&partial);
        Fake {
            frame: Some(frame),
            partial: Some((TCP_AT, 16)),
        }
    }

    fn checksum_ok(frame: &[u8]) -> bool {
        crate::wire::transport_checksum_ok([10, 0, 0, 1], [10, 0, 0, 2], 6, &frame[TCP_AT..])
    }

    /// The core trusts a partial checksum from the tap and never completes it; the fault
    /// injector (whose frames the core checks) and a capture (which shows wire frames) do.
    #[test]
    fn partial_checksums_are_completed_only_where_frames_are_checked_or_shown() {
        let mut buf = vec![0u8; 4096];
        let mut plain = partial_device();
        let n = plain.recv(Instant::ZERO, &mut buf).unwrap().unwrap();
        assert!(!checksum_ok(&buf[..n]), "left partial for the core");

        let faults = FaultConfig {
            seed: 1,
            ..FaultConfig::default()
        };
        let mut injector = FaultInjector::new(partial_device(), faults);
        let n = injector.recv(Instant::ZERO, &mut buf).unwrap().unwrap();
        assert!(checksum_ok(&buf[..n]), "completed before faults");

        let path =
            std::env::temp_dir().join(format!("tapstack-partial-{}.pcap", std::process::id()));
        let mut pcap = PcapDevice::create(partial_device(), &path).unwrap();
        let n = pcap.recv(Instant::ZERO, &mut buf).unwrap().unwrap();
        assert!(!checksum_ok(&buf[..n]), "the core still gets it as it came");
        drop(pcap);
        let frames = read_pcap(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert!(checksum_ok(&frames[0].1), "the capture shows it completed");
    }

    /// A wall-clock capture stamps each frame when it is written, in nanoseconds: two frames
    /// sent in one loop iteration (the same `now`) get different, increasing times.
    #[test]
    fn a_wall_clock_capture_stamps_each_frame() {
        let path =
            std::env::temp_dir().join(format!("tapstack-stamps-{}.pcap", std::process::id()));
        let mut pcap = PcapDevice::create_wall_clock(partial_device(), &path).unwrap();
        let frame = [0u8; 60];
        let start = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        pcap.send(Instant::ZERO, &frame).unwrap();
        pcap.send(Instant::ZERO, &frame).unwrap();
        drop(pcap);
        let bytes = std::fs::read(&path).unwrap();
        let frames = read_pcap(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            u32::from_ne_bytes(bytes[..4].try_into().unwrap()),
            0xa1b2_3c4d,
            "the nanosecond pcap format"
        );
        assert_eq!(frames.len(), 2);
        assert!(
            frames[0].0 >= start,
            "the wall clock, not the injected time"
        );
        assert!(frames[1].0 > frames[0].0, "{:?}", frames);
    }
}
