//! Linux TAP (Ethernet) and TUN (bare IP) interfaces opened through `/dev/net/tun`.
//!
//! With `IFF_VNET_HDR` and `TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6` offloads the kernel hands us TCP segments
//! of up to 64 KB (as its own GRO would) whose checksum it left partial, and takes ours whole
//! to split itself; both kinds of interface have them. If the kernel refuses the offloads, the
//! device falls back to plain frames.
//!
//! A TUN carries IP packets with no link header. The core speaks Ethernet, so a [`TunDevice`]
//! reads each packet 14 bytes into the buffer and writes a made-up Ethernet header in front
//! of it, and writes only what follows the header of each frame it sends: no copy either way
//! (see [`Medium::Ip`]).
//!
//! The `tun-tap` and `tun-rs` crates were weighed for the set-up: `tun-tap` has no virtio
//! header, and so no offloads; `tun-rs` has them, but through its own buffers and GSO split,
//! where these few ioctls let the core's frames go to the kernel with one `writev` each: a
//! super-segment as its headers and its data where it lies in the send buffer
//! ([`Device::send_gather`]).

use super::{Device, DeviceCapabilities};
use crate::time::Instant;
use crate::wire::{gso, Medium, ETHERNET_HEADER_LEN};
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// How long [`TapDevice::open`] waits for the kernel to put the link in service.
const LINK_READY_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// `struct virtio_net_hdr` (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset).
const VNET_HDR_LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` on is still to be computed.
const NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_F_DATA_VALID`: the kernel verified the checksum already.
const DATA_VALID: u8 = 2;
/// `VIRTIO_NET_HDR_GSO_TCPV4`: a TCP/IPv4 super-segment for the kernel to split.
const GSO_TCPV4: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_TCPV6`: the same over IPv6.
const GSO_TCPV6: u8 = 4;
/// `VIRTIO_NET_HDR_GSO_UDP_L4`: a UDP super-datagram for the kernel to cut into datagrams.
const GSO_UDP_L4: u8 = 5;
/// `VIRTIO_NET_HDR_GSO_ECN`: the super-segment carries ECN (CWR on its first piece).
const GSO_ECN: u8 = 0x80;

/// `struct virtio_net_hdr`, in host byte order as the tun driver takes it.
struct VnetHdr {
    flags: u8,
    gso_type: u8,
    /// Bytes of headers (Ethernet, IP, TCP) before the payload.
    hdr_len: u16,
    /// Payload bytes per piece.
    gso_size: u16,
    /// Where the checksummed part starts, and where in it the checksum field is.
    csum_start: u16,
    csum_offset: u16,
}

impl VnetHdr {
    fn to_bytes(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        for (i, v) in [
            self.hdr_len,
            self.gso_size,
            self.csum_start,
            self.csum_offset,
        ]
        .into_iter()
        .enumerate()
        {
            b[2 + 2 * i..4 + 2 * i].copy_from_slice(&v.to_ne_bytes());
        }
        b
    }

    fn from_bytes(b: &[u8; VNET_HDR_LEN]) -> VnetHdr {
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        }
    }
}

/// A TAP interface: Ethernet frames, with ARP.
pub struct TapDevice(TunTap);

/// A TUN interface: bare IPv4 and IPv6 packets, no link layer (see [`Medium::Ip`]).
pub struct TunDevice(TunTap);

/// What a TAP and a TUN share: the descriptor, the offloads and the last frame's checksum
/// state.
struct TunTap {
    medium: Medium,
    fd: OwnedFd,
    name: String,
    mtu: usize,
    vnet: bool,
    /// The last frame received came with a checksum the kernel computed or verified.
    rx_csum_ok: bool,
    /// The last frame received had its checksum left partial, at (start, offset).
    rx_partial: Option<(usize, usize)>,
    /// The last frame received was a TCP super-segment of pieces this long (the kernel's
    /// GSO size).
    rx_gso_size: Option<u16>,
    /// The most datagrams a UDP super-datagram the kernel takes may become: Linux's
    /// `UDP_MAX_SEGMENTS` at first; 64 once a kernel older than 6.11 refused more; 0 once a
    /// kernel without USO (older than 6.2) refused one. Past it they are split here.
    uso_max: usize,
}

/// `UDP_MAX_SEGMENTS` of kernels before 6.11.
const OLD_UDP_MAX_SEGMENTS: usize = 64;

/// An interface name the kernel takes: 1 to 15 bytes.
fn check_name(name: &str) -> io::Result<()> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name {name:?}"),
        ));
    }
    Ok(())
}

fn os_check(rc: libc::c_int, what: &str) -> io::Result<()> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

impl TapDevice {
    /// Sets the interface's MTU, as `ip link set NAME mtu N` (root, or `CAP_NET_ADMIN`).
    pub fn set_mtu(&mut self, mtu: usize) -> io::Result<()> {
        self.0.set_mtu(mtu)
    }

    /// Attaches to tap `name` (creating a non-persistent one if it does not exist), without
    /// packet info, non-blocking, with offloads when the kernel allows them, and brings the
    /// link up.
    pub fn open(name: &str) -> io::Result<Self> {
        TunTap::open(name, Medium::Ethernet).map(TapDevice)
    }

    /// Attaches `n` queues of tap `name` (`IFF_MULTI_QUEUE`), one device each, for
    /// [`crate::Stack::new_queues`]: the kernel spreads the flows it sends over them, each to
    /// the queue that last wrote on it. A persistent tap must have been made with
    /// `multi_queue` (`ip tuntap add NAME mode tap multi_queue`). One queue is
    /// [`TapDevice::open`].
    pub fn open_queues(name: &str, n: usize) -> io::Result<Vec<Self>> {
        TunTap::open_queues(name, Medium::Ethernet, n)
            .map(|qs| qs.into_iter().map(TapDevice).collect())
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether the kernel hands us offloaded (large, checksum-partial) segments.
    pub fn offloads(&self) -> bool {
        self.0.vnet
    }
}

impl TunDevice {
    /// Sets the interface's MTU, as `ip link set NAME mtu N` (root, or `CAP_NET_ADMIN`).
    pub fn set_mtu(&mut self, mtu: usize) -> io::Result<()> {
        self.0.set_mtu(mtu)
    }

    /// Attaches to tun `name` (creating a non-persistent one if it does not exist), as
    /// [`TapDevice::open`] does.
    pub fn open(name: &str) -> io::Result<Self> {
        TunTap::open(name, Medium::Ip).map(TunDevice)
    }

    /// Attaches `n` queues of tun `name`, as [`TapDevice::open_queues`] does.
    pub fn open_queues(name: &str, n: usize) -> io::Result<Vec<Self>> {
        TunTap::open_queues(name, Medium::Ip, n).map(|qs| qs.into_iter().map(TunDevice).collect())
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Whether the kernel hands us offloaded (large, checksum-partial) segments.
    pub fn offloads(&self) -> bool {
        self.0.vnet
    }
}

impl TunTap {
    fn open_queues(name: &str, medium: Medium, n: usize) -> io::Result<Vec<Self>> {
        if n <= 1 {
            return Ok(vec![Self::open(name, medium)?]);
        }
        check_name(name)?;
        let first = Self::open_with(name, medium, true, true)
            .or_else(|_| Self::open_with(name, medium, false, true))?;
        // Every queue as the first: the kernel's name (`tap%d` resolved), its offloads.
        let (name, vnet) = (first.name.clone(), first.vnet);
        let mut queues = vec![first];
        for _ in 1..n {
            queues.push(Self::open_with(&name, medium, vnet, true)?);
        }
        Ok(queues)
    }

    fn open(name: &str, medium: Medium) -> io::Result<Self> {
        check_name(name)?;
        // With offloads if the kernel allows them; a persistent interface made with
        // `multi_queue` is attached as one of its queues.
        let attempts = [(true, false), (true, true), (false, false), (false, true)];
        let mut first = None;
        for (vnet, mq) in attempts {
            match Self::open_with(name, medium, vnet, mq) {
                Ok(t) => return Ok(t),
                Err(e) => {
                    log::debug!("{name} (offloads {vnet}, multi-queue {mq}): {e}");
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.unwrap_or_else(|| io::Error::other("no attempt")))
    }

    fn open_with(name: &str, medium: Medium, vnet: bool, multi_queue: bool) -> io::Result<Self> {
        let path = CString::new("/dev/net/tun").map_err(io::Error::other)?;
        // SAFETY: open with a valid C string; the result is checked.
        let raw = unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_CLOEXEC | libc::O_NONBLOCK,
            )
        };
        os_check(raw, "open /dev/net/tun")?;
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ifreq is plain data for which zero is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        let mode = match medium {
            Medium::Ethernet => libc::IFF_TAP,
            Medium::Ip => libc::IFF_TUN,
        };
        let mut flags = mode | libc::IFF_NO_PI;
        if vnet {
            flags |= libc::IFF_VNET_HDR;
        }
        if multi_queue {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        req.ifr_ifru.ifru_flags = flags as libc::c_short;
        let what = if multi_queue {
            format!("attach a queue of {name} (a persistent one needs `multi_queue`)")
        } else {
            format!("attach {name}")
        };
        // SAFETY: TUNSETIFF reads and writes the ifreq we pass.
        os_check(
            unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) },
            &what,
        )?;
        if vnet {
            let len = VNET_HDR_LEN as libc::c_int;
            // SAFETY: TUNSETVNETHDRSZ reads an int; TUNSETOFFLOAD takes the flags by value.
            os_check(
                unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETVNETHDRSZ, &len) },
                "TUNSETVNETHDRSZ",
            )?;
            let offloads =
                (libc::TUN_F_CSUM | libc::TUN_F_TSO4 | libc::TUN_F_TSO6) as libc::c_ulong;
            os_check(
                unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETOFFLOAD, offloads) },
                "TUNSETOFFLOAD",
            )?;
        }
        let name: String = req
            .ifr_name
            .iter()
            .take_while(|c| **c != 0)
            .map(|c| *c as u8 as char)
            .collect();
        let mut ctl = IfCtl::new(&name)?;
        ctl.set_up()?;
        wait_link_ready(&mut ctl, &fd, &name)?;
        let mtu = ctl.mtu()?;
        Ok(TunTap {
            medium,
            fd,
            name,
            mtu,
            vnet,
            rx_csum_ok: false,
            rx_partial: None,
            rx_gso_size: None,
            uso_max: gso::UDP_MAX_SEGMENTS,
        })
    }

    /// Sets the interface's MTU (`ip link set NAME mtu N`); the stack started on the device
    /// afterwards takes it, and its TCP's MSS follows.
    fn set_mtu(&mut self, mtu: usize) -> io::Result<()> {
        IfCtl::new(&self.name)?.set_mtu(mtu)?;
        self.mtu = mtu;
        Ok(())
    }

    /// Bytes of each frame the kernel does not see: the Ethernet header on a TUN.
    fn link_header(&self) -> usize {
        match self.medium {
            Medium::Ethernet => 0,
            Medium::Ip => ETHERNET_HEADER_LEN,
        }
    }

    fn recv(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        let skip = self.link_header();
        if buf.len() <= skip {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "receive buffer too small",
            ));
        }
        let mut hdr = [0u8; VNET_HDR_LEN];
        let mut iov = [
            libc::iovec {
                iov_base: hdr.as_mut_ptr().cast(),
                iov_len: if self.vnet { VNET_HDR_LEN } else { 0 },
            },
            libc::iovec {
                iov_base: buf[skip..].as_mut_ptr().cast(),
                iov_len: buf.len() - skip,
            },
        ];
        // SAFETY: both iovecs point into live buffers of the stated lengths.
        let n = unsafe { libc::readv(self.fd.as_raw_fd(), iov.as_mut_ptr(), 2) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(e),
            };
        }
        let hlen = if self.vnet { VNET_HDR_LEN } else { 0 };
        let len = (n as usize).saturating_sub(hlen) + skip;
        if skip > 0 {
            frame_ip_packet(buf, len);
        }
        // Data from kernel memory with its checksum left partial or already verified needs no
        // check, as in Linux (CHECKSUM_PARTIAL, CHECKSUM_UNNECESSARY). A partial checksum is
        // left as it is, as tcpdump on the tap shows it; a capture or fault injector above
        // completes it (`rx_partial_checksum`).
        let vnet = VnetHdr::from_bytes(&hdr);
        self.rx_csum_ok = self.vnet && vnet.flags & (NEEDS_CSUM | DATA_VALID) != 0;
        self.rx_partial = None;
        let gso = vnet.gso_type & !GSO_ECN;
        self.rx_gso_size =
            (self.vnet && (gso == GSO_TCPV4 || gso == GSO_TCPV6) && vnet.gso_size > 0)
                .then_some(vnet.gso_size);
        if self.vnet && vnet.flags & NEEDS_CSUM != 0 {
            let start = usize::from(vnet.csum_start) + skip;
            let offset = usize::from(vnet.csum_offset);
            if start + offset + 2 > len {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "bad checksum offsets from the tap",
                ));
            }
            self.rx_partial = Some((start, offset));
        }
        Ok(Some(len))
    }

    /// Sends a super-segment whole with offloads, for the kernel to split (completing each
    /// piece's checksum); `Ok(false)` without them.
    fn send_tso(&mut self, frame: &[u8], mss: u16) -> io::Result<bool> {
        self.send_gather(frame, [&[], &[]], Some(mss))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        DeviceCapabilities {
            tso: self.vnet,
            medium: self.medium,
            gather: true,
        }
    }

    /// Writes a frame given in parts, with one `writev`: a super-segment behind a virtio GSO
    /// header as [`Self::send_tso`] writes it, or one frame. `Ok(false)` for a super-segment
    /// without offloads, which must be split whole.
    fn send_gather(&mut self, head: &[u8], data: [&[u8]; 2], mss: Option<u16>) -> io::Result<bool> {
        let Some(mss) = mss else {
            self.write_parts(&[0u8; VNET_HDR_LEN], head, data)?;
            return Ok(true);
        };
        let len = head.len() + data[0].len() + data[1].len();
        let udp = gso::is_udp(head);
        let Some((l4_at, payload_at, end)) = gso::header_offsets(head, len).filter(|_| self.vnet)
        else {
            return Ok(false);
        };
        let pieces = (end - payload_at).div_ceil(usize::from(mss).max(1));
        if udp && pieces > self.uso_max {
            return Ok(false);
        }
        let skip = self.link_header();
        let hdr = VnetHdr {
            flags: NEEDS_CSUM,
            gso_type: match (udp, gso::is_ipv6(head)) {
                (true, _) => GSO_UDP_L4,
                (false, true) => GSO_TCPV6,
                (false, false) => GSO_TCPV4,
            },
            hdr_len: (payload_at - skip) as u16,
            gso_size: mss,
            csum_start: (l4_at - skip) as u16,
            csum_offset: gso::checksum_offset(head) as u16,
        };
        match self.write_parts(&hdr.to_bytes(), head, data) {
            Err(e) if udp && e.raw_os_error() == Some(libc::EINVAL) => {
                self.uso_max = if pieces > OLD_UDP_MAX_SEGMENTS {
                    OLD_UDP_MAX_SEGMENTS
                } else {
                    0
                };
                log::info!(
                    "{}: the kernel refused a UDP super-datagram of {pieces} datagrams ({e}): \
                     it takes at most {} from now on",
                    self.name,
                    self.uso_max
                );
                Ok(false)
            }
            r => r.map(|()| true),
        }
    }

    /// Writes one frame in parts behind its virtio header (left out without offloads): its
    /// start `head` (on a TUN, from behind its Ethernet header), then `data`.
    fn write_parts(
        &self,
        hdr: &[u8; VNET_HDR_LEN],
        head: &[u8],
        data: [&[u8]; 2],
    ) -> io::Result<()> {
        let head = head.get(self.link_header()..).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "frame shorter than its header")
        })?;
        let iov = |b: &[u8]| libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        };
        let iovs = [
            libc::iovec {
                iov_base: hdr.as_ptr() as *mut libc::c_void,
                iov_len: if self.vnet { VNET_HDR_LEN } else { 0 },
            },
            iov(head),
            iov(data[0]),
            iov(data[1]),
        ];
        // SAFETY: every iovec points into a live buffer of the stated length; writev only
        // reads them.
        let n = unsafe { libc::writev(self.fd.as_raw_fd(), iovs.as_ptr(), iovs.len() as i32) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes one frame (on a TUN, what follows its Ethernet header) behind its virtio header
    /// (left out without offloads).
    fn write_frame(&self, hdr: &[u8; VNET_HDR_LEN], frame: &[u8]) -> io::Result<()> {
        self.write_parts(hdr, frame, [&[], &[]])
    }
}

/// Writes the Ethernet header the core expects in front of the IP packet at
/// `buf[ETHERNET_HEADER_LEN..len]` read from a TUN: no addresses (the core does not filter
/// on a bare-IP link), and the EtherType of the packet's IP version.
fn frame_ip_packet(buf: &mut [u8], len: usize) {
    let version = buf.get(ETHERNET_HEADER_LEN).map_or(0, |b| b >> 4);
    let ether_type = match version {
        4 => etherparse::EtherType::IPV4,
        6 => etherparse::EtherType::IPV6,
        _ => etherparse::EtherType(0),
    };
    let header = etherparse::Ethernet2Header {
        source: [0; 6],
        destination: [0; 6],
        ether_type,
    };
    buf[..ETHERNET_HEADER_LEN.min(len)]
        .copy_from_slice(&header.to_bytes()[..ETHERNET_HEADER_LEN.min(len)]);
}

/// The [`Device`] of a TAP or a TUN, the same code for both.
macro_rules! tun_tap_device {
    ($ty:ty) => {
        impl Device for $ty {
            fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
                self.0.recv(buf)
            }

            fn rx_checksum_verified(&self) -> bool {
                self.0.rx_csum_ok
            }

            fn rx_partial_checksum(&self) -> Option<(usize, usize)> {
                self.0.rx_partial
            }

            fn rx_gso_size(&self) -> Option<u16> {
                self.0.rx_gso_size
            }

            fn send(&mut self, _now: Instant, frame: &[u8]) -> io::Result<()> {
                self.0.write_frame(&[0u8; VNET_HDR_LEN], frame)
            }

            /// With offloads the kernel takes the super-segment whole (one write for up to
            /// 64 KB) and splits it; without, it is split here.
            fn send_tso(&mut self, now: Instant, frame: &[u8], mss: u16) -> io::Result<()> {
                if self.0.send_tso(frame, mss)? {
                    return Ok(());
                }
                super::send_in_pieces(self, now, frame, mss)
            }

            /// One `writev` of the headers and the data where it lies.
            fn send_gather(
                &mut self,
                now: Instant,
                head: &[u8],
                data: [&[u8]; 2],
                tso_mss: Option<u16>,
            ) -> io::Result<()> {
                if self.0.send_gather(head, data, tso_mss)? {
                    return Ok(());
                }
                // A super-segment without offloads: joined, then split in software.
                super::send_joined(self, now, head, data, tso_mss)
            }

            fn capabilities(&self) -> DeviceCapabilities {
                self.0.capabilities()
            }

            fn mtu(&self) -> usize {
                self.0.mtu
            }

            fn poll_fd(&self) -> Option<RawFd> {
                Some(self.0.fd.as_raw_fd())
            }
        }
    };
}

tun_tap_device!(TapDevice);
tun_tap_device!(TunDevice);

/// Waits, at most [`LINK_READY_WAIT`], until the kernel has put the link in service.
///
/// Attaching brings the carrier up, but the kernel acts on it later, in its link-watch work:
/// until then its queueing discipline is a no-op that drops whatever it sends on the link.
/// A stack whose first frame asks for an answer (DAD's Neighbour Solicitation, which the
/// kernel must answer to defend its address) would lose the answer about one start in ten
/// on a busy machine. The same work marks the link running (`IFF_RUNNING`) and then
/// activates the queue, under the RTNL lock; `TUNGETIFF` takes that lock, so once the flag
/// shows, the ioctl returns after the activation.
fn wait_link_ready(ctl: &mut IfCtl, fd: &OwnedFd, name: &str) -> io::Result<()> {
    let deadline = std::time::Instant::now() + LINK_READY_WAIT;
    while !ctl.running()? {
        if std::time::Instant::now() >= deadline {
            log::warn!("{name}: the kernel has not put the link in service; going on");
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // SAFETY: ifreq is plain data for which zero is valid; TUNGETIFF fills it.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    // SAFETY: TUNGETIFF writes an ifreq we own.
    if let Err(e) = os_check(
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNGETIFF, &mut req) },
        "TUNGETIFF",
    ) {
        log::warn!("{name}: {e}; going on");
    }
    Ok(())
}

/// Interface ioctls (`SIOCGIFMTU`, `SIOCGIFFLAGS`/`SIOCSIFFLAGS`) on a throwaway socket.
struct IfCtl {
    sock: OwnedFd,
    req: libc::ifreq,
}

impl IfCtl {
    fn new(name: &str) -> io::Result<Self> {
        // SAFETY: plain socket creation; checked below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        os_check(fd, "socket")?;
        // SAFETY: `fd` is fresh and ours; ifreq is plain data for which zero is valid.
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        for (dst, src) in req
            .ifr_name
            .iter_mut()
            .zip(name.bytes().take(libc::IFNAMSIZ - 1))
        {
            *dst = src as libc::c_char;
        }
        Ok(IfCtl { sock, req })
    }

    fn ioctl(&mut self, op: libc::Ioctl) -> io::Result<()> {
        // SAFETY: `req` is a valid ifreq for the interface ioctls used here.
        os_check(
            unsafe { libc::ioctl(self.sock.as_raw_fd(), op, &mut self.req) },
            "interface ioctl",
        )
    }

    fn mtu(&mut self) -> io::Result<usize> {
        self.ioctl(libc::SIOCGIFMTU)?;
        // SAFETY: SIOCGIFMTU filled the mtu member of the union.
        Ok(unsafe { self.req.ifr_ifru.ifru_mtu } as usize)
    }

    fn set_mtu(&mut self, mtu: usize) -> io::Result<()> {
        self.req.ifr_ifru.ifru_mtu = libc::c_int::try_from(mtu)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU out of range"))?;
        self.ioctl(libc::SIOCSIFMTU)
    }

    /// Whether the link is up and in service (`IFF_RUNNING`: the kernel's operational state
    /// is up).
    fn running(&mut self) -> io::Result<bool> {
        self.ioctl(libc::SIOCGIFFLAGS)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { self.req.ifr_ifru.ifru_flags };
        Ok(flags & libc::IFF_RUNNING as libc::c_short != 0)
    }

    fn set_up(&mut self) -> io::Result<()> {
        self.ioctl(libc::SIOCGIFFLAGS)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { self.req.ifr_ifru.ifru_flags };
        if flags & libc::IFF_UP as libc::c_short == 0 {
            self.req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
            self.ioctl(libc::SIOCSIFFLAGS)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    /// A TCP segment as the kernel hands it over with `NEEDS_CSUM`: the checksum field holds
    /// the pseudo-header sum; completing it yields a valid checksum.
    #[test]
    fn completes_a_partial_checksum() {
        let payload = vec![0x5au8; 3000];
        let mut frame = Vec::new();
        etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
            .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 9, 1, 1000)
            .write(&mut frame, &payload)
            .unwrap();
        let (start, offset) = (14 + 20, 16);
        let seg_len = (frame.len() - start) as u16;
        let pseudo = etherparse::checksum::Sum16BitWords::new()
            .add_4bytes([10, 0, 0, 1])
            .add_4bytes([10, 0, 0, 2])
            .add_2bytes([0, 6])
            .add_2bytes(seg_len.to_be_bytes())
            .ones_complement();
        // Linux stores the folded, uncomplemented pseudo-header sum.
        frame[start + offset..start + offset + 2].copy_from_slice(&(!pseudo).to_ne_bytes());
        assert!(crate::wire::complete_partial_checksum(
            &mut frame, start, offset
        ));
        assert!(crate::wire::transport_checksum_ok(
            [10, 0, 0, 1],
            [10, 0, 0, 2],
            6,
            &frame[start..]
        ));
        assert!(
            !crate::wire::complete_partial_checksum(&mut frame, 10_000, 16),
            "offsets past the frame"
        );
    }
}
