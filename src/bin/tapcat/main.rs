//! tapcat: netcat over a tapstack stack. Connects to `HOST PORT` or, with `-l`, serves one
//! connection on `PORT`; `-u` for UDP. Stdin goes to the socket and the socket to stdout.

mod tcp;
mod udp;

use clap::{CommandFactory, Parser};
use std::fmt::Display;
use std::io;
use std::process::ExitCode;
use std::time::Duration;
use tapstack::cli::{self, DeviceArgs};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "netcat over a tapstack stack on a Linux tap",
    override_usage = "tapcat [OPTIONS] HOST PORT\n       tapcat [OPTIONS] -l PORT"
)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// Listen on PORT: serve one TCP connection, or answer whoever sent the last datagram
    #[arg(short, long)]
    listen: bool,
    /// UDP instead of TCP
    #[arg(short, long)]
    udp: bool,
    /// TCP: give up connecting after SECS
    #[arg(short = 'w', long = "wait", value_name = "SECS", value_parser = secs)]
    wait: Option<Duration>,
    /// UDP: after EOF on stdin, quit once no datagram has arrived for SECS [default: never]
    #[arg(short = 'q', long = "quit-after", value_name = "SECS", value_parser = secs)]
    quit_after: Option<Duration>,
    /// HOST PORT to connect to, or PORT with -l
    #[arg(value_name = "HOST PORT", required = true, num_args = 1..=2)]
    target: Vec<String>,
}

/// Where the socket goes.
#[derive(Debug, Clone)]
pub enum Target {
    Connect(String, u16),
    Listen(u16),
}

fn secs(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .and_then(|v| Duration::try_from_secs_f64(v).ok())
        .ok_or_else(|| format!("{s:?} is not a number of seconds"))
}

fn port(s: &str) -> Result<u16, String> {
    s.parse().map_err(|_| format!("bad port {s:?}"))
}

impl Args {
    fn target(&self) -> Result<Target, String> {
        match (self.listen, self.target.as_slice()) {
            (true, [p]) => Ok(Target::Listen(port(p)?)),
            (false, [host, p]) => match port(p)? {
                0 => Err("cannot connect to port 0".into()),
                p => Ok(Target::Connect(host.clone(), p)),
            },
            (true, _) => Err("with -l, give only PORT".into()),
            (false, _) => Err("give HOST and PORT (or -l PORT)".into()),
        }
    }
}

/// `e` prefixed with what was being done, keeping its kind.
pub fn context(e: io::Error, what: impl Display) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

fn run(args: &Args, target: Target) -> io::Result<()> {
    // At exit, give the peer up to 10 s to take what is still in flight.
    let mut cfg = args.device.config();
    cfg.linger = std::time::Duration::from_secs(10);
    let stack = args.device.start_with(cfg)?;
    if args.udp {
        udp::run(&stack, target, args.quit_after)
    } else {
        let stream = match &target {
            Target::Connect(host, port) => tcp::connect(&stack, host, *port, args.wait)?,
            Target::Listen(port) => tcp::accept_one(&stack, *port)?,
        };
        tcp::relay(stream)
    }
}

fn main() -> ExitCode {
    cli::init_logging();
    let args = Args::parse();
    let target = match args.target() {
        Ok(t) => t,
        Err(msg) => Args::command()
            .error(clap::error::ErrorKind::WrongNumberOfValues, msg)
            .exit(),
    };
    match run(&args, target) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tapcat: {e}");
            ExitCode::FAILURE
        }
    }
}
