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
//! a tokio waker may be woken from any thread. Timeouts are `tokio::time::timeout` around any
//! of these futures.
//!
//! TCP reads and writes copy to and from the connection's buffers under their lock, with no
//! call to the stack thread; binding, connecting, shutting down, socket options and every UDP
//! operation are one short call to the stack thread, as in the blocking API.
//!
//! ```no_run
//! # async fn serve(stack: tapstack::Stack) -> std::io::Result<()> {
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! let listener = tapstack::tokio::TcpListener::bind(&stack, "0.0.0.0:7").await?;
//! loop {
//!     let (mut conn, _peer) = listener.accept().await?;
//!     tokio::spawn(async move {
//!         let mut buf = vec![0u8; 16 * 1024];
//!         while let Ok(n @ 1..) = conn.read(&mut buf).await {
//!             if conn.write_all(&buf[..n]).await.is_err() {
//!                 break;
//!             }
//!         }
//!     });
//! }
//! # }
//! ```

mod ready;
mod tcp;
mod udp;

pub use tcp::{
    OwnedReadHalf, OwnedWriteHalf, ReadHalf, TcpListener, TcpSocket, TcpStream, WriteHalf,
};
pub use udp::UdpSocket;
