use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

/// An eventfd that wakes a `poll` loop. Repeated wakes before the loop drains it cost one write.
pub struct WakeFd {
    fd: OwnedFd,
    armed: AtomicBool,
}

impl WakeFd {
    /// A new eventfd, not readable until [`WakeFd::wake`].
    pub fn new() -> io::Result<Self> {
        // SAFETY: eventfd has no memory arguments; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(WakeFd {
            // SAFETY: `fd` is a fresh descriptor we own.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            armed: AtomicBool::new(false),
        })
    }

    /// Makes the descriptor readable.
    pub fn wake(&self) {
        if self.armed.swap(true, Ordering::AcqRel) {
            return;
        }
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. EAGAIN (counter full) still leaves it readable.
        unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    /// Clears readability; call before looking at what the wakers queued.
    ///
    /// The counter is read before the flag is cleared. The other order loses wakeups: a wake
    /// between the two would have its write consumed by the read yet leave the flag set, so
    /// the next wake would skip its write and the poll loop would sleep on queued work.
    pub fn drain(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN when nothing was written is fine.
        unsafe { libc::read(self.fd.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
        self.armed.store(false, Ordering::Release);
    }

    /// The descriptor to poll for readability.
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    /// A consumer that sleeps in poll while work is pending has lost a wakeup. The producer
    /// publishes work and then wakes, as socket handles do; the consumer drains, then takes all
    /// published work, as the stack thread does.
    #[test]
    fn no_wakeup_is_lost() {
        const N: u64 = 200_000;
        let wake = Arc::new(WakeFd::new().unwrap());
        let sent = Arc::new(AtomicU64::new(0));
        let producer = {
            let (wake, sent) = (wake.clone(), sent.clone());
            std::thread::spawn(move || {
                for i in 0..N {
                    sent.store(i + 1, Ordering::Release);
                    wake.wake();
                    if i % 64 == 0 {
                        std::thread::yield_now();
                    }
                }
            })
        };
        let mut taken = 0;
        while taken < N {
            let mut fds = [libc::pollfd {
                fd: wake.raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            }];
            // SAFETY: one live pollfd.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 1000) };
            let published = sent.load(Ordering::Acquire);
            assert!(
                n > 0 || published == taken,
                "slept on pending work: {published} published, {taken} taken"
            );
            wake.drain();
            taken = sent.load(Ordering::Acquire);
        }
        producer.join().unwrap();
    }
}
