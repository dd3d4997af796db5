//! http-server: an HTTP/1.1 static file server over a tapstack stack. GET and HEAD,
//! keep-alive, directory index or listing; connections served by a pool of reused threads.
//! Prints a `listening`
//! line when ready and its counters when stopped by SIGINT/SIGTERM.

mod conn;
mod files;
mod pool;
mod request;
mod response;
mod stats;

use clap::Parser;
use conn::Server;
use std::io::{self, ErrorKind};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use tapstack::cli::{self, DeviceArgs};
use tapstack::TcpListener;

/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 512;

#[derive(Parser, Debug)]
#[command(
    version,
    about = "tapstack static HTTP/1.1 file server over a Linux tap"
)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// TCP port to serve on
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Directory to serve
    dir: PathBuf,
}

/// Accepts connections and hands them to the worker pool until the stack stops.
fn accept_loop(listener: TcpListener, server: Arc<Server>) {
    let pool = pool::Pool::new(MAX_CONNECTIONS);
    loop {
        let (stream, peer) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::NotConnected => return,
            Err(e) => {
                log::warn!("accept: {e}");
                continue;
            }
        };
        server.stats.connections.fetch_add(1, Ordering::Relaxed);
        let conn_server = server.clone();
        let served = pool.run(move || {
            if let Err(e) = conn::serve(&conn_server, &stream) {
                log::debug!("{peer}: {e}");
            }
        });
        if served.is_err() {
            server.stats.rejected.fetch_add(1, Ordering::Relaxed);
            log::warn!("{peer}: over {MAX_CONNECTIONS} connections, closed");
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let root = args
        .dir
        .canonicalize()
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", args.dir.display())))?;
    if !root.is_dir() {
        return Err(io::Error::new(
            ErrorKind::InvalidInput,
            format!("{} is not a directory", root.display()),
        ));
    }
    let signals = cli::StopSignals::install()?;
    // One stack per queue (`--queues`), a listener and an accept loop on each; one pool of
    // connection threads serves them all.
    let stacks = args.device.start_queues_with(args.device.config())?;
    let config = stacks[0].config().clone();
    let server = Arc::new(Server {
        root,
        stats: Default::default(),
    });
    let mut acceptors = Vec::new();
    for stack in &stacks {
        let listener = TcpListener::bind(stack, (cli::listen_ip(stack.config()), args.port))?;
        let server = server.clone();
        acceptors.push(thread::spawn(move || accept_loop(listener, server)));
    }
    println!(
        "http-server: listening on http://{}:{}/ serving {} via {}, mtu {}{}",
        config.ip,
        args.port,
        server.root.display(),
        args.device.device_name(),
        config.mtu,
        match stacks.len() {
            1 => String::new(),
            n => format!(", {n} queues"),
        }
    );
    let signal = signals.wait();
    log::info!("signal {signal}: stopping");
    let counters = cli::queue_counters(&stacks)?;
    cli::stop_queues(stacks);
    for acceptor in acceptors {
        let _ = acceptor.join();
    }
    print!("{}", server.stats);
    println!("{counters}");
    Ok(())
}

fn main() -> ExitCode {
    cli::init_logging();
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("http-server: {e}");
            ExitCode::FAILURE
        }
    }
}
