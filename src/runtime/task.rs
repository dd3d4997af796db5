//! The stack's loop as a task of a tokio runtime ([`crate::tokio::spawn_stack`]), in place of
//! a thread of its own: the same turns ([`StackThread::turn`]), with the waits between them
//! on the runtime's own poller. The application's tasks and the stack then share a thread, so
//! a socket call that wakes the stack, and the stack's readiness that wakes a task, cost no
//! context switch: each is a run-queue entry, and the eventfd that announces a command is
//! read by the runtime's `epoll_wait` once its other tasks are done.

use super::{Draining, DriverThread, Ready, ReplyTx, StackThread};
use crate::phy::Device;
use crate::time::earliest;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A descriptor the stack owns, registered with the runtime for as long as the loop runs.
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// What the loop waits on between turns: its wakeup eventfd, and the device's descriptor if
/// it has one (a device without one is read on every turn, as the stack thread does).
pub(crate) struct Waits {
    wake: AsyncFd<Fd>,
    device: Option<AsyncFd<Fd>>,
}

impl Waits {
    /// Registers the loop's descriptors with the current runtime, and checks that it has a
    /// timer. A runtime built without I/O or time (tokio panics then) is an error.
    pub fn new<D: Device>(st: &StackThread<D>) -> io::Result<Waits> {
        let (wake, device) = st.fds();
        // SAFETY: the descriptors belong to `st`, which keeps them open and unchanged; the
        // registrations end first, as `Loop`'s field order drops them before `st`.
        let register = |fd| unsafe { AsyncFd::register_with_interest(Fd(fd), Interest::READABLE) };
        std::panic::catch_unwind(|| {
            drop(tokio::time::sleep(std::time::Duration::ZERO));
            Ok(Waits {
                wake: register(wake)?,
                device: device.map(register).transpose()?,
            })
        })
        .unwrap_or_else(|_| {
            Err(io::Error::other(
                "spawn_stack: the runtime needs I/O and time (enable_io and enable_time, or enable_all)",
            ))
        })
    }

    /// Until a descriptor is readable or `deadline`; says which to look at. Readiness is
    /// cleared before the turn reads: the turn reads the device until it has nothing (or
    /// turns again at once) and drains the eventfd, so nothing that comes after is missed.
    async fn wait(&self, deadline: Option<std::time::Instant>) -> Ready {
        let device = async {
            match &self.device {
                Some(d) => match d.readable().await {
                    Ok(mut ready) => ready.clear_ready(),
                    Err(e) => log::warn!("device: {e}"),
                },
                None => std::future::pending().await,
            }
        };
        let timer = async {
            match deadline {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        let always = self.device.is_none();
        tokio::select! {
            woken = self.wake.readable() => {
                match woken {
                    Ok(mut ready) => ready.clear_ready(),
                    Err(e) => log::warn!("wakeup: {e}"),
                }
                Ready { wake: true, device: always }
            }
            () = device => Ready { wake: false, device: true },
            () = timer => Ready { wake: true, device: true },
        }
    }
}

/// The loop's state, in drop order: the registrations end before the descriptors close
/// with the stack's state, even when the task is dropped unfinished; `done` last, once the
/// stack is gone.
pub(crate) struct Loop<D> {
    waits: Waits,
    st: StackThread<D>,
    driver: Arc<DriverThread>,
    _done: ReplyTx<()>,
}

impl<D: Device> Loop<D> {
    /// The loop of `st`, registered with the current runtime; `done` is dropped when it ends.
    pub fn new(
        st: StackThread<D>,
        driver: Arc<DriverThread>,
        done: ReplyTx<()>,
    ) -> io::Result<Loop<D>> {
        Ok(Loop {
            waits: Waits::new(&st)?,
            st,
            driver,
            _done: done,
        })
    }
}

/// Runs the loop until the stack is told to stop, then drains it as the stack thread does
/// (connections closed, for at most the linger). `l` is dropped whole, in its field order,
/// whether the loop ends or the task is dropped unfinished.
pub(crate) async fn run<D: Device>(mut l: Loop<D>) {
    let mut ready = Ready {
        wake: true,
        device: true,
    };
    l.driver.set_here();
    while let Some(turn) = l.st.turn(ready) {
        ready = if turn.busy {
            // More frames or commands wait; the runtime's other tasks get a turn first.
            tokio::task::yield_now().await;
            Ready {
                wake: false,
                device: true,
            }
        } else {
            let cap = l.st.trim_due();
            l.waits.wait(l.st.deadline(cap)).await
        };
        // A multi-thread runtime may have moved the task.
        l.driver.set_here();
    }
    let deadline = l.st.drain_start();
    loop {
        l.driver.set_here();
        match l.st.drain_turn(deadline) {
            Draining::Done => break,
            Draining::Busy => tokio::task::yield_now().await,
            Draining::Idle => {
                let cap = earliest(l.st.deadline(None), deadline);
                l.waits.wait(cap).await;
            }
        }
    }
    l.st.drain_end();
}
