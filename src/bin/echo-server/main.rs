//! The small services of inetd over a tap, each on TCP and UDP: echo (RFC 862) on `--port`,
//! discard (RFC 863) on 9, daytime (RFC 867) on 13 and chargen (RFC 864) on 19. Every TCP
//! listener and connection is served by one event-loop thread over non-blocking sockets and a
//! `Poller` (`event_loop.rs`), or with `--async` by tokio tasks, one per connection
//! (`tasks.rs`). Prints a `listening` line when ready and its counters when stopped by
//! SIGINT/SIGTERM.

mod event_loop;
mod tasks;

use clap::Parser;
use std::borrow::Cow;
use std::io::ErrorKind;
use std::process::ExitCode;
use std::thread;
use tapstack::cli::{self, DeviceArgs};
use tapstack::socket::Poller;
use tapstack::{Stack, TcpListener, UdpSocket};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "tapstack echo, discard and chargen servers over a Linux tap"
)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// Port of the echo service (UDP and TCP)
    #[arg(long, default_value_t = 7)]
    port: u16,
    /// Serve with the async API on tokio (one task per connection) instead of one event-loop
    /// thread over a Poller
    #[arg(long = "async")]
    use_async: bool,
}

/// The stack went away (shutdown): a worker's cue to stop.
fn stopped(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotConnected
}

/// Serves one UDP service until the stack stops, one datagram at a time.
fn udp_serve(socket: UdpSocket, service: Service) {
    let mut buf = vec![0u8; 65536];
    let mut answers = UdpAnswers::new(service);
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if stopped(&e) => return,
            Err(e) => {
                log::debug!("udp {service:?}: {e}");
                continue;
            }
        };
        if let Some(answer) = answers.answer(&buf[..n]) {
            if let Err(e) = socket.send_to(&answer, from) {
                log::warn!("udp {service:?} to {from}: {e}");
            }
        }
    }
}

/// What a UDP service answers to each datagram: echo, itself (RFC 862); daytime, the date
/// line (RFC 867); chargen, the next line of the pattern (RFC 864); discard, nothing
/// (RFC 863).
struct UdpAnswers {
    service: Service,
    cycle: Vec<u8>,
    line: usize,
}

impl UdpAnswers {
    fn new(service: Service) -> UdpAnswers {
        UdpAnswers {
            service,
            cycle: cli::chargen_cycle(),
            line: 0,
        }
    }

    fn answer<'a>(&mut self, datagram: &'a [u8]) -> Option<Cow<'a, [u8]>> {
        match self.service {
            Service::Echo => Some(Cow::Borrowed(datagram)),
            Service::Discard => None,
            Service::Daytime => Some(Cow::Owned(
                daytime_line(std::time::SystemTime::now()).into_bytes(),
            )),
            Service::Chargen => {
                self.line = (self.line + 1) % (self.cycle.len() / CHARGEN_LINE);
                let at = self.line * CHARGEN_LINE;
                Some(Cow::Owned(self.cycle[at..at + CHARGEN_LINE].to_vec()))
            }
        }
    }
}

/// One line of the chargen pattern: 72 characters and CRLF.
const CHARGEN_LINE: usize = 74;

/// What a TCP chargen writes at a time: whole cycles of the pattern, about 64 KiB, so the same
/// stream goes out in fewer calls.
fn chargen_block() -> Vec<u8> {
    let cycle = cli::chargen_cycle();
    cycle.repeat(65536 / cycle.len())
}

/// The daytime line (RFC 867 leaves the syntax open): UTC in the `ctime` form inetd uses,
/// "Wed Dec  2 16:28:36 2026", and CRLF.
fn daytime_line(t: std::time::SystemTime) -> String {
    let u = cli::Utc::at(t);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}\r\n",
        u.weekday, u.month_name, u.day, u.hour, u.minute, u.second, u.year
    )
}

/// A TCP service, served by the event loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Service {
    /// RFC 862: everything read is written back; the peer's FIN ends it.
    Echo,
    /// RFC 863: everything read is dropped.
    Discard,
    /// RFC 864: the character pattern until the peer goes away.
    Chargen,
    /// RFC 867: the date line, then the server closes.
    Daytime,
}

fn run(args: Args) -> std::io::Result<()> {
    let signals = cli::StopSignals::install()?;
    if args.use_async && args.device.queues == 1 {
        return run_local(args, signals);
    }
    // One stack per queue (`--queues`), each serving every service, as SO_REUSEPORT servers
    // do: the kernel spreads the flows over the queues.
    let stacks: Vec<Stack> = args.device.start_queues_with(args.device.config())?;
    let stack = &stacks[0];
    let services = services(args.port);
    let mut per_queue = Vec::new();
    for stack in &stacks {
        let mut listeners = Vec::new();
        let mut udp = Vec::new();
        // With IPv6 on, each service's sockets are on `[::]`: dual-stack, both families.
        let any = cli::listen_ip(stack.config());
        for (port, service) in services {
            let listener = TcpListener::bind(stack, (any, port))?;
            listener.set_nonblocking(true)?;
            listeners.push((listener, service));
            udp.push((UdpSocket::bind(stack, (any, port))?, service));
        }
        per_queue.push((listeners, udp));
    }
    let mut workers = Vec::new();
    let runtime = if args.use_async {
        let (listeners, udp): (Vec<_>, Vec<_>) = per_queue.into_iter().unzip();
        Some(tasks::start(
            listeners.into_iter().flatten().collect(),
            udp.into_iter().flatten().collect(),
        )?)
    } else {
        // The loop spins as long as the stack thread does before it sleeps (after answering;
        // see `event_loop`). Not on one core, where spinning would only hold up the thread
        // it waits for.
        let busy_poll = if thread::available_parallelism().is_ok_and(|n| n.get() > 1) {
            stack.config().busy_poll
        } else {
            std::time::Duration::ZERO
        };
        for (listeners, udp) in per_queue {
            for (socket, service) in udp {
                workers.push(thread::spawn(move || udp_serve(socket, service)));
            }
            workers.push(thread::spawn(move || {
                event_loop::event_loop(Poller::new(), listeners, busy_poll)
            }));
        }
        None
    };
    announce(
        &args,
        stack.config(),
        &match (stacks.len(), args.use_async) {
            (1, false) => String::new(),
            (n, false) => format!(", {n} queues"),
            (n, true) => format!(", {n} queues, async"),
        },
    );
    let signal = signals.wait();
    log::info!("signal {signal}: stopping");
    let counters = cli::queue_counters(&stacks)?;
    cli::stop_queues(stacks);
    for w in workers {
        let _ = w.join();
    }
    if let Some(runtime) = runtime {
        // Every task ends once the stack has stopped; this bounds a task that would not.
        runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    }
    println!("{counters}");
    Ok(())
}

/// The services and their ports: echo on `port`, the others on their own.
fn services(port: u16) -> [(u16, Service); 4] {
    [
        (port, Service::Echo),
        (9, Service::Discard),
        (13, Service::Daytime),
        (19, Service::Chargen),
    ]
}

/// The `listening` line, which scripts and tests wait for; `how` ends it.
fn announce(args: &Args, config: &tapstack::StackConfig, how: &str) {
    println!(
        "echo-server: listening on {}{}: echo {}, discard 9, daytime 13, chargen 19 (tcp and udp) via {}, mtu {}{how}",
        config.ip,
        match &config.ipv6 {
            Some(_) => " and IPv6",
            None => "",
        },
        args.port,
        args.device.device_name(),
        config.mtu,
    );
}

/// `--async` on one queue: the stack runs as a task of the services' own current-thread
/// runtime ([`tasks::start_local`]).
fn run_local(args: Args, signals: cli::StopSignals) -> std::io::Result<()> {
    let services = services(args.port);
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let (stack, runtime, thread) = tasks::start_local(&args.device, &services, stopped)?;
    announce(&args, stack.config(), ", async");
    let signal = signals.wait();
    log::info!("signal {signal}: stopping");
    let counters = stack.counters()?;
    // The stack closes what is open on the runtime's thread; then the thread ends.
    runtime.block_on(stack.shutdown());
    drop(stop);
    let _ = thread.join();
    println!("{counters}");
    Ok(())
}

fn main() -> ExitCode {
    cli::init_logging();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("echo-server: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::daytime_line;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn the_daytime_line_is_ctime_in_utc() {
        let at = |s| daytime_line(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu Jan  1 00:00:00 1970\r\n");
        assert_eq!(at(1_796_228_916), "Wed Dec  2 16:28:36 2026\r\n");
        assert_eq!(at(951_782_400), "Tue Feb 29 00:00:00 2000\r\n");
    }
}
