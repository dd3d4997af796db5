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
use crate::sync::{AtomicBool, Condvar, Mutex};
use crate::tcp::shared::Watcher;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

#[derive(Default)]
struct Ready {
    tokens: Vec<usize>,
    queued: HashSet<usize>,
    /// Calls of `wait` (on clones) asleep on the condition variable: a push must wake one.
    sleepers: usize,
}

#[derive(Default)]
struct Shared {
    ready: Mutex<Ready>,
    changed: Condvar,
    /// Tokens are queued: what a busy-polling `wait` watches without taking the lock.
    pending: AtomicBool,
}

impl Shared {
    /// Called by the stack thread: a futex wake only when the waiter sleeps, not when it
    /// spins or is busy elsewhere.
    fn push(&self, token: usize) {
        let mut r = self.ready.lock().unwrap_or_else(PoisonError::into_inner);
        if r.queued.insert(token) {
            r.tokens.push(token);
            self.pending.store(true, Ordering::Release);
            let sleeping = r.sleepers > 0;
            drop(r);
            if sleeping {
                self.changed.notify_one();
            }
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
    /// How long `wait` spins for an event before it sleeps.
    busy_poll: Duration,
}

impl Poller {
    /// A new poller, with no socket registered.
    pub fn new() -> Poller {
        Poller::default()
    }

    /// Makes [`Poller::wait`] spin up to `d` for an event before it sleeps (none by default),
    /// as the stack thread does after it woke an application: an answer that comes within
    /// it costs neither thread a sleep and a wakeup. Give it the stack's
    /// [`crate::StackConfig::busy_poll`] on a machine with a core to spare; it is capped at
    /// [`crate::config::MAX_BUSY_POLL`].
    pub fn set_busy_poll(&mut self, d: Duration) {
        self.busy_poll = d.min(crate::config::MAX_BUSY_POLL);
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
        self.spin(timeout);
        let mut r = self
            .shared
            .ready
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if r.tokens.is_empty() {
            // Counted while asleep, so that a push knows to wake it (and only then).
            r.sleepers += 1;
            let deadline = timeout.and_then(|t| std::time::Instant::now().checked_add(t));
            while r.tokens.is_empty() {
                r = match deadline {
                    None => self
                        .shared
                        .changed
                        .wait(r)
                        .unwrap_or_else(PoisonError::into_inner),
                    Some(d) => {
                        let left = d.saturating_duration_since(std::time::Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        self.shared
                            .changed
                            .wait_timeout(r, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                };
            }
            r.sleepers -= 1;
        }
        std::mem::swap(events, &mut r.tokens);
        r.queued.clear();
        self.shared.pending.store(false, Ordering::Relaxed);
    }

    /// Spins up to the busy-poll time (and the timeout) until a token is queued.
    fn spin(&self, timeout: Option<Duration>) {
        let limit = timeout.map_or(self.busy_poll, |t| t.min(self.busy_poll));
        if limit.is_zero() || self.shared.pending.load(Ordering::Acquire) {
            return;
        }
        let start = std::time::Instant::now();
        while !self.shared.pending.load(Ordering::Acquire) && start.elapsed() < limit {
            std::hint::spin_loop();
        }
    }
}

#[cfg(all(test, not(any(loom, shuttle))))]
mod tests {
    use super::*;

    /// Every wait is bounded by this; none takes it unless a wakeup was lost.
    const LIMIT: Duration = Duration::from_secs(10);

    #[test]
    fn a_spinning_wait_takes_an_event_queued_meanwhile() {
        let mut poller = Poller::new();
        poller.set_busy_poll(Duration::from_millis(50));
        let shared = poller.shared.clone();
        let pusher = std::thread::spawn(move || shared.push(7));
        let mut events = Vec::new();
        poller.wait(&mut events, Some(LIMIT));
        pusher.join().unwrap();
        assert_eq!(events, [7]);
        // Taken: the next wait finds nothing and times out.
        poller.wait(&mut events, Some(Duration::from_millis(1)));
        assert!(events.is_empty());
    }

    #[test]
    fn two_clones_asleep_at_once_are_each_woken() {
        let poller = Poller::new();
        let (tx, rx) = std::sync::mpsc::channel();
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (p, tx) = (poller.clone(), tx.clone());
                std::thread::spawn(move || {
                    let mut events = Vec::new();
                    p.wait(&mut events, Some(LIMIT));
                    tx.send(events).unwrap();
                })
            })
            .collect();
        let sleepers = || {
            let r = poller.shared.ready.lock();
            r.unwrap_or_else(PoisonError::into_inner).sleepers
        };
        while sleepers() < 2 {
            std::thread::yield_now();
        }
        // One push wakes one of them; the other, still asleep, is woken by the next.
        poller.shared.push(1);
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), [1]);
        poller.shared.push(2);
        assert_eq!(rx.recv_timeout(LIMIT).unwrap(), [2]);
        for w in waiters {
            w.join().unwrap();
        }
    }
}

/// The poller's wait and push under loom (`RUSTFLAGS="--cfg loom" cargo test --lib loom`):
/// whatever the interleaving, a token pushed while clones wait reaches one of them; the
/// sleeper count lets the pusher skip the futex wake only when no wait sleeps.
#[cfg(all(test, loom))]
mod loom {
    use super::*;

    #[test]
    fn a_push_always_reaches_a_waiting_poller() {
        ::loom::model(|| {
            let poller = Poller::new();
            let shared = poller.shared.clone();
            let pusher = ::loom::thread::spawn(move || shared.push(7));
            let mut events = Vec::new();
            poller.wait(&mut events, None);
            assert_eq!(events, [7]);
            pusher.join().unwrap();
        });
    }

    #[test]
    fn two_clones_asleep_at_once_are_each_woken() {
        use ::loom::sync::atomic::AtomicUsize;
        ::loom::model(|| {
            let poller = Poller::new();
            let woken = Arc::new(AtomicUsize::new(0));
            let waiters: Vec<_> = (0..2)
                .map(|_| {
                    let (p, woken) = (poller.clone(), woken.clone());
                    ::loom::thread::spawn(move || {
                        let mut events = Vec::new();
                        p.wait(&mut events, None);
                        assert_eq!(events.len(), 1);
                        woken.fetch_add(1, Ordering::AcqRel);
                    })
                })
                .collect();
            // One push wakes one of them; once it has its token, the next wakes the other,
            // which may be asleep: no push is lost to a sleeper the pusher did not count.
            poller.shared.push(1);
            while woken.load(Ordering::Acquire) < 1 {
                ::loom::thread::yield_now();
            }
            poller.shared.push(2);
            for w in waiters {
                w.join().unwrap();
            }
        });
    }
}
