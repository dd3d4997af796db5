//! Connection workers: threads that serve one connection after another. A connection goes to
//! an idle worker when there is one, else to a new thread (up to the limit); workers idle for
//! `IDLE_EXIT` end. Under steady load no thread is spawned per connection.

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

/// How long a worker waits for its next connection before it ends.
const IDLE_EXIT: Duration = Duration::from_secs(30);

type Job = Box<dyn FnOnce() + Send>;

pub struct Pool {
    tx: crossbeam_channel::Sender<Job>,
    rx: crossbeam_channel::Receiver<Job>,
    /// Workers waiting for a job and not yet promised one.
    idle: Arc<AtomicUsize>,
    /// Jobs being served or handed over.
    busy: Arc<AtomicUsize>,
    max: usize,
}

/// Takes one from `n` if it is positive.
fn take_one(n: &AtomicUsize) -> bool {
    n.fetch_update(SeqCst, SeqCst, |v| v.checked_sub(1)).is_ok()
}

impl Pool {
    /// A pool serving at most `max` jobs at once.
    pub fn new(max: usize) -> Pool {
        let (tx, rx) = crossbeam_channel::unbounded();
        Pool {
            tx,
            rx,
            idle: Arc::new(AtomicUsize::new(0)),
            busy: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Runs `job` on a worker; gives it back if `max` jobs are already being served.
    pub fn run<F: FnOnce() + Send + 'static>(&self, job: F) -> Result<(), F> {
        if self.busy.fetch_add(1, SeqCst) >= self.max {
            self.busy.fetch_sub(1, SeqCst);
            return Err(job);
        }
        let busy = self.busy.clone();
        let job: Job = Box::new(move || {
            job();
            busy.fetch_sub(1, SeqCst);
        });
        if take_one(&self.idle) {
            // An idle worker is promised this job; it cannot leave before taking it.
            let _ = self.tx.send(job);
            return Ok(());
        }
        let (rx, idle) = (self.rx.clone(), self.idle.clone());
        let spawned = thread::Builder::new()
            .name("http-conn".into())
            .spawn(move || worker(job, rx, idle));
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread: {e}");
            self.busy.fetch_sub(1, SeqCst);
        }
        Ok(())
    }
}

fn worker(first: Job, rx: crossbeam_channel::Receiver<Job>, idle: Arc<AtomicUsize>) {
    first();
    loop {
        idle.fetch_add(1, SeqCst);
        match rx.recv_timeout(IDLE_EXIT) {
            Ok(job) => job(),
            // Leave unless a job was promised meanwhile: then it is on its way.
            Err(_) if take_one(&idle) => return,
            Err(_) => match rx.recv() {
                Ok(job) => job(),
                Err(_) => return,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    /// Jobs run concurrently up to the limit, threads are reused, and the limit refuses.
    #[test]
    fn reuses_workers_and_refuses_over_the_limit() {
        let pool = Pool::new(4);
        let barrier = Arc::new(Barrier::new(5));
        let names = Arc::new(std::sync::Mutex::new(Vec::new()));
        for _ in 0..4 {
            let (b, names) = (barrier.clone(), names.clone());
            assert!(pool
                .run(move || {
                    names.lock().unwrap().push(thread::current().id());
                    b.wait();
                    b.wait();
                })
                .is_ok());
        }
        barrier.wait(); // all four are running at once
        assert!(pool.run(|| {}).is_err(), "a fifth job is over the limit");
        barrier.wait();
        let (tx, rx) = crossbeam_channel::bounded(1);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // The workers become idle; a new job then runs on one of them.
        while pool.idle.load(SeqCst) < 4 {
            assert!(std::time::Instant::now() < deadline, "workers never idle");
            thread::yield_now();
        }
        pool.run(move || tx.send(thread::current().id()).unwrap())
            .unwrap_or_else(|_| panic!("refused"));
        let id = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert!(
            names.lock().unwrap().contains(&id),
            "ran on a reused worker"
        );
    }
}
