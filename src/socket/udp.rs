use super::any_addr;
use crate::core::SocketId;
use crate::runtime::{Command, Handle, Stack};
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

struct Inner {
    handle: Handle,
    id: SocketId,
    /// The receive queue, shared with the stack thread: a receive takes a lock, not a round
    /// trip.
    rx: crate::core::UdpIo,
    /// `SO_RCVTIMEO` in nanoseconds; 0 means none.
    read_timeout_ns: AtomicU64,
    nonblocking: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.handle.send(Command::Close(self.id));
    }
}

/// A UDP socket on a [`Stack`], modelled on [`std::net::UdpSocket`]. Clones made with
/// [`UdpSocket::try_clone`] share the socket, which closes when the last one is dropped.
pub struct UdpSocket {
    inner: Arc<Inner>,
}

impl UdpSocket {
    /// Binds to `addr`: the stack's IPv4 address or `0.0.0.0`, or (with IPv6 on) one of its
    /// IPv6 addresses or `[::]`, which also takes IPv4 datagrams (dual-stack, as on Linux).
    /// Port 0 picks an ephemeral port.
    pub fn bind<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<UdpSocket> {
        let addr = any_addr(addr)?;
        let handle = stack.handle();
        let (id, rx) = handle.call(move |iface, _| {
            let id = iface.udp_bind(addr)?;
            Ok((id, iface.udp_io(id)?))
        })?;
        Ok(UdpSocket {
            inner: Arc::new(Inner {
                handle,
                id,
                rx,
                read_timeout_ns: AtomicU64::new(0),
                nonblocking: AtomicBool::new(false),
            }),
        })
    }

    /// A handle to socket `id`, which the core already holds (an accepted intercepted flow).
    pub(crate) fn adopt(handle: Handle, id: SocketId) -> io::Result<UdpSocket> {
        let rx = handle.call(move |iface, _| iface.udp_io(id))?;
        Ok(UdpSocket {
            inner: Arc::new(Inner {
                handle,
                id,
                rx,
                read_timeout_ns: AtomicU64::new(0),
                nonblocking: AtomicBool::new(false),
            }),
        })
    }

    fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::core::Interface, SocketId, crate::time::Instant) -> io::Result<T>
            + Send
            + 'static,
    ) -> io::Result<T> {
        let id = self.inner.id;
        self.inner.handle.call(move |iface, now| f(iface, id, now))
    }

    /// As `std::net::UdpSocket::send_to`: sends one datagram to `addr`; returns the bytes sent.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let dst = any_addr(addr)?;
        let data = buf.to_vec();
        self.call(move |iface, id, now| iface.udp_send(now, id, &data, Some(dst)))
    }

    /// Sends to the connected peer.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        let data = buf.to_vec();
        self.call(move |iface, id, now| iface.udp_send(now, id, &data, None))
    }

    /// Receives one datagram; the excess of one larger than `buf` is discarded.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        // What is queued is taken at once, without the stack thread.
        if let Some(r) = crate::core::lock_udp(&self.inner.rx).recv() {
            return r.map(|(data, from)| (copy_out(&data, buf), from));
        }
        let deadline = super::deadline(
            self.inner.nonblocking.load(Ordering::Relaxed),
            self.read_timeout()?,
        );
        let id = self.inner.id;
        let (data, from) = self.inner.handle.wait(
            id,
            deadline,
            move |iface, _| iface.udp_recv(id),
            super::would_block,
        )?;
        Ok((copy_out(&data, buf), from))
    }

    /// One receive without waiting, whatever the socket's mode: `WouldBlock` when nothing is
    /// queued. It takes a lock on the socket's queue and never waits for the stack thread.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match crate::core::lock_udp(&self.inner.rx).recv() {
            Some(r) => r.map(|(data, from)| (copy_out(&data, buf), from)),
            None => Err(super::would_block()),
        }
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    /// Sets the peer for `send`/`recv`; datagrams from others are then dropped.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let remote = any_addr(addr)?;
        self.call(move |iface, id, _| iface.udp_connect(id, remote))
    }

    /// As `std::net::UdpSocket::local_addr`: the address the socket is bound to. Read from the
    /// state the socket shares with the core: no round trip.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let local = crate::core::lock_udp(&self.inner.rx).local_addr();
        match local {
            Some(a) => Ok(a),
            None => self.call(|iface, id, _| iface.udp_local_addr(id)),
        }
    }

    /// As `std::net::UdpSocket::peer_addr`: the connected peer, or `NotConnected`.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        crate::core::lock_udp(&self.inner.rx)
            .peer_addr()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOTCONN))
    }

    /// `None` blocks forever; a zero duration is an error, as in std.
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        let ns = super::timeout_ns(timeout)?;
        self.inner.read_timeout_ns.store(ns, Ordering::Relaxed);
        Ok(())
    }

    /// As `std::net::UdpSocket::read_timeout`: `None` when receives block forever.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        let ns = self.inner.read_timeout_ns.load(Ordering::Relaxed);
        Ok((ns != 0).then(|| Duration::from_nanos(ns)))
    }

    /// In non-blocking mode a receive with nothing queued fails with `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// `IP_TTL`: the TTL of the datagrams this socket sends (1 to 255).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = super::ttl_value(ttl)?;
        self.call(move |iface, id, _| iface.udp_set_ttl(id, Some(ttl)))
    }

    /// The TTL of the datagrams this socket sends.
    pub fn ttl(&self) -> io::Result<u32> {
        self.call(move |iface, id, _| iface.udp_ttl(id).map(u32::from))
    }

    /// As `std::net::UdpSocket::set_broadcast` (`SO_BROADCAST`): allows sending to broadcast
    /// addresses; without it such a send fails with `EACCES`.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.call(move |iface, id, _| iface.udp_set_broadcast(id, on))
    }

    /// As `std::net::UdpSocket::set_only_v6` (`IPV6_V6ONLY`): a socket on `[::]` then takes
    /// IPv6 only, and the port's IPv4 side is free for another socket. Off (the default), it
    /// takes both families, as on Linux. `InvalidInput` on an IPv4 socket.
    pub fn set_only_v6(&self, only_v6: bool) -> io::Result<()> {
        self.call(move |iface, id, _| iface.udp_set_only_v6(id, only_v6))
    }

    /// As `std::net::UdpSocket::only_v6`.
    pub fn only_v6(&self) -> io::Result<bool> {
        self.call(|iface, id, _| iface.udp_only_v6(id))
    }

    /// Sets DF on every datagram; sends over the MTU then fail with `EMSGSIZE`
    /// (Linux `IP_MTU_DISCOVER` = `IP_PMTUDISC_DO`).
    pub fn set_dont_fragment(&self, on: bool) -> io::Result<()> {
        self.call(move |iface, id, _| iface.udp_set_dont_fragment(id, on))
    }

    /// Sets the readiness callback of the socket (see [`super::Poller`]), called by the stack
    /// thread whenever a datagram or an error arrives.
    pub(crate) fn watch(&self, watcher: Option<crate::tcp::shared::Watcher>) {
        let _ = self
            .inner
            .handle
            .send(Command::Watch(self.inner.id, watcher));
    }

    /// Another handle to the same socket.
    pub fn try_clone(&self) -> io::Result<UdpSocket> {
        Ok(UdpSocket {
            inner: self.inner.clone(),
        })
    }
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("id", &self.inner.id)
            .finish()
    }
}

/// Copies a datagram into `buf`; the excess of one larger than `buf` is discarded.
fn copy_out(data: &[u8], buf: &mut [u8]) -> usize {
    let n = data.len().min(buf.len());
    buf[..n].copy_from_slice(&data[..n]);
    n
}
