//! A one-shot reply from the stack thread to a socket call. The caller parks on a condition
//! variable (a futex) at once: no spinning or `sched_yield` while the stack thread works, which
//! with many blocked callers would take the CPU the stack thread needs.

use std::sync::{Arc, Condvar, Mutex, PoisonError};

enum Slot<T> {
    Empty,
    Full(T),
    /// The sender was dropped without answering (the stack stopped).
    Closed,
}

struct Shared<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
}

/// The stack thread's end: answers once; dropping it unanswered wakes the caller with `None`.
pub(crate) struct ReplyTx<T>(Option<Arc<Shared<T>>>);

/// The caller's end.
pub(crate) struct ReplyRx<T>(Arc<Shared<T>>);

pub(crate) fn reply<T>() -> (ReplyTx<T>, ReplyRx<T>) {
    let shared = Arc::new(Shared {
        slot: Mutex::new(Slot::Empty),
        ready: Condvar::new(),
    });
    (ReplyTx(Some(shared.clone())), ReplyRx(shared))
}

impl<T> ReplyTx<T> {
    /// Answers the call; later answers are ignored.
    pub fn send(&mut self, value: T) {
        self.fill(Slot::Full(value));
    }

    fn fill(&mut self, value: Slot<T>) {
        if let Some(shared) = self.0.take() {
            *shared.slot.lock().unwrap_or_else(PoisonError::into_inner) = value;
            shared.ready.notify_one();
        }
    }
}

impl<T> Drop for ReplyTx<T> {
    fn drop(&mut self) {
        self.fill(Slot::Closed);
    }
}

impl<T> ReplyRx<T> {
    /// Waits for the answer; `None` if the stack thread dropped the call.
    pub fn recv(self) -> Option<T> {
        let mut slot = self.0.slot.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match std::mem::replace(&mut *slot, Slot::Empty) {
                Slot::Full(v) => return Some(v),
                Slot::Closed => return None,
                Slot::Empty => {
                    slot = self
                        .0
                        .ready
                        .wait(slot)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_once_and_reports_a_dropped_sender() {
        let (mut tx, rx) = reply();
        let t = std::thread::spawn(move || rx.recv());
        tx.send(7);
        tx.send(8);
        assert_eq!(t.join().unwrap(), Some(7));
        let (tx, rx) = reply::<u32>();
        let t = std::thread::spawn(move || rx.recv());
        drop(tx);
        assert_eq!(t.join().unwrap(), None);
    }
}
