//! Echo server over a tap: echo (RFC 862) on `--port` over UDP and TCP, discard (RFC 863) on 9
//! and chargen (RFC 864) on 19 over TCP, every TCP listener and connection served by one
//! event-loop thread over non-blocking sockets and a `Poller`. Prints a `listening` line when
//! ready and its counters when stopped by SIGINT/SIGTERM.

use clap::Parser;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::process::ExitCode;
use std::thread;
use tapstack::cli::{self, DeviceArgs};
use tapstack::socket::Poller;
use tapstack::{Stack, TcpListener, TcpStream, UdpSocket};

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
}

/// The stack went away (shutdown): a worker's cue to stop.
fn stopped(e: &std::io::Error) -> bool {
    e.kind() == ErrorKind::NotConnected
}

fn udp_echo(socket: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if stopped(&e) => return,
            Err(e) => {
                log::debug!("udp echo: {e}");
                continue;
            }
        };
        if let Err(e) = socket.send_to(&buf[..n], from) {
            log::warn!("udp echo to {from}: {e}");
        }
    }
}

/// A TCP service, served by the event loop.
#[derive(Clone, Copy, Debug)]
enum Service {
    /// RFC 862: everything read is written back; the peer's FIN ends it.
    Echo,
    /// RFC 863: everything read is dropped.
    Discard,
    /// RFC 864: the character pattern until the peer goes away.
    Chargen,
}

/// One connection of the event loop.
struct Conn {
    stream: TcpStream,
    service: Service,
    /// Echo: bytes read and not yet written back.
    pending: Vec<u8>,
    /// Chargen: where in the pattern block the next write starts.
    offset: usize,
}

impl Conn {
    /// Moves what can move without blocking. False once the connection is over.
    fn serve(&mut self, buf: &mut [u8], block: &[u8]) -> bool {
        let r = match self.service {
            Service::Echo => self.echo(buf),
            Service::Discard => self.discard(buf),
            Service::Chargen => self.chargen(block),
        };
        match r {
            Ok(open) => open,
            Err(e) if e.kind() == ErrorKind::WouldBlock => true,
            Err(e) => {
                if !stopped(&e) {
                    log::debug!("{:?}: {e}", self.service);
                }
                false
            }
        }
    }

    /// Writes back what is pending before reading more, so at most one buffer waits.
    fn echo(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        loop {
            if !self.pending.is_empty() {
                let n = (&self.stream).write(&self.pending)?;
                self.pending.drain(..n);
                continue;
            }
            match (&self.stream).read(buf)? {
                0 => return Ok(false),
                n => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }

    fn discard(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        loop {
            if (&self.stream).read(buf)? == 0 {
                return Ok(false);
            }
        }
    }

    fn chargen(&mut self, block: &[u8]) -> std::io::Result<bool> {
        loop {
            let n = (&self.stream).write(&block[self.offset..])?;
            self.offset = (self.offset + n) % block.len();
        }
    }
}

/// Serves every TCP listener and connection from one thread: sockets are non-blocking and the
/// `Poller` says which changed, so 10 000 connections cost 10 000 small states, not threads.
/// Ends when the stack stops (every listener fails) and every connection is over.
fn event_loop(poller: Poller, listeners: Vec<(TcpListener, Service)>) {
    let mut listeners: HashMap<usize, (TcpListener, Service)> =
        listeners.into_iter().enumerate().collect();
    for (token, (l, _)) in &listeners {
        poller.register(l, *token);
    }
    let mut next_token = listeners.len();
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut ready = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    // Whole cycles, about 64 KiB per write: the same stream in fewer calls.
    let cycle = cli::chargen_cycle();
    let block = cycle.repeat(65536 / cycle.len());
    while !listeners.is_empty() || !conns.is_empty() {
        poller.wait(&mut ready, Some(std::time::Duration::from_millis(200)));
        for token in &ready {
            if let Some((listener, service)) = listeners.get(token) {
                let service = *service;
                match accept_all(listener, service, &mut next_token, &poller, &mut conns) {
                    Err(e) if stopped(&e) => {
                        listeners.remove(token);
                    }
                    Err(e) => log::warn!("{service:?} accept: {e}"),
                    Ok(()) => {}
                }
            } else if let Some(conn) = conns.get_mut(token) {
                if !conn.serve(&mut buf, &block) {
                    conns.remove(token);
                }
            }
        }
    }
}

/// Accepts every connection waiting on `listener` into `conns`, until `WouldBlock`.
fn accept_all(
    listener: &TcpListener,
    service: Service,
    next_token: &mut usize,
    poller: &Poller,
    conns: &mut HashMap<usize, Conn>,
) -> std::io::Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        stream.set_nonblocking(true)?;
        let token = *next_token;
        *next_token += 1;
        // Registering reports the stream once: the next wait serves what already arrived.
        poller.register(&stream, token);
        conns.insert(
            token,
            Conn {
                stream,
                service,
                pending: Vec::new(),
                offset: 0,
            },
        );
    }
}

fn run(args: Args) -> std::io::Result<()> {
    let signals = cli::StopSignals::install()?;
    let stack: Stack = args.device.start()?;
    let ip = stack.config().ip;
    let udp = UdpSocket::bind(&stack, (ip, args.port))?;
    let services = [
        (args.port, Service::Echo),
        (9, Service::Discard),
        (19, Service::Chargen),
    ];
    let mut listeners = Vec::new();
    for (port, service) in services {
        let listener = TcpListener::bind(&stack, (ip, port))?;
        listener.set_nonblocking(true)?;
        listeners.push((listener, service));
    }
    let workers = [
        thread::spawn(move || udp_echo(udp)),
        thread::spawn(move || event_loop(Poller::new(), listeners)),
    ];
    println!(
        "echo-server: listening on {ip}: echo {} (udp, tcp), discard 9, chargen 19 (tcp) via {}, mtu {}",
        args.port,
        args.device.tap,
        stack.config().mtu
    );
    let signal = signals.wait();
    log::info!("signal {signal}: stopping");
    let counters = stack.counters()?;
    drop(stack);
    for w in workers {
        let _ = w.join();
    }
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
