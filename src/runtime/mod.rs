//! The stack thread: it owns the [`Interface`] and the device, and serves socket handles.
//!
//! One loop `poll`s the device and a wakeup eventfd together, with the core's next deadline as
//! timeout. Socket handles send commands over a channel and wake the loop; calls that must
//! wait (a blocking receive) park a reply channel here until an event or their deadline.

mod reply;
#[cfg(all(test, shuttle))]
mod shuttle;
#[cfg(feature = "tokio")]
mod task;
mod waiters;

use crate::config::StackConfig;
use crate::core::{Event, Interface, PassOn, RxChecksums, SocketId};
use crate::phy::{send_frame, Device, WakeFd};
use crate::stats::Counters;
use crate::sync::thread;
use crate::time::{earliest, Instant};
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use reply::{reply, ReplyRx, ReplyTx};
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use waiters::Waiters;
pub(crate) use waiters::{Wait, Wake};

/// Frames read from the device per loop iteration before timers and output get a turn.
const RX_BATCH: usize = 64;
/// Commands served per loop iteration: posted datagrams, for one, can come as fast as they
/// are served, and the frames they make must reach the device meanwhile.
const COMMAND_BATCH: usize = 256;
/// Receive buffer: a 64 KB offloaded segment plus its Ethernet header.
const RX_BUF: usize = 65536 + 1024;

type Job = Box<dyn FnOnce(&mut Interface, Instant) + Send>;
/// A job that makes a socket and returns the wait for its result, or answers at once.
type Start = Box<dyn FnOnce(&mut Interface, Instant) -> Option<Wait> + Send>;
/// What [`Handle::start_and_wait`] runs whenever its socket may be ready.
pub(crate) type Retry<T> =
    Box<dyn FnMut(&mut Interface, Instant) -> Option<io::Result<T>> + Send + 'static>;

pub(crate) enum Command {
    /// Served alike while the stack runs and while it drains; nobody waits for an answer.
    Posted(Posted),
    /// A call that may have to wait for its socket.
    Wait(Wait),
    /// A call that makes its socket, then may have to wait for it.
    Start(Start),
    Close(SocketId),
    /// The handle is gone with a zero linger: reset the connection.
    Reset(SocketId),
    /// Sets or clears the readiness callback of a socket whose state lives here (UDP).
    Watch(SocketId, Option<crate::tcp::shared::Watcher>),
    /// The core's counters plus the device's.
    Counters(ReplyTx<Counters>),
    Shutdown,
}

/// A command served alike while the stack runs and while it drains.
pub(crate) enum Posted {
    /// Runs on the stack thread with the interface and the current time.
    Exec(Job),
    /// A TCP handle queued data or reopened its window: the connection owes output.
    Poke(SocketId),
    /// A UDP handle posted a datagram to `dst` (`None`: the connected peer) without waiting
    /// for the verdict ([`crate::core::UdpShared::post`]).
    UdpSend {
        id: SocketId,
        data: Vec<u8>,
        dst: Option<std::net::SocketAddr>,
        /// Cut into datagrams this long ([`Interface::udp_send_segments`]).
        segment: Option<u16>,
    },
    /// A frame another queue of the link passed on ([`crate::core::PassOn`]), `hops` queues
    /// ago; `copy`: an ARP message to learn from.
    Passed {
        frame: Vec<u8>,
        hops: usize,
        copy: bool,
        /// The arriving device vouched for its transport checksum.
        verified: bool,
    },
}

/// The stack threads of a link's queues, for each to pass frames on to the others.
#[derive(Clone)]
struct Peers {
    /// Every queue's command channel and wakeup, by index.
    queues: Vec<(Sender<Command>, Arc<WakeFd>)>,
    /// What the passed frames each queue has yet to take cost, by index, each frame its
    /// bytes and [`crate::config::PASSED_FRAME_OVERHEAD`]: at most `max_backlog`, so that a
    /// queue that falls behind (or a flood the kernel steers to the wrong queue) holds what
    /// the kernel's own queue would, not an unbounded channel.
    backlog: Arc<[AtomicUsize]>,
    /// [`StackConfig::passed_backlog`].
    max_backlog: usize,
    /// This thread's queue.
    index: usize,
}

impl Peers {
    /// Hands `frame` to queue `to`; false if that queue's backlog is full or it stopped.
    fn pass(&self, to: usize, frame: Vec<u8>, hops: usize, copy: bool, verified: bool) -> bool {
        let to = to % self.queues.len();
        let (tx, wake) = &self.queues[to];
        let len = frame.len() + crate::config::PASSED_FRAME_OVERHEAD;
        if self.backlog[to].fetch_add(len, Ordering::Relaxed) + len > self.max_backlog {
            self.backlog[to].fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        let cmd = Command::Posted(Posted::Passed {
            frame,
            hops,
            copy,
            verified,
        });
        if tx.send(cmd).is_err() {
            self.backlog[to].fetch_sub(len, Ordering::Relaxed);
            return false;
        }
        wake.wake();
        true
    }

    /// This queue took a passed frame of `len` bytes off its backlog.
    fn taken(&self, len: usize) {
        let len = len + crate::config::PASSED_FRAME_OVERHEAD;
        self.backlog[self.index].fetch_sub(len, Ordering::Relaxed);
    }
}

/// A datagram reassembled from fragments, to pass on in place of its last fragment: whole,
/// and vouched for by no device (a device's checksum verdict covered one fragment).
fn rebuilt(datagram: Vec<u8>) -> (Vec<u8>, bool) {
    (datagram, false)
}

/// The socket side's connection to the stack thread.
#[derive(Clone)]
pub(crate) struct Handle {
    tx: Sender<Command>,
    wake: Arc<WakeFd>,
    /// The stack writes a trace ([`StackConfig::trace`]): sockets may be traced.
    traces: bool,
    /// The stack's default TTL, which a socket without `IP_TTL` of its own reports.
    ttl: u8,
    /// The thread that last ran the stack, if it runs as a task of a tokio runtime rather
    /// than on a thread of its own ([`crate::tokio::spawn_stack`]).
    driver: Option<Arc<DriverThread>>,
}

/// The thread a stack run as a task last ran on: a blocking call there would wait for a task
/// that its own wait keeps from running.
#[derive(Default)]
pub(crate) struct DriverThread(std::sync::atomic::AtomicU64);

impl DriverThread {
    /// This thread's number: threads are numbered from 1 as they first ask.
    fn this_thread() -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        thread_local! {
            static NUMBER: u64 = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        NUMBER.with(|n| *n)
    }

    /// Records that the stack runs on this thread now.
    #[cfg(feature = "tokio")]
    pub(crate) fn set_here(&self) {
        self.0.store(Self::this_thread(), Ordering::Relaxed);
    }

    /// Whether the stack last ran on this thread.
    fn here(&self) -> bool {
        self.0.load(Ordering::Relaxed) == Self::this_thread()
    }
}

pub(crate) use crate::tcp::shared::stopped;

/// The error of a blocking call that would wait on a thread of the tokio runtime that runs
/// the stack: the wait could keep the stack's own task from running, for ever.
pub(crate) fn would_stall() -> io::Error {
    io::Error::other(
        "tapstack: a blocking call inside the tokio runtime that runs the stack would stall it; \
         use the async API (tapstack::tokio) there",
    )
}

impl Handle {
    /// Whether the stack has a trace output.
    pub fn traces(&self) -> bool {
        self.traces
    }

    /// The stack's default TTL ([`StackConfig::ttl`]).
    pub fn default_ttl(&self) -> u8 {
        self.ttl
    }

    pub fn send(&self, cmd: Command) -> io::Result<()> {
        self.tx.send(cmd).map_err(|_| stopped())?;
        self.wake.wake();
        Ok(())
    }

    /// Fails with [`would_stall`] where a blocking wait for the stack could stall it: on the
    /// thread that runs the stack as a tokio task.
    pub fn may_block(&self) -> io::Result<()> {
        may_block(&self.driver)
    }

    /// Asks the stack thread to run output for connection `id`.
    pub fn poke(&self, id: SocketId) -> io::Result<()> {
        self.send(Command::Posted(Posted::Poke(id)))
    }

    /// Runs `f` on the stack thread without waiting for it.
    pub fn post(&self, f: impl FnOnce(&mut Interface, Instant) + Send + 'static) -> io::Result<()> {
        self.send(Command::Posted(Posted::Exec(Box::new(f))))
    }

    /// Runs `f` on the stack thread and waits for its result.
    pub fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Interface, Instant) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        self.may_block()?;
        self.ask(f)?.wait()
    }

    /// Runs `f` on the stack thread; its result is waited for or awaited from the
    /// [`Pending`] reply. A result whose reply was dropped unread is dropped on the stack
    /// thread: a result that owns a socket closes it.
    pub fn ask<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Interface, Instant) -> io::Result<T> + Send + 'static,
    ) -> io::Result<Pending<T>> {
        let (mut tx, rx) = reply();
        self.send(Command::Posted(Posted::Exec(Box::new(
            move |iface, now| {
                tx.send(f(iface, now));
            },
        ))))?;
        Ok(Pending {
            rx,
            driver: self.driver.clone(),
        })
    }

    /// Runs `f` on the stack thread whenever socket `id` may be ready, until it returns an
    /// answer; at `deadline` the answer is `on_timeout()`. Blocks the caller meanwhile.
    pub fn wait<T: Send + 'static>(
        &self,
        id: SocketId,
        deadline: Option<std::time::Instant>,
        f: impl FnMut(&mut Interface, Instant) -> Option<io::Result<T>> + Send + 'static,
        on_timeout: fn() -> io::Error,
    ) -> io::Result<T> {
        self.may_block()?;
        let (tx, rx) = reply();
        let attempt = attempt(tx, f, on_timeout);
        self.send(Command::Wait(Wait {
            id,
            deadline,
            attempt,
        }))?;
        rx.recv().ok_or_else(stopped)?
    }

    /// Runs `start` on the stack thread, which makes a socket and returns it with what to run
    /// whenever it may be ready, as [`Handle::wait`] runs `f`; an error is the answer at
    /// once. One command and one answer: a blocking connect posts its SYN and waits for the
    /// handshake without first waiting for the socket.
    pub fn start_and_wait<T: Send + 'static>(
        &self,
        deadline: Option<std::time::Instant>,
        start: impl FnOnce(&mut Interface, Instant) -> io::Result<(SocketId, Retry<T>)> + Send + 'static,
        on_timeout: fn() -> io::Error,
    ) -> io::Result<T> {
        self.may_block()?;
        let (mut tx, rx) = reply();
        self.send(Command::Start(Box::new(move |iface, now| {
            match start(iface, now) {
                Err(e) => {
                    tx.send(Err(e));
                    None
                }
                Ok((id, f)) => Some(Wait {
                    id,
                    deadline,
                    attempt: attempt(tx, f, on_timeout),
                }),
            }
        })))?;
        rx.recv().ok_or_else(stopped)?
    }
}

/// The parked call that answers through `tx` once `f` has an answer, or with `on_timeout()`
/// at the deadline, or `EBADF` if the socket closed.
fn attempt<T: Send + 'static>(
    mut tx: ReplyTx<io::Result<T>>,
    mut f: impl FnMut(&mut Interface, Instant) -> Option<io::Result<T>> + Send + 'static,
    on_timeout: fn() -> io::Error,
) -> waiters::Attempt {
    Box::new(move |iface: &mut Interface, now: Instant, wake: Wake| {
        let answer = match wake {
            Wake::Retry => f(iface, now),
            Wake::TimedOut => Some(Err(on_timeout())),
            Wake::Closed => Some(Err(io::Error::from_raw_os_error(libc::EBADF))),
        };
        match answer {
            Some(a) => {
                tx.send(a);
                true
            }
            None => false,
        }
    })
}

/// The stack thread's answer to a call of [`Handle::ask`]: [`Pending::wait`] blocks for it,
/// `.await` waits without blocking an executor. `stopped` if the stack stopped first.
pub(crate) struct Pending<T> {
    rx: ReplyRx<io::Result<T>>,
    /// The stack's [`Handle::driver`].
    driver: Option<Arc<DriverThread>>,
}

/// [`Handle::may_block`] of a stack with `driver`.
fn may_block(driver: &Option<Arc<DriverThread>>) -> io::Result<()> {
    match driver {
        Some(d) if d.here() => Err(would_stall()),
        _ => Ok(()),
    }
}

impl<T> Pending<T> {
    /// Blocks until the stack thread answers; [`would_stall`] (the call made, its answer
    /// dropped) where the wait could stall the stack ([`Handle::may_block`]).
    pub fn wait(self) -> io::Result<T> {
        may_block(&self.driver)?;
        self.rx.recv().ok_or_else(stopped)?
    }
}

impl<T> std::future::Future for Pending<T> {
    type Output = io::Result<T>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<T>> {
        std::pin::Pin::new(&mut self.rx)
            .poll(cx)
            .map(|answer| answer.ok_or_else(stopped)?)
    }
}

/// A running stack: its thread stops and is joined when this is dropped. (A stack run as a
/// tokio task, [`crate::tokio::spawn_stack`], has no thread: see there.)
pub struct Stack {
    handle: Handle,
    config: StackConfig,
    thread: Option<thread::JoinHandle<()>>,
    /// Answered (closed) when the stack thread has ended.
    done: Option<ReplyRx<()>>,
    /// The offer queues of catch-all interception, if the stack intercepts.
    intercept: Option<Arc<crate::core::InterceptIo>>,
}

impl Stack {
    /// Starts a stack on `device`. The MTU comes from the device.
    pub fn new<D: Device + 'static>(device: D, mut config: StackConfig) -> io::Result<Stack> {
        // One stack is one queue, whatever a configuration copied from a queue says.
        config.queues = 1;
        config.queue = 0;
        let (tx, rx) = crossbeam_channel::unbounded();
        Stack::start(device, config, (tx, rx), Arc::new(WakeFd::new()?), None)
    }

    /// Starts a stack whose loop runs as a task of the current tokio runtime
    /// ([`crate::tokio::spawn_stack`]).
    #[cfg(feature = "tokio")]
    pub(crate) fn spawn_task<D: Device + 'static>(
        device: D,
        mut config: StackConfig,
    ) -> io::Result<Stack> {
        let runtime = ::tokio::runtime::Handle::try_current().map_err(|_| {
            io::Error::other("spawn_stack: not inside a tokio runtime (call it from a task)")
        })?;
        config.queues = 1;
        config.queue = 0;
        let (tx, rx) = crossbeam_channel::unbounded();
        let driver = Arc::new(DriverThread::default());
        let (stack, st, done) = Stack::build(
            device,
            config,
            (tx, rx),
            Arc::new(WakeFd::new()?),
            None,
            Some(driver.clone()),
        )?;
        // A current-thread runtime runs its tasks on the thread that spawns them, as a rule:
        // a blocking call there before the task's first turn would stall it as well.
        if runtime.runtime_flavor() == ::tokio::runtime::RuntimeFlavor::CurrentThread {
            driver.set_here();
        }
        runtime.spawn(task::run(task::Loop::new(st, driver, done)?));
        Ok(stack)
    }

    /// Starts one stack per queue of a link (`devices`, from [`crate::phy::TapDevice::open_queues`]
    /// or [`crate::phy::TunDevice::open_queues`]), each with its own thread, connections and
    /// sockets, as Linux's `SO_REUSEPORT` shares a port out: an application serves each (a
    /// listener on every queue, a loop per queue). The kernel hands each flow to the queue
    /// that last wrote on it; a frame that lands on another queue is passed on to the one
    /// whose connection or socket takes it, and only if none does is it answered as one
    /// stack would (reset, port unreachable). ARP is shared (every queue learns what any
    /// resolves), ephemeral ports are split between the queues, and IPv6 runs on queue 0
    /// alone (only its sockets bind IPv6 addresses). Each stack's [`StackConfig::queues`]
    /// and [`StackConfig::queue`] say which it is. They share the seed, so that any queue
    /// checks another's SYN cookies; their IP identifications start `65536 / N` apart.
    /// Every limit of `config` (memory, connections, reassembly) is each queue's own.
    pub fn new_queues<D: Device + 'static>(
        devices: Vec<D>,
        config: StackConfig,
    ) -> io::Result<Vec<Stack>> {
        let n = devices.len();
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "no queues"));
        }
        let mut channels = Vec::with_capacity(n);
        let mut queues = Vec::with_capacity(n);
        for _ in 0..n {
            let (tx, rx) = crossbeam_channel::unbounded();
            let wake = Arc::new(WakeFd::new()?);
            queues.push((tx.clone(), wake.clone()));
            channels.push((tx, rx, wake));
        }
        let backlog: Arc<[AtomicUsize]> = (0..n).map(|_| AtomicUsize::new(0)).collect();
        let mut stacks = Vec::with_capacity(n);
        for (index, (device, (tx, rx, wake))) in devices.into_iter().zip(channels).enumerate() {
            let mut cfg = config.clone();
            cfg.queues = n;
            cfg.queue = index;
            let peers = (n > 1).then(|| Peers {
                queues: queues.clone(),
                backlog: backlog.clone(),
                max_backlog: config.passed_backlog,
                index,
            });
            stacks.push(Stack::start(device, cfg, (tx, rx), wake, peers)?);
        }
        Ok(stacks)
    }

    fn start<D: Device + 'static>(
        device: D,
        config: StackConfig,
        channel: (Sender<Command>, Receiver<Command>),
        wake: Arc<WakeFd>,
        peers: Option<Peers>,
    ) -> io::Result<Stack> {
        let (mut stack, st, done_tx) = Stack::build(device, config, channel, wake, peers, None)?;
        stack.thread = Some(
            thread::Builder::new()
                .name("tapstack".into())
                .spawn(move || {
                    // Dropped as the thread ends, after the stack thread's state: wakes `shutdown`.
                    let _done = done_tx;
                    precise_timers();
                    st.run()
                })?,
        );
        Ok(stack)
    }

    /// A stack and the state its loop runs on, not yet running; `done_tx` is to be dropped
    /// when the loop has ended. `driver`: the loop runs as a tokio task.
    fn build<D: Device + 'static>(
        device: D,
        mut config: StackConfig,
        (tx, rx): (Sender<Command>, Receiver<Command>),
        wake: Arc<WakeFd>,
        peers: Option<Peers>,
        driver: Option<Arc<DriverThread>>,
    ) -> io::Result<(Stack, StackThread<D>, ReplyTx<()>)> {
        config.mtu = device.mtu();
        config.medium = device.capabilities().medium;
        // TCP sends super-segments: the device splits them, in its kernel (TSO) or in software
        // at its boundary (`Device::send_tso`), which costs less than segmenting in the core.
        config.tcp.tso = true;
        if config.mtu < 68 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("MTU {} is below the IPv4 minimum of 68", config.mtu),
            ));
        }
        let epoch = std::time::Instant::now();
        // Records made with nowhere to write them would pile up.
        config.tcp.trace &= config.trace.is_some();
        let trace = config.trace.clone();
        if let Some(t) = trace.as_ref().filter(|_| config.queue == 0) {
            t.write_header(std::time::SystemTime::now())?;
        }
        let iface = Interface::new(config.clone(), Instant::ZERO);
        let intercept = iface.intercept_io();
        let gather = device.capabilities().gather;
        let rx_pool = crate::rxbuf::FramePool::new(RX_BUF);
        let busy_poll = match std::thread::available_parallelism() {
            Ok(n) if n.get() > 1 => config.busy_poll.min(crate::config::MAX_BUSY_POLL),
            _ => std::time::Duration::ZERO,
        };
        let (done_tx, done) = reply::<()>();
        let st = StackThread {
            iface,
            device,
            commands: rx,
            wake: wake.clone(),
            epoch,
            waiters: Waiters::default(),
            linger: config.linger,
            busy_poll,
            gather,
            rx: Arc::new(rx_pool.take()),
            rx_pool,
            trace,
            trace_buf: Vec::new(),
            trim: Trim::default(),
            commands_left: false,
            peers,
        };
        let stack = Stack {
            handle: Handle {
                tx,
                wake,
                traces: config.trace.is_some(),
                ttl: config.ttl,
                driver,
            },
            config,
            thread: None,
            done: Some(done),
            intercept,
        };
        Ok((stack, st, done_tx))
    }

    /// The configuration the stack runs with: the one given, with the device's MTU and medium
    /// and TSO on.
    pub fn config(&self) -> &StackConfig {
        &self.config
    }

    /// A snapshot of every counter, the device's (fault injection) included.
    pub fn counters(&self) -> io::Result<Counters> {
        self.may_block()?;
        let (tx, rx) = reply();
        self.handle.send(Command::Counters(tx))?;
        rx.recv().ok_or_else(stopped)
    }

    pub(crate) fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// [`Handle::may_block`] of this stack's handle.
    pub(crate) fn may_block(&self) -> io::Result<()> {
        self.handle.may_block()
    }

    /// The offer queues of catch-all interception, shared with the stack thread.
    pub(crate) fn intercept_io(&self) -> Option<Arc<crate::core::InterceptIo>> {
        self.intercept.clone()
    }
}

impl Stack {
    /// Stops the stack as dropping it does, and waits for its thread (or task) to end without
    /// blocking the caller's executor: the way to stop a stack in async code when its
    /// connections must be closed (their data sent, for at most [`StackConfig::linger`])
    /// before going on.
    pub async fn shutdown(mut self) {
        let _ = self.handle.send(Command::Shutdown);
        if let Some(done) = self.done.take() {
            done.await;
        }
        // The thread has ended or is returning: the join is immediate.
        self.join();
    }

    fn join(&mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                log::error!("the stack thread panicked");
            }
        }
    }
}

impl Drop for Stack {
    /// Stops the stack: its connections are closed, their data sent for at most
    /// [`StackConfig::linger`], and the thread joined. Inside a tokio runtime the thread is
    /// not joined, so that the executor is never blocked: it finishes in the background (use
    /// [`Stack::shutdown`] to wait for it). A stack run as a task is never waited for here:
    /// its task finishes closing while its runtime runs.
    fn drop(&mut self) {
        let _ = self.handle.send(Command::Shutdown);
        if in_async_runtime() && self.thread.is_some() {
            log::debug!(
                "Stack dropped inside a tokio runtime: its thread closes in the background"
            );
            return;
        }
        self.join();
    }
}

/// Whether this thread runs a tokio runtime's tasks, which a wait would stall.
fn in_async_runtime() -> bool {
    #[cfg(feature = "tokio")]
    {
        ::tokio::runtime::Handle::try_current().is_ok()
    }
    #[cfg(not(feature = "tokio"))]
    {
        false
    }
}

/// What the last poll found readable.
#[derive(Clone, Copy)]
pub(crate) struct Ready {
    /// The wakeup eventfd: commands may be queued.
    pub wake: bool,
    /// The device: frames may be waiting.
    pub device: bool,
}

/// What a turn of the loop leaves ([`StackThread::turn`]).
pub(crate) struct Turn {
    /// Frames or commands are left: turn again without waiting.
    pub busy: bool,
    /// Readiness was handed out or frames sent: an answer may follow at once.
    pub active: bool,
}

/// Where a shutdown stands after a turn ([`StackThread::drain_turn`]).
pub(crate) enum Draining {
    /// Every connection finished, or the linger ran out.
    Done,
    /// Frames are left: turn again without waiting.
    Busy,
    /// Wait for frames, commands or the linger's end.
    Idle,
}

pub(crate) struct StackThread<D> {
    iface: Interface,
    device: D,
    commands: Receiver<Command>,
    wake: Arc<WakeFd>,
    epoch: std::time::Instant,
    waiters: Waiters,
    linger: std::time::Duration,
    busy_poll: std::time::Duration,
    /// The device writes a frame in parts ([`crate::phy::DeviceCapabilities::gather`]): a
    /// super-segment's data goes from the send buffer to the device with no copy between.
    gather: bool,
    /// The buffer the next frame is read into: the last one's, unless a connection kept it
    /// (its data queued as it came, [`crate::tcp::buffer::RecvBuffer::adopt`]).
    rx: Arc<crate::rxbuf::RxFrame>,
    /// Where frame buffers come from and go back to.
    rx_pool: Arc<crate::rxbuf::FramePool>,
    /// Where the per-connection trace goes, if anywhere.
    trace: Option<crate::trace::TraceOutput>,
    trace_buf: Vec<crate::tcp::trace::TraceRecord>,
    trim: Trim,
    /// The last turn left commands in the channel ([`COMMAND_BATCH`]): the next one must
    /// not sleep, since the wakeup that announced them was drained.
    commands_left: bool,
    /// The link's other queues, if it has several.
    peers: Option<Peers>,
}

/// Returning freed connection memory to the system: the allocator keeps freed buffers in its
/// heap, so after many connections close, or a few large buffers are freed, the process would
/// keep their pages resident.
#[derive(Default)]
struct Trim {
    /// Connections in the table, and buffer bytes the memory pool holds, at the last trim (or
    /// the most since).
    high: Usage,
    /// The same at the last check.
    current: Usage,
    /// When the allocator was last trimmed.
    last: Option<std::time::Instant>,
}

/// What the connections hold: their number and their buffers' bytes.
#[derive(Clone, Copy, Default)]
struct Usage {
    connections: u64,
    bytes: u64,
}

/// Connections that must have gone since the last trim before the next.
const TRIM_AFTER_CLOSED: u64 = 256;
/// Or buffer bytes that must have been freed since.
const TRIM_AFTER_FREED: u64 = 32 << 20;
/// At most one trim per this long: it walks the allocator's free lists.
const TRIM_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);
/// Timer slack of the stack thread: its sleeps end within this of their deadline (Linux's
/// default, 50 µs, would stretch a paced connection's gaps of tens of microseconds).
#[cfg(not(any(loom, shuttle)))]
const TIMER_SLACK_NS: libc::c_ulong = 1_000;

/// Asks the kernel to wake this thread on time (`PR_SET_TIMERSLACK`), for pacing.
fn precise_timers() {
    #[cfg(not(any(loom, shuttle)))]
    {
        // SAFETY: PR_SET_TIMERSLACK takes one integer argument and touches no memory.
        let r = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, TIMER_SLACK_NS) };
        if r != 0 {
            log::debug!("PR_SET_TIMERSLACK: {}", io::Error::last_os_error());
        }
    }
}

/// The longest the stack thread sleeps without a deadline: it looks around at least this often.
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(60);

impl Trim {
    /// Whether enough has been freed since the last trim for another.
    fn waiting(&self) -> bool {
        self.high
            .connections
            .saturating_sub(self.current.connections)
            >= TRIM_AFTER_CLOSED
            || self.high.bytes.saturating_sub(self.current.bytes) >= TRIM_AFTER_FREED
    }

    /// When a trim put off by its interval is due, if one is.
    fn due(&self) -> Option<std::time::Instant> {
        self.waiting()
            .then(|| self.last.map(|l| l + TRIM_INTERVAL))
            .flatten()
    }

    /// Trims the allocator once many connections or many buffer bytes have gone, at most once
    /// a second.
    fn check(&mut self, now: Usage) {
        self.current = now;
        self.high.connections = self.high.connections.max(now.connections);
        self.high.bytes = self.high.bytes.max(now.bytes);
        if !self.waiting() {
            return;
        }
        let wall = std::time::Instant::now();
        if self
            .last
            .is_some_and(|l| wall.duration_since(l) < TRIM_INTERVAL)
        {
            return;
        }
        self.last = Some(wall);
        self.high = now;
        release_free_memory();
    }
}

/// Gives the allocator's free pages back to the system (glibc's `malloc_trim`).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn release_free_memory() {
    // SAFETY: malloc_trim only walks glibc's own heap under its lock; 0 keeps no padding.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Other allocators return memory on their own terms.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn release_free_memory() {}

impl<D: Device> StackThread<D> {
    fn now(&self) -> Instant {
        Instant::from_micros(self.epoch.elapsed().as_micros() as u64)
    }

    fn run(mut self) {
        let mut ready = Ready {
            wake: true,
            device: true,
        };
        while let Some(turn) = self.turn(ready) {
            ready = if turn.busy {
                // More frames may wait; commands are served on the next turn anyway, and the
                // eventfd is drained after the next poll that finds it readable.
                Ready {
                    wake: false,
                    device: true,
                }
            } else if let Some(r) = turn.active.then(|| self.busy_wait()).flatten() {
                r
            } else {
                // A trim waiting out its interval wakes the thread when it is due.
                self.sleep(self.trim_due())
            };
        }
        let deadline = self.drain_start();
        loop {
            match self.drain_turn(deadline) {
                Draining::Done => break,
                Draining::Busy => {}
                Draining::Idle => {
                    self.sleep(deadline);
                }
            }
        }
        self.drain_end();
    }

    /// One turn of the loop, on what the last wait found `ready`: commands served, a batch
    /// of frames read, timers run, readiness handed out and frames sent. `None` once the
    /// stack is told to stop (then it drains).
    pub(crate) fn turn(&mut self, ready: Ready) -> Option<Turn> {
        if ready.wake {
            self.wake.drain();
        }
        let now = self.now();
        if !self.serve_commands(now) {
            return None;
        }
        let busy = ready.device && self.receive_batch(now);
        self.iface.poll(now);
        if let Err(e) = self.device.poll(now) {
            log::warn!("device: {e}");
        }
        // Readiness handed to applications or frames sent: an answer may follow at once.
        let mut active = self.dispatch_events(now);
        self.waiters
            .expire(&mut self.iface, now, std::time::Instant::now());
        active |= self.dispatch_events(now);
        active |= self.transmit(now);
        self.write_trace();
        self.trim.check(Usage {
            connections: self.iface.tcp().table_len(),
            bytes: self.iface.tcp().memory().allocated() as u64,
        });
        Some(Turn {
            busy: busy || self.commands_left,
            active,
        })
    }

    /// When the loop must look again with nothing come: the next timer, a parked call's
    /// deadline or `cap`, whichever is first, and at the latest [`MAX_SLEEP`] from now. To
    /// the microsecond: a paced connection's next release may be microseconds away.
    pub(crate) fn deadline(&self, cap: Option<std::time::Instant>) -> std::time::Instant {
        let now = self.now();
        let base = std::time::Instant::now();
        let timer = earliest(self.iface.poll_at(), self.device.poll_at()).map(|t| base + (t - now));
        let first = earliest(earliest(timer, self.waiters.next_deadline()), cap);
        first.map_or(base + MAX_SLEEP, |t| t.min(base + MAX_SLEEP))
    }

    /// How long the loop looks for an answer before it waits ([`StackConfig::busy_poll`]).
    #[cfg(feature = "tokio")]
    pub(crate) fn busy_poll(&self) -> std::time::Duration {
        self.busy_poll
    }

    /// Whether commands are queued.
    pub(crate) fn has_commands(&self) -> bool {
        !self.commands.is_empty()
    }

    /// Whether the device holds frames due now (the fault injector's), to be read with no
    /// readiness of its descriptor.
    pub(crate) fn device_due(&self) -> bool {
        self.device.poll_at().is_some_and(|t| t <= self.now())
    }

    /// When a trim waiting out its interval is due.
    pub(crate) fn trim_due(&self) -> Option<std::time::Instant> {
        self.trim.due()
    }

    /// The descriptors the loop waits on: its wakeup eventfd and the device's, if it has one.
    pub(crate) fn fds(&self) -> (std::os::fd::RawFd, Option<std::os::fd::RawFd>) {
        (self.wake.raw_fd(), self.device.poll_fd())
    }

    /// Shutdown, first step: parked calls fail with `NotConnected`, and open connections get
    /// a FIN. Returns the end of their `linger` (`None`: no end).
    pub(crate) fn drain_start(&mut self) -> Option<std::time::Instant> {
        self.iface.udp_stop();
        self.waiters.fail_all();
        // A linger too long to represent has no deadline: the connections end when they do.
        let deadline = std::time::Instant::now().checked_add(self.linger);
        let now = self.now();
        self.iface
            .with_tcp(now, |tcp, stats| tcp.shutdown_all(now, stats));
        deadline
    }

    /// Shutdown, a turn while the connections finish: commands answered as a stopped stack
    /// answers them, frames read and sent.
    pub(crate) fn drain_turn(&mut self, deadline: Option<std::time::Instant>) -> Draining {
        self.wake.drain();
        let now = self.now();
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Posted(p) => self.serve_posted(now, p),
                Command::Close(id) => self.iface.close_socket(now, id),
                Command::Reset(id) => self.reset(now, id),
                // A watcher registered now is called at once: its socket's calls fail.
                Command::Watch(_, Some(w)) => w(),
                Command::Watch(_, None) => {}
                // Dropping the call's reply channel answers it with `NotConnected`.
                Command::Wait(_) | Command::Start(_) | Command::Counters(_) | Command::Shutdown => {
                }
            }
        }
        let busy = self.receive_batch(now);
        self.iface.poll(now);
        while self.iface.pop_event().is_some() {}
        self.transmit(now);
        self.write_trace();
        if self.iface.tcp().quiescent() || deadline.is_some_and(|d| std::time::Instant::now() >= d)
        {
            Draining::Done
        } else if busy {
            Draining::Busy
        } else {
            Draining::Idle
        }
    }

    /// Shutdown, last step: what is still open is reset.
    pub(crate) fn drain_end(&mut self) {
        let now = self.now();
        self.iface
            .with_tcp(now, |tcp, stats| tcp.abort_all(now, stats));
        self.transmit(now);
        self.write_trace();
    }

    /// Writes the trace records made since the last call; after a write error they are
    /// dropped, not kept.
    fn write_trace(&mut self) {
        self.iface.take_trace(&mut self.trace_buf);
        if self.trace_buf.is_empty() {
            return;
        }
        if let Some(out) = &self.trace {
            if let Err(e) = out.write(&self.trace_buf) {
                log::warn!("trace: {e}; no more trace is written");
                self.trace = None;
            }
        }
        self.trace_buf.clear();
    }

    /// Resets connection `id` and forgets it (a close with a zero linger).
    fn reset(&mut self, now: Instant, id: SocketId) {
        self.iface
            .with_tcp(now, |tcp, stats| tcp.reset(id, now, stats));
    }

    /// Handles queued commands; false on shutdown.
    fn serve_commands(&mut self, now: Instant) -> bool {
        self.commands_left = false;
        let mut served = 0;
        loop {
            if served == COMMAND_BATCH {
                self.commands_left = true;
                return true;
            }
            served += 1;
            match self.commands.try_recv() {
                Ok(Command::Posted(p)) => self.serve_posted(now, p),
                Ok(Command::Wait(w)) => self.waiters.add(&mut self.iface, now, w),
                Ok(Command::Start(start)) => {
                    if let Some(w) = start(&mut self.iface, now) {
                        self.waiters.add(&mut self.iface, now, w);
                    }
                }
                Ok(Command::Watch(id, w)) => self.waiters.watch(id, w),
                Ok(Command::Reset(id)) => {
                    self.reset(now, id);
                    self.waiters.closed(&mut self.iface, now, id);
                }
                Ok(Command::Close(id)) => {
                    self.iface.close_socket(now, id);
                    self.waiters.closed(&mut self.iface, now, id);
                }
                Ok(Command::Counters(mut reply)) => {
                    let mut c = self.iface.counters();
                    self.device.add_counters(&mut c);
                    reply.send(c);
                }
                Ok(Command::Shutdown) | Err(TryRecvError::Disconnected) => return false,
                Err(TryRecvError::Empty) => return true,
            }
        }
    }

    /// Serves a job, a poke, a posted datagram or a frame passed on by another queue.
    fn serve_posted(&mut self, now: Instant, p: Posted) {
        match p {
            Posted::Exec(job) => job(&mut self.iface, now),
            Posted::Poke(id) => self.iface.with_tcp(now, |tcp, st| tcp.poke(id, now, st)),
            Posted::UdpSend {
                id,
                data,
                dst,
                segment,
            } => self.iface.udp_send_posted(now, id, data, dst, segment),
            Posted::Passed {
                frame,
                hops,
                copy,
                verified,
            } => self.take_passed(now, frame, hops, copy, verified),
        }
    }

    /// Reads up to a batch of frames; true if the batch filled (more may be waiting).
    fn receive_batch(&mut self, now: Instant) -> bool {
        for _ in 0..RX_BATCH {
            // Into the last frame's buffer, unless a connection kept it.
            let buf = crate::rxbuf::writable(&mut self.rx, &self.rx_pool);
            match self.device.recv(now, buf.bytes_mut()) {
                Ok(Some(n)) => {
                    let verified = RxChecksums {
                        transport: self.device.rx_checksum_verified(),
                    };
                    self.iface.receive_frame(now, &self.rx, n, verified);
                    let verdict = self.iface.take_pass_on();
                    if verdict != PassOn::Keep {
                        let (frame, verified) = match self.iface.take_rebuilt() {
                            Some(datagram) => rebuilt(datagram),
                            None => (self.rx.bytes()[..n].to_vec(), verified.transport),
                        };
                        self.pass_on(verdict, frame, 0, verified);
                    }
                }
                Ok(None) => return false,
                Err(e) => {
                    log::warn!("device receive: {e}");
                    return false;
                }
            }
        }
        true
    }

    /// Passes a frame no connection or socket here took to the next queue, or an ARP
    /// message to every other queue ([`crate::core::PassOn`]).
    fn pass_on(&mut self, verdict: PassOn, frame: Vec<u8>, hops: usize, verified: bool) {
        let Some(peers) = &self.peers else {
            return;
        };
        let dropped = match verdict {
            PassOn::Keep => 0,
            PassOn::Next => {
                u64::from(!peers.pass(peers.index + 1, frame, hops + 1, false, verified))
            }
            PassOn::Everyone => (1..peers.queues.len())
                .filter(|k| !peers.pass(peers.index + k, frame.clone(), 0, true, verified))
                .count() as u64,
        };
        self.iface.count_pass_dropped(dropped);
    }

    /// Takes a frame another queue passed on; passes it further if nothing here takes it.
    fn take_passed(
        &mut self,
        now: Instant,
        frame: Vec<u8>,
        hops: usize,
        copy: bool,
        verified: bool,
    ) {
        if let Some(peers) = &self.peers {
            peers.taken(frame.len());
        }
        if copy {
            self.iface.receive_neighbour_copy(now, &frame);
            return;
        }
        self.iface.receive_passed(now, &frame, hops, verified);
        let verdict = self.iface.take_pass_on();
        if verdict != PassOn::Keep {
            let (frame, verified) = self.iface.take_rebuilt().map_or((frame, verified), rebuilt);
            self.pass_on(verdict, frame, hops, verified);
        }
    }

    /// Hands readiness to the parked calls; true if there was any.
    fn dispatch_events(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(event) = self.iface.pop_event() {
            any = true;
            match event {
                Event::Ready(id) => self.waiters.ready(&mut self.iface, now, id),
            }
        }
        any
    }

    /// Spins up to `busy_poll` for a command from the application threads just woken, or a
    /// frame from the peer just sent to; what came, if anything. A request answered at once
    /// (an echo, an HTTP response, the next request) then costs no sleep and wakeup of this
    /// thread, and a frame arriving meanwhile is not kept waiting behind the spin.
    fn busy_wait(&self) -> Option<Ready> {
        if self.busy_poll.is_zero() {
            return None;
        }
        let start = std::time::Instant::now();
        loop {
            // Both are looked at each time, so that a stream of commands (a writer's pokes)
            // never keeps waiting frames unread.
            let command = self.has_commands();
            // As `sleep` decides: a device without a descriptor, or with frames it holds until
            // a time of its own (the fault injector's reordering), is read when it may have one.
            let frame = self.device_due()
                || self.device.poll_fd().is_none_or(|fd| {
                    let mut pfd = [libc::pollfd {
                        fd,
                        events: libc::POLLIN,
                        revents: 0,
                    }];
                    // A zero timeout never blocks.
                    crate::phy::wake::poll(&mut pfd, std::time::Duration::ZERO) > 0
                });
            if command || frame {
                return Some(Ready {
                    wake: false,
                    device: frame,
                });
            }
            if start.elapsed() >= self.busy_poll {
                return None;
            }
            std::hint::spin_loop();
        }
    }

    /// Sends every queued frame; true if there was any.
    fn transmit(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(mut frame) = self.iface.pop_transmit_parts() {
            any = true;
            let sent = match frame.payload.take() {
                // The headers, then the data straight from the send buffer.
                Some(data) if self.gather => {
                    let (device, head, mss) = (&mut self.device, &frame.bytes, frame.tso_mss);
                    data.with_slices(|a, b| device.send_gather(now, head, [a, b], mss))
                }
                // Gathered behind the headers: the one copy a device without `gather` needs.
                Some(data) => data
                    .gather_into(&mut frame.bytes)
                    .then(|| send_frame(&mut self.device, now, &frame.bytes, frame.tso_mss)),
                None => Some(send_frame(
                    &mut self.device,
                    now,
                    &frame.bytes,
                    frame.tso_mss,
                )),
            };
            let sent = sent.unwrap_or_else(|| {
                self.iface.count_stale_payload();
                Ok(())
            });
            if let Err(e) = sent {
                self.iface.count_tx_error();
                log::debug!("device send: {e}");
            }
            self.iface.recycle(frame.bytes);
        }
        any
    }

    /// Blocks until the device or a command needs us, the next deadline, or `cap`; says which
    /// of the two to look at, so that neither costs a system call when it has nothing.
    fn sleep(&mut self, cap: Option<std::time::Instant>) -> Ready {
        let timeout = self
            .deadline(cap)
            .saturating_duration_since(std::time::Instant::now());
        let (wake, device) = self.fds();
        let mut fds = [
            libc::pollfd {
                fd: wake,
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: device.unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let n = crate::phy::wake::poll(&mut fds, timeout);
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                log::warn!("poll: {e}");
            }
        }
        // A device without a descriptor, or with timed work of its own (held frames), is
        // read whenever it may have something; a timeout or an error looks at everything.
        Ready {
            wake: n <= 0 || fds[0].revents != 0,
            device: n <= 0 || fds[1].revents != 0 || device.is_none() || self.device_due(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_passed_to_a_queue_that_takes_none_stop_at_its_backlog() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let peers = Peers {
            queues: vec![(tx, Arc::new(WakeFd::new().unwrap()))],
            backlog: (0..1).map(|_| AtomicUsize::new(0)).collect(),
            max_backlog: 1 << 20,
            index: 0,
        };
        let frame = vec![0u8; 64 * 1024];
        let passed = (0..100)
            .take_while(|_| peers.pass(0, frame.clone(), 1, false, false))
            .count();
        let cost = frame.len() + crate::config::PASSED_FRAME_OVERHEAD;
        assert_eq!(passed, (1 << 20) / cost);
        assert_eq!(rx.len(), passed, "the refused ones were not queued");
        peers.taken(frame.len());
        assert!(peers.pass(0, frame.clone(), 1, false, false), "room again");
        assert!(!peers.pass(0, frame.clone(), 1, false, false));
        drop(rx);
        for _ in 0..passed {
            peers.taken(frame.len());
        }
        assert_eq!(peers.backlog[0].load(Ordering::Relaxed), 0);
        assert!(
            !peers.pass(0, frame, 1, false, false),
            "a queue that stopped takes nothing"
        );
    }
}
