//! Async TCP: a listener and a stream shaped like `tokio::net`'s.

use super::ready::{Side, Wakers};
use crate::runtime::Stack;
use crate::socket;
use ::tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use std::future::{poll_fn, Future};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

/// A listening socket whose connections are accepted with `accept().await`.
pub struct TcpListener {
    io: socket::TcpListener,
    wakers: Arc<Wakers>,
}

impl TcpListener {
    /// Listens on `addr` (the stack's address or `0.0.0.0`; port 0 picks one) with the default
    /// backlog ([`socket::DEFAULT_BACKLOG`]).
    pub async fn bind<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpListener> {
        Self::bind_with_backlog(stack, addr, socket::DEFAULT_BACKLOG).await
    }

    /// Listens with room for `backlog` established connections not yet accepted.
    pub async fn bind_with_backlog<A: ToSocketAddrs>(
        stack: &Stack,
        addr: A,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        TcpListener::from_std(socket::TcpListener::bind_request(stack, addr, backlog)?.await?)
    }

    /// Takes over a blocking listener: it is made non-blocking, and its readiness now wakes
    /// this listener's tasks (replacing any [`socket::Poller`] it was registered with).
    pub fn from_std(io: socket::TcpListener) -> io::Result<TcpListener> {
        io.set_nonblocking(true)?;
        let wakers = Arc::new(Wakers::default());
        io.watch(Some(wakers.watcher()));
        Ok(TcpListener { io, wakers })
    }

    /// Waits for a connection. Cancel-safe: a connection is taken from the queue only by the
    /// poll that returns it.
    pub async fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        poll_fn(|cx| self.poll_accept(cx)).await
    }

    /// Polls for a connection to accept.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        let (stream, peer) = ready!(self.wakers.poll(Side::Read, cx, || self.io.accept()))?;
        Poll::Ready(TcpStream::from_std(stream).map(|s| (s, peer)))
    }

    /// `IP_TOS` of the SYN-ACKs and the connections from now on (see
    /// [`socket::TcpListener::set_tos`]).
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        self.io.set_tos(tos)
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// The congestion control of the connections from now on (see
    /// [`socket::TcpListener::set_congestion`]).
    pub fn set_congestion(&self, algorithm: crate::CongestionAlgorithm) -> io::Result<()> {
        self.io.set_congestion(algorithm)
    }

    /// Traces every connection it accepts from now on, from its SYN (see
    /// [`socket::TcpListener::set_trace`]).
    pub fn set_trace(&self, on: bool) -> io::Result<()> {
        self.io.set_trace(on)
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.io.fmt(f)
    }
}

/// A TCP socket configured before it connects or listens (buffer sizes, local address), as
/// `tokio::net::TcpSocket`; see [`socket::TcpSocket`].
pub struct TcpSocket<'a>(socket::TcpSocket<'a>);

impl<'a> TcpSocket<'a> {
    /// A socket on `stack` with the stack's default buffer sizes.
    pub fn new(stack: &'a Stack) -> TcpSocket<'a> {
        TcpSocket(socket::TcpSocket::new(stack))
    }

    /// `IP_TOS` (see [`socket::TcpSocket::set_tos`]).
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        self.0.set_tos(tos)
    }

    /// `TCP_CONGESTION` from the SYN on (see [`socket::TcpSocket::set_congestion`]).
    pub fn set_congestion(&self, algorithm: crate::CongestionAlgorithm) -> io::Result<()> {
        self.0.set_congestion(algorithm)
    }

    /// Pacing from the SYN on (see [`socket::TcpSocket::set_pacing`]).
    pub fn set_pacing(&self, on: bool) -> io::Result<()> {
        self.0.set_pacing(on)
    }

    /// `SO_SNDBUF`.
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        self.0.set_send_buffer_size(size)
    }

    /// `SO_RCVBUF`; the SYN's window scale is chosen for it.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        self.0.set_recv_buffer_size(size)
    }

    /// The send buffer size.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        self.0.send_buffer_size()
    }

    /// The receive buffer size.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        self.0.recv_buffer_size()
    }

    /// The local address to connect from or listen on.
    pub fn bind<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        self.0.bind(addr)
    }

    /// `IPV6_V6ONLY` before `listen` (see [`socket::TcpSocket::set_only_v6`]).
    pub fn set_only_v6(&self, only_v6: bool) -> io::Result<()> {
        self.0.set_only_v6(only_v6)
    }

    /// Whether `listen` opens an IPv6-only listener.
    pub fn only_v6(&self) -> io::Result<bool> {
        self.0.only_v6()
    }

    /// Traces the connection from its SYN, or a listener's connections from theirs (see
    /// [`socket::TcpSocket::set_trace`]).
    pub fn set_trace(&self, on: bool) -> io::Result<()> {
        self.0.set_trace(on)
    }

    /// Connects, waiting for the handshake without holding a thread.
    pub async fn connect<A: ToSocketAddrs>(self, addr: A) -> io::Result<TcpStream> {
        TcpStream::handshake(self.0.connect_request(addr)?.await?).await
    }

    /// Listens with room for `backlog` connections not yet accepted. Unlike tokio's, it is
    /// async: the stack thread opens the listener, and the task waits for its answer without
    /// blocking the executor.
    pub async fn listen(self, backlog: usize) -> io::Result<TcpListener> {
        TcpListener::from_std(self.0.listen_request(backlog)?.await?)
    }
}

/// A TCP connection implementing [`AsyncRead`] and [`AsyncWrite`]. Dropping it closes the
/// connection gracefully in the background (or as its `SO_LINGER` says).
pub struct TcpStream {
    io: socket::TcpStream,
    wakers: Arc<Wakers>,
    /// A `poll_shutdown` waiting for the stack thread's answer.
    shutdown: std::sync::Mutex<Option<crate::runtime::Pending<()>>>,
}

impl TcpStream {
    /// Connects to `addr`, waiting for the handshake without holding a thread. The name is
    /// resolved by `ToSocketAddrs`, which may block: pass an address to avoid that. Dropping
    /// the future abandons the connection; wrap it in `tokio::time::timeout` to bound it.
    pub async fn connect<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpStream> {
        TcpStream::handshake(socket::TcpStream::connect_request(stack, addr)?.await?).await
    }

    /// Waits for the handshake of a stream whose SYN is sent.
    pub(super) async fn handshake(stream: socket::TcpStream) -> io::Result<TcpStream> {
        let stream = TcpStream::from_std(stream)?;
        poll_fn(|cx| {
            stream
                .wakers
                .poll(Side::Write, cx, || stream.io.connect_status())
        })
        .await?;
        Ok(stream)
    }

    /// Takes over a blocking stream: it is made non-blocking, and its readiness now wakes this
    /// stream's tasks (replacing any [`socket::Poller`] it was registered with).
    pub fn from_std(io: socket::TcpStream) -> io::Result<TcpStream> {
        io.set_nonblocking(true)?;
        let wakers = Arc::new(Wakers::default());
        io.watch(Some(wakers.watcher()));
        Ok(TcpStream {
            io,
            wakers,
            shutdown: std::sync::Mutex::new(None),
        })
    }

    /// The underlying socket, for the options not repeated here (`set_keepalive_with`,
    /// buffer sizes, ...). It is in non-blocking mode; reading or writing through it directly
    /// bypasses nothing, but only this stream's futures are woken.
    pub fn socket(&self) -> &socket::TcpStream {
        &self.io
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.local_addr()
    }

    /// `true` turns Nagle's algorithm off (`TCP_NODELAY`).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        self.io.set_nodelay(nodelay)
    }

    /// Whether Nagle's algorithm is off.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.nodelay()
    }

    /// `TCP_CONGESTION` from now on (see [`socket::TcpStream::set_congestion`]); never waits
    /// for the stack thread.
    pub fn set_congestion(&self, algorithm: crate::CongestionAlgorithm) -> io::Result<()> {
        self.io.set_congestion(algorithm)
    }

    /// Paces the connection (see [`socket::TcpStream::set_pacing`]).
    pub fn set_pacing(&self, on: bool) -> io::Result<()> {
        self.io.set_pacing(on)
    }

    /// Traces the connection from now on, or stops (see [`socket::TcpStream::set_trace`]);
    /// never waits for the stack thread.
    pub fn set_trace(&self, on: bool) -> io::Result<()> {
        self.io.set_trace(on)
    }

    /// `IP_TTL` of the connection's segments.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.set_ttl(ttl)
    }

    /// `SO_LINGER`, applied when the stream is dropped (see
    /// [`socket::TcpStream::set_linger`]); a positive linger blocks the dropping thread.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.io.set_linger(linger)
    }

    /// A snapshot of the connection's state, as Linux's `TCP_INFO` (see
    /// [`socket::TcpStream::info`]): taken on the stack thread and awaited without blocking
    /// the executor.
    pub async fn info(&self) -> io::Result<crate::tcp::TcpInfo> {
        self.io.info_request()?.await
    }

    /// The pending error (`SO_ERROR`), cleared by the call.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.take_error()
    }

    /// Waits for data and copies it into `buf` without taking it (`MSG_PEEK`).
    pub async fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        poll_fn(|cx| self.wakers.poll(Side::Read, cx, || self.io.peek(buf))).await
    }

    /// Waits until a read would not block (data, end of stream or an error), without reading:
    /// then [`TcpStream::try_read`]. A server that reads only when data is there needs no
    /// buffer per idle connection.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| {
            self.wakers
                .poll(Side::Read, cx, || ready(self.io.read_ready()))
        })
        .await
    }

    /// Half-closes through a shared reference, as `AsyncWriteExt::shutdown` does: the FIN
    /// follows the data already written; for a connection connecting, failed or finished,
    /// the stack's answer (its exact error) is awaited.
    pub async fn shutdown_write(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_shutdown_write(cx)).await
    }

    /// Waits until a write would not block (room in the send buffer, or an error).
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| {
            self.wakers
                .poll(Side::Write, cx, || ready(self.io.write_ready()))
        })
        .await
    }

    /// Reads what is there without waiting: `WouldBlock` when nothing is, `Ok(0)` at end of
    /// stream.
    pub fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.io).read(buf)
    }

    /// Writes what fits without waiting: `WouldBlock` when nothing does.
    pub fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        (&self.io).write(buf)
    }

    /// Lets `fill` write up to `max` bytes straight into the send buffer without waiting (see
    /// [`socket::TcpStream::try_write_with`]): the outer result is the stream's (`WouldBlock`
    /// when there is no room: wait for [`TcpStream::writable`]), the inner one `fill`'s.
    ///
    /// ```no_run
    /// # async fn relay(client: &tapstack::tokio::TcpStream, up: &tokio::net::TcpStream) -> std::io::Result<()> {
    /// // What the upstream sends lands in the client's send buffer, with no buffer between.
    /// loop {
    ///     match client.try_write_with(64 * 1024, |room| up.try_read(room)) {
    ///         Ok(Ok(0)) => return client.shutdown_write().await,
    ///         Ok(Ok(_)) => {}
    ///         Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => up.readable().await?,
    ///         Ok(Err(e)) => return Err(e),
    ///         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => client.writable().await?,
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn try_write_with<F>(&self, max: usize, fill: F) -> io::Result<io::Result<usize>>
    where
        F: FnOnce(&mut [u8]) -> io::Result<usize>,
    {
        self.io.try_write_with(max, fill)
    }

    /// Hands up to `max` received bytes to `drain` without copying them out first, never
    /// waiting (see [`socket::TcpStream::try_read_with`]): the outer result is the stream's
    /// (`WouldBlock` when nothing is there: wait for [`TcpStream::readable`]), the inner one
    /// `drain`'s, `Ok(0)` at end of stream.
    ///
    /// ```no_run
    /// # async fn relay(client: &tapstack::tokio::TcpStream, up: &tokio::net::TcpStream) -> std::io::Result<()> {
    /// // What the client sends goes upstream from the frames it arrived in.
    /// loop {
    ///     match client.try_read_with(256 * 1024, |bufs| up.try_write_vectored(bufs)) {
    ///         Ok(Ok(0)) => return Ok(()),
    ///         Ok(Ok(_)) => {}
    ///         Ok(Err(e)) if e.kind() == std::io::ErrorKind::WouldBlock => up.writable().await?,
    ///         Ok(Err(e)) => return Err(e),
    ///         Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => client.readable().await?,
    ///         Err(e) => return Err(e),
    ///     }
    /// }
    /// # }
    /// ```
    pub fn try_read_with<F>(&self, max: usize, drain: F) -> io::Result<io::Result<usize>>
    where
        F: FnOnce(&[io::IoSlice<'_>]) -> io::Result<usize>,
    {
        self.io.try_read_with(max, drain)
    }

    /// Waits for room and sends `buf` as urgent data (see
    /// [`socket::TcpStream::send_urgent`]); returns how many bytes were taken.
    pub async fn send_urgent(&self, buf: &[u8]) -> io::Result<usize> {
        poll_fn(|cx| {
            self.wakers
                .poll(Side::Write, cx, || self.io.send_urgent(buf))
        })
        .await
    }

    /// The urgent data left to read (see [`socket::TcpStream::urgent_left`]).
    pub fn urgent_left(&self) -> Option<usize> {
        self.io.urgent_left()
    }

    /// Waits until the peer marks urgent data, or the stream ends or fails (like Linux's
    /// `POLLPRI`, tokio's `Interest::PRIORITY`), without reading: then
    /// [`TcpStream::urgent_left`] says how many bytes before the mark are left. Ordinary data
    /// does not end the wait; an urgent pointer does, even on a segment without data.
    pub async fn urgent_ready(&self) -> io::Result<()> {
        poll_fn(|cx| {
            self.wakers
                .poll(Side::Read, cx, || ready(self.io.urgent_ready()))
        })
        .await
    }

    /// Splits the stream into a reading and a writing half that borrow it.
    pub fn split(&mut self) -> (ReadHalf<'_>, WriteHalf<'_>) {
        (ReadHalf(self), WriteHalf(self))
    }

    /// Splits the stream into halves that own it, for two tasks. Dropping the writing half
    /// shuts down writing (a FIN), as tokio's does.
    pub fn into_split(self) -> (OwnedReadHalf, OwnedWriteHalf) {
        let stream = Arc::new(self);
        (
            OwnedReadHalf(stream.clone()),
            OwnedWriteHalf {
                stream,
                shutdown_on_drop: true,
            },
        )
    }

    fn poll_read_buf(&self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        let n = ready!(self.wakers.poll(Side::Read, cx, || {
            (&self.io).read(buf.initialize_unfilled())
        }))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }

    fn poll_write_buf(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        self.wakers.poll(Side::Write, cx, || (&self.io).write(buf))
    }

    fn poll_write_bufs(
        &self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Poll::Ready(Ok(0));
        }
        self.wakers
            .poll(Side::Write, cx, || (&self.io).write_vectored(bufs))
    }

    /// Half-closes: the FIN follows the data already written. A connection under way takes
    /// it at once; for one connecting, failed or finished, the stack thread's answer (its
    /// exact error) is awaited.
    fn poll_shutdown_write(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut pending = self
            .shutdown
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let answer = match pending.take() {
            Some(answer) => pending.insert(answer),
            None => match self.io.shutdown_request(Shutdown::Write) {
                Ok(None) => return Poll::Ready(Ok(())),
                Ok(Some(answer)) => pending.insert(answer),
                Err(e) => return Poll::Ready(Err(e)),
            },
        };
        let result = ready!(Pin::new(answer).poll(cx));
        *pending = None;
        Poll::Ready(result)
    }
}

/// `Ok` when ready, else `WouldBlock`.
fn ready(ready: bool) -> io::Result<()> {
    if ready {
        Ok(())
    } else {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.io.fmt(f)
    }
}

/// Implements the tokio I/O traits for a type holding a `TcpStream` reachable as `$s`.
macro_rules! async_io {
    ($ty:ty, |$this:ident| $s:expr) => {
        impl AsyncRead for $ty {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                let $this = &*self;
                $s.poll_read_buf(cx, buf)
            }
        }
    };
    (write $ty:ty, |$this:ident| $s:expr) => {
        impl AsyncWrite for $ty {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let $this = &*self;
                $s.poll_write_buf(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[io::IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let $this = &*self;
                $s.poll_write_bufs(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                true
            }

            /// Written data is already the stack's: nothing to flush.
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let $this = &*self;
                $s.poll_shutdown_write(cx)
            }
        }
    };
}

async_io!(TcpStream, |s| s);
async_io!(write TcpStream, |s| s);
async_io!(ReadHalf<'_>, |h| h.0);
async_io!(write WriteHalf<'_>, |h| h.0);
async_io!(OwnedReadHalf, |h| h.0);
async_io!(write OwnedWriteHalf, |h| h.stream);

/// The reading half of a [`TcpStream::split`].
#[derive(Debug)]
pub struct ReadHalf<'a>(&'a TcpStream);

/// The writing half of a [`TcpStream::split`].
#[derive(Debug)]
pub struct WriteHalf<'a>(&'a TcpStream);

/// The reading half of a [`TcpStream::into_split`].
#[derive(Debug)]
pub struct OwnedReadHalf(Arc<TcpStream>);

/// The writing half of a [`TcpStream::into_split`]: dropping it shuts down writing.
#[derive(Debug)]
pub struct OwnedWriteHalf {
    stream: Arc<TcpStream>,
    shutdown_on_drop: bool,
}

impl OwnedReadHalf {
    /// Puts the stream back together from its two halves; `Err` gives them back if they are
    /// not of the same stream.
    pub fn reunite(
        self,
        mut write: OwnedWriteHalf,
    ) -> Result<TcpStream, (OwnedReadHalf, OwnedWriteHalf)> {
        if !Arc::ptr_eq(&self.0, &write.stream) {
            return Err((self, write));
        }
        write.shutdown_on_drop = false;
        drop(write);
        Arc::try_unwrap(self.0).map_err(|_| unreachable!("both halves were given"))
    }

    /// The stream's remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.0.peer_addr()
    }
}

impl OwnedWriteHalf {
    /// The stream's remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }
}

impl Drop for OwnedWriteHalf {
    /// Shuts down writing without waiting for the stack thread, as tokio's does.
    fn drop(&mut self) {
        if self.shutdown_on_drop {
            let _ = self.stream.io.shutdown_request(Shutdown::Write);
        }
    }
}
