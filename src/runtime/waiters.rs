//! Calls parked on the stack thread until their socket is ready, their deadline passes, or the
//! socket closes under them.

use crate::core::{Interface, SocketId};
use crate::tcp::shared::Watcher;
use crate::time::Instant as CoreInstant;
use std::collections::HashMap;
use std::time::Instant;

/// Why a parked call is being tried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wake {
    /// The socket may be ready: try again.
    Retry,
    /// The deadline passed: answer with the timeout error.
    TimedOut,
    /// The socket was closed by another handle.
    Closed,
}

/// Tries to complete the call; returns true once it has sent its answer.
pub(crate) type Attempt = Box<dyn FnMut(&mut Interface, CoreInstant, Wake) -> bool + Send>;

pub(crate) struct Wait {
    pub id: SocketId,
    /// `None` waits until ready.
    pub deadline: Option<Instant>,
    pub attempt: Attempt,
}

#[derive(Default)]
pub(super) struct Waiters {
    parked: HashMap<SocketId, Vec<Wait>>,
    /// Readiness callbacks of sockets whose state lives on the stack thread (UDP), called
    /// whenever the socket reports `Ready`: how a `Poller` watches them.
    watchers: HashMap<SocketId, Watcher>,
}

impl Waiters {
    /// Answers at once if possible, else parks the call.
    pub fn add(&mut self, iface: &mut Interface, now: CoreInstant, mut w: Wait) {
        if (w.attempt)(iface, now, Wake::Retry) {
            return;
        }
        if w.deadline.is_some_and(|d| d <= Instant::now()) {
            (w.attempt)(iface, now, Wake::TimedOut);
            return;
        }
        self.parked.entry(w.id).or_default().push(w);
    }

    /// Sets (or clears) the socket's readiness callback; a new one is called at once, since the
    /// socket may be ready already.
    pub fn watch(&mut self, id: SocketId, watcher: Option<Watcher>) {
        match watcher {
            Some(w) => {
                w();
                self.watchers.insert(id, w);
            }
            None => {
                self.watchers.remove(&id);
            }
        }
    }

    /// Retries the socket's parked calls, oldest first, and calls its watcher.
    pub fn ready(&mut self, iface: &mut Interface, now: CoreInstant, id: SocketId) {
        if let Some(w) = self.watchers.get(&id) {
            w();
        }
        let Some(mut list) = self.parked.remove(&id) else {
            return;
        };
        list.retain_mut(|w| !(w.attempt)(iface, now, Wake::Retry));
        if !list.is_empty() {
            self.parked.insert(id, list);
        }
    }

    /// Answers the calls whose deadline passed.
    pub fn expire(&mut self, iface: &mut Interface, now: CoreInstant, wall: Instant) {
        self.parked.retain(|_, list| {
            list.retain_mut(|w| {
                let due = w.deadline.is_some_and(|d| d <= wall);
                !(due && (w.attempt)(iface, now, Wake::TimedOut))
            });
            !list.is_empty()
        });
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.parked
            .values()
            .flatten()
            .filter_map(|w| w.deadline)
            .min()
    }

    /// The socket was closed under its waiters (by another handle of a `try_clone`).
    pub fn closed(&mut self, iface: &mut Interface, now: CoreInstant, id: SocketId) {
        self.watchers.remove(&id);
        for mut w in self.parked.remove(&id).into_iter().flatten() {
            (w.attempt)(iface, now, Wake::Closed);
        }
    }

    /// Shutdown: dropping the reply channels tells every waiter the stack stopped, and every
    /// watcher is called a last time (its socket's calls now fail with `NotConnected`).
    pub fn fail_all(&mut self) {
        self.parked.clear();
        for (_, w) in self.watchers.drain() {
            w();
        }
    }
}

/// A stack thread that ends, even by a panic, leaves no caller parked and no watcher asleep.
impl Drop for Waiters {
    fn drop(&mut self) {
        self.fail_all();
    }
}
