//! `TcpListener` and `TcpStream`, modelled on `std::net`.
//!
//! A stream reads and writes the connection's buffers directly, under their lock (see
//! [`crate::tcp::shared`]): no call to the stack thread while data or room is there. It pokes
//! the stack thread only when output is owed, once until the thread has served it, and sleeps
//! on the connection's condition variable when it must wait.

use super::{any_addr, deadline, would_block};
use crate::config::Buffers;
use crate::core::SocketId;
use crate::runtime::{Command, Handle, Pending, Retry, Stack};
use crate::tcp::shared::{stopped, IoState, ListenIo, Shared, SocketIo, Wakeable, MAX_LENT_RUNS};
use crate::tcp::SocketOpts;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Connections a listener queues for `accept` by default: Linux's `net.core.somaxconn`, which
/// caps (and so, for servers asking for more, sets) every listen backlog.
pub const DEFAULT_BACKLOG: usize = 4096;

struct Inner {
    handle: Handle,
    id: SocketId,
    read_timeout_ns: AtomicU64,
    write_timeout_ns: AtomicU64,
    nonblocking: AtomicBool,
    /// `SO_LINGER` in nanoseconds; [`NO_LINGER`] when off.
    linger_ns: AtomicU64,
    /// A stream's shared state, which a lingering close waits on.
    shared: Option<Arc<SocketIo>>,
}

/// `linger_ns` when `SO_LINGER` is off (the default): closing returns at once.
const NO_LINGER: u64 = u64::MAX;

impl Inner {
    fn new(handle: Handle, id: SocketId) -> Arc<Inner> {
        Inner::with_shared(handle, id, None)
    }

    fn with_shared(handle: Handle, id: SocketId, shared: Option<Arc<SocketIo>>) -> Arc<Inner> {
        Arc::new(Inner {
            handle,
            id,
            read_timeout_ns: AtomicU64::new(0),
            write_timeout_ns: AtomicU64::new(0),
            nonblocking: AtomicBool::new(false),
            linger_ns: AtomicU64::new(NO_LINGER),
            shared,
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
    /// Closing does not block (buffered data is sent and the FIN follows on the stack
    /// thread) unless `SO_LINGER` says otherwise: a zero linger resets the connection and
    /// drops what is buffered; a positive one waits, at most that long, until everything
    /// written is acknowledged (as Linux's `close` does).
    fn drop(&mut self) {
        let linger = self.linger_ns.load(Ordering::Relaxed);
        if linger == 0 {
            let _ = self.handle.send(Command::Reset(self.id));
            return;
        }
        let _ = self.handle.send(Command::Close(self.id));
        let Some(shared) = self.shared.as_ref().filter(|_| linger != NO_LINGER) else {
            return;
        };
        let deadline = std::time::Instant::now().checked_add(Duration::from_nanos(linger));
        let _ = blocking(&self.handle, shared, deadline, |state| {
            let done = state.send.is_empty() || state.status.stopped || state.error.is_some();
            if done {
                Ok(())
            } else {
                Err(would_block())
            }
        });
    }
}

/// A listening socket on a [`Stack`].
pub struct TcpListener {
    inner: Arc<Inner>,
    local: SocketAddr,
    /// The queue of established connections, filled by the stack thread: `accept` takes from
    /// it without a call to the stack thread.
    shared: Arc<ListenIo>,
}

/// Runs `op` on a shared state until it is not `WouldBlock`, sleeping until the stack thread
/// changes something between tries, until `deadline` (`WouldBlock` then). A sleep that
/// could stall the stack itself fails instead ([`Handle::may_block`]).
pub(super) fn blocking<S: Wakeable, T>(
    handle: &Handle,
    shared: &Shared<S>,
    deadline: Option<std::time::Instant>,
    mut op: impl FnMut(&mut S) -> io::Result<T>,
) -> io::Result<T> {
    let mut state = shared.lock();
    loop {
        match op(&mut state) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return done,
        }
        let timeout = match deadline {
            None => None,
            Some(d) => match d.saturating_duration_since(std::time::Instant::now()) {
                left if left.is_zero() => return Err(would_block()),
                left => Some(left),
            },
        };
        handle.may_block()?;
        state = shared.wait(state, timeout);
    }
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
        stack.may_block()?;
        Self::bind_request(stack, addr, backlog)?.wait()
    }

    /// Asks the stack thread to listen on `addr` (see [`TcpListener::bind_with_backlog`]).
    pub(crate) fn bind_request<A: ToSocketAddrs>(
        stack: &Stack,
        addr: A,
        backlog: usize,
    ) -> io::Result<Pending<TcpListener>> {
        let addr = any_addr(addr)?;
        let opts = stack_opts(stack);
        Self::listen_request(stack, addr, backlog, opts, false)
    }

    /// Asks the stack thread to listen on `addr`, giving connections the buffers, Diffserv
    /// field and tracing of `opts`. The listener is made there, so an answer nobody takes
    /// closes it.
    pub(crate) fn listen_request(
        stack: &Stack,
        addr: SocketAddr,
        backlog: usize,
        opts: SocketOpts,
        v6only: bool,
    ) -> io::Result<Pending<TcpListener>> {
        let SocketOpts {
            buffers,
            dscp,
            trace,
            congestion,
        } = opts;
        let handle = stack.handle();
        if trace {
            check_trace_output(&handle)?;
        }
        stack.handle().ask(move |iface, now| {
            iface.with_tcp(now, |tcp, stats| {
                let (id, local) = tcp.listen_opts(addr, backlog, buffers, v6only)?;
                // From here the listener owns the port: dropping it closes it.
                let inner = Inner::new(handle, id);
                // Before any SYN can reach it: this runs on the stack thread.
                tcp.set_dscp(id, dscp)?;
                tcp.set_trace(id, now, trace)?;
                tcp.set_congestion(id, now, congestion, stats)?;
                let shared = tcp
                    .listen_io(id)
                    .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
                Ok(TcpListener {
                    inner,
                    local,
                    shared,
                })
            })
        })
    }

    /// The congestion control of the connections the listener opens from now on (Linux's
    /// `TCP_CONGESTION` on a listener; see [`TcpStream::set_congestion`]).
    pub fn set_congestion(&self, algorithm: crate::CongestionAlgorithm) -> io::Result<()> {
        post_congestion(&self.inner, Some(algorithm), None)
    }

    /// Pacing of the connections the listener opens from now on (see
    /// [`TcpStream::set_pacing`]).
    pub fn set_pacing(&self, on: bool) -> io::Result<()> {
        post_congestion(&self.inner, None, Some(on))
    }

    /// `IP_TOS` (see [`TcpStream::set_tos`]) of the SYN-ACKs the listener sends from now on
    /// and of the connections it opens, which inherit it as Linux's accepted sockets do.
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        set_dscp(&self.inner, dscp_of_tos(tos)?)
    }

    /// Waits for a connection (or fails with `WouldBlock` in non-blocking mode). Takes it from
    /// the listener's queue directly: no call to the stack thread.
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let deadline = deadline(self.inner.nonblocking.load(Ordering::Relaxed), None);
        let accepted = blocking(&self.inner.handle, &self.shared, deadline, |q| {
            if q.stopped {
                return Err(crate::runtime::stopped());
            }
            q.queue.pop_front().ok_or_else(would_block)
        })?;
        // Its whole receive buffer, now that the application holds it; a window that had
        // closed is reopened by the core, poked once.
        if accepted.grow_window() && accepted.io.lock().take_poke() {
            self.inner.handle.poke(accepted.id)?;
        }
        let stream = TcpStream {
            inner: Inner::with_shared(
                self.inner.handle.clone(),
                accepted.id,
                Some(accepted.io.clone()),
            ),
            shared: accepted.io,
        };
        Ok((stream, accepted.peer))
    }

    /// An endless iterator of accepted connections, as `std::net::TcpListener::incoming`.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<TcpStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(s, _)| s))
    }

    /// Traces every connection the listener accepts from now on, from its SYN (see
    /// [`TcpStream::set_trace`]), or stops doing so (connections traced because the stack
    /// traces all, `TcpConfig::trace`, stay traced). Fails with `InvalidInput` if the stack
    /// has no trace output.
    pub fn set_trace(&self, on: bool) -> io::Result<()> {
        set_trace(&self.inner, on)
    }

    /// As `std::net::TcpListener::local_addr`: the address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }

    /// As `std::net::TcpListener::set_nonblocking`: in non-blocking mode `accept` fails with
    /// `WouldBlock` when no connection is queued.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// As `std::net::TcpListener::try_clone`: another handle to the same listener.
    pub fn try_clone(&self) -> io::Result<TcpListener> {
        Ok(TcpListener {
            inner: self.inner.clone(),
            local: self.local,
            shared: self.shared.clone(),
        })
    }

    /// `SO_SNDBUF` of the connections accepted from now on (see [`TcpStream::set_send_buffer_size`]).
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        set_buffers(&self.inner, Some(size), None)
    }

    /// `SO_RCVBUF` of the connections accepted from now on: their window scale is chosen for
    /// it.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        set_buffers(&self.inner, None, Some(size))
    }

    /// The send buffer size its connections get.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        buffers(&self.inner).map(|b| b.send)
    }

    /// The receive buffer size its connections get.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        buffers(&self.inner).map(|b| b.recv)
    }

    /// Sets the readiness callback of the listener (see [`super::Poller`]).
    pub(crate) fn watch(&self, watcher: Option<crate::tcp::shared::Watcher>) {
        self.shared.watch(watcher);
    }
}

/// A TCP connection on a [`Stack`]. Clones share it; it closes gracefully when the last one
/// is dropped, after its buffered data is sent, without blocking the dropping thread.
pub struct TcpStream {
    inner: Arc<Inner>,
    /// The connection's buffers and status, shared with the stack thread.
    shared: Arc<SocketIo>,
}

/// Sets the buffer sizes of the listener or connection `inner` names.
fn set_buffers(inner: &Inner, send: Option<usize>, recv: Option<usize>) -> io::Result<()> {
    if send == Some(0) || recv == Some(0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a buffer size must not be zero",
        ));
    }
    let id = inner.id;
    inner.handle.call(move |iface, now| {
        iface.with_tcp(now, |tcp, stats| {
            tcp.set_buffers(id, now, send, recv, stats)
        })
    })
}

/// The buffer sizes of the listener or connection `inner` names.
fn buffers(inner: &Inner) -> io::Result<Buffers> {
    let id = inner.id;
    inner.handle.call(move |iface, _| iface.tcp().buffers(id))
}

/// The Diffserv code point of an `IP_TOS` value: its upper six bits (RFC 2474).
pub(crate) fn dscp_of_tos(tos: u32) -> io::Result<u8> {
    let tos = u8::try_from(tos)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "TOS must fit a byte"))?;
    Ok(tos >> 2)
}

/// Posts a congestion control choice for a connection or a listener; not waited for.
fn post_congestion(
    inner: &Inner,
    algorithm: Option<crate::CongestionAlgorithm>,
    pacing: Option<bool>,
) -> io::Result<()> {
    let id = inner.id;
    let choice = crate::tcp::CongestionChoice { algorithm, pacing };
    inner.handle.post(move |iface, now| {
        let _ = iface.with_tcp(now, |tcp, stats| tcp.set_congestion(id, now, choice, stats));
    })
}

/// Sets the Diffserv field of the listener or connection `inner` names.
/// Posted, not waited for (the value was checked here): the stack thread applies it before any
/// later call of this handle.
fn set_dscp(inner: &Inner, dscp: u8) -> io::Result<()> {
    let id = inner.id;
    inner.handle.post(move |iface, now| {
        let _ = iface.with_tcp(now, |tcp, _| tcp.set_dscp(id, dscp));
    })
}

/// The shared state of connection `id`, fetched on the stack thread.
fn shared(iface: &crate::core::Interface, id: SocketId) -> io::Result<Arc<SocketIo>> {
    iface
        .tcp()
        .io(id)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOTCONN))
}

impl TcpStream {
    /// Connects to `addr`, waiting for the handshake as long as it takes (the SYN retries give
    /// up after about four minutes: at least three, as RFC 9293 asks).
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
        // `Duration::MAX` is no timeout at all, as in std.
        Self::open(stack, addr, std::time::Instant::now().checked_add(timeout))
    }

    /// Connects, waiting for the handshake at most until `deadline`: one command makes the
    /// connection, sends its SYN and waits on it, so the caller wakes once, when the
    /// handshake ends.
    fn open<A: ToSocketAddrs>(
        stack: &Stack,
        addr: A,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<TcpStream> {
        let remote = any_addr(addr)?;
        let opts = stack_opts(stack);
        Self::open_with(stack, None, remote, opts, deadline)
    }

    /// [`TcpStream::open`] from `local_port` (else an ephemeral port) with `opts`.
    pub(crate) fn open_with(
        stack: &Stack,
        local_port: Option<u16>,
        remote: SocketAddr,
        opts: SocketOpts,
        deadline: Option<std::time::Instant>,
    ) -> io::Result<TcpStream> {
        let handle = stack.handle();
        if opts.trace {
            check_trace_output(&handle)?;
        }
        stack.handle().start_and_wait(
            deadline,
            move |iface, now| {
                let stream = Self::make(iface, now, handle, local_port, remote, opts)?;
                let id = stream.id();
                // Answered once: the stream goes with the answer, or is dropped (closing
                // its connection) with the wait.
                let mut stream = Some(stream);
                let retry: Retry<TcpStream> = Box::new(move |iface, now| {
                    let result = iface.with_tcp(now, |tcp, _| tcp.connect_result(id))?;
                    Some(result.and_then(|()| stream.take().ok_or_else(stopped)))
                });
                Ok((id, retry))
            },
            || io::ErrorKind::TimedOut.into(),
        )
    }

    /// On the stack thread: a connection from `local_port` to `remote` with `opts`, its SYN
    /// sent, and the stream over it. From here the stream owns the connection: dropped
    /// unanswered, it closes it.
    fn make(
        iface: &mut crate::core::Interface,
        now: crate::time::Instant,
        handle: Handle,
        local_port: Option<u16>,
        remote: SocketAddr,
        opts: SocketOpts,
    ) -> io::Result<TcpStream> {
        let id = iface.with_tcp(now, |tcp, stats| {
            tcp.connect_with(now, local_port, remote, opts, stats)
        })?;
        let shared = shared(iface, id);
        let inner = Inner::with_shared(handle, id, shared.as_ref().ok().cloned());
        Ok(TcpStream {
            inner,
            shared: shared?,
        })
    }

    /// Waits until the handshake of a stream from [`TcpStream::start_connect`] (or of an
    /// intercepted one adopted before its handshake) ends, at most until `deadline`
    /// (`TimedOut`).
    pub(crate) fn connected(self, deadline: Option<std::time::Instant>) -> io::Result<TcpStream> {
        let stream = self;
        let id = stream.id();
        stream.inner.handle.wait(
            id,
            deadline,
            move |iface, now| iface.with_tcp(now, |tcp, _| tcp.connect_result(id)),
            || io::ErrorKind::TimedOut.into(),
        )?;
        Ok(stream)
    }

    /// Sends the SYN and returns without waiting for the handshake, as a non-blocking
    /// `connect(2)` returning `EINPROGRESS` does: a [`super::Poller`] reports the stream when
    /// the handshake ends, and [`TcpStream::connect_status`] tells how. Dropping the stream
    /// meanwhile abandons the connection.
    pub fn connect_nonblocking<A: ToSocketAddrs>(stack: &Stack, addr: A) -> io::Result<TcpStream> {
        stack.may_block()?;
        Self::connect_request(stack, addr)?.wait()
    }

    /// Asks the stack thread to send the SYN (see [`TcpStream::connect_nonblocking`]).
    pub(crate) fn connect_request<A: ToSocketAddrs>(
        stack: &Stack,
        addr: A,
    ) -> io::Result<Pending<TcpStream>> {
        let remote = any_addr(addr)?;
        let opts = stack_opts(stack);
        Self::start_connect(stack, None, remote, opts)
    }

    /// Asks the stack thread to send the SYN from `local_port` (else an ephemeral port) with
    /// `opts`. The stream is made there, so an answer nobody takes abandons the connection.
    pub(crate) fn start_connect(
        stack: &Stack,
        local_port: Option<u16>,
        remote: SocketAddr,
        opts: SocketOpts,
    ) -> io::Result<Pending<TcpStream>> {
        let handle = stack.handle();
        if opts.trace {
            check_trace_output(&handle)?;
        }
        stack
            .handle()
            .ask(move |iface, now| Self::make(iface, now, handle, local_port, remote, opts))
    }

    /// A stream over connection `id`, whose state `shared` the core was given (an intercepted
    /// connection, accepted before its handshake).
    pub(crate) fn adopt(handle: Handle, id: SocketId, shared: Arc<SocketIo>) -> TcpStream {
        TcpStream {
            inner: Inner::with_shared(handle, id, Some(shared.clone())),
            shared,
        }
    }

    /// How a [`TcpStream::connect_nonblocking`] went so far: `WouldBlock` while the handshake
    /// runs, `Ok` once established, else the error (`ECONNREFUSED`, `ETIMEDOUT`, ...), taken
    /// as `SO_ERROR` would be. No call to the stack thread.
    pub fn connect_status(&self) -> io::Result<()> {
        let mut state = self.shared.lock();
        if state.status.stopped {
            return Err(stopped());
        }
        if let Some(e) = state.error.take() {
            return Err(io::Error::from_raw_os_error(e));
        }
        if state.status.connecting {
            return Err(would_block());
        }
        Ok(())
    }

    /// Whether a read would not block (data, end of stream, an error): readiness without
    /// moving a byte, for event loops that lend a buffer only while data flows.
    pub fn read_ready(&self) -> bool {
        self.shared.lock().read_ready()
    }

    /// Whether the peer's urgent data waits to be read ([`TcpStream::urgent_left`]), or the
    /// stream has ended or failed: like Linux's `POLLPRI`, for event loops that watch for
    /// urgent data apart from ordinary reads, but set as soon as the urgent pointer arrives
    /// (Linux waits for the urgent byte itself).
    pub fn urgent_ready(&self) -> bool {
        self.shared.lock().urgent_ready()
    }

    /// Whether a write would not block (room in the send buffer, or an error).
    pub fn write_ready(&self) -> bool {
        self.shared.lock().write_ready()
    }

    fn id(&self) -> SocketId {
        self.inner.id
    }

    /// As `std::net::TcpStream::peer_addr`: the remote end of the connection.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.addrs().map(|(_, p)| p)
    }

    /// Both ends, from the shared state the core set when it made the connection.
    fn addrs(&self) -> io::Result<(SocketAddr, SocketAddr)> {
        if let Some(ends) = self.shared.lock().addrs {
            return Ok(ends);
        }
        let id = self.id();
        self.inner
            .handle
            .call(move |iface, _| iface.tcp().addrs(id))
    }

    /// As `std::net::TcpStream::local_addr`: our end of the connection.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.addrs().map(|(l, _)| l)
    }

    /// Half- or full-closes: `Write` sends a FIN after the buffered data; `Read` makes reads
    /// return 0.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self.shutdown_request(how)? {
            Some(answer) => answer.wait(),
            None => Ok(()),
        }
    }

    /// Shuts down as [`TcpStream::shutdown`] does. A connection under way takes it at once
    /// for this handle and the stack thread is told without a wait (`None`); one connecting,
    /// failed or finished is asked, for its exact error (`ENOTCONN`), and the answer comes as
    /// `Some`.
    pub(crate) fn shutdown_request(&self, how: Shutdown) -> io::Result<Option<Pending<()>>> {
        let id = self.id();
        let (read, write) = match how {
            Shutdown::Read => (true, false),
            Shutdown::Write => (false, true),
            Shutdown::Both => (true, true),
        };
        {
            let mut state = self.shared.lock();
            if state.status.stopped {
                return Err(stopped());
            }
            let live = !state.status.connecting
                && state.error.is_none()
                && (state.status.can_write || !state.status.eof);
            if live {
                state.shut.read |= read;
                state.shut.write |= write;
                // Readers and writers waiting on this connection see it now.
                self.shared.wake(state);
                self.inner.handle.post(move |iface, now| {
                    let _ =
                        iface.with_tcp(now, |tcp, stats| tcp.shutdown(id, now, read, write, stats));
                })?;
                return Ok(None);
            }
        }
        let answer = self.inner.handle.ask(move |iface, now| {
            iface.with_tcp(now, |tcp, stats| tcp.shutdown(id, now, read, write, stats))
        })?;
        Ok(Some(answer))
    }

    /// `true` turns Nagle's algorithm off (RFC 896). It takes effect on the stack thread
    /// before any later write is sent, without waiting for it.
    pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()> {
        let id = self.id();
        // Recorded and posted under the lock, so that clones setting it at once agree with
        // the core on the last value.
        let mut state = self.shared.lock();
        state.nodelay = nodelay;
        self.inner.handle.post(move |iface, now| {
            let _ = iface.with_tcp(now, |tcp, stats| tcp.set_nodelay(id, now, nodelay, stats));
        })
    }

    /// Traces the connection from now on, or stops tracing it: its segments, its congestion
    /// window and RTT estimates, its state changes and its loss and recovery decisions go to
    /// the stack's trace output ([`crate::StackConfig::trace`], one JSON object per line; see
    /// [`crate::trace`]). Fails with `InvalidInput` if the stack has none. To trace from the
    /// SYN, use [`super::TcpSocket::set_trace`] before connecting.
    pub fn set_trace(&self, on: bool) -> io::Result<()> {
        set_trace(&self.inner, on)
    }

    /// Keep-alive probes after `idle` without traffic (RFC 1122 §4.2.3.6); `None` turns them
    /// off (the default). Unanswered probes end the connection with `TimedOut`.
    pub fn set_keepalive(&self, idle: Option<Duration>) -> io::Result<()> {
        if idle.is_some_and(|t| t.is_zero()) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let id = self.id();
        // Posted, not waited for: applied before any later call of this handle.
        self.inner.handle.post(move |iface, now| {
            let _ = iface.with_tcp(now, |tcp, _| tcp.set_keepalive(id, now, idle));
        })
    }

    /// Copies received data into `buf` without taking it (`MSG_PEEK`, as
    /// `std::net::TcpStream::peek`): waits like `read`, honouring the read timeout and
    /// non-blocking mode; `Ok(0)` at end of stream.
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = self.inner.deadline(&self.inner.read_timeout_ns);
        self.blocking(deadline, |state| state.peek(buf))
    }

    /// Lets `fill` write up to `max` bytes straight into the send buffer, never waiting: the
    /// zero-copy form of a non-blocking [`Write::write`], for data read from elsewhere (a
    /// relay's `recv` from its other socket lands in the ring, with no copy of its own).
    ///
    /// `fill` gets the free room at the buffer's tail (one run, so perhaps less than is
    /// free; never empty) and returns how many bytes it wrote there, from the front. It runs
    /// without the socket's lock, so it may make system calls; meanwhile the stack goes on
    /// sending and acknowledging, and other writes to this stream find no room (a blocking
    /// write to this stream from inside `fill` would wait for ever). The buffer grows as
    /// fills use it up, not ahead of them.
    ///
    /// The outer result is the stream's: `WouldBlock` when there is no room (then `fill` is
    /// not called), `InvalidInput` for a `max` of 0, or what [`Write::write`] would give
    /// when writing is over, also when it ended while `fill` ran (shut down, reset, the stack
    /// stopped: what `fill` wrote is then dropped). The inner result is `fill`'s, and
    /// `Ok(n)` means `n` bytes were queued.
    ///
    /// ```no_run
    /// # fn relay(stream: &tapstack::socket::TcpStream, mut file: std::fs::File) -> std::io::Result<()> {
    /// use std::io::Read;
    /// // Bytes from a file go into the connection's send buffer without a buffer between.
    /// match stream.try_write_with(64 * 1024, |room| file.read(room))? {
    ///     Ok(0) => stream.shutdown(std::net::Shutdown::Write)?,
    ///     Ok(n) => println!("queued {n} bytes"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_write_with<F>(&self, max: usize, fill: F) -> io::Result<io::Result<usize>>
    where
        F: FnOnce(&mut [u8]) -> io::Result<usize>,
    {
        at_least_one(max, "try_write_with")?;
        let (at, room) = self.shared.lock().reserve_write(max)?;
        /// Ends the reservation, with nothing kept, if `fill` unwinds.
        struct Open<'a>(&'a SocketIo);
        impl Drop for Open<'_> {
            fn drop(&mut self) {
                let mut state = self.0.lock();
                if let (_, true) = state.commit_write(0) {
                    self.0.wake(state);
                }
            }
        }
        let open = Open(&self.shared);
        // SAFETY: the reservation gives this call alone the `room` bytes from `at`, inside
        // the ring, which neither moves nor is freed until the commit below. Nothing else
        // reads or writes them meanwhile, nor makes a reference that covers them: the
        // stack's slices of the ring cover written bytes only.
        let filled = fill(unsafe { std::slice::from_raw_parts_mut(at, room) });
        std::mem::forget(open);
        let n = match &filled {
            Ok(n) => (*n).min(room),
            Err(_) => 0,
        };
        let mut state = self.shared.lock();
        let (kept, wake) = state.commit_write(n);
        let poke = kept.is_ok() && n > 0 && state.take_poke();
        if wake {
            self.shared.wake(state);
        } else {
            drop(state);
        }
        kept?;
        if poke {
            self.inner.handle.poke(self.id())?;
        }
        Ok(filled.map(|n| n.min(room)))
    }

    /// Hands up to `max` received bytes to `drain` without copying them out first, never
    /// waiting: the zero-copy form of a non-blocking [`Read::read`], for data written on
    /// elsewhere (a relay's `writev` to its other socket sends straight from the frames the
    /// data arrived in).
    ///
    /// `drain` gets the bytes in order as up to 16 slices (never none, never empty): the
    /// frames the stack kept as they came, and small segments' bytes copied once out of the
    /// receive ring (at most 64 KiB of those a call). It returns how many it took from the
    /// front; only those are consumed, and the rest stay to be read. It runs without the
    /// socket's lock, so it may make system calls; meanwhile the stack goes on receiving, and
    /// other reads of this stream wait (a blocking read of this stream from inside `drain`
    /// would wait for ever). A read stops at the urgent mark, as [`Read::read`] does.
    ///
    /// The outer result is the stream's, as [`Read::read`] would give it: `WouldBlock` when
    /// nothing is there or another call's bytes are still lent (then `drain` is not called),
    /// `InvalidInput` for a `max` of 0, the connection's error. The inner
    /// result is `drain`'s: `Ok(n)` means `n` bytes were taken, `Ok(0)` the end of the stream
    /// (`drain` is not called then), and a `drain` that takes nothing gives `WriteZero`.
    ///
    /// ```no_run
    /// # fn relay(stream: &tapstack::socket::TcpStream, mut file: std::fs::File) -> std::io::Result<()> {
    /// use std::io::Write;
    /// // Received bytes go to the file from the frames they came in.
    /// match stream.try_read_with(256 * 1024, |bufs| file.write_vectored(bufs))? {
    ///     Ok(0) => println!("end of stream"),
    ///     Ok(n) => println!("wrote {n} bytes"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn try_read_with<F>(&self, max: usize, drain: F) -> io::Result<io::Result<usize>>
    where
        F: FnOnce(&[io::IoSlice<'_>]) -> io::Result<usize>,
    {
        at_least_one(max, "try_read_with")?;
        let (mut scratch, mut runs) = (Vec::new(), Vec::new());
        let lent = self.shared.lock().lend_read(max, &mut scratch, &mut runs)?;
        if lent == 0 {
            return Ok(Ok(0));
        }
        /// Gives the bytes back, none taken, if `drain` unwinds.
        struct Lending<'a>(&'a SocketIo);
        impl Drop for Lending<'_> {
            fn drop(&mut self) {
                let mut state = self.0.lock();
                if state.return_read(0) {
                    self.0.wake(state);
                }
            }
        }
        let lending = Lending(&self.shared);
        let mut slices = [io::IoSlice::new(&[]); MAX_LENT_RUNS];
        for (slice, run) in slices.iter_mut().zip(&runs) {
            *slice = io::IoSlice::new(run.bytes(&scratch));
        }
        let drained = match drain(&slices[..runs.len()]) {
            Ok(0) => Err(io::ErrorKind::WriteZero.into()),
            done => done.map(|n| n.min(lent)),
        };
        std::mem::forget(lending);
        let taken = *drained.as_ref().unwrap_or(&0);
        let mut state = self.shared.lock();
        let wake = state.return_read(taken);
        let poke = taken > 0 && state.window_update_due() && state.take_poke();
        if wake {
            self.shared.wake(state);
        } else {
            drop(state);
        }
        if poke {
            // The data is taken; a stack that stopped meanwhile owes no window update.
            let _ = self.inner.handle.poke(self.id());
        }
        Ok(drained)
    }

    /// Sends `buf` as urgent data (`send` with `MSG_OOB`; RFC 9293 §3.8.5): queued in line
    /// like [`Write::write`], waiting as it does; the urgent pointer of the segments sent from
    /// now on marks the end of what was taken, however long (MUST-31). Returns how many
    /// bytes were taken.
    pub fn send_urgent(&self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let deadline = self.inner.deadline(&self.inner.write_timeout_ns);
        let (n, poke) = self.blocking(deadline, |state| {
            let n = state.write_urgent(buf)?;
            Ok((n, state.take_poke()))
        })?;
        if poke {
            self.inner.handle.poke(self.id())?;
        }
        Ok(n)
    }

    /// The urgent data left to read (RFC 9293 §3.8.5, MUST-33): `Some(n)` while the peer's
    /// urgent pointer lies `n` bytes past what has been read, so that the next `n` bytes are
    /// urgent; `None` when there is none. Urgent data stays in line, as with `SO_OOBINLINE`,
    /// and a read stops at the mark, so one read never holds urgent and ordinary bytes. The
    /// mark is RFC 9293's, after the last urgent byte: Linux's inline reads stop one byte
    /// earlier, before the byte it would take out of band. The segment that brings an urgent
    /// pointer wakes the stream's waiters and its [`super::Poller`], as any arrival does,
    /// which is how an event loop learns of it (MUST-32): check `urgent_left` after an
    /// event.
    pub fn urgent_left(&self) -> Option<usize> {
        self.shared.lock().rcv_urgent
    }

    /// The pending error, cleared by the call (`SO_ERROR`): the connection's error if it
    /// failed, else the last soft error an ICMP message reported about it (an unreachable
    /// host, say, while the connection goes on retrying; RFC 5461), as Linux reports them.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let mut state = self.shared.lock();
        let errno = state.error.take().or_else(|| state.soft_error.take());
        Ok(errno.map(io::Error::from_raw_os_error))
    }

    /// `SO_LINGER`, applied when the last handle is dropped: `None` (the default) closes in
    /// the background; `Some(Duration::ZERO)` resets the connection and drops unsent data;
    /// `Some(t)` makes the drop wait up to `t` until the peer has acknowledged every byte.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        let ns = match linger {
            None => NO_LINGER,
            Some(t) => u64::try_from(t.as_nanos())
                .ok()
                .filter(|&ns| ns != NO_LINGER)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "linger too long"))?,
        };
        self.inner.linger_ns.store(ns, Ordering::Relaxed);
        Ok(())
    }

    /// The `SO_LINGER` setting.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        let ns = self.inner.linger_ns.load(Ordering::Relaxed);
        Ok((ns != NO_LINGER).then(|| Duration::from_nanos(ns)))
    }

    /// How many times the same data is retransmitted before the connection is given up with
    /// `TimedOut` (RFC 9293's R2, MUST-21; Linux's `TCP_USER_TIMEOUT` counts time instead):
    /// `None` restores the stack's default, `TcpConfig::max_retries` (15). Zero is
    /// `InvalidInput`.
    pub fn set_retransmission_limit(&self, retries: Option<u32>) -> io::Result<()> {
        if retries == Some(0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the retransmission limit must be at least 1",
            ));
        }
        let id = self.id();
        // Posted, not waited for, as `set_keepalive` is.
        self.inner.handle.post(move |iface, now| {
            let _ = iface.with_tcp(now, |tcp, _| tcp.set_max_retries(id, retries));
        })
    }

    /// `TCP_CONGESTION`: the congestion control of the connection from now on. A new
    /// controller starts from the initial window, as a new connection does; to have the
    /// handshake's first window chosen by it, set it on a [`super::TcpSocket`] or on the
    /// listener. [`crate::CongestionAlgorithm::Bbr`] paces.
    pub fn set_congestion(&self, algorithm: crate::CongestionAlgorithm) -> io::Result<()> {
        post_congestion(&self.inner, Some(algorithm), None)
    }

    /// Paces the connection's output (Linux's fq pacing, `SO_MAX_PACING_RATE` aside): at twice
    /// cwnd/RTT in slow start, 1.2 times after. BBR paces whatever this says.
    pub fn set_pacing(&self, on: bool) -> io::Result<()> {
        post_congestion(&self.inner, None, Some(on))
    }

    /// `IP_TOS`: the type-of-service byte of the connection's segments, as `socket2` takes
    /// it. Its upper six bits are the Diffserv code point (RFC 2474, RFC 9293 MUST-48); the
    /// two ECN bits belong to the stack and are ignored, as Linux does for TCP. Over IPv6 it
    /// is the traffic class (`IPV6_TCLASS`). To have the SYN carry it, set it on a
    /// [`super::TcpSocket`] before connecting.
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        set_dscp(&self.inner, dscp_of_tos(tos)?)
    }

    /// `IP_TTL`: the TTL of the connection's segments (1 to 255); over IPv6, their hop limit
    /// (`IPV6_UNICAST_HOPS`).
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        let ttl = super::ttl_value(ttl)?;
        let id = self.id();
        // Posted, not waited for: applied before any later call of this handle; recorded
        // under the lock as `set_nodelay` is.
        let mut state = self.shared.lock();
        state.ttl = Some(ttl);
        self.inner.handle.post(move |iface, now| {
            let _ = iface.with_tcp(now, |tcp, _| tcp.set_ttl(id, Some(ttl)));
        })
    }

    /// The TTL of the connection's segments, from the shared state: no round trip.
    pub fn ttl(&self) -> io::Result<u32> {
        let ttl = self.shared.lock().ttl;
        Ok(u32::from(ttl.unwrap_or(self.inner.handle.default_ttl())))
    }

    /// Keep-alive with all three of its settings (Linux's `TCP_KEEPIDLE`, `TCP_KEEPINTVL`,
    /// `TCP_KEEPCNT`), or off with `None`. Zero times or zero probes are `InvalidInput`.
    pub fn set_keepalive_with(&self, params: Option<crate::Keepalive>) -> io::Result<()> {
        if params.is_some_and(|p| p.idle.is_zero() || p.interval.is_zero() || p.probes == 0) {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let id = self.id();
        // Posted, not waited for, as `set_keepalive` is.
        self.inner.handle.post(move |iface, now| {
            let _ = iface.with_tcp(now, |tcp, _| tcp.set_keepalive_with(id, now, params));
        })
    }

    /// `SO_SNDBUF`: the most written data the connection holds until the peer acknowledges
    /// it (not doubled, as Linux doubles it). A smaller size than it holds takes effect as
    /// acknowledgements drain it.
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        set_buffers(&self.inner, Some(size), None)
    }

    /// `SO_RCVBUF`: the most received data the connection holds until it is read. On a
    /// connection it cannot grow past what the window scale chosen at the handshake can
    /// advertise, nor shrink below what it holds or has advertised; set it before connecting
    /// ([`super::TcpSocket`]) or on the listener to choose the window scale.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        set_buffers(&self.inner, None, Some(size))
    }

    /// The send buffer size (as autotuning has grown it so far, if it has not been set), from
    /// the shared state: no round trip.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        Ok(self.shared.lock().send.capacity())
    }

    /// The receive buffer size, from the shared state: no round trip.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        Ok(self.shared.lock().recv.capacity())
    }

    /// A snapshot of the connection's state, as Linux's `TCP_INFO`: the sequence spaces with
    /// their window scales and MSS, RTT, congestion window, bytes in flight and buffered.
    /// It is taken on the stack thread, and waited for (`tokio::TcpStream::info` awaits it).
    pub fn info(&self) -> io::Result<crate::tcp::TcpInfo> {
        self.inner.handle.may_block()?;
        self.info_request()?.wait()
    }

    /// Asks the stack thread for the connection's [`TcpStream::info`].
    pub(crate) fn info_request(&self) -> io::Result<Pending<crate::tcp::TcpInfo>> {
        let id = self.id();
        self.inner.handle.ask(move |iface, _| {
            iface
                .tcp()
                .info(id)
                .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOTCONN))
        })
    }

    /// As `std::net::TcpStream::nodelay`: whether Nagle's algorithm is off (`TCP_NODELAY`),
    /// from the shared state: no round trip.
    pub fn nodelay(&self) -> io::Result<bool> {
        Ok(self.shared.lock().nodelay)
    }

    /// As `std::net::TcpStream::set_read_timeout`: `None` blocks forever; a zero duration is
    /// an error.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Inner::set_timeout(&self.inner.read_timeout_ns, t)
    }

    /// As `std::net::TcpStream::set_write_timeout`: `None` blocks forever; a zero duration is
    /// an error.
    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        Inner::set_timeout(&self.inner.write_timeout_ns, t)
    }

    /// As `std::net::TcpStream::read_timeout`: `None` when reads block forever.
    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(Inner::timeout(&self.inner.read_timeout_ns))
    }

    /// As `std::net::TcpStream::write_timeout`: `None` when writes block forever.
    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(Inner::timeout(&self.inner.write_timeout_ns))
    }

    /// As `std::net::TcpStream::set_nonblocking`: reads and writes that would block fail with
    /// `WouldBlock`.
    pub fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        self.inner.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// As `std::net::TcpStream::try_clone`: another handle to the same connection.
    pub fn try_clone(&self) -> io::Result<TcpStream> {
        Ok(TcpStream {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        })
    }

    /// Sets the readiness callback of the connection (see [`super::Poller`]).
    pub(crate) fn watch(&self, watcher: Option<crate::tcp::shared::Watcher>) {
        self.shared.watch(watcher);
    }

    /// Runs `op` on the connection's shared state until it is not `WouldBlock` (see
    /// [`blocking`]).
    fn blocking<T>(
        &self,
        deadline: Option<std::time::Instant>,
        op: impl FnMut(&mut IoState) -> io::Result<T>,
    ) -> io::Result<T> {
        blocking(&self.inner.handle, &self.shared, deadline, op)
    }

    /// Queues bytes from `bufs`, in order, as one write, and pokes the stack thread if it is
    /// not already owed a poke.
    fn send(&self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let deadline = self.inner.deadline(&self.inner.write_timeout_ns);
        let (n, poke) = self.blocking(deadline, |state| {
            let mut n = 0;
            for b in bufs.iter().filter(|b| !b.is_empty()) {
                match state.write(b) {
                    Ok(k) => {
                        n += k;
                        if k < b.len() {
                            break;
                        }
                    }
                    Err(_) if n > 0 => break,
                    Err(e) => return Err(e),
                }
            }
            Ok((n, n > 0 && state.take_poke()))
        })?;
        if poke {
            self.inner.handle.poke(self.id())?;
        }
        Ok(n)
    }
}

/// `InvalidInput` for a zero-copy call (`call`) given no room at all.
fn at_least_one(max: usize, call: &str) -> io::Result<()> {
    if max == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{call} needs room for at least one byte"),
        ));
    }
    Ok(())
}

impl Read for &TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let deadline = self.inner.deadline(&self.inner.read_timeout_ns);
        let (n, poke) = self.blocking(deadline, |state| {
            let n = state.read(buf)?;
            Ok((n, state.window_update_due() && state.take_poke()))
        })?;
        if poke {
            // The data is read; a stack that stopped meanwhile owes no window update.
            let _ = self.inner.handle.poke(self.id());
        }
        Ok(n)
    }
}

impl Write for &TcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        self.send(&[io::IoSlice::new(buf)])
    }

    /// Queues the buffers as one write (as far as they fit), so that a head and a body
    /// written together leave as full-sized segments: the batching `TCP_CORK` gives a kernel
    /// socket.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        self.send(bufs)
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

/// A socket may be traced only on a stack with somewhere to write the trace.
pub(crate) fn check_trace_output(handle: &Handle) -> io::Result<()> {
    if handle.traces() {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the stack has no trace output (StackConfig::trace)",
        ))
    }
}

/// Starts or stops tracing the socket (a connection, or a listener's future connections):
/// posted, not waited for; the stack thread applies it before any later call.
fn set_trace(inner: &Inner, on: bool) -> io::Result<()> {
    if on {
        check_trace_output(&inner.handle)?;
    }
    let id = inner.id;
    inner.handle.post(move |iface, now| {
        let _ = iface.with_tcp(now, |tcp, _| tcp.set_trace(id, now, on));
    })
}

/// A socket's options as the stack's configuration gives them: its buffer sizes, the rest
/// default.
fn stack_opts(stack: &Stack) -> SocketOpts {
    SocketOpts {
        buffers: stack.config().tcp.buffers(),
        ..SocketOpts::default()
    }
}
