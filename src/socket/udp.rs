use super::any_addr;
use crate::core::SocketId;
use crate::runtime::{Command, Handle, Pending, Posted, Stack};
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
        stack.may_block()?;
        Self::bind_request(stack, addr)?.wait()
    }

    /// Asks the stack thread to bind (see [`UdpSocket::bind`]); the socket is made there, so
    /// an answer nobody takes closes it.
    pub(crate) fn bind_request<A: ToSocketAddrs>(
        stack: &Stack,
        addr: A,
    ) -> io::Result<Pending<UdpSocket>> {
        let addr = any_addr(addr)?;
        let handle = stack.handle();
        stack.handle().ask(move |iface, _| {
            let id = iface.udp_bind(addr)?;
            let rx = iface.udp_io(id)?;
            Ok(UdpSocket::new(handle, id, rx))
        })
    }

    /// A handle to socket `id`, which the core holds with shared state `rx`: one just bound,
    /// or an accepted intercepted flow.
    pub(crate) fn new(handle: Handle, id: SocketId, rx: crate::core::UdpIo) -> UdpSocket {
        UdpSocket {
            inner: Arc::new(Inner {
                handle,
                id,
                rx,
                read_timeout_ns: AtomicU64::new(0),
                nonblocking: AtomicBool::new(false),
            }),
        }
    }

    fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::core::Interface, SocketId, crate::time::Instant) -> io::Result<T>
            + Send
            + 'static,
    ) -> io::Result<Pending<T>> {
        let id = self.inner.id;
        self.inner.handle.ask(move |iface, now| f(iface, id, now))
    }

    /// Runs `f` on the stack thread without waiting for it: for options checked here, which
    /// the stack thread applies before any later call of this socket.
    fn post(
        &self,
        f: impl FnOnce(&mut crate::core::Interface, SocketId) -> io::Result<()> + Send + 'static,
    ) -> io::Result<()> {
        let id = self.inner.id;
        self.inner.handle.post(move |iface, _| {
            let _ = f(iface, id);
        })
    }

    /// As `std::net::UdpSocket::send_to`: sends one datagram to `addr`; returns the bytes sent.
    /// A send waits for the stack thread's verdict, so that its error (`EMSGSIZE`, `EACCES`,
    /// `ENETUNREACH`, ...) is the answer, when the stack thread has not yet sent a datagram
    /// this large to that destination (one of the last 16 the socket sent to) since the
    /// socket last changed (`connect`, `set_broadcast`, ...), or when an error is pending or
    /// [`crate::core::UDP_POSTED_MAX`] bytes already wait. Otherwise it is posted and returns
    /// at once, as Linux's returns once the datagram is queued; an error the stack thread
    /// meets on it then becomes the socket's pending error, reported by the next call.
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        self.inner.handle.may_block()?;
        self.send_to_request(buf, addr)?.wait()
    }

    /// Hands a datagram for `addr` to the stack thread (see [`UdpSocket::send_to`]).
    pub(crate) fn send_to_request<A: ToSocketAddrs>(
        &self,
        buf: &[u8],
        addr: A,
    ) -> io::Result<Sending> {
        self.send_request_to(buf, Some(any_addr(addr)?), None)
    }

    /// Sends `buf` to `addr` as datagrams of `segment` bytes each, the last shorter: Linux's
    /// `UDP_SEGMENT` (UDP GSO). The stack hands them to the device as one super-datagram that
    /// a tap or tun with offloads gives the kernel whole to cut (USO, Linux 6.2 on), or cuts
    /// them itself; either way one call, and one trip through the stack, for up to
    /// [`crate::wire::gso::UDP_MAX_SEGMENTS`] datagrams. As Linux answers: `EMSGSIZE` for a
    /// datagram that would not fit the path MTU (none is fragmented), then `EINVAL` for more
    /// datagrams than that or a segment over 65 535; a zero segment sends `buf` as one
    /// datagram, as [`UdpSocket::send_to`] does. `set_dont_fragment` does not stop it: every
    /// datagram fits. Returns the bytes sent; it is posted, or waits for the stack thread's
    /// verdict, as [`UdpSocket::send_to`] is.
    pub fn send_segments_to<A: ToSocketAddrs>(
        &self,
        buf: &[u8],
        segment: usize,
        addr: A,
    ) -> io::Result<usize> {
        self.inner.handle.may_block()?;
        self.send_segments_request(buf, segment, Some(any_addr(addr)?))?
            .wait()
    }

    /// [`UdpSocket::send_segments_to`] to the connected peer.
    pub fn send_segments(&self, buf: &[u8], segment: usize) -> io::Result<usize> {
        self.inner.handle.may_block()?;
        self.send_segments_request(buf, segment, None)?.wait()
    }

    /// Hands a segmented send to the stack thread (see [`UdpSocket::send_segments_to`]).
    pub(crate) fn send_segments_request(
        &self,
        buf: &[u8],
        segment: usize,
        dst: Option<SocketAddr>,
    ) -> io::Result<Sending> {
        let segment =
            u16::try_from(segment).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        self.send_request_to(buf, dst, Some(segment))
    }

    /// Sends to the connected peer, as [`UdpSocket::send_to`] sends.
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.inner.handle.may_block()?;
        self.send_request(buf)?.wait()
    }

    /// Hands a datagram for the connected peer to the stack thread.
    pub(crate) fn send_request(&self, buf: &[u8]) -> io::Result<Sending> {
        self.send_request_to(buf, None, None)
    }

    /// Posts the datagram (or the segmented send) if the stack thread has sent to `dst` before
    /// (`None`: the connected peer), else asks for its verdict.
    fn send_request_to(
        &self,
        buf: &[u8],
        dst: Option<SocketAddr>,
        segment: Option<u16>,
    ) -> io::Result<Sending> {
        let mut shared = self.shared();
        if let Some(data) = shared.post(dst, segment, buf) {
            // Sent under the lock: a change to the socket comes before it or after it.
            let id = self.inner.id;
            let cmd = Command::Posted(Posted::UdpSend {
                id,
                data,
                dst,
                segment,
            });
            if let Err(e) = self.inner.handle.send(cmd) {
                shared.unpost(buf.len());
                return Err(e);
            }
            return Ok(Sending::Posted(buf.len()));
        }
        let generation = shared.generation();
        drop(shared);
        let data = buf.to_vec();
        let io = self.inner.rx.clone();
        let verdict = self.ask(move |iface, id, now| {
            let result = iface.udp_send_segments(now, id, &data, dst, segment);
            let mut shared = crate::core::lock_udp(&io);
            shared.sent(dst, segment, data.len(), result.is_ok(), generation);
            shared.recycle(data);
            result
        })?;
        Ok(Sending::Waiting(verdict))
    }

    /// Posts a change to the socket that may change a send's verdict, under the lock, so that
    /// no send is posted between the two on the strength of an earlier verdict.
    fn post_change(
        &self,
        f: impl FnOnce(&mut crate::core::Interface, SocketId) -> io::Result<()> + Send + 'static,
    ) -> io::Result<()> {
        let mut shared = self.shared();
        shared.forget_destinations();
        self.post(f)
    }

    /// Asks for such a change, as [`UdpSocket::post_change`] posts one, for a caller that
    /// waits for its verdict.
    fn ask_change<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut crate::core::Interface, SocketId) -> io::Result<T> + Send + 'static,
    ) -> io::Result<Pending<T>> {
        let mut shared = self.shared();
        shared.forget_destinations();
        self.ask(move |iface, id, _| f(iface, id))
    }

    /// Receives one datagram; the excess of one larger than `buf` is discarded.
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        // What is queued is taken at once, without the stack thread.
        if let Some(r) = crate::core::lock_udp(&self.inner.rx).recv_into(buf) {
            return r;
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
        Ok((crate::core::udp_copy_out(&data, buf), from))
    }

    /// One receive without waiting, whatever the socket's mode: `WouldBlock` when nothing is
    /// queued. It takes a lock on the socket's queue and never waits for the stack thread.
    pub fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match crate::core::lock_udp(&self.inner.rx).recv_into(buf) {
            Some(r) => r,
            None => Err(super::would_block()),
        }
    }

    /// Receives from the connected peer.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).map(|(n, _)| n)
    }

    /// Sets the peer for `send`/`recv`; datagrams from others are then dropped.
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        self.inner.handle.may_block()?;
        self.connect_request(addr)?.wait()
    }

    /// Asks the stack thread to connect the socket to `addr`.
    pub(crate) fn connect_request<A: ToSocketAddrs>(&self, addr: A) -> io::Result<Pending<()>> {
        let remote = any_addr(addr)?;
        self.ask_change(move |iface, id| iface.udp_connect(id, remote))
    }

    /// As `std::net::UdpSocket::local_addr`: the address the socket is bound to. Read from the
    /// state the socket shares with the core: no round trip.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.shared()
            .local_addr()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }

    fn shared(&self) -> crate::sync::MutexGuard<'_, crate::core::UdpShared> {
        crate::core::lock_udp(&self.inner.rx)
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

    /// `IP_TTL`: the TTL of the datagrams this socket sends (1 to 255); over IPv6, their hop
    /// limit (`IPV6_UNICAST_HOPS`). Posted, not waited for: it applies to every later send.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = super::ttl_value(ttl)?;
        // Recorded and posted under the lock, so that clones setting it at once agree with
        // the core on the last value.
        let mut shared = self.shared();
        shared.set_ttl(ttl);
        self.post(move |iface, id| iface.udp_set_ttl(id, Some(ttl)))
    }

    /// The TTL of the datagrams this socket sends, from the shared state: no round trip.
    pub fn ttl(&self) -> io::Result<u32> {
        let ttl = self.shared().ttl();
        Ok(u32::from(ttl.unwrap_or(self.inner.handle.default_ttl())))
    }

    /// As `std::net::UdpSocket::set_broadcast` (`SO_BROADCAST`): allows sending to broadcast
    /// addresses; without it such a send fails with `EACCES`. Posted, not waited for.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.post_change(move |iface, id| iface.udp_set_broadcast(id, on))
    }

    /// As `std::net::UdpSocket::set_only_v6` (`IPV6_V6ONLY`): a socket on `[::]` then takes
    /// IPv6 only, and the port's IPv4 side is free for another socket. Off (the default), it
    /// takes both families, as on Linux. `InvalidInput` on an IPv4 socket. Unlike the other
    /// options it waits for the stack thread, which alone knows whether the port's IPv4 side
    /// is free (`EADDRINUSE`); Linux allows it only before `bind`, where tapstack has no
    /// socket yet.
    pub fn set_only_v6(&self, only_v6: bool) -> io::Result<()> {
        if self.shared().only_v6().is_none() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        self.inner.handle.may_block()?;
        self.ask_change(move |iface, id| iface.udp_set_only_v6(id, only_v6))?
            .wait()
    }

    /// As `std::net::UdpSocket::only_v6`, from the shared state.
    pub fn only_v6(&self) -> io::Result<bool> {
        self.shared()
            .only_v6()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }

    /// Sets DF on every datagram; sends over the MTU then fail with `EMSGSIZE`
    /// (Linux `IP_MTU_DISCOVER` = `IP_PMTUDISC_DO`). Posted, not waited for.
    pub fn set_dont_fragment(&self, on: bool) -> io::Result<()> {
        self.post_change(move |iface, id| iface.udp_set_dont_fragment(id, on))
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

/// What a send became: posted, its verdict to come later (an error as the socket's pending
/// error), or waiting for the verdict.
pub(crate) enum Sending {
    Posted(usize),
    Waiting(Pending<usize>),
}

impl Sending {
    /// The bytes sent, or the verdict's error; blocks for a verdict.
    pub(crate) fn wait(self) -> io::Result<usize> {
        match self {
            Sending::Posted(n) => Ok(n),
            Sending::Waiting(p) => p.wait(),
        }
    }

    /// The same, awaited.
    #[cfg(feature = "tokio")]
    pub(crate) async fn finish(self) -> io::Result<usize> {
        match self {
            Sending::Posted(n) => Ok(n),
            Sending::Waiting(p) => p.await,
        }
    }
}
