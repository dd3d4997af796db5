//! `TcpListener` and `TcpStream`, modelled on `std::net`.

use super::{deadline, v4_addr, would_block};
use crate::core::SocketId;
use crate::runtime::{Command, Handle, Stack};
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Largest chunk one read or write moves through the stack thread.
const IO_CHUNK: usize = 256 * 1024;

/// Connections a listener queues for `accept` by default: Linux's `net.core.somaxconn`, which
/// caps (and so, for servers asking for more, sets) every listen backlog.
pub const DEFAULT_BACKLOG: usize = 4096;

struct Inner {
    handle: Handle,
    id: SocketId,
    read_timeout_ns: AtomicU64,
    write_timeout_ns: AtomicU64,
    nonblocking: AtomicBool,
}

impl Inner {
    fn new(handle: Handle, id: SocketId) -> Arc<Inner> {
        Arc::new(Inner {
            handle,
            id,
            read_timeout_ns: AtomicU64::new(0),
            write_timeout_ns: AtomicU64::new(0),
            nonblocking: AtomicBool::new(false),
        })
    }

    fn timeout(slot: &AtomicU64) -> Option<Duration> {
        let ns = slot.load(Ordering::Relaxed);
        (ns != 0).then(|| Duration::from_nanos(ns))
    }

    fn set_timeout(slot: &AtomicU64, t: Option<Duration>) -> io::Result<()> {
        slot.store(super::timeout_ns(t)?, Ordering::Relaxed);
        Ok(())
    }

    fn deadline(&self, slot: &AtomicU64) -> Option<std::time::Instant> {
        deadline(
            self.nonblocking.load(Ordering::Relaxed),
            Self::timeout(slot),
        )
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing never blocks: buffered data is sent and the FIN follows on the stack thread.
        let _ = self.handle.send(Command::Close(self.id));
    }
}

/// A listening socket on a [`Stack`].
pub struct TcpListener {
    inner: Arc<Inner>,
    local: SocketAddr,
}

impl TcpListener {
    /// Listens on `addr` (the stack's address or `0.0.0.0`; port 0 picks one) with a backlog of
    /// [`DEFAULT_BACKLOG`] connections, so that a burst of connects is queued, not dropped.
    pub fn bind<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpListener> {
        Self::bind_with_backlog(stack, addr, DEFAULT_BACKLOG)
    }

    /// Listens with room for `backlog` established connections not yet accepted (`listen(2)`'s
    /// argument; 0 counts as 1). SYNs beyond it are dropped and counted, as in Linux, and the
    /// client retries.
    pub fn bind_with_backlog<A: ToSocketAddrs>(
        stack: &Stack,
        addr: A,
        backlog: usize,
    ) -> io::Result<TcpListener> {
        let addr = v4_addr(addr)?;
        let handle = stack.handle();
        let (id, local) = handle.call(move |iface, _| iface.tcp_listen(addr, backlog))?;
        Ok(TcpListener {
            inner: Inner::new(handle, id),
            local: SocketAddr::V4(local),
        })
    }

    /// Waits for a connection (or fails with `WouldBlock` in non-blocking mode).
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let id = self.inner.id;
        let deadline = deadline(self.inner.nonblocking.load(Ordering::Relaxed), None);
        let (conn, peer) = self.inner.handle.wait(
            id,
            deadline,
            move |iface, _| iface.tcp_accept(id),
            would_block,
        )?;
        let stream = TcpStream {
            inner: Inner::new(self.inner.handle.clone(), conn),
        };
        Ok((stream, SocketAddr::V4(peer)))
    }

    /// An endless iterator of accepted connections, as `std::net::TcpListener::incoming`.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(s, _)| s))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: self.inner.clone(),
            local: self.local,
        })
    }
}

/// A TCP connection on a [`Stack`]. Clones share it; it closes gracefully when the last one
/// is dropped, after its buffered data is sent, without blocking the dropping thread.
pub struct TcpStream {
    inner: Arc<Inner>,
}

impl TcpStream {
    /// Connects to `addr`, waiting for the handshake as long as it takes (the SYN retries give
    /// up after about two minutes, like Linux).
    pub fn connect<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpStream> {
        Self::open(stack, addr, None)
    }

    /// Connects, failing with `TimedOut` after `timeout`.
    pub fn connect_timeout<A: ToSocketAddrs>(
        stack: &Stack,
        addr: A,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        if timeout.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot set a 0 duration timeout",
            ));
        }
        Self::open(stack, addr, Some(std::time::Instant::now() + timeout))
    }

    fn open<A: ToSocketAddrs>(
        stack: &Stack,
        addr: A,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<TcpStream> {
        let remote = v4_addr(addr)?;
        let handle = stack.handle();
        let id = handle.call(move |iface, now| iface.tcp_connect(now, remote))?;
        // From here the handle owns the connection: dropping it on failure closes it.
        let stream = TcpStream {
            inner: Inner::new(handle, id),
        };
        stream.inner.handle.wait(
            id,
            deadline,
            move |iface, _| iface.tcp_connect_result(id),
            || io::ErrorKind::TimedOut.into(),
        )?;
        Ok(stream)
    }

    fn id(&self) -> SocketId {
        self.inner.id
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let id = self.id();
        self.inner
            .handle
            .call(move |iface, _| iface.tcp_addrs(id).map(|(_, p)| SocketAddr::V4(p)))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        let id = self.id();
        self.inner
            .handle
            .call(move |iface, _| iface.tcp_addrs(id).map(|(l, _)| SocketAddr::V4(l)))
    }

    /// Half- or full-closes: `Write` sends a FIN after the buffered data; `Read` makes reads
    /// return 0.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let id = self.id();
        let (read, write) = match how {
            Shutdown::Read => (true, false),
            Shutdown::Write => (false, true),
            Shutdown::Both => (true, true),
        };
        self.inner
            .handle
            .call(move |iface, now| iface.tcp_shutdown(now, id, read, write))
    }

    /// `true` turns Nagle's algorithm off (RFC 896).
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        let id = self.id();
        self.inner
            .handle
            .call(move |iface, now| iface.tcp_set_nodelay(now, id, nodelay))
    }

    /// Keep-alive probes after `idle` without traffic (RFC 1122 §4.2.3.6); `None` turns them
    /// off (the default). Unanswered probes end the connection with `TimedOut`.
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        let id = self.id();
        self.inner
            .handle
            .call(move |iface, now| iface.tcp_set_keepalive(now, id, idle))
    }

    pub fn nodelay(&self) -> io::Result<bool> {
        let id = self.id();
        self.inner
            .handle
            .call(move |iface, _| iface.tcp_nodelay(id))
    }

    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Inner::set_timeout(&self.inner.read_timeout_ns, t)
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Inner::set_timeout(&self.inner.write_timeout_ns, t)
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(Inner::timeout(&self.inner.read_timeout_ns))
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(Inner::timeout(&self.inner.write_timeout_ns))
    }

    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: self.inner.clone(),
        })
    }
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let id = self.id();
        let max = buf.len().min(IO_CHUNK);
        let data = self.inner.handle.wait(
            id,
            self.inner.deadline(&self.inner.read_timeout_ns),
            move |iface, now| match iface.tcp_recv_vec(now, id, max) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                r => Some(r),
            },
            would_block,
        )?;
        buf[..data.len()].copy_from_slice(&data);
        Ok(data.len())
    }
}

impl TcpStream {
    /// Queues `data` as one write: bytes that go together (a response head and its body) leave
    /// in full-sized segments, with no short segment between them.
    fn send(&self, data: Vec<u8>) -> io::Result<usize> {
        let id = self.id();
        self.inner.handle.wait(
            id,
            self.inner.deadline(&self.inner.write_timeout_ns),
            move |iface, now| match iface.tcp_send(now, id, &data) {
                Ok(n) => Some(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
                Err(e) => Some(Err(e)),
            },
            would_block,
        )
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.send(buf[..buf.len().min(IO_CHUNK)].to_vec())
    }

    /// Gathers the buffers (up to 256 KiB) into one write, so that a head and a body written
    /// together leave as full-sized segments: the batching `TCP_CORK` gives a kernel socket.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let total: usize = bufs.iter().map(|b| b.len()).sum();
        let mut data = Vec::with_capacity(total.min(IO_CHUNK));
        for b in bufs {
            let room = IO_CHUNK - data.len();
            data.extend_from_slice(&b[..b.len().min(room)]);
        }
        if data.is_empty() {
            return Ok(0);
        }
        self.send(data)
    }

    /// Data is handed to the stack on `write`; there is nothing to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        (&*self).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("id", &self.inner.id)
            .finish()
    }
}

impl std::fmt::Debug for TcpListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpListener")
            .field("local", &self.local)
            .finish()
    }
}
