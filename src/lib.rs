//! tapstack: a user-space TCP/IP stack over a Linux TAP device.
//!
//! Layers, bottom up: [`phy`] (devices), [`wire`] (formats over `etherparse`), [`core`] (the
//! sans-IO protocol state machine), [`runtime`] (the stack thread) and [`socket`] (the
//! `std::net`-like API).

#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod core;
pub mod id;
pub mod phy;
pub mod runtime;
pub mod socket;
pub mod stats;
pub mod tcp;
pub mod time;
pub mod wire;

pub use config::{Keepalive, StackConfig};
pub use runtime::Stack;
pub use socket::{TcpListener, TcpStream, UdpSocket};
pub use stats::Counters;
