//! Async UDP, shaped like `tokio::net::UdpSocket`.

use super::ready::{Side, Wakers};
use crate::runtime::Stack;
use crate::socket;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

/// A UDP socket whose receives are awaited. The first send to a destination awaits the stack
/// thread's verdict on the datagram (sent, or the error a kernel socket would return:
/// `EMSGSIZE`, `EACCES`, ...) without blocking the executor; later ones to it are posted and
/// ready at once (see [`socket::UdpSocket::send_to`]). Options and addresses are read from
/// state shared with the stack thread or posted to it, never waited for.
pub struct UdpSocket {
    io: socket::UdpSocket,
    wakers: Arc<Wakers>,
}

impl UdpSocket {
    /// Binds to `addr` (the stack's address or `0.0.0.0`; port 0 picks an ephemeral port).
    pub async fn bind<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<UdpSocket> {
        UdpSocket::from_std(socket::UdpSocket::bind_request(stack, addr)?.await?)
    }

    /// Takes over a blocking socket; its readiness now wakes this socket's tasks (replacing
    /// any [`socket::Poller`] it was registered with).
    pub fn from_std(io: socket::UdpSocket) -> io::Result<UdpSocket> {
        io.set_nonblocking(true)?;
        let wakers = Arc::new(Wakers::default());
        io.watch(Some(wakers.watcher()));
        Ok(UdpSocket { io, wakers })
    }

    /// The underlying socket, for the options not repeated here. Its options never wait for
    /// the stack thread, except `set_only_v6`; its blocking calls (`send_to`, `recv_from`,
    /// ...) do, and belong on a blocking thread.
    pub fn socket(&self) -> &socket::UdpSocket {
        &self.io
    }

    /// Sends one datagram to `addr`.
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        self.io.send_to_request(buf, addr)?.finish().await
    }

    /// Sends one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.send_request(buf)?.finish().await
    }

    /// Sends `buf` to `addr` as datagrams of `segment` bytes each (UDP GSO), as
    /// [`socket::UdpSocket::send_segments_to`] does.
    pub async fn send_segments_to<A: ToSocketAddrs>(
        &self,
        buf: &[u8],
        segment: usize,
        addr: A,
    ) -> io::Result<usize> {
        let dst = Some(socket::any_addr(addr)?);
        self.io
            .send_segments_request(buf, segment, dst)?
            .finish()
            .await
    }

    /// Waits for one datagram; the excess of one larger than `buf` is discarded. Cancel-safe:
    /// a datagram is taken only by the poll that returns it.
    pub async fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        poll_fn(|cx| {
            self.wakers
                .poll(Side::Read, cx, || self.io.try_recv_from(buf))
        })
        .await
    }

    /// Waits for one datagram from the connected peer.
    pub async fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.recv_from(buf).await.map(|(n, _)| n)
    }

    /// Sets the peer for `send`/`recv`; datagrams from others are then dropped.
    pub async fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        self.io.connect_request(addr)?.await
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.peer_addr()
    }
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.io.fmt(f)
    }
}
