//! Tests against the Linux kernel: each runs in a thread moved into a fresh network namespace
//! (which vanishes with it) holding a tap whose kernel side is 10.0.0.1/24.

use super::{pattern, sha256};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const KERNEL_IP: &str = "10.0.0.1";
pub const STACK_IP: &str = "10.0.0.2";
/// The echo-server's default MAC for 10.0.0.2.
pub const STACK_MAC: [u8; 6] = [0x02, 0x00, 0x0a, 0x00, 0x00, 0x02];

/// Why this machine cannot run namespace tests, if it cannot.
fn missing_privileges() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    if !Path::new("/dev/net/tun").exists() {
        return Some("no /dev/net/tun".into());
    }
    for tool in ["ip", "ping", "tcpdump"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// Runs a shell command, panicking with its output if it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh")
        .args(["-c", cmd])
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "`{cmd}` failed:\n{text}");
    text
}

/// Runs `f` inside a new network namespace with `tap0` set up. Returns `None` (after saying
/// why) when the machine lacks root or /dev/net/tun, except under `CI=true`, where that fails.
pub fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    if let Some(why) = missing_privileges() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("namespace tests cannot run under CI: {why}");
        }
        eprintln!("SKIPPED: namespace test needs root, /dev/net/tun, ip, ping and tcpdump: {why}");
        return None;
    }
    let thread = std::thread::spawn(move || {
        // SAFETY: unshare affects only this thread's namespaces.
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            panic!("unshare(CLONE_NEWNET): {}", std::io::Error::last_os_error());
        }
        sh("ip link set lo up");
        sh("ip tuntap add dev tap0 mode tap");
        sh("echo 1 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6");
        sh(&format!("ip addr add {KERNEL_IP}/24 dev tap0"));
        sh("ip link set tap0 up");
        f()
    });
    match thread.join() {
        Ok(v) => Some(v),
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// A second tap, tap1 (kernel 10.0.1.1/24), for a stack inside the test process at
/// 10.0.1.2, its frames through a fault injector if `faults` is given.
pub fn library_stack(faults: Option<tapstack::phy::FaultConfig>) -> tapstack::Stack {
    use tapstack::phy::{Device, FaultInjector, TapDevice};
    sh("ip tuntap add dev tap1 mode tap");
    sh("echo 1 > /proc/sys/net/ipv6/conf/tap1/disable_ipv6");
    sh("ip addr add 10.0.1.1/24 dev tap1");
    sh("ip link set tap1 up");
    let mut cfg = tapstack::StackConfig::new([10, 0, 1, 2].into(), 24);
    cfg.seed = 7;
    let tap = TapDevice::open("tap1").expect("tap1");
    let device: Box<dyn Device> = match faults {
        Some(f) => Box::new(FaultInjector::new(tap, f)),
        None => Box::new(tap),
    };
    tapstack::Stack::new(device, cfg).expect("stack")
}

/// The echo-server binary running in the current thread's namespace.
pub struct EchoServer {
    child: Child,
    lines: crossbeam_channel::Receiver<String>,
    stderr: Option<std::process::ChildStderr>,
}

impl EchoServer {
    /// Starts it with `args` and waits (10 s at most) for its `listening` line.
    pub fn start(args: &[&str]) -> EchoServer {
        Self::start_bin(
            option_env!("CARGO_BIN_EXE_echo-server"),
            "echo-server",
            args,
        )
    }

    /// Starts another app, `bin` being its `CARGO_BIN_EXE_*`, and waits for its `listening`
    /// line as [`EchoServer::start`] does.
    pub fn start_bin(bin: Option<&str>, name: &str, args: &[&str]) -> EchoServer {
        // Built only with the apps' feature: `cargo test --features cli` (scripts/test.sh).
        let Some(bin) = bin else {
            panic!("{name} is not built: run the tests with --features cli");
        };
        let mut child = Command::new(bin)
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start echo-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = child.stderr.take();
        let server = EchoServer {
            child,
            lines,
            stderr,
        };
        let first = server
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("echo-server did not print a listening line within 10 s");
        assert!(
            first.contains("listening"),
            "unexpected first line: {first}"
        );
        server
    }

    /// Stops it with SIGTERM and returns what it printed after `listening` (its counters).
    pub fn stop(mut self) -> String {
        // SAFETY: kill with a pid we own.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let mut out = String::new();
        loop {
            match self.lines.recv_timeout(Duration::from_secs(10)) {
                Ok(line) => {
                    out.push_str(&line);
                    out.push('\n');
                }
                Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
                Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!("echo-server did not exit within 10 s of SIGTERM; printed:\n{out}");
                }
            }
        }
        let status = self.child.wait().expect("wait");
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "echo-server exited with {status}: {err}");
        out
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of the counter line containing `text` in the printed counters, 0 if absent.
pub fn counter(printed: &str, text: &str) -> u64 {
    printed
        .lines()
        .find(|l| l.contains(text))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A raw AF_PACKET socket on the kernel side of `tap0`: frames sent here reach the stack.
pub struct RawLink {
    fd: std::os::fd::OwnedFd,
    addr: libc::sockaddr_ll,
}

impl RawLink {
    pub fn open(ifname: &str) -> RawLink {
        use std::os::fd::FromRawFd;
        let proto = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket creation; checked below.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, i32::from(proto)) };
        assert!(
            fd >= 0,
            "AF_PACKET socket: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: `fd` is fresh and ours.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        let name = std::ffi::CString::new(ifname).unwrap();
        // SAFETY: `name` is a valid C string.
        let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
        assert!(index != 0, "no interface {ifname}");
        // SAFETY: sockaddr_ll is plain data; zero is a valid start.
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = proto;
        addr.sll_ifindex = index as i32;
        addr.sll_halen = 6;
        RawLink { fd, addr }
    }

    /// Sends one frame; false if the kernel refused it (a full queue during a flood).
    pub fn send(&self, frame: &[u8]) -> bool {
        use std::os::fd::AsRawFd;
        // SAFETY: the buffer and address are live for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&self.addr as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        n == frame.len() as isize
    }
}

/// Whether ping's summary counts at least one reply ("N received", N > 0): requests sent
/// while the stack's address was still in DAD may go unanswered.
#[allow(dead_code)]
pub fn answered(ping: &str) -> bool {
    ping.split(',').any(|part| {
        part.trim()
            .strip_suffix(" received")
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n > 0)
    })
}

/// Writes `data` on a kernel socket and half-closes it, while reading the echo to the end.
pub fn kernel_echo(s: std::net::TcpStream, data: Vec<u8>) -> Vec<u8> {
    super::exchange(&s, data)
}

/// The stack as a library client of a kernel server on `listener` (at `addr`): 64 MiB each
/// way at once, checked by sha256 (`seed` picks the patterns). With `peer`, the kernel checks
/// that the connection comes from that address.
pub fn library_client_64_mib_each_way(
    stack: &tapstack::Stack,
    listener: std::net::TcpListener,
    addr: &str,
    seed: u8,
    peer: Option<&'static str>,
) {
    let down = pattern(64 << 20, seed);
    let down_sha = sha256(&down);
    let kernel = std::thread::spawn(move || {
        let (s, from) = listener.accept().unwrap();
        if let Some(peer) = peer {
            assert_eq!(from.ip().to_string(), peer);
        }
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        sha256(&kernel_echo(s, down))
    });
    let c = tapstack::TcpStream::connect(stack, addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let up = pattern(64 << 20, seed + 1);
    let up_sha = sha256(&up);
    let got = super::exchange(&c, up);
    assert_eq!(sha256(&got), down_sha, "kernel -> stack");
    assert_eq!(kernel.join().unwrap(), up_sha, "stack -> kernel");
}

/// Echoes every size from 1 to 1600, every 257th and each fragment-count boundary (one packet
/// holds `first` bytes, each further fragment `more`) up to 65507 through `sock`, connected to
/// an echo service; each datagram is checked (sha256 of the stream). UDP may lose one: it is
/// asked again, up to three times. The sizes tried, and how many needed a retry.
pub fn echo_sizes(sock: &std::net::UdpSocket, first: usize, more: usize) -> (Vec<usize>, usize) {
    let mut sizes: Vec<usize> = (1..=1600).chain((1601..=65507).step_by(257)).collect();
    for k in 1.. {
        let edge = first + more * k;
        if edge > 65507 {
            break;
        }
        sizes.extend([edge, edge + 1].into_iter().filter(|&s| s <= 65507));
    }
    sizes.push(65507);
    let (mut sent, mut got) = (Vec::new(), Vec::new());
    let mut buf = vec![0u8; 65536];
    let mut retries = 0;
    for &size in &sizes {
        let data = pattern(size, size as u8);
        let n = (0..3)
            .find_map(|attempt| {
                retries += attempt.min(1);
                sock.send(&data).expect("send");
                sock.recv(&mut buf).ok()
            })
            .unwrap_or_else(|| panic!("no echo for {size} bytes after 3 tries"));
        assert_eq!(n, size);
        sent.extend_from_slice(&data);
        got.extend_from_slice(&buf[..n]);
    }
    assert_eq!(sha256(&got), sha256(&sent));
    eprintln!(
        "{} datagrams, {} bytes echoed, {retries} retries",
        sizes.len(),
        sent.len()
    );
    (sizes, retries)
}

/// A multi-queue tap `name` with the kernel's side at `cidr`, up, IPv6 off (for
/// `--queues` and `Stack::new_queues`).
pub fn multi_queue_tap(name: &str, cidr: &str) {
    sh(&format!("ip tuntap add dev {name} mode tap multi_queue"));
    sh(&format!(
        "echo 1 > /proc/sys/net/ipv6/conf/{name}/disable_ipv6"
    ));
    sh(&format!("ip addr add {cidr} dev {name}"));
    sh(&format!("ip link set {name} up"));
}
