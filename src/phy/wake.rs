use crate::sync::{fence, AtomicBool};
use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;

/// An eventfd that wakes a `poll` loop. Repeated wakes before the loop drains it cost one write.
pub struct WakeFd {
    counter: Counter,
    armed: AtomicBool,
}

impl WakeFd {
    /// A new eventfd, not readable until [`WakeFd::wake`].
    pub fn new() -> io::Result<Self> {
        Ok(WakeFd {
            counter: Counter::new()?,
            armed: AtomicBool::new(false),
        })
    }

    /// Makes the descriptor readable; call after publishing the work it announces.
    ///
    /// The fence orders the publishing before the look at the flag, as [`WakeFd::drain`]'s
    /// orders the clearing of the flag before the look at the work: without the pair, a
    /// waker could see the flag still set while the poll loop sees no work (the store-buffer
    /// reordering of Dekker's protocol), and the loop would sleep on queued work. Loom found
    /// this (`phy::wake::loom`).
    pub fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.armed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.counter.add();
    }

    /// Clears readability; call before looking at what the wakers queued.
    ///
    /// The counter is read before the flag is cleared. The other order loses wakeups: a wake
    /// between the two would have its write consumed by the read yet leave the flag set, so
    /// the next wake would skip its write and the poll loop would sleep on queued work.
    pub fn drain(&self) {
        self.counter.take();
        self.armed.store(false, Ordering::Release);
        fence(Ordering::SeqCst);
    }

    /// The descriptor to poll for readability.
    pub fn raw_fd(&self) -> RawFd {
        self.counter.raw_fd()
    }
}

/// The eventfd's counter: `add` is a write of 1, `take` a read that empties it.
#[cfg(not(any(loom, shuttle)))]
struct Counter(std::os::fd::OwnedFd);

#[cfg(not(any(loom, shuttle)))]
impl Counter {
    fn new() -> io::Result<Counter> {
        use std::os::fd::FromRawFd;
        // SAFETY: eventfd has no memory arguments; the result is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a fresh descriptor we own.
        Ok(Counter(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    fn add(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64. EAGAIN (counter full) still leaves it readable.
        unsafe { libc::write(self.raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn take(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64; EAGAIN when nothing was written is fine.
        unsafe { libc::read(self.raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }

    fn raw_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        self.0.as_raw_fd()
    }
}

/// Under a model checker, the eventfd's counter is a model of it: an atomic of the checker's,
/// behind a made-up descriptor number that the runtime's model of `poll` looks up
/// ([`model_readable`]).
#[cfg(any(loom, shuttle))]
struct Counter {
    count: std::sync::Arc<crate::sync::AtomicU64>,
    fd: RawFd,
}

#[cfg(any(loom, shuttle))]
mod model {
    use crate::sync::AtomicU64;
    use std::collections::HashMap;
    use std::os::fd::RawFd;
    use std::sync::{Arc, Mutex, Weak};

    /// The modelled descriptors: made-up numbers, far above real ones.
    struct Fds {
        last: RawFd,
        counters: Option<HashMap<RawFd, Weak<AtomicU64>>>,
    }

    static FDS: Mutex<Fds> = Mutex::new(Fds {
        last: 1 << 24,
        counters: None,
    });

    pub(super) fn register(count: &Arc<AtomicU64>) -> RawFd {
        let mut fds = FDS.lock().unwrap_or_else(|e| e.into_inner());
        fds.last += 1;
        let fd = fds.last;
        let map = fds.counters.get_or_insert_with(HashMap::new);
        map.retain(|_, c| c.strong_count() > 0);
        map.insert(fd, Arc::downgrade(count));
        fd
    }

    pub(super) fn lookup(fd: RawFd) -> Option<Arc<AtomicU64>> {
        let fds = FDS.lock().unwrap_or_else(|e| e.into_inner());
        fds.counters.as_ref()?.get(&fd)?.upgrade()
    }
}

#[cfg(any(loom, shuttle))]
impl Counter {
    fn new() -> io::Result<Counter> {
        let count = std::sync::Arc::new(crate::sync::AtomicU64::new(0));
        let fd = model::register(&count);
        Ok(Counter { count, fd })
    }

    fn add(&self) {
        self.count.fetch_add(1, Ordering::AcqRel);
    }

    fn take(&self) {
        self.count.swap(0, Ordering::AcqRel);
    }

    fn raw_fd(&self) -> RawFd {
        self.fd
    }
}

/// `ppoll(2)` on `fds` for readability, at most `timeout` (to the microsecond, so that a paced
/// connection's next release is kept): the number of descriptors with events, or -1 with
/// `errno` set. Under a model checker, a model of it over the modelled
/// descriptors, which yields to the checker's scheduler until one is readable or the time is
/// up.
pub(crate) fn poll(fds: &mut [libc::pollfd], timeout: std::time::Duration) -> i32 {
    #[cfg(not(any(loom, shuttle)))]
    {
        let ts = libc::timespec {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_nsec: libc::c_long::from(timeout.subsec_nanos() as i32),
        };
        // SAFETY: `fds` is a live slice of pollfd (a negative fd is ignored), `ts` a live
        // timespec; no signal mask is passed.
        unsafe {
            libc::ppoll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                &ts,
                std::ptr::null(),
            )
        }
    }
    #[cfg(any(loom, shuttle))]
    {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let mut n = 0;
            for f in fds.iter_mut() {
                if f.fd >= 0 && model_readable(f.fd) {
                    f.revents = libc::POLLIN;
                    n += 1;
                }
            }
            if n > 0 || std::time::Instant::now() >= deadline {
                return n;
            }
            crate::sync::thread::yield_now();
        }
    }
}

/// Under a model checker: whether the modelled descriptor `fd` is readable.
#[cfg(any(loom, shuttle))]
pub(crate) fn model_readable(fd: RawFd) -> bool {
    model::lookup(fd).is_some_and(|c| c.load(Ordering::Acquire) > 0)
}

#[cfg(all(test, not(any(loom, shuttle))))]
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

/// The wake protocol under loom: whatever the interleaving of two producers' publish-and-wake
/// with the consumer's drain-and-take, work left untaken always leaves the descriptor
/// readable, so the consumer's next poll returns instead of sleeping on it.
#[cfg(all(test, loom))]
mod loom {
    use super::*;
    use crate::sync::AtomicU64;
    use std::sync::Arc;

    #[test]
    fn no_wakeup_is_lost() {
        ::loom::model(|| {
            let wake = Arc::new(WakeFd::new().unwrap());
            let sent = Arc::new(AtomicU64::new(0));
            let producers: Vec<_> = (0..2)
                .map(|_| {
                    let (wake, sent) = (wake.clone(), sent.clone());
                    ::loom::thread::spawn(move || {
                        sent.fetch_add(1, Ordering::AcqRel);
                        wake.wake();
                    })
                })
                .collect();
            // The stack thread's turn: drain, then take what is published.
            wake.drain();
            let taken = sent.load(Ordering::Acquire);
            for p in producers {
                p.join().unwrap();
            }
            let published = sent.load(Ordering::Acquire);
            assert!(
                published == taken || model_readable(wake.raw_fd()),
                "the poll would sleep on pending work: {published} published, {taken} taken"
            );
        });
    }
}
