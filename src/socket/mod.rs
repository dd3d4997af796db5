//! The `std::net`-like socket API. Every call is a message to the stack thread.

mod udp;

pub use udp::UdpSocket;

use std::io;
use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};

/// The first IPv4 address `addr` resolves to (the stack speaks IPv4 only).
pub(crate) fn v4_addr<A: ToSocketAddrs>(addr: A) -> io::Result<SocketAddrV4> {
    let mut last_v6 = false;
    for a in addr.to_socket_addrs()? {
        match a {
            SocketAddr::V4(v4) => return Ok(v4),
            SocketAddr::V6(_) => last_v6 = true,
        }
    }
    if last_v6 {
        Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        ))
    }
}
