//! A one-shot reply from the stack thread to a socket call. A blocking caller parks on a
//! condition variable (a futex) at once: no spinning or `sched_yield` while the stack thread
//! works, which with many blocked callers would take the CPU the stack thread needs. An async
//! caller polls the same reply as a future and is woken by its waker: it never blocks its
//! executor.

use crate::sync::{Condvar, Mutex};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};

enum Slot<T> {
    Empty,
    Full(T),
    /// The sender was dropped without answering (the stack stopped).
    Closed,
}

struct State<T> {
    slot: Slot<T>,
    /// The task awaiting the reply, if an async caller polled it.
    waker: Option<Waker>,
}

struct Shared<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
}

/// The stack thread's end: answers once; dropping it unanswered wakes the caller with `None`.
pub(crate) struct ReplyTx<T>(Option<Arc<Shared<T>>>);

/// The caller's end: [`ReplyRx::recv`] blocks for the answer, or `.await` it. Dropping it
/// unanswered drops the answer when it comes.
pub(crate) struct ReplyRx<T>(Arc<Shared<T>>);

pub(crate) fn reply<T>() -> (ReplyTx<T>, ReplyRx<T>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            slot: Slot::Empty,
            waker: None,
        }),
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
            let waker = {
                let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
                state.slot = value;
                state.waker.take()
            };
            shared.ready.notify_one();
            if let Some(w) = waker {
                w.wake();
            }
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
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            match std::mem::replace(&mut state.slot, Slot::Empty) {
                Slot::Full(v) => return Some(v),
                Slot::Closed => return None,
                Slot::Empty => {
                    state = self
                        .0
                        .ready
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner)
                }
            }
        }
    }
}

impl<T> Future for ReplyRx<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = self.0.state.lock().unwrap_or_else(PoisonError::into_inner);
        match std::mem::replace(&mut state.slot, Slot::Empty) {
            Slot::Full(v) => {
                // Answered: a later poll would be a bug of the caller's; it finds `Closed`.
                state.slot = Slot::Closed;
                Poll::Ready(Some(v))
            }
            Slot::Closed => Poll::Ready(None),
            Slot::Empty => {
                match &mut state.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    w => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(all(test, not(any(loom, shuttle))))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

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

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn an_awaited_reply_wakes_its_task_once_answered_or_dropped() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let (mut tx, mut rx) = reply();
        assert!(Pin::new(&mut rx).poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        tx.send(5);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(Pin::new(&mut rx).poll(&mut cx), Poll::Ready(Some(5)));
        let (tx, mut rx) = reply::<u32>();
        assert!(Pin::new(&mut rx).poll(&mut cx).is_pending());
        drop(tx);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(Pin::new(&mut rx).poll(&mut cx), Poll::Ready(None));
    }
}

/// The reply under loom (`RUSTFLAGS="--cfg loom" cargo test --lib loom`): every interleaving
/// of an answer, or of the stack thread dropping the call, with a blocked or an awaiting
/// caller, ends with the caller woken with the answer.
#[cfg(all(test, loom))]
mod loom {
    use super::*;

    #[test]
    fn a_blocked_caller_gets_the_answer() {
        ::loom::model(|| {
            let (mut tx, rx) = reply();
            let stack = ::loom::thread::spawn(move || tx.send(7));
            assert_eq!(rx.recv(), Some(7));
            stack.join().unwrap();
        });
    }

    #[test]
    fn a_blocked_caller_learns_of_a_dropped_call() {
        ::loom::model(|| {
            let (tx, rx) = reply::<u32>();
            let stack = ::loom::thread::spawn(move || drop(tx));
            assert_eq!(rx.recv(), None);
            stack.join().unwrap();
        });
    }

    #[test]
    fn an_awaiting_caller_is_woken_with_the_answer() {
        ::loom::model(|| {
            let (mut tx, rx) = reply();
            let stack = ::loom::thread::spawn(move || tx.send(7));
            assert_eq!(::loom::future::block_on(rx), Some(7));
            stack.join().unwrap();
        });
    }
}
