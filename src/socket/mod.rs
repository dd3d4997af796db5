//! The `std::net`-like socket API. Every call is a message to the stack thread.

mod builder;
mod intercept;
mod poll;
mod tcp;
mod udp;

pub use builder::TcpSocket;
pub use intercept::{InterceptedEcho, InterceptedTcp, InterceptedUdp, Interceptor};
pub use poll::{Poller, Source};
pub use tcp::{TcpListener, TcpStream, DEFAULT_BACKLOG};
pub use udp::UdpSocket;

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

/// When a blocking call gives up: at once in non-blocking mode, after the timeout if set.
pub(crate) fn deadline(nonblocking: bool, timeout: Option<Duration>) -> Option<Instant> {
    if nonblocking {
        Some(Instant::now())
    } else {
        // A timeout too long to represent (`Duration::MAX`) is none, as in std.
        timeout.and_then(|t| Instant::now().checked_add(t))
    }
}

/// A timeout in nanoseconds for an atomic slot (0 is none); a zero duration is an error, as
/// in std.
pub(crate) fn timeout_ns(timeout: Option<Duration>) -> io::Result<u64> {
    match timeout {
        Some(t) if t.is_zero() => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        )),
        Some(t) => Ok(t.as_nanos().clamp(1, u128::from(u64::MAX)) as u64),
        None => Ok(0),
    }
}

/// What a timed-out read or write returns on Unix (`EAGAIN`), as in std.
/// An `IP_TTL` value as `std::net` takes it: 1 to 255, else `InvalidInput`.
pub(crate) fn ttl_value(ttl: u32) -> io::Result<u8> {
    match u8::try_from(ttl) {
        Ok(t) if t > 0 => Ok(t),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TTL must be between 1 and 255",
        )),
    }
}

pub(crate) fn would_block() -> io::Error {
    io::ErrorKind::WouldBlock.into()
}

/// The first address `addr` resolves to, of either family.
pub(crate) fn any_addr<A: ToSocketAddrs>(addr: A) -> io::Result<SocketAddr> {
    addr.to_socket_addrs()?.next().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    })
}
