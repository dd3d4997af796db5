//! tapstack: a user-space TCP/IP stack over a Linux TAP device.
//!
//! Layers, bottom up: [`phy`] (devices), [`wire`] (formats over `etherparse`), [`core`] (the
//! sans-IO protocol state machine), [`runtime`] (the stack thread) and [`socket`] (the
//! `std::net`-like API).
//!
//! Two stacks joined by the in-memory link, no tap needed: a client and an echo server.
//!
//! ```
//! use std::io::{Read, Write};
//! use tapstack::{phy::memory_pair, Stack, StackConfig, TcpListener, TcpStream};
//! # fn main() -> std::io::Result<()> {
//! let (a, b) = memory_pair(1500)?;
//! let mut client_cfg = StackConfig::new([10, 0, 0, 1].into(), 24);
//! client_cfg.mac = tapstack::wire::MacAddr([2, 0, 0, 0, 0, 1]);
//! let client = Stack::new(a, client_cfg)?;
//! let server = Stack::new(b, StackConfig::new([10, 0, 0, 2].into(), 24))?;
//! let listener = TcpListener::bind(&server, "0.0.0.0:7")?;
//! let echo = std::thread::spawn(move || -> std::io::Result<()> {
//!     let (mut conn, _) = listener.accept()?;
//!     let mut buf = [0u8; 64];
//!     let n = conn.read(&mut buf)?;
//!     conn.write_all(&buf[..n])
//! });
//! let mut conn = TcpStream::connect(&client, "10.0.0.2:7")?;
//! conn.write_all(b"hello")?;
//! let mut reply = [0u8; 5];
//! conn.read_exact(&mut reply)?;
//! assert_eq!(&reply, b"hello");
//! echo.join().unwrap()?;
//! # Ok(()) }
//! ```
//!
//! The async API for tokio is `tapstack::tokio` (feature `tokio`), with its own example
//! over the in-memory link. Programs over a real tap are in `examples/`: `echo_server` (blocking
//! TCP echo), `tokio_echo` (the same on tokio, over a tap or a tun), `tokio_client` (many
//! connections at once), `udp_echo`, `http_get` (a TCP client) and `rr_client`
//! (request/response latency); the apps in `src/bin/` (feature `cli`) are larger ones,
//! `echo-server` an event loop over [`socket::Poller`] or, with `--async`, tokio tasks.
//!
//! Devices: [`phy::TapDevice`] carries Ethernet frames (with ARP), [`phy::TunDevice`] bare IP
//! packets (no ARP; see [`wire::Medium`]); both with the kernel's offloads.

#![warn(missing_docs)]

#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod core;
pub mod id;
pub mod ip;
pub mod phy;
pub mod runtime;
pub mod rxbuf;
pub mod socket;
pub mod stats;
mod sync;
pub mod tcp;
pub mod time;
#[cfg(feature = "tokio")]
pub mod tokio;
pub mod trace;
pub mod wire;

pub use config::{
    CongestionAlgorithm, EchoMode, Ecn, InterceptConfig, Ipv6Config, Keepalive, StackConfig,
};
pub use runtime::Stack;
pub use socket::{TcpListener, TcpStream, UdpSocket};
pub use stats::Counters;
