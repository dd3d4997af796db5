//! `TcpSocket`: a TCP socket configured before it connects or listens, as `socket2::Socket`
//! and `tokio::net::TcpSocket` are, for the options that must be set before the SYN.

use super::{any_addr, TcpListener, TcpStream};
use crate::config::Buffers;
use crate::runtime::{Pending, Stack};
use crate::tcp::{CongestionChoice, SocketOpts};
use std::cell::Cell;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// A TCP socket not yet connected or listening: its buffer sizes (which choose the window
/// scale of its SYN, RFC 7323 §2.3) and local address are set first.
///
/// ```no_run
/// # fn f(stack: &tapstack::Stack) -> std::io::Result<()> {
/// let socket = tapstack::socket::TcpSocket::new(stack);
/// socket.set_recv_buffer_size(4 << 20)?; // a window scale of 7
/// let stream = socket.connect("10.0.0.1:5001")?;
/// # Ok(()) }
/// ```
pub struct TcpSocket<'a> {
    stack: &'a Stack,
    buffers: Cell<Buffers>,
    local: Cell<Option<SocketAddr>>,
    dscp: Cell<u8>,
    only_v6: Cell<bool>,
    trace: Cell<bool>,
    congestion: Cell<CongestionChoice>,
}

impl<'a> TcpSocket<'a> {
    /// A socket on `stack` with the stack's default buffer sizes.
    pub fn new(stack: &'a Stack) -> TcpSocket<'a> {
        TcpSocket {
            stack,
            buffers: Cell::new(stack.config().tcp.buffers()),
            local: Cell::new(None),
            dscp: Cell::new(0),
            only_v6: Cell::new(false),
            trace: Cell::new(false),
            congestion: Cell::new(CongestionChoice::default()),
        }
    }

    /// `IP_TOS` (see [`TcpStream::set_tos`]): a connection's SYN carries it already; a
    /// listener's SYN-ACKs do, and its connections inherit it.
    pub fn set_tos(&self, tos: u32) -> io::Result<()> {
        self.dscp.set(super::tcp::dscp_of_tos(tos)?);
        Ok(())
    }

    /// The `IP_TOS` set (its ECN bits zero).
    pub fn tos(&self) -> io::Result<u32> {
        Ok(u32::from(self.dscp.get()) << 2)
    }

    /// `TCP_CONGESTION` (see [`TcpStream::set_congestion`]): the connection's controller from
    /// its SYN, or a listener's connections' controller.
    pub fn set_congestion(&self, algorithm: crate::CongestionAlgorithm) -> io::Result<()> {
        let mut c = self.congestion.get();
        c.algorithm = Some(algorithm);
        self.congestion.set(c);
        Ok(())
    }

    /// Pacing (see [`TcpStream::set_pacing`]), from the SYN on.
    pub fn set_pacing(&self, on: bool) -> io::Result<()> {
        let mut c = self.congestion.get();
        c.pacing = Some(on);
        self.congestion.set(c);
        Ok(())
    }

    /// `SO_SNDBUF` (see [`TcpStream::set_send_buffer_size`]).
    pub fn set_send_buffer_size(&self, size: usize) -> io::Result<()> {
        let mut b = self.buffers.get();
        b.send = nonzero(size)?;
        b.send_locked = true;
        self.buffers.set(b);
        Ok(())
    }

    /// `SO_RCVBUF`; the SYN asks for the smallest window scale that advertises all of it.
    pub fn set_recv_buffer_size(&self, size: usize) -> io::Result<()> {
        let mut b = self.buffers.get();
        b.recv = nonzero(size)?;
        self.buffers.set(b);
        Ok(())
    }

    /// The send buffer size.
    pub fn send_buffer_size(&self) -> io::Result<usize> {
        Ok(self.buffers.get().send)
    }

    /// The receive buffer size.
    pub fn recv_buffer_size(&self) -> io::Result<usize> {
        Ok(self.buffers.get().recv)
    }

    /// The local address to connect from or listen on: one of the stack's addresses or the
    /// unspecified one of a family, and a port (0: an ephemeral one). An IPv4 address other
    /// than ours fails here; an IPv6 one when the listener opens.
    pub fn bind<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        let addr = any_addr(addr)?;
        let ours = match addr.ip() {
            std::net::IpAddr::V4(ip) => ip.is_unspecified() || ip == self.stack.config().ip,
            std::net::IpAddr::V6(_) => true,
        };
        if !ours {
            return Err(io::Error::from_raw_os_error(libc::EADDRNOTAVAIL));
        }
        self.local.set(Some(addr));
        Ok(())
    }

    /// Connects, waiting for the handshake (see [`TcpStream::connect`]).
    pub fn connect<A: ToSocketAddrs>(self, addr: A) -> io::Result<TcpStream> {
        self.open(addr, None)
    }

    /// Connects, failing with `TimedOut` after `timeout`.
    pub fn connect_timeout<A: ToSocketAddrs>(
        self,
        addr: A,
        timeout: Duration,
    ) -> io::Result<TcpStream> {
        self.open(addr, Instant::now().checked_add(timeout))
    }

    /// Connects from the bound port with this socket's options, in one command to the stack
    /// thread (see [`TcpStream::connect`]).
    fn open<A: ToSocketAddrs>(self, addr: A, deadline: Option<Instant>) -> io::Result<TcpStream> {
        let remote = any_addr(addr)?;
        let port = self.local.get().map(|l| l.port()).filter(|p| *p != 0);
        TcpStream::open_with(self.stack, port, remote, self.opts(), deadline)
    }

    /// Sends the SYN without waiting (see [`TcpStream::connect_nonblocking`]).
    pub fn connect_nonblocking<A: ToSocketAddrs>(self, addr: A) -> io::Result<TcpStream> {
        self.stack.may_block()?;
        self.connect_request(addr)?.wait()
    }

    /// Asks the stack thread to send the SYN.
    pub(crate) fn connect_request<A: ToSocketAddrs>(
        self,
        addr: A,
    ) -> io::Result<Pending<TcpStream>> {
        let remote = any_addr(addr)?;
        let port = self.local.get().map(|l| l.port()).filter(|p| *p != 0);
        TcpStream::start_connect(self.stack, port, remote, self.opts())
    }

    fn opts(&self) -> SocketOpts {
        SocketOpts {
            buffers: self.buffers.get(),
            dscp: self.dscp.get(),
            trace: self.trace.get(),
            congestion: self.congestion.get(),
        }
    }

    /// Traces the connection from its SYN, or, before `listen`, every connection the listener
    /// accepts (see [`TcpStream::set_trace`]). Fails with `InvalidInput` if the stack has no
    /// trace output ([`crate::StackConfig::trace`]).
    pub fn set_trace(&self, on: bool) -> io::Result<()> {
        if on {
            super::tcp::check_trace_output(&self.stack.handle())?;
        }
        self.trace.set(on);
        Ok(())
    }

    /// `IPV6_V6ONLY`, before `listen`: a listener on `[::]` then takes IPv6 only, and an
    /// IPv4 listener may share its port. Off (the default), it takes both families, as on
    /// Linux.
    pub fn set_only_v6(&self, only_v6: bool) -> io::Result<()> {
        self.only_v6.set(only_v6);
        Ok(())
    }

    /// Whether `listen` opens an IPv6-only listener.
    pub fn only_v6(&self) -> io::Result<bool> {
        Ok(self.only_v6.get())
    }

    /// Listens on the bound address (else `0.0.0.0` and an ephemeral port) with room for
    /// `backlog` connections not yet accepted; they get this socket's buffer sizes.
    pub fn listen(self, backlog: usize) -> io::Result<TcpListener> {
        self.stack.may_block()?;
        self.listen_request(backlog)?.wait()
    }

    /// Asks the stack thread to listen.
    pub(crate) fn listen_request(self, backlog: usize) -> io::Result<Pending<TcpListener>> {
        let local = self
            .local
            .get()
            .unwrap_or(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0));
        TcpListener::listen_request(self.stack, local, backlog, self.opts(), self.only_v6.get())
    }

    /// The bound address, if `bind` was called.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.local
            .get()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))
    }
}

fn nonzero(size: usize) -> io::Result<usize> {
    if size == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "a buffer size must not be zero",
        ));
    }
    Ok(size)
}
