//! Echo server over a tap: echo (RFC 862) on `--port` over UDP and TCP, discard (RFC 863) on 9
//! and chargen (RFC 864) on 19 over TCP. Prints a `listening` line when ready and its counters
//! when stopped by SIGINT/SIGTERM.

use clap::Parser;
use std::io::{ErrorKind, Read, Write};
use std::process::ExitCode;
use std::thread;
use tapstack::cli::{self, DeviceArgs};
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

fn tcp_echo(s: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match (&s).read(&mut buf)? {
            0 => return Ok(()),
            n => (&s).write_all(&buf[..n])?,
        }
    }
}

fn tcp_discard(s: TcpStream) -> std::io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    while (&s).read(&mut buf)? > 0 {}
    Ok(())
}

/// RFC 864 character generator.
fn tcp_chargen(s: TcpStream) -> std::io::Result<()> {
    // Whole cycles, about 64 KiB per write: fewer calls, the same stream.
    let cycle = cli::chargen_cycle();
    let block = cycle.repeat(65536 / cycle.len());
    loop {
        (&s).write_all(&block)?;
    }
}

/// Accepts connections on `listener`, one thread each, until the stack stops.
fn serve(listener: TcpListener, name: &'static str, handler: fn(TcpStream) -> std::io::Result<()>) {
    loop {
        match listener.accept() {
            Ok((s, peer)) => {
                thread::spawn(move || {
                    if let Err(e) = handler(s) {
                        if !stopped(&e) {
                            log::debug!("{name} {peer}: {e}");
                        }
                    }
                });
            }
            Err(e) if stopped(&e) => return,
            Err(e) => log::warn!("{name} accept: {e}"),
        }
    }
}

fn run(args: Args) -> std::io::Result<()> {
    let signals = cli::StopSignals::install()?;
    let stack: Stack = args.device.start()?;
    let ip = stack.config().ip;
    let udp = UdpSocket::bind(&stack, (ip, args.port))?;
    let services = [
        (
            args.port,
            "echo",
            tcp_echo as fn(TcpStream) -> std::io::Result<()>,
        ),
        (9, "discard", tcp_discard),
        (19, "chargen", tcp_chargen),
    ];
    let mut workers = vec![thread::spawn(move || udp_echo(udp))];
    for (port, name, handler) in services {
        let listener = TcpListener::bind(&stack, (ip, port))?;
        workers.push(thread::spawn(move || serve(listener, name, handler)));
    }
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
