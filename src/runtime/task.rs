//! The stack's loop as a task of a tokio runtime ([`crate::tokio::spawn_stack`]), in place of
//! a thread of its own: the same turns ([`StackThread::turn`]), with the waits between them
//! on the runtime's own poller and timer. The application's tasks and the stack then share a
//! thread, so neither kind of handoff costs a context switch: the stack's readiness wakes a
//! task by putting it in the run queue, and a socket call's command is announced by the
//! stack's eventfd, which the runtime's own `epoll_wait` reads once its other tasks are done.
//! What the stack thread does besides (returning freed memory to the system, writing the
//! trace and a capture) then runs on the runtime's thread too.

use super::{Draining, DriverThread, Ready, ReplyTx, StackThread};
use crate::phy::Device;
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
    /// A descriptor the runtime can no longer poll (it is shutting down) is never ready:
    /// the task is about to be dropped.
    async fn wait(&self, deadline: std::time::Instant) -> Ready {
        let device = async {
            match &self.device {
                Some(d) => cleared(d.readable().await).await,
                None => std::future::pending().await,
            }
        };
        let timer = tokio::time::sleep_until(deadline.into());
        tokio::select! {
            () = async { cleared(self.wake.readable().await).await } => Ready {
                wake: true,
                device: self.device.is_none(),
            },
            () = device => Ready { wake: false, device: true },
            () = timer => Ready { wake: true, device: true },
        }
    }
}

impl Waits {
    /// Whether a descriptor is readable, as the runtime last polled them; readiness is left
    /// for [`Waits::wait`] to clear.
    async fn any_ready(&self) -> bool {
        std::future::poll_fn(|cx| {
            let mut ready = |fd: &AsyncFd<Fd>| fd.poll_read_ready(cx).is_ready();
            std::task::Poll::Ready(ready(&self.wake) || self.device.as_ref().is_some_and(ready))
        })
        .await
    }
}

/// Clears the readiness a wait found; an error (the runtime shutting down) waits for ever.
async fn cleared(ready: io::Result<tokio::io::unix::AsyncFdReadyGuard<'_, Fd>>) {
    match ready {
        Ok(mut guard) => guard.clear_ready(),
        Err(e) => {
            log::debug!("stack task: {e}");
            std::future::pending().await
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
            if turn.active && !l.st.busy_poll().is_zero() && l.waits.device.is_some() {
                // Readiness handed out or frames sent: an answer may follow at once. Yield to
                // the runtime's tasks (which polls its reactor each time) up to `busy_poll`
                // before sleeping, as the stack thread spins, so that an answer costs no
                // wakeup of a sleeping thread.
                let start = std::time::Instant::now();
                loop {
                    tokio::task::yield_now().await;
                    l.driver.set_here();
                    if l.st.has_commands()
                        || l.waits.any_ready().await
                        || l.st.device_due()
                        || start.elapsed() >= l.st.busy_poll()
                    {
                        break;
                    }
                }
            }
            // On the runtime's timer, which counts in milliseconds: a nearer deadline (a
            // paced segment's release) is met up to a millisecond late. Yielding until it
            // came would cost more: a keep-alive request through tunproxy took a third more
            // CPU so.
            let mut ready = l.waits.wait(l.st.deadline(l.st.trim_due())).await;
            ready.device |= l.st.device_due();
            ready
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
                l.waits.wait(l.st.deadline(deadline)).await;
            }
        }
    }
    l.st.drain_end();
}
