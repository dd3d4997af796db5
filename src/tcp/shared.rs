//! What a connection shares with its socket handle: the two byte buffers and the little the
//! handle must know to read and write without a round trip to the stack thread; and what a
//! listener shares with its handle: the queue of connections ready to be accepted.
//!
//! The core stays the only one to make protocol decisions. The handle copies bytes into the
//! send buffer and out of the receive buffer under a short lock, and raises `poke` when the
//! core owes output (new data, or a window worth advertising); the core publishes the
//! connection's [`Status`] and wakes the handle's waiters when something changed. The lock is
//! never held across I/O or a wait. Three things work on the buffers outside it instead:
//! a device that writes a super-segment's data straight from the send buffer pins the buffer,
//! so that a write neither moves nor frees its ring meanwhile (`SendBuffer::pin`); a handle
//! filling the send buffer in place reserves its free bytes (`SendBuffer::reserve`,
//! [`IoState::reserve_write`]); a handle writing received bytes on borrows them
//! ([`IoState::lend_read`]: frames by their `Arc`, the ring's bytes copied), and other reads
//! wait for their return.

use super::buffer::{Lent, RecvBuffer, SendBuffer};
use crate::id::SocketId;
use crate::sync::{Condvar, Mutex, MutexGuard};
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

/// The connection as its handle sees it, published by the core.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The handshake is still under way: writes wait.
    pub connecting: bool,
    /// Data may still be written (ESTABLISHED or CLOSE-WAIT, no FIN queued); else `EPIPE`.
    pub can_write: bool,
    /// No more data will arrive: the peer's FIN was reached, reading was shut down, or the
    /// connection is closed. Reads return 0 once the buffer is empty.
    pub eof: bool,
    /// The stack has stopped: calls fail with `NotConnected`.
    pub stopped: bool,
}

/// The state behind the lock.
pub struct IoState {
    /// The send buffer: data written and not yet acknowledged.
    pub send: SendBuffer,
    /// The receive buffer: data received and not yet read, out-of-order ranges included.
    pub recv: RecvBuffer,
    /// The connection's status, as the core last published it.
    pub status: Status,
    /// The error to report (ECONNRESET, ECONNREFUSED, ETIMEDOUT, ...): reads take it once the
    /// data before it is read; writes report it.
    pub error: Option<i32>,
    /// The last soft error (an ICMP error about an established connection, RFC 5461):
    /// reported by `take_error`, or in place of `ETIMEDOUT` if the connection times out.
    pub soft_error: Option<i32>,
    /// When reading frees this many bytes of window, the core owes the peer a window update
    /// (RFC 1122 §4.2.3.3): set by the core while its advertised window is nearly closed.
    pub window_update_at: Option<usize>,
    /// The handle asked the core for output and the core has not run it yet.
    pub poke: bool,
    /// In urgent mode (RFC 9293 §3.8.5): bytes left to read before the urgent mark (RCV.UP),
    /// the first octet after the urgent data. Reads stop at the mark.
    pub rcv_urgent: Option<usize>,
    /// What the handle has shut down: sticky, and never overwritten by the core's status, so
    /// that a `shutdown` takes effect for the handle at once, before the core has run it.
    pub shut: Shut,
    wakers: Wakers,
    /// The connection's two ends as its handle shows them (IPv4-mapped for an IPv4 connection
    /// of an IPv6 listener), set once by the core: the handle reads them without a round
    /// trip, and still after the connection is gone.
    pub addrs: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    /// `TCP_NODELAY` as last set: the handle records it as it posts the change to the core,
    /// so that it reads back at once, without a round trip.
    pub nodelay: bool,
    /// `IP_TTL` as last set, likewise; `None` for the stack's default.
    pub ttl: Option<u8>,
    /// Readable bytes are lent out of the lock ([`IoState::lend_read`]): other reads wait
    /// until they are given back.
    lent: bool,
    /// A read, a peek or a readiness check was refused while bytes were lent: its reader is
    /// woken when they come back. A `Cell`, so that the check can say so through `&self`.
    read_refused: std::cell::Cell<bool>,
}

/// The directions the handle has shut down (`shutdown(2)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Shut {
    /// Reads see end of stream once the buffer is read.
    pub read: bool,
    /// Writes fail with `EPIPE`.
    pub write: bool,
}

/// Who to wake when the core changes a shared state.
#[derive(Default)]
pub struct Wakers {
    /// Handle threads waiting for the state to change.
    waiting: u32,
    /// Called (outside the lock) whenever the core wakes the handle: how an event loop
    /// learns that the socket may be ready without a thread waiting on it.
    watcher: Option<Watcher>,
}

/// A state shared between the core and a socket handle.
pub trait Wakeable {
    /// The state's waiters.
    fn wakers(&mut self) -> &mut Wakers;

    /// Drops the readiness callback (the handle is gone).
    fn forget_watcher(&mut self) {
        self.wakers().watcher = None;
    }
}

impl Wakeable for IoState {
    fn wakers(&mut self) -> &mut Wakers {
        &mut self.wakers
    }
}

/// A readiness callback; it must be cheap and must not lock the connection's state.
pub type Watcher = Arc<dyn Fn() + Send + Sync>;

/// The most runs one [`IoState::lend_read`] lends: as many as one `writev` takes at little
/// cost.
pub const MAX_LENT_RUNS: usize = 16;

/// What calls on a socket of a stack that has shut down fail with.
pub fn stopped() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "tapstack: the stack has shut down",
    )
}

fn os_err(errno: i32) -> io::Error {
    io::Error::from_raw_os_error(errno)
}

impl IoState {
    /// Queues as much of `data` as fits. `WouldBlock` while connecting or when the buffer is
    /// full; the connection's error, or `EPIPE` once writing is over.
    pub fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.status.stopped {
            return Err(stopped());
        }
        if let Some(e) = self.error {
            return Err(os_err(e));
        }
        if self.status.connecting {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        if !self.status.can_write || self.shut.write {
            return Err(os_err(libc::EPIPE));
        }
        if data.is_empty() {
            return Ok(0);
        }
        match self.send.write(data) {
            0 => Err(io::ErrorKind::WouldBlock.into()),
            n => Ok(n),
        }
    }

    /// Reserves up to `max` bytes at the send buffer's tail for the handle to fill outside the
    /// lock (`SendBuffer::reserve`), after the checks of [`IoState::write`]: where they are,
    /// `WouldBlock` if there is no room. [`IoState::commit_write`] must follow.
    pub fn reserve_write(&mut self, max: usize) -> io::Result<(*mut u8, usize)> {
        self.write(&[])?;
        self.send
            .reserve(max)
            .ok_or_else(|| io::ErrorKind::WouldBlock.into())
    }

    /// Ends an [`IoState::reserve_write`] with `n` bytes filled, after the checks of
    /// [`IoState::write`] once more: if writing ended meanwhile (shut down, a FIN queued, an
    /// error, the stack stopped), the bytes are dropped and the error is what `write` would
    /// give now. The second value says whether a writer refused meanwhile should be woken.
    pub fn commit_write(&mut self, n: usize) -> (io::Result<()>, bool) {
        let open = self.write(&[]).map(|_| ());
        let (kept, wake) = self.send.commit(if open.is_ok() { n } else { 0 });
        if kept || open.is_err() {
            return (open, wake);
        }
        (Err(os_err(self.error.unwrap_or(libc::EPIPE))), wake)
    }

    /// Queues as much of `data` as fits, as [`IoState::write`], as urgent data: the urgent
    /// pointer of the segments sent from now on marks the end of what was taken (RFC 9293
    /// §3.9.1.2, `send(MSG_OOB)`).
    pub fn write_urgent(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = self.write(data)?;
        if n > 0 {
            self.send.mark_urgent();
        }
        Ok(n)
    }

    /// How many received bytes to read before a read reaches the urgent mark: a read stops
    /// there, so that the application learns where the urgent data ends (RFC 9293 §3.8.5).
    fn read_limit(&self, want: usize) -> usize {
        self.rcv_urgent.map_or(want, |left| want.min(left))
    }

    /// Copies received bytes into `out` and leaves them to be read (`MSG_PEEK`): `Ok(0)` at end
    /// of stream; the connection's error, left for `read`; `WouldBlock` when nothing is there.
    pub fn peek(&self, out: &mut [u8]) -> io::Result<usize> {
        if self.status.stopped {
            return Err(stopped());
        }
        if out.is_empty() {
            return Ok(0);
        }
        self.refuse_while_lent()?;
        if self.recv.readable() == 0 {
            if let Some(e) = self.error {
                return Err(os_err(e));
            }
            if self.at_eof() {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let limit = self.read_limit(out.len());
        Ok(self.recv.peek(&mut out[..limit]))
    }

    /// Takes received bytes into `out`: `Ok(0)` at end of stream; the connection's error (once)
    /// when the data before it is read; `WouldBlock` when nothing is there yet.
    pub fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.status.stopped {
            return Err(stopped());
        }
        if out.is_empty() {
            return Ok(0);
        }
        self.refuse_while_lent()?;
        if self.recv.readable() == 0 {
            if let Some(e) = self.error.take() {
                return Err(os_err(e));
            }
            if self.at_eof() {
                return Ok(0);
            }
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let limit = self.read_limit(out.len());
        let n = self.recv.read(&mut out[..limit]);
        self.rcv_urgent = self
            .rcv_urgent
            .map(|left| left - n)
            .filter(|&left| left > 0);
        Ok(n)
    }

    /// Lends up to `max` readable bytes (stopping at the urgent mark) for the handle to write
    /// elsewhere outside the lock ([`RecvBuffer::lend`]), after the checks of
    /// [`IoState::read`]: how many, `Ok(0)` at end of stream (nothing lent), the connection's
    /// error, or `WouldBlock`. [`IoState::return_read`] must follow a lending.
    pub fn lend_read(
        &mut self,
        max: usize,
        scratch: &mut Vec<u8>,
        out: &mut Vec<Lent>,
    ) -> io::Result<usize> {
        if self.status.stopped {
            return Err(stopped());
        }
        self.refuse_while_lent()?;
        if self.recv.readable() == 0 {
            return self.read(&mut [0]);
        }
        let n = self
            .recv
            .lend(self.read_limit(max), MAX_LENT_RUNS, scratch, out);
        if n == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        self.lent = true;
        Ok(n)
    }

    /// `WouldBlock` while bytes are lent ([`IoState::lend_read`]), and the reader is then
    /// woken at their return.
    fn refuse_while_lent(&self) -> io::Result<()> {
        if self.lent {
            self.read_refused.set(true);
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(())
    }

    /// Ends an [`IoState::lend_read`]: the first `n` lent bytes are taken, as a read takes
    /// them. Returns whether a reader refused meanwhile should be woken.
    pub fn return_read(&mut self, n: usize) -> bool {
        if !std::mem::take(&mut self.lent) {
            return false;
        }
        let n = n.min(self.recv.readable());
        self.recv.consume(n);
        self.rcv_urgent = self
            .rcv_urgent
            .map(|left| left.saturating_sub(n))
            .filter(|&left| left > 0);
        self.read_refused.take()
    }

    /// No more data will come: the core says so, or the handle shut reading down.
    fn at_eof(&self) -> bool {
        self.status.eof || self.shut.read
    }

    /// Whether a read would not block: data, end of stream, an error or a stopped stack; not
    /// while received bytes are lent out ([`IoState::lend_read`]), when the reader is woken at
    /// their return.
    pub fn read_ready(&self) -> bool {
        if !self.status.stopped && self.refuse_while_lent().is_err() {
            return false;
        }
        self.recv.readable() > 0 || self.at_eof() || self.error.is_some() || self.status.stopped
    }

    /// Whether urgent data waits to be read, or the stream has ended or failed: like Linux's
    /// `POLLPRI` (with `POLLRDHUP` and `POLLERR`, which also end a wait for it), but set by
    /// the urgent pointer itself rather than by the arrival of the last urgent byte.
    pub fn urgent_ready(&self) -> bool {
        self.rcv_urgent.is_some() || self.at_eof() || self.error.is_some() || self.status.stopped
    }

    /// Whether a write would not block: room in the send buffer, or a write that would fail
    /// at once (writing shut down, an error, a stopped stack).
    pub fn write_ready(&self) -> bool {
        self.status.stopped
            || self.error.is_some()
            || (!self.status.connecting
                && (!self.status.can_write || self.shut.write || self.send.room() > 0))
    }

    /// After a read: whether it reopened enough window that the core owes a window update
    /// (then the core must be poked). True once per update.
    pub fn window_update_due(&mut self) -> bool {
        match self.window_update_at {
            Some(at) if self.recv.offer() >= at => {
                self.window_update_at = None;
                true
            }
            _ => false,
        }
    }

    /// Whether the handle must poke the core now: it has not yet, since its last poke was
    /// served. Marks the poke as sent.
    pub fn take_poke(&mut self) -> bool {
        !std::mem::replace(&mut self.poke, true)
    }
}

/// A state shared with a handle: the lock and the waiters' condition variable.
pub struct Shared<S> {
    state: Mutex<S>,
    changed: Condvar,
}

/// A connection's shared state.
pub type SocketIo = Shared<IoState>;

impl SocketIo {
    /// A new connection's shared state around its two buffers: connecting, no error.
    pub fn new(send: SendBuffer, recv: RecvBuffer) -> SocketIo {
        Shared::with(IoState {
            send,
            recv,
            status: Status {
                connecting: true,
                ..Status::default()
            },
            error: None,
            soft_error: None,
            window_update_at: None,
            poke: false,
            rcv_urgent: None,
            shut: Shut::default(),
            wakers: Wakers::default(),
            addrs: None,
            nodelay: false,
            ttl: None,
            lent: false,
            read_refused: std::cell::Cell::new(false),
        })
    }
}

impl<S: Wakeable> Shared<S> {
    /// A shared state around `state`, with no waiters.
    pub fn with(state: S) -> Shared<S> {
        Shared {
            state: Mutex::new(state),
            changed: Condvar::new(),
        }
    }

    /// Locks the state. A panic elsewhere cannot leave it half-written (every update is a
    /// plain copy or a queue operation), so a poisoned lock is taken over.
    pub fn lock(&self) -> MutexGuard<'_, S> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes the handle's waiters, if any (a futex wake only when someone sleeps). The lock
    /// is released first, so that a waiter does not wake only to block on it.
    pub fn wake(&self, mut state: MutexGuard<'_, S>) {
        let w = state.wakers();
        let waiting = w.waiting > 0;
        let watcher = w.watcher.clone();
        drop(state);
        if waiting {
            self.changed.notify_all();
        }
        if let Some(w) = watcher {
            w();
        }
    }

    /// Sets (or clears) the readiness callback. A new one is called once at once, since the
    /// socket may already be ready.
    pub fn watch(&self, watcher: Option<Watcher>) {
        let mut state = self.lock();
        state.wakers().watcher = watcher;
        self.wake(state);
    }

    /// Sleeps until the core changes something, at most `timeout` (`None`: no limit). The
    /// caller checks the state again either way: a wake-up is a hint.
    pub fn wait<'a>(
        &'a self,
        mut state: MutexGuard<'a, S>,
        timeout: Option<Duration>,
    ) -> MutexGuard<'a, S> {
        state.wakers().waiting += 1;
        let mut state = match timeout {
            None => self
                .changed
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner),
            Some(t) => {
                self.changed
                    .wait_timeout(state, t)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
            }
        };
        state.wakers().waiting -= 1;
        state
    }
}

/// A connection the core established for a listener, ready for `accept`.
pub struct Accepted {
    /// The connection's socket id.
    pub id: SocketId,
    /// The peer's address and port.
    pub peer: SocketAddr,
    /// The state the connection shares with its handle.
    pub io: Arc<SocketIo>,
    /// The receive buffer it gets once accepted: until then it has at most
    /// [`super::UNACCEPTED_RCVBUF`].
    pub recv_capacity: usize,
}

impl Accepted {
    /// Gives the accepted connection its whole receive buffer; true if that opened its
    /// window (the core then owes the peer an update, which a window that had closed needs).
    pub fn grow_window(&self) -> bool {
        let mut state = self.io.lock();
        if state.recv.capacity() >= self.recv_capacity {
            return false;
        }
        state.recv.set_capacity(self.recv_capacity);
        true
    }
}

/// What a listener shares with its handle.
#[derive(Default)]
pub struct ListenState {
    /// Established connections not yet accepted, oldest first; the listen backlog bounds it.
    pub queue: VecDeque<Accepted>,
    /// The stack has stopped: `accept` fails with `NotConnected`.
    pub stopped: bool,
    wakers: Wakers,
}

impl Wakeable for ListenState {
    fn wakers(&mut self) -> &mut Wakers {
        &mut self.wakers
    }
}

/// A listener's shared state.
pub type ListenIo = Shared<ListenState>;

impl Default for ListenIo {
    fn default() -> ListenIo {
        Shared::with(ListenState::default())
    }
}

/// The shared state's protocols under loom (`RUSTFLAGS="--cfg loom" cargo test --lib loom`).
#[cfg(all(test, loom))]
mod loom {
    use super::*;
    use crate::sync::AtomicU64;
    use std::sync::atomic::Ordering;

    /// The stack thread's device: pins the first 100 bytes of the send ring, reads them
    /// outside the lock, unpins, and wakes a writer held short meanwhile.
    fn device_reads(io: &Arc<SocketIo>) -> ::loom::thread::JoinHandle<()> {
        let io = io.clone();
        ::loom::thread::spawn(move || {
            let pos = io.lock().send.position(0);
            if io.lock().send.pin(pos, 100).is_none() {
                return;
            }
            // The device reads the bytes here, outside the lock.
            let mut state = io.lock();
            if state.send.unpin() {
                io.wake(state);
            }
        })
    }

    /// A connection's shared state with `queued` bytes of 7 written, its send ring 4096
    /// bytes at first (8192 at most).
    fn connected_with(queued: usize) -> Arc<SocketIo> {
        let io = Arc::new(SocketIo::new(SendBuffer::new(8192), RecvBuffer::new(64, 4)));
        {
            let mut state = io.lock();
            state.status.connecting = false;
            state.status.can_write = true;
            assert_eq!(state.write(&vec![7; queued]).unwrap(), queued);
        }
        io
    }

    /// A blocking handle's write of `data`: tries, sleeps until woken, tries again, until it
    /// is taken whole.
    fn write_when_room(io: &SocketIo, data: &[u8]) {
        let mut state = io.lock();
        loop {
            match state.write(data) {
                Ok(n) => {
                    assert_eq!(n, data.len());
                    break;
                }
                Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
            }
            state = io.wait(state, None);
        }
    }

    /// A handle that sleeps until the core changes the state is always woken: the waiter
    /// count it raises under the lock is what makes the core's `wake` notify.
    #[test]
    fn a_waiter_is_always_woken() {
        ::loom::model(|| {
            let shared = Arc::new(ListenIo::default());
            let core = {
                let shared = shared.clone();
                ::loom::thread::spawn(move || {
                    let mut state = shared.lock();
                    state.stopped = true;
                    shared.wake(state);
                })
            };
            let mut state = shared.lock();
            while !state.stopped {
                state = shared.wait(state, None);
            }
            drop(state);
            core.join().unwrap();
        });
    }

    /// The pin: while the stack thread's device reads a super-segment's data outside the
    /// lock, a write that needs the ring to grow takes nothing and sleeps; the unpin wakes it
    /// (`TxPayload::with_slices`). Whatever the interleaving, the write completes.
    #[test]
    fn a_write_held_short_by_a_pin_is_woken_when_it_ends() {
        ::loom::model(|| {
            // The ring (4096 bytes at first) is full: one more byte needs it to grow.
            let io = connected_with(4096);
            let device = device_reads(&io);
            write_when_room(&io, &[8; 10]);
            device.join().unwrap();
            assert_eq!(io.lock().send.len(), 4106);
        });
    }

    /// The reservation: while one handle fills the ring outside the lock
    /// (`TcpStream::try_write_with`) and the device pins and reads it, another handle's write
    /// takes nothing and sleeps; whichever of the commit and the unpin ends last wakes it.
    /// Whatever the interleaving, both writes land whole, one after the other.
    #[test]
    fn a_write_refused_during_a_fill_is_woken_when_it_ends() {
        ::loom::model(|| {
            let io = connected_with(100);
            let device = device_reads(&io);
            let filler = {
                let io = io.clone();
                ::loom::thread::spawn(move || {
                    let (at, room) = io.lock().reserve_write(10).unwrap();
                    assert_eq!(room, 10);
                    // SAFETY: the reservation gives these bytes to this thread until the
                    // commit.
                    unsafe { std::slice::from_raw_parts_mut(at, room).fill(1) };
                    let mut state = io.lock();
                    let (kept, wake) = state.commit_write(room);
                    kept.unwrap();
                    if wake {
                        io.wake(state);
                    }
                })
            };
            write_when_room(&io, &[2; 10]);
            device.join().unwrap();
            filler.join().unwrap();
            let state = io.lock();
            assert_eq!(state.send.len(), 120);
            let mut tail = [0; 20];
            state.send.read_at(100, &mut tail);
            assert!(
                tail == [[1; 10], [2; 10]].concat()[..] || tail == [[2; 10], [1; 10]].concat()[..]
            );
        });
    }

    /// The lending: while one handle writes received bytes on outside the lock
    /// (`TcpStream::try_read_with`), another handle's read takes nothing and sleeps; the
    /// bytes' return wakes it. Whatever the interleaving, each byte is read once, in order.
    #[test]
    fn a_read_refused_during_a_lending_is_woken_when_it_ends() {
        ::loom::model(|| {
            let io = Arc::new(SocketIo::new(SendBuffer::new(64), RecvBuffer::new(64, 4)));
            {
                let mut state = io.lock();
                state.status.connecting = false;
                assert_eq!(state.recv.insert(0, b"abcd").advanced, 4);
            }
            let drainer = {
                let io = io.clone();
                ::loom::thread::spawn(move || {
                    let (mut scratch, mut runs) = (Vec::new(), Vec::new());
                    let lent = io.lock().lend_read(2, &mut scratch, &mut runs);
                    let Ok(n) = lent else {
                        return Vec::new();
                    };
                    let taken: Vec<u8> = runs
                        .iter()
                        .flat_map(|r| r.bytes(&scratch).to_vec())
                        .collect();
                    assert_eq!(taken.len(), n);
                    let mut state = io.lock();
                    if state.return_read(n) {
                        io.wake(state);
                    }
                    taken
                })
            };
            let mut state = io.lock();
            let mut got = Vec::new();
            loop {
                let mut buf = [0u8; 4];
                match state.read(&mut buf) {
                    Ok(n) => {
                        got.extend_from_slice(&buf[..n]);
                        break;
                    }
                    Err(e) => assert_eq!(e.kind(), io::ErrorKind::WouldBlock),
                }
                state = io.wait(state, None);
            }
            drop(state);
            let drained = drainer.join().unwrap();
            let rest = {
                let mut buf = [0u8; 4];
                let n = io.lock().read(&mut buf).unwrap_or(0);
                buf[..n].to_vec()
            };
            // The drainer's bytes and the reader's make the stream once, in order.
            let whole = if got.first() == Some(&b'a') {
                [got, rest, drained].concat()
            } else {
                [drained, got, rest].concat()
            };
            assert_eq!(whole, b"abcd");
        });
    }

    /// The poke: a handle queues data and pokes the core only if no poke is outstanding; the
    /// core, served a poke, clears the flag and then sends what is queued (as `Tcp::poke`
    /// does, then `flush`). Whatever the interleaving of two writes with the core, nothing is
    /// left queued with no poke on its way.
    #[test]
    fn no_write_is_stranded_without_a_poke() {
        ::loom::model(|| {
            let io = Arc::new(SocketIo::new(SendBuffer::new(64), RecvBuffer::new(64, 4)));
            io.lock().status.connecting = false;
            io.lock().status.can_write = true;
            let pokes = Arc::new(AtomicU64::new(0));
            let done = Arc::new(crate::sync::AtomicBool::new(false));
            let writer = {
                let (io, pokes, done) = (io.clone(), pokes.clone(), done.clone());
                ::loom::thread::spawn(move || {
                    for byte in [1u8, 2] {
                        let mut state = io.lock();
                        state.write(&[byte]).unwrap();
                        if state.take_poke() {
                            pokes.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                    done.store(true, Ordering::Release);
                })
            };
            let serve = |io: &SocketIo| {
                io.lock().poke = false;
                let mut state = io.lock();
                let n = state.send.len();
                state.send.consume(n);
            };
            // The core serves the pokes as they come, then once more for each one left.
            let mut served = 0;
            loop {
                if pokes.load(Ordering::Acquire) > served {
                    served += 1;
                    serve(&io);
                }
                if done.load(Ordering::Acquire) && pokes.load(Ordering::Acquire) == served {
                    break;
                }
                ::loom::thread::yield_now();
            }
            writer.join().unwrap();
            assert_eq!(
                io.lock().send.len(),
                0,
                "data queued with no poke to send it"
            );
        });
    }
}
