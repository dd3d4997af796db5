//! Device flags shared by every app: which tap, which address, capture and fault injection.

use crate::phy::{
    CaptureInfo, Device, FaultConfig, FaultInjector, PcapDevice, TapDevice, TunDevice,
};
use crate::wire::MacAddr;
use crate::{Stack, StackConfig};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// `A.B.C.D/PREFIX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Cidr {
    /// The host address.
    pub addr: Ipv4Addr,
    /// The prefix length, 0 to 32 (24 when omitted).
    pub prefix_len: u8,
}

impl std::str::FromStr for Ipv4Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, "24"));
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("bad IPv4 address in {s:?}"))?;
        let prefix_len: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("bad prefix length in {s:?}"))?;
        if addr.is_unspecified() || addr.is_multicast() || addr.is_broadcast() {
            return Err(format!("{addr} cannot be a host address"));
        }
        Ok(Ipv4Cidr { addr, prefix_len })
    }
}

/// `ADDR/PREFIX` for IPv6 (64 when the prefix is omitted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Cidr {
    /// The host address.
    pub addr: Ipv6Addr,
    /// The prefix length, 0 to 128.
    pub prefix_len: u8,
}

impl std::str::FromStr for Ipv6Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s.split_once('/').unwrap_or((s, "64"));
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| format!("bad IPv6 address in {s:?}"))?;
        let prefix_len: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 128)
            .ok_or_else(|| format!("bad prefix length in {s:?}"))?;
        if addr.is_unspecified() || addr.is_multicast() || addr.is_loopback() {
            return Err(format!("{addr} cannot be a host address"));
        }
        Ok(Ipv6Cidr { addr, prefix_len })
    }
}

/// The address an app's servers listen on: `[::]` where the stack runs IPv6, which takes both
/// families (dual-stack, as on Linux), else the stack's IPv4 address.
pub fn listen_ip(cfg: &StackConfig) -> std::net::IpAddr {
    if cfg.runs_ipv6() {
        Ipv6Addr::UNSPECIFIED.into()
    } else {
        cfg.ip.into()
    }
}

/// Command-line flags for the device, the stack's address, capture and fault injection.
#[derive(clap::Args, Debug, Clone)]
pub struct DeviceArgs {
    /// TAP interface to attach to (created if missing)
    #[arg(long, default_value = "tap0")]
    pub tap: String,
    /// TUN interface to attach to instead of a tap: bare IP packets, no ARP (created if
    /// missing)
    #[arg(long, conflicts_with = "tap")]
    pub tun: Option<String>,
    /// The stack's address and prefix length
    #[arg(long, default_value = "10.0.0.2/24")]
    pub ip: Ipv4Cidr,
    /// Default gateway for off-link destinations
    #[arg(long)]
    pub gateway: Option<Ipv4Addr>,
    /// An IPv6 address and prefix length (repeatable), used once Duplicate Address Detection
    /// passes (about a second). On a tap IPv6 is on anyway, with a link-local address from
    /// the MAC and addresses from Router Advertisements (SLAAC); on a tun it takes this flag
    #[arg(long, value_name = "ADDR/PREFIX")]
    pub ip6: Vec<Ipv6Cidr>,
    /// IPv4 only: no IPv6 at all, not even on a tap
    #[arg(long, conflicts_with = "ip6")]
    pub no_ip6: bool,
    /// The stack's MAC address [default: 02:00 followed by the IP address]
    #[arg(long)]
    pub mac: Option<MacAddr>,
    /// Record every frame in and out to this capture file: pcapng if it ends in .pcapng, else
    /// pcap
    #[arg(long)]
    pub pcap: Option<PathBuf>,
    /// Trace every TCP connection to this file: segments, cwnd, RTT, states and loss
    /// decisions, one JSON object per line (draw it with tapstack-plot)
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Percent of frames to drop, each direction
    #[arg(long, default_value_t = 0.0)]
    pub drop_chance: f64,
    /// Percent of frames to corrupt (one bit flipped), each direction
    #[arg(long, default_value_t = 0.0)]
    pub corrupt_chance: f64,
    /// Percent of frames to duplicate, each direction
    #[arg(long, default_value_t = 0.0)]
    pub duplicate_chance: f64,
    /// Percent of frames to hold back behind the next one, each direction
    #[arg(long, default_value_t = 0.0)]
    pub reorder_chance: f64,
    /// Percent of ECN-capable frames to mark Congestion Experienced, each direction (as a
    /// router's AQM marks where it would drop)
    #[arg(long, default_value_t = 0.0)]
    pub mark_chance: f64,
    /// Seed for every random choice of the stack and the fault injector [default: random, from the operating system]
    #[arg(long)]
    pub seed: Option<u64>,
    /// Set the interface's MTU first (`ip link set NAME mtu N`); the MSS the stack
    /// advertises and uses follows it [default: the interface's]
    #[arg(long, value_parser = clap::value_parser!(u16).range(576..))]
    pub mtu: Option<u16>,
    /// Microseconds the stack spins for an application's answer before it sleeps (0: off)
    /// [default: 50; tunproxy without --stack-thread, whose stack is a task of its relay's
    /// runtime: 0]
    #[arg(long)]
    pub busy_poll_us: Option<u64>,
    /// TCP congestion control of every connection: cubic, bbr (paced) or newreno
    #[arg(long, default_value = "cubic")]
    pub congestion: crate::CongestionAlgorithm,
    /// Pace every TCP connection (BBR always paces): at twice cwnd/RTT in slow start, 1.2
    /// times after, as Linux's fq does
    #[arg(long)]
    pub pacing: bool,
    /// Explicit Congestion Notification (RFC 3168): off, passive (accepted when a peer asks,
    /// as Linux by default) or on (asked for too)
    #[arg(long, default_value = "passive")]
    pub ecn: crate::Ecn,
    /// The path marks ECN at a shallow queue and the peer echoes each mark (DCTCP and L4S
    /// style, Linux's `ecn_low` route feature): echo marks precisely, and with BBR answer
    /// their fraction (v3). Set it on both ends
    #[arg(long)]
    pub ecn_low: bool,
    /// Queues of the tap or tun, each served by a stack thread of its own (a persistent
    /// interface needs `multi_queue`); echo-server and http-server serve every queue, the
    /// other apps refuse more than 1
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub queues: u16,
}

impl DeviceArgs {
    /// The interface the stack attaches to: the tun if one is named, else the tap.
    pub fn device_name(&self) -> &str {
        self.tun.as_deref().unwrap_or(&self.tap)
    }

    /// The stack configuration these flags describe.
    pub fn config(&self) -> StackConfig {
        let mut cfg = StackConfig::new(self.ip.addr, self.ip.prefix_len);
        let o = self.ip.addr.octets();
        cfg.mac = self
            .mac
            .unwrap_or(MacAddr([0x02, 0x00, o[0], o[1], o[2], o[3]]));
        cfg.gateway = self.gateway;
        if !self.no_ip6 && (self.tun.is_none() || !self.ip6.is_empty()) {
            cfg.ipv6 = Some(crate::config::Ipv6Config {
                addrs: self.ip6.iter().map(|c| (c.addr, c.prefix_len)).collect(),
                ..Default::default()
            });
        }
        if let Some(us) = self.busy_poll_us {
            cfg.busy_poll = std::time::Duration::from_micros(us);
        }
        cfg.tcp.trace = self.trace.is_some();
        cfg.tcp.congestion = self.congestion;
        cfg.tcp.pacing = self.pacing;
        cfg.tcp.ecn = self.ecn;
        cfg.tcp.ecn_low = self.ecn_low;
        if let Some(seed) = self.seed {
            cfg.seed = seed;
        }
        cfg
    }

    /// Opens the tap, wraps it with the fault injector and the capture, and starts a stack.
    /// The capture sits between the stack and the faults: it shows what the stack really saw.
    pub fn start(&self) -> io::Result<Stack> {
        self.start_with(self.config())
    }

    /// Like [`DeviceArgs::start`], with a configuration the app adjusted from
    /// [`DeviceArgs::config`].
    pub fn start_with(&self, cfg: StackConfig) -> io::Result<Stack> {
        self.one_queue()?;
        let mut stacks = self.start_queues_with(cfg)?;
        stacks.pop().ok_or_else(|| io::Error::other("no stack"))
    }

    /// `InvalidInput` unless one queue is asked for: the apps that take one stack.
    fn one_queue(&self) -> io::Result<()> {
        if self.queues > 1 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "this app serves one queue: --queues must be 1",
            ));
        }
        Ok(())
    }

    /// Like [`DeviceArgs::start_with`], but the stack runs as a task of the current tokio
    /// runtime ([`crate::tokio::spawn_stack`]) rather than on a thread of its own.
    pub fn spawn_with(&self, cfg: StackConfig) -> io::Result<Stack> {
        self.one_queue()?;
        let (mut devices, cfg) = self.open_with(cfg)?;
        let device = devices.pop().ok_or_else(|| io::Error::other("no device"))?;
        crate::tokio::spawn_stack(device, cfg)
    }

    /// Like [`DeviceArgs::start_with`], one stack per queue (`--queues`; see
    /// [`Stack::new_queues`]); each queue's faults are seeded apart. A capture takes one queue.
    pub fn start_queues_with(&self, cfg: StackConfig) -> io::Result<Vec<Stack>> {
        let (devices, cfg) = self.open_with(cfg)?;
        Stack::new_queues(devices, cfg)
    }

    /// The device's queues, opened as the options say (MTU, faults, capture), and `cfg`
    /// with the trace output they ask for.
    fn open_with(&self, mut cfg: StackConfig) -> io::Result<(Vec<Box<dyn Device>>, StackConfig)> {
        let queues = usize::from(self.queues);
        if queues > 1 && self.pcap.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--pcap records one queue: use --queues 1, or tcpdump on the interface",
            ));
        }
        if let Some(gw) = cfg.gateway {
            if !cfg.is_on_link(gw) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("gateway {gw} is not on {}/{}", cfg.ip, cfg.prefix_len),
                ));
            }
        }
        let faults = FaultConfig {
            drop_pct: self.drop_chance,
            corrupt_pct: self.corrupt_chance,
            duplicate_pct: self.duplicate_chance,
            reorder_pct: self.reorder_chance,
            mark_pct: self.mark_chance,
            seed: cfg.seed,
        };
        faults
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mtu = self.mtu.map(usize::from);
        let mut devices = match &self.tun {
            Some(tun) => boxed(
                TunDevice::open_queues(tun, queues)?,
                mtu,
                TunDevice::set_mtu,
            )?,
            None => boxed(
                TapDevice::open_queues(&self.tap, queues)?,
                mtu,
                TapDevice::set_mtu,
            )?,
        };
        if faults.is_active() {
            devices = devices
                .into_iter()
                .enumerate()
                .map(|(k, d)| {
                    let faults = FaultConfig {
                        seed: faults.seed.wrapping_add(k as u64),
                        ..faults
                    };
                    Box::new(FaultInjector::new(d, faults)) as Box<dyn Device>
                })
                .collect();
        }
        let about = format!(
            "stack {}/{} mac {} on {} (seed {})",
            cfg.ip,
            cfg.prefix_len,
            cfg.mac,
            self.device_name(),
            cfg.seed
        );
        if let Some(path) = &self.pcap {
            let device = devices.pop().ok_or_else(|| io::Error::other("no device"))?;
            let device: Box<dyn Device> = if path.extension().is_some_and(|e| e == "pcapng") {
                let info = CaptureInfo {
                    if_name: self.device_name().to_string(),
                    comment: about.clone(),
                };
                Box::new(PcapDevice::create_pcapng(device, path, &info)?)
            } else {
                Box::new(PcapDevice::create_wall_clock(device, path)?)
            };
            devices.push(device);
        }
        if let Some(path) = &self.trace {
            let out = crate::trace::TraceOutput::create(path)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            cfg.trace = Some(out);
        }
        log::info!(
            "{about}{}",
            if queues > 1 {
                format!(", {queues} queues")
            } else {
                String::new()
            }
        );
        Ok((devices, cfg))
    }
}

/// A link's queues as devices, each told the MTU if one is given (every queue keeps its own).
fn boxed<D: Device + 'static>(
    mut queues: Vec<D>,
    mtu: Option<usize>,
    set_mtu: fn(&mut D, usize) -> io::Result<()>,
) -> io::Result<Vec<Box<dyn Device>>> {
    if let Some(mtu) = mtu {
        for q in &mut queues {
            set_mtu(q, mtu)?;
        }
    }
    Ok(queues
        .into_iter()
        .map(|q| Box::new(q) as Box<dyn Device>)
        .collect())
}

/// The counters of a link's queues, summed; with several, a line per queue first (`queue k:
/// N connections accepted, F frames received, P passed on, T taken over`).
pub fn queue_counters(stacks: &[Stack]) -> io::Result<crate::Counters> {
    let mut sum = crate::Counters::default();
    for (k, stack) in stacks.iter().enumerate() {
        let c = stack.counters()?;
        if stacks.len() > 1 {
            println!(
                "queue {k}: {} connections accepted, {} frames received, {} passed on, {} taken over",
                c.tcp_passive_opens, c.eth_rx_frames, c.queue_passed_on, c.queue_taken_over
            );
        }
        sum.add(&c);
    }
    Ok(sum)
}

/// Stops a link's stacks together: each lingers at once, not one after another.
pub fn stop_queues(stacks: Vec<Stack>) {
    std::thread::scope(|s| {
        for stack in stacks {
            s.spawn(move || drop(stack));
        }
    });
}

/// Catches SIGINT and SIGTERM from now on; install it before announcing readiness.
pub struct StopSignals(signal_hook::iterator::Signals);

impl StopSignals {
    /// Starts catching SIGINT and SIGTERM.
    pub fn install() -> io::Result<Self> {
        signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])
        .map(StopSignals)
    }

    /// Blocks until one of the signals arrives and returns it.
    pub fn wait(mut self) -> i32 {
        self.0
            .forever()
            .next()
            .unwrap_or(signal_hook::consts::SIGTERM)
    }
}

/// One full cycle of the RFC 864 character generator stream: 95 lines of 72 printable
/// characters and CRLF, each line starting one character further along. The stream repeats it.
pub fn chargen_cycle() -> Vec<u8> {
    let printable: Vec<u8> = (b' '..=b'~').collect();
    let mut block = Vec::with_capacity(printable.len() * 74);
    for start in 0..printable.len() {
        for i in 0..72 {
            block.push(printable[(start + i) % printable.len()]);
        }
        block.extend_from_slice(b"\r\n");
    }
    block
}

/// A wall-clock time in UTC, split for the apps' date lines (HTTP's `Date`, daytime).
pub struct Utc {
    /// The year.
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u64,
    /// 0 to 59.
    pub minute: u64,
    /// 0 to 59.
    pub second: u64,
    /// "Thu" for 1970-01-01.
    pub weekday: &'static str,
    /// "Jan" to "Dec".
    pub month_name: &'static str,
}

impl Utc {
    /// `t` in UTC (the epoch for times before it).
    pub fn at(t: std::time::SystemTime) -> Utc {
        const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (days, rem) = (secs / 86_400, secs % 86_400);
        // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
        let z = days as i64 + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        Utc {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
            weekday: WEEKDAYS[(days % 7) as usize],
            month_name: MONTHS[(month - 1) as usize],
        }
    }
}

/// Logging through `env_logger`, `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
}
