//! The small services of inetd over a tap, each on TCP and UDP: echo (RFC 862) on `--port`,
//! discard (RFC 863) on 9, daytime (RFC 867) on 13 and chargen (RFC 864) on 19; every TCP
//! listener and connection served by one event-loop thread over non-blocking sockets and a
//! `Poller`. Prints a `listening` line when
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

/// Serves one UDP service until the stack stops: each datagram is answered at once (echo:
/// itself, RFC 862; daytime: the date line, RFC 867; chargen: one line of the pattern, RFC 864)
/// or dropped (discard, RFC 863).
fn udp_serve(socket: UdpSocket, service: Service) {
    let mut buf = vec![0u8; 65536];
    let cycle = cli::chargen_cycle();
    let mut line = 0;
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if stopped(&e) => return,
            Err(e) => {
                log::debug!("udp {service:?}: {e}");
                continue;
            }
        };
        let daytime;
        let answer: &[u8] = match service {
            Service::Echo => &buf[..n],
            Service::Discard => continue,
            Service::Daytime => {
                daytime = daytime_line(std::time::SystemTime::now());
                daytime.as_bytes()
            }
            Service::Chargen => {
                line = (line + 1) % (cycle.len() / CHARGEN_LINE);
                &cycle[line * CHARGEN_LINE..(line + 1) * CHARGEN_LINE]
            }
        };
        if let Err(e) = socket.send_to(answer, from) {
            log::warn!("udp {service:?} to {from}: {e}");
        }
    }
}

/// One line of the chargen pattern: 72 characters and CRLF.
const CHARGEN_LINE: usize = 74;

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
#[derive(Clone, Copy, Debug)]
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
            Service::Daytime => self.daytime(),
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

    /// The line is written once, when the connection is first served; the stream is then
    /// dropped, which sends it and the FIN.
    fn daytime(&mut self) -> std::io::Result<bool> {
        let line = daytime_line(std::time::SystemTime::now());
        (&self.stream).write_all(line.as_bytes())?;
        Ok(false)
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
    let services = [
        (args.port, Service::Echo),
        (9, Service::Discard),
        (13, Service::Daytime),
        (19, Service::Chargen),
    ];
    let mut listeners = Vec::new();
    let mut workers = Vec::new();
    for (port, service) in services {
        let listener = TcpListener::bind(&stack, (ip, port))?;
        listener.set_nonblocking(true)?;
        listeners.push((listener, service));
        let udp = UdpSocket::bind(&stack, (ip, port))?;
        workers.push(thread::spawn(move || udp_serve(udp, service)));
    }
    workers.push(thread::spawn(move || event_loop(Poller::new(), listeners)));
    println!(
        "echo-server: listening on {ip}: echo {}, discard 9, daytime 13, chargen 19 (tcp and udp) via {}, mtu {}",
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
