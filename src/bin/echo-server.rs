//! Echo server over a tap: UDP echo on `--port` (default 7). Prints a `listening` line when
//! ready and its counters when stopped by SIGINT/SIGTERM.

use clap::Parser;
use std::process::ExitCode;
use std::thread;
use tapstack::cli::{self, DeviceArgs};
use tapstack::{Stack, UdpSocket};

#[derive(Parser, Debug)]
#[command(version, about = "tapstack echo server (RFC 862) over a Linux tap")]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// Port of the echo service
    #[arg(long, default_value_t = 7)]
    port: u16,
}

fn udp_echo(socket: UdpSocket) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = match socket.recv_from(&mut buf) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotConnected => return,
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

fn run(args: Args) -> std::io::Result<()> {
    let signals = cli::StopSignals::install()?;
    let stack: Stack = args.device.start()?;
    let ip = stack.config().ip;
    let udp = UdpSocket::bind(&stack, (ip, args.port))?;
    let worker = thread::spawn(move || udp_echo(udp));
    println!(
        "echo-server: listening on {ip} port {} (udp echo) via {}, mtu {}",
        args.port,
        args.device.tap,
        stack.config().mtu
    );
    let signal = signals.wait();
    log::info!("signal {signal}: stopping");
    let counters = stack.counters()?;
    drop(stack);
    let _ = worker.join();
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
