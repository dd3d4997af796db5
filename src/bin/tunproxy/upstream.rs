//! Where intercepted flows go: straight out through the kernel's sockets, or through a SOCKS5
//! server; every upstream socket marked (`SO_MARK`) and bound to a device (`SO_BINDTODEVICE`)
//! as asked, so that a policy rule keeps it out of the tun it came from.

use crate::socks5::{self, Socks5Config, UdpAssociation};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

/// How upstream connections are made.
pub enum Route {
    /// The kernel's own sockets.
    Direct,
    /// A SOCKS5 server (RFC 1928).
    Socks5(Socks5Config),
}

/// The upstream side of the proxy.
pub struct Upstream {
    pub route: Route,
    /// `SO_MARK` of every upstream socket.
    pub mark: Option<u32>,
    /// `SO_BINDTODEVICE` of every upstream socket.
    pub bind_dev: Option<String>,
    /// How long an upstream connection may take before the client is told the host is
    /// unreachable.
    pub connect_timeout: Duration,
}

pub fn setsockopt(fd: RawFd, opt: libc::c_int, value: &[u8], what: &str) -> io::Result<()> {
    // SAFETY: `value` is a live buffer of the length passed; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            opt,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    Ok(())
}

/// An upstream UDP path for one flow.
pub enum UdpPath {
    /// A kernel socket connected to the destination.
    Direct(tokio::net::UdpSocket),
    /// A SOCKS5 association, and the destination its datagrams go to.
    Socks5(UdpAssociation, SocketAddr),
}

impl UdpPath {
    /// Sends one datagram to the flow's destination.
    pub async fn send(&self, data: &[u8]) -> io::Result<usize> {
        match self {
            UdpPath::Direct(s) => s.send(data).await,
            UdpPath::Socks5(a, dst) => a.send_to(data, *dst).await,
        }
    }

    /// Resolves when the path is over: a SOCKS5 server closed the association.
    pub async fn closed(&self) {
        match self {
            UdpPath::Direct(_) => std::future::pending().await,
            UdpPath::Socks5(a, _) => {
                let _ = a.closed().await;
            }
        }
    }

    /// Receives one datagram from the destination.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            UdpPath::Direct(s) => s.recv(buf).await,
            UdpPath::Socks5(a, dst) => loop {
                let (n, from) = a.recv_from(buf).await?;
                // Only the flow's own destination answers it (a full-cone relay may pass
                // others).
                if from == *dst {
                    return Ok(n);
                }
            },
        }
    }
}

impl Upstream {
    /// Marks and binds an upstream socket as configured.
    pub fn prepare(&self, fd: RawFd) -> io::Result<()> {
        if let Some(mark) = self.mark {
            setsockopt(fd, libc::SO_MARK, &mark.to_ne_bytes(), "SO_MARK")?;
        }
        if let Some(dev) = &self.bind_dev {
            setsockopt(fd, libc::SO_BINDTODEVICE, dev.as_bytes(), "SO_BINDTODEVICE")?;
        }
        Ok(())
    }

    /// A TCP connection to `dst`; `TimedOut` after the connect timeout.
    pub async fn connect(&self, dst: SocketAddr) -> io::Result<tokio::net::TcpStream> {
        let attempt = async {
            match &self.route {
                Route::Direct => {
                    let socket = match dst {
                        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
                        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
                    };
                    self.prepare(socket.as_raw_fd())?;
                    socket.connect(dst).await
                }
                Route::Socks5(cfg) => {
                    socks5::connect(cfg, dst, &|s: &tokio::net::TcpSocket| {
                        self.prepare(s.as_raw_fd())
                    })
                    .await
                }
            }
        };
        tokio::time::timeout(self.connect_timeout, attempt)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    /// An upstream path for the UDP flow to `dst`.
    pub async fn udp(&self, dst: SocketAddr) -> io::Result<UdpPath> {
        match &self.route {
            Route::Direct => {
                let any: SocketAddr = match dst {
                    SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
                    SocketAddr::V6(_) => ([0u16; 8], 0).into(),
                };
                let socket = std::net::UdpSocket::bind(any)?;
                self.prepare(socket.as_raw_fd())?;
                socket.set_nonblocking(true)?;
                let socket = tokio::net::UdpSocket::from_std(socket)?;
                socket.connect(dst).await?;
                Ok(UdpPath::Direct(socket))
            }
            Route::Socks5(cfg) => {
                let prepare_tcp = |s: &tokio::net::TcpSocket| self.prepare(s.as_raw_fd());
                let prepare_udp = |s: &std::net::UdpSocket| self.prepare(s.as_raw_fd());
                let open = UdpAssociation::open(cfg, &prepare_tcp, &prepare_udp);
                let assoc = tokio::time::timeout(self.connect_timeout, open)
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
                Ok(UdpPath::Socks5(assoc, dst))
            }
        }
    }
}
