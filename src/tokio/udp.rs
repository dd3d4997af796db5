//! Async UDP, shaped like `tokio::net::UdpSocket`.

use super::ready::{Side, Wakers};
use crate::runtime::Stack;
use crate::socket;
use std::future::poll_fn;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

/// A UDP socket whose receives are awaited. Sending never waits: a datagram is handed to the
/// stack (or an error returned) at once, as with a kernel socket whose queue has room.
pub struct UdpSocket {
    io: socket::UdpSocket,
    wakers: Arc<Wakers>,
}

impl UdpSocket {
    /// Binds to `addr` (the stack's address or `0.0.0.0`; port 0 picks an ephemeral port).
    pub async fn bind<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<UdpSocket> {
        UdpSocket::from_std(socket::UdpSocket::bind(stack, addr)?)
    }

    /// Takes over a blocking socket; its readiness now wakes this socket's tasks (replacing
    /// any [`socket::Poller`] it was registered with).
    pub fn from_std(io: socket::UdpSocket) -> io::Result<UdpSocket> {
        io.set_nonblocking(true)?;
        let wakers = Arc::new(Wakers::default());
        io.watch(Some(wakers.watcher()));
        Ok(UdpSocket { io, wakers })
    }

    /// The underlying socket, for the options not repeated here.
    pub fn socket(&self) -> &socket::UdpSocket {
        &self.io
    }

    /// Sends one datagram to `addr`.
    pub async fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        self.io.send_to(buf, addr)
    }

    /// Sends one datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.send(buf)
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
        self.io.connect(addr)
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
