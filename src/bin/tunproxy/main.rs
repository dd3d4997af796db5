//! A tun-to-SOCKS5 proxy: behind a TUN (or a tap), every TCP connection and UDP flow to any
//! address is terminated by the stack's catch-all interception and relayed upstream, through a
//! SOCKS5 server (`--socks5`, RFC 1928, with RFC 1929 login) or straight out through the
//! kernel's sockets (`--direct`). Each SYN is answered only after its upstream connection was
//! tried, so the client sees the real outcome. One tokio task per connection or flow, on one
//! thread, with the stack itself one of its tasks (`tapstack::tokio::spawn_stack`; or on a
//! thread of its own with `--stack-thread`). Prints a `listening` line when ready and its
//! counters when stopped by SIGINT/SIGTERM.
//!
//! The upstream sockets must not be routed back into the tun: mark them (`--fwmark`, for an
//! `ip rule`) or bind them to the outgoing interface (`--bind-dev`); the README has the lines.

mod ping;
mod relay;
mod socks5;
mod stats;
mod udp;
mod upstream;

use clap::Parser;
use stats::Stats;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tapstack::cli::{self, DeviceArgs};
use tapstack::config::OverLimit;
use tapstack::{EchoMode, InterceptConfig};
use upstream::{Route, Upstream};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "tapstack catch-all proxy: every TCP and UDP flow entering a tun, relayed through SOCKS5 or directly",
    group(clap::ArgGroup::new("route").required(true).args(["socks5", "direct"]))
)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// Relay through this SOCKS5 server (CONNECT and UDP ASSOCIATE)
    #[arg(long, value_name = "HOST:PORT")]
    socks5: Option<String>,
    /// SOCKS5 username (RFC 1929)
    #[arg(long, requires = "password", requires = "socks5")]
    user: Option<String>,
    /// SOCKS5 password (RFC 1929)
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// Relay straight out through the kernel's sockets
    #[arg(long)]
    direct: bool,
    /// Intercepted TCP connections at once; past it a SYN is refused (or dropped with
    /// --drop-over-limit) and counted
    #[arg(long, default_value_t = 16384)]
    max_conns: usize,
    /// Drop SYNs past --max-conns instead of refusing them
    #[arg(long)]
    drop_over_limit: bool,
    /// UDP flows at once
    #[arg(long, default_value_t = 4096)]
    max_udp_flows: usize,
    /// Seconds a UDP flow may idle before it ends
    #[arg(long, default_value_t = 60)]
    udp_timeout: u64,
    /// Seconds an upstream connection may take; then the client is told its host is
    /// unreachable
    #[arg(long, default_value_t = 10)]
    connect_timeout: u64,
    /// SO_MARK of every upstream socket, for a policy routing rule
    #[arg(long)]
    fwmark: Option<u32>,
    /// SO_BINDTODEVICE of every upstream socket
    #[arg(long, value_name = "IFACE")]
    bind_dev: Option<String>,
    /// Pings to any address: answered at once, relayed to the address (a kernel ping socket,
    /// straight out even with --socks5, which carries no ICMP; the client gets a reply only if
    /// the destination answers) or dropped
    #[arg(long, value_enum, default_value_t = Ping::Answer)]
    ping: Ping,
    /// Run the stack on a thread of its own, beside the relay's, rather than as a task of
    /// the relay's runtime (costs a context switch per handoff; for comparison)
    #[arg(long)]
    stack_thread: bool,
}

/// What `--ping` does with echo requests.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Ping {
    Answer,
    Relay,
    Drop,
}

fn main() -> ExitCode {
    cli::init_logging();
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tunproxy: {e}");
            ExitCode::FAILURE
        }
    }
}

fn upstream(args: &Args) -> std::io::Result<Upstream> {
    let route = match &args.socks5 {
        Some(server) => {
            let server: SocketAddr = std::net::ToSocketAddrs::to_socket_addrs(server.as_str())?
                .next()
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{server}: no address"),
                    )
                })?;
            Route::Socks5(socks5::Socks5Config {
                server,
                auth: args.user.clone().zip(args.password.clone()),
                handshake_timeout: Duration::from_secs(args.connect_timeout.max(1)),
            })
        }
        None => Route::Direct,
    };
    Ok(Upstream {
        route,
        mark: args.fwmark,
        bind_dev: args.bind_dev.clone(),
        connect_timeout: Duration::from_secs(args.connect_timeout.max(1)),
    })
}

fn run(args: Args) -> std::io::Result<()> {
    let upstream = Arc::new(upstream(&args)?);
    let mut cfg = args.device.config();
    if !args.device.no_ip6 {
        // Catch-all over IPv6 needs the IPv6 layer, even with no address of its own on the
        // tun.
        cfg.ipv6.get_or_insert_with(Default::default);
    }
    cfg.intercept = Some(InterceptConfig {
        max_connections: args.max_conns,
        over_limit: if args.drop_over_limit {
            OverLimit::Drop
        } else {
            OverLimit::Reset
        },
        max_udp_flows: args.max_udp_flows,
        udp_timeout: Duration::from_secs(args.udp_timeout.max(1)),
        echo: match args.ping {
            Ping::Answer => EchoMode::Answer,
            Ping::Relay => EchoMode::Deliver,
            Ping::Drop => EchoMode::Ignore,
        },
        ..InterceptConfig::default()
    });
    if args.ping == Ping::Relay {
        // Fails now, with what to change, rather than at the first ping.
        ping::ping_socket(&upstream, false)?;
        if let Err(e) = ping::ping_socket(&upstream, true) {
            log::warn!("pings to IPv6 addresses will not be relayed: {e}");
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    // The stack is a task of the relay's runtime, so that the two hand work to each other
    // without waking another thread; it runs once the relay thread runs the runtime.
    let stack = if args.stack_thread {
        args.device.start_with(cfg)?
    } else {
        // Spinning between turns took tunproxy's task-run stack 10-50% more CPU per GB and
        // per request (bench-proxy, two alternating pairs), time its client and the servers
        // on the same machine need more: off unless asked for.
        if args.device.busy_poll_us.is_none() {
            cfg.busy_poll = Duration::ZERO;
        }
        let _runtime = runtime.enter();
        args.device.spawn_with(cfg)?
    };
    let interceptor = tapstack::tokio::Interceptor::new(&stack)?;
    let stats = Arc::new(Stats::default());
    let signals = cli::StopSignals::install()?;
    let relay_runtime = runtime.handle().clone();
    let task_stats = stats.clone();
    std::thread::Builder::new()
        .name("relay".into())
        .spawn(move || runtime.block_on(serve(interceptor, upstream, task_stats)))?;
    let route = if args.direct { "direct" } else { "socks5" };
    println!(
        "tunproxy: listening on {} ({route}), stack {}/{}",
        args.device.device_name(),
        stack.config().ip,
        stack.config().prefix_len
    );
    let signal = signals.wait();
    log::info!("signal {signal}: stopping");
    if let Ok(c) = stack.counters() {
        print!("{c}");
    }
    print!("{stats}");
    // The stack closes what is open (FIN, then reset after its linger), on the relay thread
    // when it is one of its tasks; the relay thread ends with the process.
    relay_runtime.block_on(stack.shutdown());
    Ok(())
}

/// Takes the offers and spawns a relay for each, TCP and UDP side by side, until the stack
/// stops.
async fn serve(
    interceptor: tapstack::tokio::Interceptor,
    upstream: Arc<Upstream>,
    stats: Arc<Stats>,
) {
    let tcp = async {
        while let Ok(offer) = interceptor.next_tcp().await {
            tokio::spawn(relay::relay(offer, upstream.clone(), stats.clone()));
        }
    };
    let udp = async {
        while let Ok(offer) = interceptor.next_udp().await {
            tokio::spawn(udp::relay(offer, upstream.clone(), stats.clone()));
        }
    };
    let echo = async {
        let slots = Arc::new(tokio::sync::Semaphore::new(ping::MAX_PINGS));
        while let Ok(offer) = interceptor.next_echo().await {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                stats.ping_failed.fetch_add(1, Ordering::Relaxed);
                let _ = offer.ignore();
                continue;
            };
            let (upstream, stats) = (upstream.clone(), stats.clone());
            tokio::spawn(async move {
                ping::relay(offer, upstream, stats).await;
                drop(slot);
            });
        }
    };
    tokio::join!(tcp, udp, echo);
}
