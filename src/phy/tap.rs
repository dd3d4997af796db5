use super::Device;
use crate::time::Instant;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// A Linux TAP interface, attached if it exists and created (non-persistent) if not.
pub struct TapDevice {
    iface: tun_tap::Iface,
    mtu: usize,
}

impl TapDevice {
    /// Opens tap `name` without packet info, non-blocking, and brings the link up.
    pub fn open(name: &str) -> io::Result<Self> {
        if name.is_empty() || name.len() >= libc::IFNAMSIZ {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad interface name {name:?}"),
            ));
        }
        let iface = tun_tap::Iface::without_packet_info(name, tun_tap::Mode::Tap).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open tap {name} via /dev/net/tun: {e}"),
            )
        })?;
        set_nonblocking(iface.as_raw_fd())?;
        let ctl = IfCtl::new(iface.name())?;
        ctl.set_up()?;
        let mtu = ctl.mtu()?;
        Ok(TapDevice { iface, mtu })
    }

    pub fn name(&self) -> &str {
        self.iface.name()
    }
}

impl Device for TapDevice {
    fn recv(&mut self, _now: Instant, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.iface.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn send(&mut self, _now: Instant, frame: &[u8]) -> io::Result<()> {
        self.iface.send(frame).map(|_| ())
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn poll_fd(&self) -> Option<RawFd> {
        Some(self.iface.as_raw_fd())
    }
}

/// Interface ioctls (`SIOCGIFMTU`, `SIOCGIFFLAGS`/`SIOCSIFFLAGS`) on a throwaway socket.
struct IfCtl {
    sock: std::os::fd::OwnedFd,
    req: libc::ifreq,
}

impl IfCtl {
    fn new(name: &str) -> io::Result<Self> {
        // SAFETY: plain socket creation; checked below.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is fresh and ours; ifreq is plain data for which zero is valid.
        let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
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
        if unsafe { libc::ioctl(self.sock.as_raw_fd(), op, &mut self.req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn mtu(mut self) -> io::Result<usize> {
        self.ioctl(libc::SIOCGIFMTU)?;
        // SAFETY: SIOCGIFMTU fills the mtu member of the union.
        Ok(unsafe { self.req.ifr_ifru.ifru_mtu } as usize)
    }

    fn set_up(&self) -> io::Result<()> {
        let mut ctl = IfCtl {
            sock: self.sock.try_clone()?,
            req: self.req,
        };
        ctl.ioctl(libc::SIOCGIFFLAGS)?;
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { ctl.req.ifr_ifru.ifru_flags };
        if flags & libc::IFF_UP as libc::c_short == 0 {
            ctl.req.ifr_ifru.ifru_flags = flags | libc::IFF_UP as libc::c_short;
            ctl.ioctl(libc::SIOCSIFFLAGS)?;
        }
        Ok(())
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own, with integer arguments only.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
