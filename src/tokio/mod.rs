//! The async API (feature `tokio`): [`TcpListener`], [`TcpStream`] and [`UdpSocket`] for tokio,
//! shaped like `tokio::net`'s, over the same stack thread as the blocking API.
//!
//! Readiness comes from the stack thread itself: each socket has a readiness callback (the one
//! [`crate::socket::Poller`] uses) that wakes the tasks waiting to read or to write. A pending
//! read, write, accept or connect holds no thread and polls nothing; it tries the operation,
//! leaves its waker and tries once more (so a change between the two is never missed), then
//! sleeps until the stack thread reports a change. Dropping a pending future leaves the socket
//! as it was: nothing was taken from it.
//!
//! Any runtime works, the current-thread one included: the stack runs on its own thread, and
//! a tokio waker may be woken from any thread. Or the stack runs as a task of the runtime
//! ([`spawn_stack`]): then a socket call that wakes it, and readiness that wakes a task, cost
//! no context switch. Timeouts are `tokio::time::timeout` around any of these futures.
//!
//! No call blocks the executor. TCP reads and writes copy to and from the connection's
//! buffers under their lock, and UDP receives take from the socket's queue, with no call to the
//! stack thread. Binding, listening, connecting and UDP sends await the stack thread's answer
//! as a future, woken by it. Addresses and option values are read from state shared with the
//! stack thread, and option changes and shutdowns are posted to it. A [`crate::Stack`] dropped
//! inside a runtime leaves its thread to finish closing in the background;
//! [`crate::Stack::shutdown`] awaits it. `TCP_INFO` is awaited ([`TcpStream::info`]). The
//! exceptions, reached through `socket()`: the buffer-size setters and `set_only_v6` ask the
//! stack thread and wait (they change what only it may decide, and report its verdict).
//!
//! Two stacks joined by the in-memory link, no tap needed: an echo server task and a client.
//!
//! ```
//! use tapstack::phy::memory_pair;
//! use tapstack::tokio::{TcpListener, TcpStream};
//! use tapstack::{wire::MacAddr, Stack, StackConfig};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! let (a, b) = memory_pair(1500)?;
//! let mut client_cfg = StackConfig::new([10, 0, 0, 1].into(), 24);
//! client_cfg.mac = MacAddr([2, 0, 0, 0, 0, 1]);
//! let client = Stack::new(a, client_cfg)?;
//! let server = Stack::new(b, StackConfig::new([10, 0, 0, 2].into(), 24))?;
//! let listener = TcpListener::bind(&server, "0.0.0.0:7").await?;
//! tokio::spawn(async move {
//!     while let Ok((mut conn, _peer)) = listener.accept().await {
//!         tokio::spawn(async move {
//!             let (mut r, mut w) = conn.split();
//!             let _ = tokio::io::copy(&mut r, &mut w).await;
//!         });
//!     }
//! });
//! let mut conn = TcpStream::connect(&client, "10.0.0.2:7").await?;
//! conn.write_all(b"hello").await?;
//! let mut reply = [0u8; 5];
//! let limit = std::time::Duration::from_secs(10);
//! tokio::time::timeout(limit, conn.read_exact(&mut reply)).await??;
//! assert_eq!(&reply, b"hello");
//! # Ok(()) }
//! ```
//!
//! Over a tap, `examples/tokio_echo.rs` is a server and `examples/tokio_client.rs` a client
//! with many connections at once; `echo-server --async` serves inetd's small services this way.

mod intercept;
mod ready;
mod tcp;
mod udp;

pub use intercept::{InterceptedTcp, InterceptedUdp, Interceptor};
pub use tcp::{
    OwnedReadHalf, OwnedWriteHalf, ReadHalf, TcpListener, TcpSocket, TcpStream, WriteHalf,
};
pub use udp::UdpSocket;

use crate::phy::Device;
use crate::{Stack, StackConfig};
use std::io;

/// Starts a stack on `device` as a task of the current tokio runtime, in place of a thread
/// of its own ([`Stack::new`]): the application's tasks and the stack then share the
/// runtime's threads, so that a socket call that wakes the stack, or readiness that wakes a
/// task, costs no context switch. On a two-core machine, `tunproxy` run this way (its relay
/// and its stack on one current-thread runtime) took a third less CPU per GB relayed and
/// about a tenth less per relayed connection than with a stack thread beside its runtime
/// (`scripts/bench-proxy.sh`; see the README's benchmarks).
///
/// The runtime needs I/O and time (`enable_all`). The stack is served only while the
/// runtime runs its tasks; after a turn that woke tasks or sent frames, it yields to them for
/// up to [`StackConfig::busy_poll`] (50 µs), looking for an answer after each, before it
/// sleeps, as the stack thread spins: the answer then costs no wakeup of a sleeping thread
/// (zero turns it off, as `tunproxy` does, where it cost more CPU than it saved). On the
/// thread that runs it, a
/// call that would wait for the stack (the blocking API's reads, writes, accepts and
/// connects, the `socket()` setters that ask the stack, [`Stack::counters`]) fails at once
/// with an error that says so, rather than stall the stack: use this module's async API
/// there (and not a [`crate::socket::Poller`]), and [`Stack::shutdown`] to stop the stack
/// and await its connections' close. Dropping the stack asks it to stop without waiting; a
/// runtime shut down with it still running drops its connections unclosed. Other threads
/// (a blocking task's, say) use it as they would a stack thread. On a current-thread
/// runtime the thread that spawns the stack counts as running it until the runtime first
/// does, since that is where it will run as a rule. On a multi-thread runtime every worker
/// but the one that last ran the stack counts as another thread, so blocking calls there
/// can still tie up the workers the stack needs. The runtime's timer counts in milliseconds, so a
/// timer of the stack's fires up to a millisecond late, and pacing (BBR's, say) is coarser
/// than on a stack thread, which sleeps to the microsecond. Freeing memory to the system,
/// writing the trace and a capture run on the runtime's thread. Fails outside a runtime,
/// or in one without I/O or time.
///
/// ```
/// use tapstack::phy::memory_pair;
/// use tapstack::tokio::{spawn_stack, TcpListener, TcpStream};
/// use tapstack::{wire::MacAddr, StackConfig};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let (a, b) = memory_pair(1500)?;
/// let mut client_cfg = StackConfig::new([10, 0, 0, 1].into(), 24);
/// client_cfg.mac = MacAddr([2, 0, 0, 0, 0, 1]);
/// // Both stacks, the server and the client run on this one thread.
/// let client = spawn_stack(a, client_cfg)?;
/// let server = spawn_stack(b, StackConfig::new([10, 0, 0, 2].into(), 24))?;
/// let listener = TcpListener::bind(&server, "0.0.0.0:7").await?;
/// tokio::spawn(async move {
///     let (mut conn, _) = listener.accept().await?;
///     let (mut r, mut w) = conn.split();
///     tokio::io::copy(&mut r, &mut w).await
/// });
/// let mut conn = TcpStream::connect(&client, "10.0.0.2:7").await?;
/// conn.write_all(b"hello").await?;
/// let mut reply = [0u8; 5];
/// let limit = std::time::Duration::from_secs(10);
/// tokio::time::timeout(limit, conn.read_exact(&mut reply)).await??;
/// assert_eq!(&reply, b"hello");
/// client.shutdown().await;
/// server.shutdown().await;
/// # Ok(()) }
/// ```
pub fn spawn_stack<D: Device + 'static>(device: D, config: StackConfig) -> io::Result<Stack> {
    Stack::spawn_task(device, config)
}
