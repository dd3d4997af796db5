//! The wakers of the tasks waiting on one socket, woken by the stack thread.

use std::io;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// A socket's waiting tasks on each side: usually one reader and one writer (a split stream
/// has one of each), but a shared socket may have several tasks on one side, and each is
/// woken.
#[derive(Default)]
pub(super) struct Wakers {
    read: Mutex<Vec<Waker>>,
    write: Mutex<Vec<Waker>>,
}

/// Which side of a socket a task waits for.
#[derive(Clone, Copy)]
pub(super) enum Side {
    /// Data, a connection to accept, a datagram, end of stream or an error.
    Read,
    /// Room to write, the end of a handshake, or an error.
    Write,
}

impl Wakers {
    /// The readiness callback to give the socket: every change wakes both sides, which then
    /// try again (a change is a hint, as with an edge-triggered epoll).
    pub fn watcher(self: &Arc<Self>) -> crate::tcp::shared::Watcher {
        let wakers = Arc::downgrade(self);
        Arc::new(move || {
            if let Some(w) = wakers.upgrade() {
                w.wake_all();
            }
        })
    }

    fn slot(&self, side: Side) -> &Mutex<Vec<Waker>> {
        match side {
            Side::Read => &self.read,
            Side::Write => &self.write,
        }
    }

    fn wake_all(&self) {
        for side in [Side::Read, Side::Write] {
            let wakers = std::mem::take(
                &mut *self
                    .slot(side)
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            for w in wakers {
                w.wake();
            }
        }
    }

    fn register(&self, side: Side, cx: &Context<'_>) {
        let mut slot = self
            .slot(side)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !slot.iter().any(|w| w.will_wake(cx.waker())) {
            slot.push(cx.waker().clone());
        }
    }

    /// Runs the non-blocking `op`; on `WouldBlock`, leaves the task's waker for `side` and
    /// runs it once more, so that a change that came between the two is not missed.
    pub fn poll<T>(
        &self,
        side: Side,
        cx: &Context<'_>,
        mut op: impl FnMut() -> io::Result<T>,
    ) -> Poll<io::Result<T>> {
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return Poll::Ready(done),
        }
        self.register(side, cx);
        match op() {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
            done => Poll::Ready(done),
        }
    }
}
