//! Async catch-all interception: the offers of [`crate::socket::Interceptor`] awaited by
//! tasks, and their accepted connections and flows as async sockets.
//!
//! ```
//! use tapstack::phy::memory_pair;
//! use tapstack::tokio::{Interceptor, TcpStream};
//! use tapstack::{wire::MacAddr, InterceptConfig, Stack, StackConfig};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let (a, b) = memory_pair(1500)?;
//! let mut client_cfg = StackConfig::new([10, 0, 0, 1].into(), 24);
//! client_cfg.mac = MacAddr([2, 0, 0, 0, 0, 1]);
//! client_cfg.gateway = Some([10, 0, 0, 2].into());
//! let client = Stack::new(a, client_cfg)?;
//! let mut proxy_cfg = StackConfig::new([10, 0, 0, 2].into(), 24);
//! proxy_cfg.intercept = Some(InterceptConfig::default());
//! let proxy = Stack::new(b, proxy_cfg)?;
//! let interceptor = Interceptor::new(&proxy)?;
//! tokio::spawn(async move {
//!     while let Ok(offer) = interceptor.next_tcp().await {
//!         // Port 80 is served; anything else is refused, as an upstream might.
//!         if offer.local_addr().port() != 80 {
//!             let _ = offer.refuse();
//!             continue;
//!         }
//!         let dialled = offer.local_addr();
//!         if let Ok(mut conn) = offer.accept().await {
//!             let _ = conn.write_all(dialled.to_string().as_bytes()).await;
//!         }
//!     }
//! });
//! let limit = std::time::Duration::from_secs(10);
//! let refused = tokio::time::timeout(limit, TcpStream::connect(&client, "198.51.100.1:81")).await?;
//! assert_eq!(refused.unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused);
//! let mut conn = TcpStream::connect(&client, "198.51.100.1:80").await?;
//! let mut reply = String::new();
//! tokio::time::timeout(limit, conn.read_to_string(&mut reply)).await??;
//! assert_eq!(reply, "198.51.100.1:80");
//! # Ok(()) }
//! ```

use super::ready::{Side, Wakers};
use super::{TcpStream, UdpSocket};
use crate::runtime::Stack;
use crate::socket;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// Takes the offers of catch-all interception without holding a thread.
pub struct Interceptor {
    io: socket::Interceptor,
    wakers: Arc<Wakers>,
}

impl Interceptor {
    /// The interceptor of `stack` (no call to the stack thread); fails with
    /// `InvalidInput` if the stack does not intercept.
    pub fn new(stack: &Stack) -> io::Result<Interceptor> {
        Interceptor::from_std(socket::Interceptor::new(stack)?)
    }

    /// Takes over a blocking interceptor: offers now wake this one's tasks.
    pub fn from_std(io: socket::Interceptor) -> io::Result<Interceptor> {
        io.set_nonblocking(true)?;
        let wakers = Arc::new(Wakers::default());
        io.watch(Some(wakers.watcher()));
        Ok(Interceptor { io, wakers })
    }

    /// Waits for the next intercepted SYN. Cancel-safe: an offer is taken only by the poll
    /// that returns it.
    pub async fn next_tcp(&self) -> io::Result<InterceptedTcp> {
        poll_fn(|cx| self.wakers.poll(Side::Read, cx, || self.io.next_tcp()))
            .await
            .map(InterceptedTcp)
    }

    /// Waits for the next new UDP flow. Cancel-safe, as [`Interceptor::next_tcp`].
    pub async fn next_udp(&self) -> io::Result<InterceptedUdp> {
        poll_fn(|cx| self.wakers.poll(Side::Read, cx, || self.io.next_udp()))
            .await
            .map(InterceptedUdp)
    }

    /// Waits for the next echo request to an intercepted address
    /// ([`crate::config::EchoMode::Deliver`]); it is answered through the blocking type's
    /// methods, none of which waits. Cancel-safe, as [`Interceptor::next_tcp`].
    pub async fn next_echo(&self) -> io::Result<socket::InterceptedEcho> {
        poll_fn(|cx| self.wakers.poll(Side::Read, cx, || self.io.next_echo())).await
    }
}

/// An intercepted SYN waiting for a verdict (see [`socket::InterceptedTcp`]); dropping it
/// undecided refuses it.
#[derive(Debug)]
pub struct InterceptedTcp(socket::InterceptedTcp);

impl InterceptedTcp {
    /// The destination the client dialled.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }

    /// The client.
    pub fn peer_addr(&self) -> SocketAddr {
        self.0.peer_addr()
    }

    /// Sends the SYN-ACK and waits for the handshake without holding a thread.
    pub async fn accept(self) -> io::Result<TcpStream> {
        TcpStream::handshake(self.0.accept_nonblocking()?).await
    }

    /// Refuses with a reset ("connection refused").
    pub fn refuse(self) -> io::Result<()> {
        self.0.refuse()
    }

    /// Answers with ICMP host unreachable.
    pub fn unreachable(self) -> io::Result<()> {
        self.0.unreachable()
    }

    /// Drops the SYN: the client times out.
    pub fn ignore(self) -> io::Result<()> {
        self.0.ignore()
    }
}

/// A new UDP flow waiting for a verdict (see [`socket::InterceptedUdp`]); dropping it
/// undecided drops the flow.
#[derive(Debug)]
pub struct InterceptedUdp(socket::InterceptedUdp);

impl InterceptedUdp {
    /// The destination the client sent to.
    pub fn local_addr(&self) -> SocketAddr {
        self.0.local_addr()
    }

    /// The client.
    pub fn peer_addr(&self) -> SocketAddr {
        self.0.peer_addr()
    }

    /// Accepts: an async UDP socket connected to the client, from the destination.
    pub fn accept(self) -> io::Result<UdpSocket> {
        UdpSocket::from_std(self.0.accept()?)
    }

    /// Refuses: its datagrams are answered with port unreachable.
    pub fn refuse(self) -> io::Result<()> {
        self.0.refuse()
    }

    /// Drops its datagrams until it idles out.
    pub fn ignore(self) -> io::Result<()> {
        self.0.ignore()
    }
}
