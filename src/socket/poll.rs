//! Readiness for many non-blocking sockets at once, for event loops: register each
//! [`TcpStream`] or [`TcpListener`] with a [`Poller`] under a token, then [`Poller::wait`] for
//! the tokens whose socket changed (data or room arrived, the peer closed, an error, a
//! connection to accept, the stack stopped).
//!
//! Events are hints, as with epoll in edge-triggered mode: after one, read and write until
//! `WouldBlock`; a stream is reported once per wait however many times it changed meanwhile.
//! A newly registered stream is reported once, since it may be ready already.
//!
//! ```no_run
//! # fn main() -> std::io::Result<()> {
//! use tapstack::{phy::TapDevice, socket::Poller, Stack, StackConfig, TcpListener};
//! let stack = Stack::new(TapDevice::open("tap0")?, StackConfig::new([10, 0, 0, 2].into(), 24))?;
//! let listener = TcpListener::bind(&stack, "0.0.0.0:7")?;
//! listener.set_nonblocking(true)?;
//! let poller = Poller::new();
//! poller.register(&listener, 0);
//! let mut ready = Vec::new();
//! poller.wait(&mut ready, None);
//! let (conn, _) = listener.accept()?; // or WouldBlock: events are hints
//! conn.set_nonblocking(true)?;
//! poller.register(&conn, 1);
//! # Ok(()) }
//! ```

use super::{TcpListener, TcpStream, UdpSocket};
use crate::tcp::shared::Watcher;
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

#[derive(Default)]
struct Ready {
    tokens: Vec<usize>,
    queued: HashSet<usize>,
}

#[derive(Default)]
struct Shared {
    ready: Mutex<Ready>,
    changed: Condvar,
}

impl Shared {
    fn push(&self, token: usize) {
        let mut r = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        if r.queued.insert(token) {
            r.tokens.push(token);
            drop(r);
            self.changed.notify_one();
        }
    }
}

/// A socket a [`Poller`] can watch: [`TcpStream`], [`TcpListener`] and [`UdpSocket`].
pub trait Source: sealed::Sealed {
    /// Sets (or clears) the socket's readiness callback.
    #[doc(hidden)]
    fn set_watcher(&self, watcher: Option<Watcher>);
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::TcpStream {}
    impl Sealed for super::TcpListener {}
    impl Sealed for super::UdpSocket {}
}

impl Source for UdpSocket {
    fn set_watcher(&self, watcher: Option<Watcher>) {
        self.watch(watcher);
    }
}

impl Source for TcpStream {
    fn set_watcher(&self, watcher: Option<Watcher>) {
        self.watch(watcher);
    }
}

impl Source for TcpListener {
    fn set_watcher(&self, watcher: Option<Watcher>) {
        self.watch(watcher);
    }
}

/// Waits on many sockets at once. Clones share the same set of ready tokens.
#[derive(Clone, Default)]
pub struct Poller {
    shared: Arc<Shared>,
}

impl Poller {
    /// A new poller, with no socket registered.
    pub fn new() -> Poller {
        Poller::default()
    }

    /// Reports `socket` under `token` from now on (replacing any poller it had); it is
    /// reported once at once. Dropping the socket ends it.
    pub fn register(&self, socket: &impl Source, token: usize) {
        let shared = Arc::downgrade(&self.shared);
        socket.set_watcher(Some(Arc::new(move || {
            if let Some(s) = shared.upgrade() {
                s.push(token);
            }
        })));
    }

    /// Stops reporting `socket`.
    pub fn deregister(&self, socket: &impl Source) {
        socket.set_watcher(None);
    }

    /// Moves the tokens of streams that changed into `events` (cleared first), waiting up to
    /// `timeout` (`None`: until one does) if none has.
    pub fn wait(&self, events: &mut Vec<usize>, timeout: Option<Duration>) {
        events.clear();
        let mut r = self
            .shared
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if r.tokens.is_empty() {
            r = match timeout {
                None => self
                    .shared
                    .changed
                    .wait_while(r, |r| r.tokens.is_empty())
                    .unwrap_or_else(PoisonError::into_inner),
                Some(t) => {
                    self.shared
                        .changed
                        .wait_timeout_while(r, t, |r| r.tokens.is_empty())
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
        std::mem::swap(events, &mut r.tokens);
        r.queued.clear();
    }
}
