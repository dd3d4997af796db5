//! Benchmark tool over kernel sockets (`std::net` only), so one client measures both tapstack
//! and the kernel's own TCP. `client` runs one bounded test against echo (7), discard (9) or
//! chargen (19) and prints one `key=value` line; `serve` runs those services on kernel sockets.

use clap::{Parser, Subcommand, ValueEnum};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::ExitCode;
use std::thread;
use std::time::{Duration, Instant};

/// Connect, read and write timeout of every socket: no test can hang.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle timeout of server connections, so abandoned ones end.
const SERVER_IDLE: Duration = Duration::from_secs(60);

#[derive(Parser, Debug)]
#[command(
    version,
    about = "TCP benchmark client and kernel-side servers for tapstack"
)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run one test against a host serving echo (7), discard (9) and chargen (19)
    Client {
        /// Address of the server
        #[arg(long)]
        host: IpAddr,
        /// Duration of the test in seconds
        #[arg(long, default_value_t = 5.0)]
        secs: f64,
        /// Bytes per write (send), per read (recv) or per message (rr, crr, hold)
        /// [default: 131072 for send and recv, 1 for rr and crr, 1024 for hold]
        #[arg(long)]
        size: Option<usize>,
        /// Connections opened by `connect` and held by `hold` [default: 1000, 10000]
        #[arg(long)]
        conns: Option<usize>,
        /// The server's process id: `hold` reports its resident memory and threads
        #[arg(long)]
        server_pid: Option<u32>,
        test: Test,
    },
    /// The host's floor for anything that crosses threads: the round trip of two threads
    /// waking each other (futex, as the stack's threads do), on two CPUs and on one
    Wakeup {
        /// Round trips measured in each placement
        #[arg(long, default_value_t = 20_000)]
        rounds: usize,
    },
    /// Serve echo (7), discard (9) and chargen (19) over kernel TCP until killed
    Serve {
        /// Address to bind
        #[arg(long, default_value = "0.0.0.0")]
        addr: IpAddr,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Test {
    /// Stream to discard (9): client → server MB/s
    Send,
    /// Read from chargen (19): server → client MB/s, checking the RFC 864 pattern
    Recv,
    /// Request/response on echo (7) with TCP_NODELAY: latency and transactions/s
    Rr,
    /// Connect, one echo, close, repeatedly: connections/s
    Crr,
    /// Open connections to echo (7) back to back and keep them: time, SYNs retransmitted
    Connect,
    /// Hold many connections to echo (7) at once, each echoing one message: time, memory
    Hold,
    /// Datagrams to UDP echo (7), 64 unanswered at most: echoed MB/s and datagrams/s, lost
    Udp,
}

/// An error with what was being done, for the one-line report.
fn ctx(what: &'static str) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn connect(addr: SocketAddr) -> io::Result<TcpStream> {
    let s = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(ctx("connect"))?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

fn mbps(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / elapsed.as_secs_f64() / 1e6
}

/// Writes for `secs`, then half-closes and waits for the server's EOF, so the time covers every
/// byte the server read, not bytes left in the send buffer.
fn send(addr: SocketAddr, secs: Duration, size: usize) -> io::Result<String> {
    let mut s = connect(addr)?;
    let buf = vec![b'x'; size];
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < secs {
        s.write_all(&buf).map_err(ctx("write"))?;
        bytes += size as u64;
    }
    s.shutdown(Shutdown::Write).map_err(ctx("shutdown"))?;
    let mut rest = [0u8; 64];
    if s.read(&mut rest)
        .map_err(ctx("waiting for the server's EOF"))?
        != 0
    {
        return Err(io::Error::other("discard server sent data"));
    }
    let elapsed = start.elapsed();
    Ok(format!(
        "send_mbps={:.1} bytes={bytes} secs={:.2}",
        mbps(bytes, elapsed),
        elapsed.as_secs_f64()
    ))
}

/// Reads chargen for `secs`, checking every byte against the RFC 864 stream.
fn recv(addr: SocketAddr, secs: Duration, size: usize) -> io::Result<String> {
    let mut s = connect(addr)?;
    let block = tapstack::cli::chargen_cycle();
    let mut buf = vec![0u8; size];
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed() < secs {
        let n = s.read(&mut buf).map_err(ctx("read"))?;
        if n == 0 {
            return Err(io::Error::new(ErrorKind::UnexpectedEof, "chargen closed"));
        }
        let mut done = 0;
        while done < n {
            let at = ((bytes + done as u64) % block.len() as u64) as usize;
            let len = (n - done).min(block.len() - at);
            if buf[done..done + len] != block[at..at + len] {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    format!("chargen stream differs near byte {}", bytes + done as u64),
                ));
            }
            done += len;
        }
        bytes += n as u64;
    }
    let elapsed = start.elapsed();
    Ok(format!(
        "recv_mbps={:.1} bytes={bytes} secs={:.2}",
        mbps(bytes, elapsed),
        elapsed.as_secs_f64()
    ))
}

/// One request of `req.len()` bytes and its echo.
fn transact(s: &mut TcpStream, req: &[u8], resp: &mut [u8]) -> io::Result<()> {
    s.write_all(req).map_err(ctx("write"))?;
    s.read_exact(resp).map_err(ctx("read echo"))?;
    if resp != req {
        return Err(io::Error::new(ErrorKind::InvalidData, "echo differs"));
    }
    Ok(())
}

/// Latency histogram in bounded memory: 100 ns buckets below 1 ms, 10 µs buckets up to 1 s,
/// then one bucket for anything slower (reported as the slowest sample seen).
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: Duration,
}

impl Histogram {
    const FINE: u64 = 10_000; // 100 ns each, up to 1 ms
    const COARSE: u64 = 99_900; // 10 µs each, up to 1 s

    fn new() -> Self {
        let len = (Self::FINE + Self::COARSE + 1) as usize;
        Histogram {
            counts: vec![0; len],
            total: 0,
            max: Duration::ZERO,
        }
    }

    fn record(&mut self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = if ns < 1_000_000 {
            ns / 100
        } else {
            (Self::FINE + (ns - 1_000_000) / 10_000).min(Self::FINE + Self::COARSE)
        };
        self.counts[i as usize] += 1;
        self.total += 1;
        self.max = self.max.max(d);
    }

    /// Upper edge of the bucket holding the `p`-th percentile (nearest rank), in µs.
    fn percentile_us(&self, p: f64) -> f64 {
        let rank = ((p / 100.0) * self.total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                let i = i as u64;
                return match i {
                    _ if i < Self::FINE => (i + 1) as f64 * 0.1,
                    _ if i < Self::FINE + Self::COARSE => {
                        1000.0 + (i - Self::FINE + 1) as f64 * 10.0
                    }
                    _ => self.max.as_secs_f64() * 1e6,
                };
            }
        }
        self.max.as_secs_f64() * 1e6
    }
}

fn rr(addr: SocketAddr, secs: Duration, size: usize) -> io::Result<String> {
    let mut s = connect(addr)?;
    s.set_nodelay(true)?;
    let req = vec![b'r'; size];
    let mut resp = vec![0u8; size];
    let mut hist = Histogram::new();
    let start = Instant::now();
    while start.elapsed() < secs {
        let t = Instant::now();
        transact(&mut s, &req, &mut resp)?;
        hist.record(t.elapsed());
    }
    let elapsed = start.elapsed();
    Ok(format!(
        "rr_p50_us={:.1} rr_p99_us={:.1} rr_tps={:.0} count={} max_us={:.0}",
        hist.percentile_us(50.0),
        hist.percentile_us(99.0),
        hist.total as f64 / elapsed.as_secs_f64(),
        hist.total,
        hist.max.as_secs_f64() * 1e6
    ))
}

/// Each connection: connect, one echo, half-close, wait for the server's EOF, close.
fn crr(addr: SocketAddr, secs: Duration, size: usize) -> io::Result<String> {
    let req = vec![b'c'; size];
    let mut resp = vec![0u8; size];
    let mut count = 0u64;
    let start = Instant::now();
    while start.elapsed() < secs {
        let mut s = connect(addr)?;
        s.set_nodelay(true)?;
        transact(&mut s, &req, &mut resp)?;
        s.shutdown(Shutdown::Write).map_err(ctx("shutdown"))?;
        if s.read(&mut resp)
            .map_err(ctx("waiting for the server's EOF"))?
            != 0
        {
            return Err(io::Error::other("echo server sent extra data"));
        }
        count += 1;
    }
    let elapsed = start.elapsed();
    Ok(format!(
        "crr_cps={:.0} count={count} secs={:.2}",
        count as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64()
    ))
}

/// The kernel's count of retransmitted SYNs in this network namespace (`TCPSynRetrans`).
fn syn_retransmits() -> io::Result<u64> {
    let text = std::fs::read_to_string("/proc/net/netstat")?;
    let mut lines = text.lines().filter(|l| l.starts_with("TcpExt:"));
    let (names, values) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "TCPSynRetrans")
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| io::Error::other("no TCPSynRetrans in /proc/net/netstat"))
}

/// Lets this process hold `n` descriptors.
fn allow_descriptors(n: usize) -> io::Result<()> {
    let want = n as libc::rlim_t;
    // SAFETY: getrlimit/setrlimit with a live rlimit struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Err(io::Error::last_os_error());
        }
        if lim.rlim_cur < want {
            lim.rlim_cur = want.min(lim.rlim_max);
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                return Err(io::Error::last_os_error());
            }
        }
        if lim.rlim_cur < want {
            return Err(io::Error::other(format!(
                "only {} descriptors allowed",
                lim.rlim_cur
            )));
        }
    }
    Ok(())
}

/// Opens `n` connections one after another and keeps them open until all are up.
fn connect_burst(addr: SocketAddr, n: usize) -> io::Result<String> {
    allow_descriptors(n + 64)?;
    let retrans = syn_retransmits()?;
    let start = Instant::now();
    let conns = (0..n)
        .map(|_| connect(addr))
        .collect::<io::Result<Vec<_>>>()?;
    let elapsed = start.elapsed();
    let retrans = syn_retransmits()? - retrans;
    drop(conns);
    Ok(format!(
        "connect_ms={:.1} connect_syn_retrans={retrans} conns={n}",
        elapsed.as_secs_f64() * 1e3
    ))
}

/// `VmRSS` (KiB) and `Threads` of process `pid`.
fn memory_of(pid: u32) -> io::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok((field("VmRSS:"), field("Threads:")))
}

/// The message connection `i` sends: its number, then a pattern.
fn hold_message(i: usize, size: usize) -> Vec<u8> {
    (0..size)
        .map(|k| (i.wrapping_mul(131).wrapping_add(k * 7) % 251) as u8)
        .collect()
}

/// Opens `n` connections and holds them all; then each sends one message and every echo is
/// awaited at once (poll) and checked. Reports the time to connect and to echo, and the
/// server's memory before and with all connections open.
fn hold(addr: SocketAddr, n: usize, size: usize, server: Option<u32>) -> io::Result<String> {
    allow_descriptors(n + 64)?;
    let before = server.map(memory_of).transpose()?;
    let start = Instant::now();
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(connect(addr)?);
    }
    let connected = start.elapsed();
    for (i, s) in conns.iter_mut().enumerate() {
        s.write_all(&hold_message(i, size)).map_err(ctx("write"))?;
    }
    for s in &conns {
        s.set_nonblocking(true)?;
    }
    let mut got = vec![0usize; n];
    let mut waiting: Vec<usize> = (0..n).collect();
    let mut buf = vec![0u8; size.max(1)];
    let deadline = Instant::now() + Duration::from_secs(60);
    while !waiting.is_empty() {
        if Instant::now() > deadline {
            return Err(io::Error::new(
                ErrorKind::TimedOut,
                format!("{} of {n} echoes missing after 60 s", waiting.len()),
            ));
        }
        let mut fds: Vec<libc::pollfd> = waiting
            .iter()
            .map(|&i| libc::pollfd {
                fd: std::os::fd::AsRawFd::as_raw_fd(&conns[i]),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of pollfd of the given length.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 1000) };
        let mut still = Vec::with_capacity(waiting.len());
        for (&i, fd) in waiting.iter().zip(&fds) {
            if fd.revents != 0 {
                match conns[i].read(&mut buf[..size - got[i]]) {
                    Ok(0) => return Err(io::Error::other("echo server closed a connection")),
                    Ok(k) => {
                        let want = hold_message(i, size);
                        if buf[..k] != want[got[i]..got[i] + k] {
                            return Err(io::Error::new(ErrorKind::InvalidData, "echo differs"));
                        }
                        got[i] += k;
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                    Err(e) => return Err(ctx("read echo")(e)),
                }
            }
            if got[i] < size {
                still.push(i);
            }
        }
        waiting = still;
    }
    let total = start.elapsed();
    let mut out = format!(
        "hold_conns={n} hold_connect_s={:.2} hold_echo_s={:.2}",
        connected.as_secs_f64(),
        (total - connected).as_secs_f64()
    );
    if let (Some(pid), Some((idle, _))) = (server, before) {
        let (peak, threads) = memory_of(pid)?;
        out += &format!(
            " hold_rss_idle_kb={idle} hold_rss_kb={peak} hold_threads={threads} hold_kb_per_conn={:.1}",
            peak.saturating_sub(idle) as f64 / n as f64
        );
    }
    drop(conns);
    Ok(out)
}

fn client(
    host: IpAddr,
    secs: f64,
    size: Option<usize>,
    conns: Option<usize>,
    server: Option<u32>,
    test: Test,
) -> io::Result<String> {
    if !(secs.is_finite() && secs > 0.0 && secs <= 3600.0) {
        return Err(io::Error::other("--secs must be in (0, 3600]"));
    }
    let secs = Duration::from_secs_f64(secs);
    let (port, default_size) = match test {
        Test::Send => (9, 128 * 1024),
        Test::Recv => (19, 128 * 1024),
        Test::Rr | Test::Crr | Test::Connect => (7, 1),
        Test::Hold => (7, 1024),
        Test::Udp => (7, 1400),
    };
    let size = size.unwrap_or(default_size);
    if size == 0 || size > 64 << 20 {
        return Err(io::Error::other("--size must be in 1..=64 MiB"));
    }
    let addr = SocketAddr::new(host, port);
    match test {
        Test::Send => send(addr, secs, size),
        Test::Recv => recv(addr, secs, size),
        Test::Rr => rr(addr, secs, size),
        Test::Crr => crr(addr, secs, size),
        Test::Connect => connect_burst(addr, conns.unwrap_or(1000)),
        Test::Hold => hold(addr, conns.unwrap_or(10_000), size, server),
        Test::Udp => udp(addr, secs, size),
    }
}

/// Datagrams the `udp` test keeps unanswered at most.
const UDP_WINDOW: u64 = 64;
/// How long the `udp` test waits for an echo before it counts those unanswered as lost.
const UDP_LOST_AFTER: Duration = Duration::from_millis(100);

/// Datagrams of `size` bytes to UDP echo for `secs`, at most [`UDP_WINDOW`] unanswered at
/// once; each carries its number and must come back whole. Those still unanswered after
/// [`UDP_LOST_AFTER`] without any echo count as lost, and as many new ones go out.
fn udp(addr: SocketAddr, secs: Duration, size: usize) -> io::Result<String> {
    if !(8..=65_507).contains(&size) {
        return Err(io::Error::other("--size must be in 8..=65507 for udp"));
    }
    let any: SocketAddr = match addr {
        SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
        SocketAddr::V6(_) => ([0u16; 8], 0).into(),
    };
    let s = UdpSocket::bind(any).map_err(ctx("bind"))?;
    s.connect(addr).map_err(ctx("connect"))?;
    s.set_read_timeout(Some(UDP_LOST_AFTER))?;
    let mut out: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut back = vec![0u8; size + 1];
    let (mut next, mut outstanding, mut lost, mut echoed) = (0u64, 0u64, 0u64, 0u64);
    let start = Instant::now();
    while start.elapsed() < secs {
        while outstanding < UDP_WINDOW {
            out[..8].copy_from_slice(&next.to_le_bytes());
            s.send(&out).map_err(ctx("send"))?;
            next += 1;
            outstanding += 1;
        }
        match s.recv(&mut back) {
            Ok(n) => {
                let number = u64::from_le_bytes(back[..8].try_into().unwrap_or_default());
                if n != size || number >= next || back[8..n] != out[8..] {
                    return Err(io::Error::other("an echo differs from what was sent"));
                }
                outstanding = outstanding.saturating_sub(1);
                echoed += 1;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                lost += outstanding;
                outstanding = 0;
            }
            Err(e) => return Err(ctx("recv")(e)),
        }
    }
    let elapsed = start.elapsed();
    Ok(format!(
        "udp_mbps={:.1} udp_dps={:.0} udp_echoed={echoed} udp_lost={lost} bytes={} secs={:.2}",
        mbps(echoed * size as u64, elapsed),
        echoed as f64 / elapsed.as_secs_f64(),
        echoed * size as u64,
        elapsed.as_secs_f64()
    ))
}

/// A kernel-side service on one accepted connection.
type Handler = fn(TcpStream) -> io::Result<()>;

fn echo(mut s: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match s.read(&mut buf)? {
            0 => return Ok(()),
            n => s.write_all(&buf[..n])?,
        }
    }
}

fn discard(mut s: TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    while s.read(&mut buf)? > 0 {}
    Ok(())
}

fn chargen(mut s: TcpStream) -> io::Result<()> {
    // Whole cycles, about 64 KiB per write, as echo-server writes them.
    let cycle = tapstack::cli::chargen_cycle();
    let block = cycle.repeat(65536 / cycle.len());
    loop {
        s.write_all(&block)?;
    }
}

/// Accepts on `listener` forever, a thread per connection, like echo-server.
fn accept_loop(listener: TcpListener, name: &'static str, handler: Handler) {
    for conn in listener.incoming() {
        let s = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tapbench serve: {name} accept: {e}");
                continue;
            }
        };
        thread::spawn(move || {
            let setup = s
                .set_read_timeout(Some(SERVER_IDLE))
                .and_then(|()| s.set_write_timeout(Some(SERVER_IDLE)));
            // Peers closing mid-stream (chargen, timeouts) are the normal end of a test.
            let _ = setup.and_then(|()| handler(s));
        });
    }
}

fn serve(addr: IpAddr) -> io::Result<()> {
    // Room for the `hold` test's 10 000 connections.
    allow_descriptors(20_000)?;
    let services: [(u16, &'static str, Handler); 3] = [
        (7, "echo", echo),
        (9, "discard", discard),
        (19, "chargen", chargen),
    ];
    let mut workers = Vec::new();
    for (port, name, handler) in services {
        let listener = TcpListener::bind((addr, port)).map_err(ctx("bind"))?;
        // std listens with a backlog of 128; a server under a burst of connects asks for the
        // most (Linux caps it at somaxconn, 4096), as tapstack's listeners have by default.
        // SAFETY: listen on a descriptor the listener owns; calling it again sets the backlog.
        if unsafe { libc::listen(std::os::fd::AsRawFd::as_raw_fd(&listener), 4096) } != 0 {
            return Err(ctx("listen")(io::Error::last_os_error()));
        }
        workers.push(thread::spawn(move || accept_loop(listener, name, handler)));
    }
    let udp_echo = UdpSocket::bind((addr, 7)).map_err(ctx("bind udp"))?;
    workers.push(thread::spawn(move || {
        let mut buf = vec![0u8; 65_536];
        while let Ok((n, from)) = udp_echo.recv_from(&mut buf) {
            let _ = udp_echo.send_to(&buf[..n], from);
        }
    }));
    println!(
        "tapbench serve: listening on {addr}: echo 7, discard 9, chargen 19 (kernel tcp), echo 7 (kernel udp)"
    );
    io::stdout().flush()?;
    for w in workers {
        let _ = w.join();
    }
    Ok(())
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) -> io::Result<()> {
    // SAFETY: the set is a plain bit mask, zeroed, then one bit set; sched_setaffinity(0)
    // only reads it.
    let r = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// The median round trip, in microseconds, of two threads on CPUs `a` and `b` waking each
/// other in turn `rounds` times (park and unpark: a futex wait and wake each way, no spin).
fn ping_pong(a: usize, b: usize, rounds: usize) -> io::Result<f64> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    // Even: the main thread's turn to send; odd: the peer's.
    let turn = Arc::new(AtomicUsize::new(0));
    let main = thread::current();
    let peer = {
        let turn = turn.clone();
        thread::spawn(move || -> io::Result<()> {
            pin_to(b)?;
            for i in 0..rounds {
                while turn.load(Ordering::Acquire) != 2 * i + 1 {
                    thread::park();
                }
                turn.store(2 * i + 2, Ordering::Release);
                main.unpark();
            }
            Ok(())
        })
    };
    pin_to(a)?;
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let start = Instant::now();
        turn.store(2 * i + 1, Ordering::Release);
        peer.thread().unpark();
        while turn.load(Ordering::Acquire) != 2 * i + 2 {
            thread::park();
        }
        times.push(start.elapsed());
    }
    peer.join()
        .map_err(|_| io::Error::other("the peer thread panicked"))??;
    times.sort_unstable();
    Ok(times[rounds / 2].as_secs_f64() * 1e6)
}

/// The CPUs this process may run on.
fn allowed_cpus() -> io::Result<Vec<usize>> {
    // SAFETY: sched_getaffinity(0) writes at most `size_of::<cpu_set_t>()` bytes into `set`;
    // CPU_ISSET only reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect())
    }
}

/// The wakeup floor: the median round trip with the two threads on two CPUs (every wakeup
/// crosses CPUs: an inter-processor interrupt, costly in a VM), and on one CPU alone.
fn wakeup(rounds: usize) -> io::Result<String> {
    let rounds = rounds.max(1);
    let cpus = allowed_cpus()?;
    let (first, second) = match cpus[..] {
        [] => return Err(io::Error::other("no CPU allowed")),
        [a] => (a, None),
        [a, b, ..] => (a, Some(b)),
    };
    let cross = if let Some(second) = second {
        let us = thread::spawn(move || ping_pong(first, second, rounds))
            .join()
            .map_err(|_| io::Error::other("the measuring thread panicked"))??;
        format!("{us:.1}")
    } else {
        "-".to_string()
    };
    let same = thread::spawn(move || ping_pong(first, first, rounds))
        .join()
        .map_err(|_| io::Error::other("the measuring thread panicked"))??;
    Ok(format!(
        "wakeup_cross_us={cross} wakeup_same_us={same:.1} rounds={rounds}"
    ))
}

fn main() -> ExitCode {
    let result = match Args::parse().cmd {
        Cmd::Client {
            host,
            secs,
            size,
            conns,
            server_pid,
            test,
        } => client(host, secs, size, conns, server_pid, test).map(|line| println!("{line}")),
        Cmd::Wakeup { rounds } => wakeup(rounds).map(|line| println!("{line}")),
        Cmd::Serve { addr } => serve(addr),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tapbench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every round trip completes (a lost wakeup would hang the test; the waits re-check the
    /// turn, so none can be lost), in both placements the machine allows.
    #[test]
    fn the_wakeup_floor_is_measured_in_both_placements() {
        let line = wakeup(200).unwrap();
        let value = |key: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key))
                .unwrap_or_else(|| panic!("{key} missing from {line}"))
                .to_string()
        };
        let same: f64 = value("wakeup_same_us=").parse().unwrap();
        assert!(same.is_finite() && same > 0.0, "{line}");
        let cross = value("wakeup_cross_us=");
        if allowed_cpus().unwrap().len() > 1 {
            let cross: f64 = cross.parse().unwrap();
            assert!(cross.is_finite() && cross > 0.0, "{line}");
        } else {
            assert_eq!(cross, "-");
        }
        assert_eq!(value("rounds="), "200");
    }
}
