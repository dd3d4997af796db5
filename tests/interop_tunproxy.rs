//! tunproxy against real kernels, in namespaces each test creates. The client is the test
//! thread's own namespace: its default routes, IPv4 and IPv6, are tun0, where tunproxy
//! (10.0.9.2) intercepts everything; tunproxy's upstream sockets carry mark 1, which policy
//! rules route out over a veth to a server namespace (198.51.100.20 and 2001:db8:100::20 on
//! its loopback), where the test's servers and, for the SOCKS5 runs, danted listen. Every test runs once with `--direct` and once through
//! danted, and checks real content (sha256 of the bytes moved).

mod common;

use common::netns::*;
use common::{pattern, sha256};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server address reached only through the tun.
const FAR: &str = "198.51.100.20";
/// The server's IPv6 address, reached only through the tun.
const FAR6: &str = "2001:db8:100::20";
/// The server namespace's end of the veth, where danted listens.
const SOCKS: &str = "172.31.0.2:1080";
/// Bytes of the bulk download.
const BULK: usize = 100 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Direct,
    Socks5,
}

/// The two namespaces, the servers, danted (in SOCKS5 mode) and tunproxy; all removed on drop.
struct Layout {
    ns: String,
    dir: String,
    proxy: Option<EchoServer>,
    servers: Option<(
        tokio::sync::oneshot::Sender<()>,
        std::thread::JoinHandle<()>,
    )>,
    /// The half-close server's report: bytes received after it closed its side, and their
    /// sha256.
    late: crossbeam_channel::Receiver<(usize, String)>,
}

impl Layout {
    fn new(mode: Mode, extra: &[&str]) -> Layout {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let ns = format!("tpt-{}-{n}", std::process::id());
        sh(&format!("ip netns add {ns}"));
        let dir = sh("mktemp -d").trim().to_string();
        sh(&format!(
            "ip link add veth-c type veth peer name veth-s netns {ns}"
        ));
        sh("ip addr add 172.31.0.1/24 dev veth-c && ip link set veth-c up");
        sh("ip addr add fd31::1/64 dev veth-c nodad");
        sh(&format!(
            "ip -n {ns} link set lo up && ip -n {ns} addr add 172.31.0.2/24 dev veth-s && \
             ip -n {ns} addr add fd31::2/64 dev veth-s nodad && \
             ip -n {ns} link set veth-s up && ip -n {ns} addr add {FAR}/32 dev lo && \
             ip -n {ns} addr add {FAR6}/128 dev lo && \
             ip -n {ns} route add 10.0.9.0/24 via 172.31.0.1"
        ));
        sh("ip tuntap add dev tun0 mode tun");
        sh("ip addr add 10.0.9.1/24 dev tun0 && ip addr add fd00:9::1/64 dev tun0 nodad");
        sh("ip link set tun0 up && ip route add default dev tun0 && ip -6 route add default dev tun0");
        sh("ip rule add fwmark 1 lookup 100 && ip route add default via 172.31.0.2 dev veth-c table 100");
        sh("ip -6 rule add fwmark 1 lookup 100 && ip -6 route add default via fd31::2 dev veth-c table 100");
        let (late_tx, late) = crossbeam_channel::unbounded();
        let (bound_tx, bound) = crossbeam_channel::bounded(1);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let path = format!("/run/netns/{ns}");
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("netns");
            use std::os::fd::AsRawFd;
            // SAFETY: setns on this thread with a namespace descriptor we hold.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                tokio::select! {
                    _ = servers(late_tx, bound_tx) => {}
                    _ = stopped => {}
                }
            });
        });
        bound
            .recv_timeout(Duration::from_secs(10))
            .expect("the servers did not bind within 10 s");
        let mut layout = Layout {
            ns,
            dir,
            proxy: None,
            servers: Some((stop, thread)),
            late,
        };
        let mut args: Vec<String> = ["--tun", "tun0", "--ip", "10.0.9.2/24", "--fwmark", "1"]
            .map(String::from)
            .to_vec();
        match mode {
            Mode::Direct => args.push("--direct".into()),
            Mode::Socks5 => {
                layout.start_danted();
                args.extend(["--socks5".into(), SOCKS.into()]);
            }
        }
        // `{dir}` in an extra flag names the layout's temporary directory.
        args.extend(extra.iter().map(|s| s.replace("{dir}", &layout.dir)));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        layout.proxy = Some(EchoServer::start_bin(
            option_env!("CARGO_BIN_EXE_tunproxy"),
            "tunproxy",
            &args,
        ));
        layout
    }

    /// danted in the server namespace, on the veth, for any destination.
    fn start_danted(&self) {
        let conf = format!("{}/danted.conf", self.dir);
        std::fs::write(
            &conf,
            format!(
                "logoutput: {dir}/danted.log\ninternal: 172.31.0.2 port = 1080\n\
                 external: {FAR}\nexternal: {FAR6}\nclientmethod: none\nsocksmethod: none\n\
                 user.privileged: root\nuser.unprivileged: nobody\n\
                 client pass {{ from: 0/0 to: 0/0 }}\n\
                 socks pass {{ from: 0/0 to: 0/0 command: connect udpassociate }}\n\
                 socks pass {{ from: 0/0 to: 0/0 command: udpreply }}\n",
                dir = self.dir
            ),
        )
        .unwrap();
        sh(&format!(
            "ip netns exec {ns} danted -f {conf} -p {dir}/danted.pid -D",
            ns = self.ns,
            dir = self.dir
        ));
        wait_until(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&SOCKS.parse().unwrap(), Duration::from_millis(200)).is_ok()
        });
    }

    /// Stops tunproxy; its printed counters.
    fn stop(&mut self) -> String {
        self.proxy.take().expect("running").stop()
    }
}

impl Drop for Layout {
    fn drop(&mut self) {
        drop(self.proxy.take());
        if let Some((stop, thread)) = self.servers.take() {
            let _ = stop.send(());
            let _ = thread.join();
        }
        let _ = std::process::Command::new("sh")
            .args([
                "-c",
                &format!(
                    "[ -f {dir}/danted.pid ] && kill $(cat {dir}/danted.pid); \
                     ip netns del {ns}; rm -rf {dir}",
                    dir = self.dir,
                    ns = self.ns
                ),
            ])
            .status();
    }
}

/// Polls `f` every 50 ms until it holds, panicking after `limit`.
fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < end, "not ready within {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The servers: TCP and UDP echo on 7, a DNS-shaped responder on UDP 53, the bulk file over
/// HTTP on 8080, and the half-close peers on 9000 (replies after the client's FIN) and 9001
/// (closes its side first, then counts what still comes).
async fn servers(
    late: crossbeam_channel::Sender<(usize, String)>,
    bound: crossbeam_channel::Sender<()>,
) {
    let echo = tokio::net::TcpListener::bind((FAR, 7)).await.unwrap();
    let echo6 = tokio::net::TcpListener::bind((FAR6, 7)).await.unwrap();
    let udp6 = tokio::net::UdpSocket::bind((FAR6, 7)).await.unwrap();
    let http = tokio::net::TcpListener::bind((FAR, 8080)).await.unwrap();
    let reply_after_fin = tokio::net::TcpListener::bind((FAR, 9000)).await.unwrap();
    let close_first = tokio::net::TcpListener::bind((FAR, 9001)).await.unwrap();
    let udp = tokio::net::UdpSocket::bind((FAR, 7)).await.unwrap();
    let dns = tokio::net::UdpSocket::bind((FAR, 53)).await.unwrap();
    let _ = bound.send(());
    let bulk = std::sync::Arc::new(pattern(BULK, 1));
    let echo_loop = async {
        loop {
            let (mut s, _) = tokio::select! {
                r = echo.accept() => r,
                r = echo6.accept() => r,
            }
            .unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    };
    let http_loop = async {
        loop {
            let (mut s, _) = http.accept().await.unwrap();
            let bulk = bulk.clone();
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut b = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut b).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&b[..n]),
                    }
                }
                let head = format!("HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n", bulk.len());
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(&bulk).await;
            });
        }
    };
    let fin_loop = async {
        loop {
            let (mut s, _) = reply_after_fin.accept().await.unwrap();
            tokio::spawn(async move {
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got).await;
                // The reply: what was received, then its own pattern.
                let _ = s.write_all(sha256(&got).as_bytes()).await;
                let _ = s.write_all(&pattern(1 << 20, 2)).await;
            });
        }
    };
    let first_loop = async {
        loop {
            let (mut s, _) = close_first.accept().await.unwrap();
            let late = late.clone();
            tokio::spawn(async move {
                let _ = s.write_all(b"bye").await;
                let _ = s.shutdown().await;
                let mut got = Vec::new();
                let _ = s.read_to_end(&mut got).await;
                let _ = late.send((got.len(), sha256(&got)));
            });
        }
    };
    let udp_loop = async {
        let mut b = vec![0u8; 65536];
        loop {
            let (n, from) = udp.recv_from(&mut b).await.unwrap();
            let _ = udp.send_to(&b[..n], from).await;
        }
    };
    let udp6_loop = async {
        let mut b = vec![0u8; 65536];
        loop {
            let (n, from) = udp6.recv_from(&mut b).await.unwrap();
            let _ = udp6.send_to(&b[..n], from).await;
        }
    };
    let dns_loop = async {
        let mut b = vec![0u8; 512];
        loop {
            let (n, from) = dns.recv_from(&mut b).await.unwrap();
            if let Some(answer) = dns_answer(&b[..n]) {
                let _ = dns.send_to(&answer, from).await;
            }
        }
    };
    tokio::join!(echo_loop, http_loop, fin_loop, first_loop, udp_loop, udp6_loop, dns_loop);
}

/// A query for one A record: id, flags RD, one question.
fn dns_query(id: u16, name: &str) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

/// The answer to `dns_query`: the question echoed, QR and RA set, one A record 192.0.2.53.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 17 {
        return None;
    }
    let mut a = query.to_vec();
    a[2] = 0x81;
    a[3] = 0x80;
    a[7] = 1;
    a.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 192, 0, 2, 53]);
    Some(a)
}

/// A 1200-byte datagram (pattern `seed`) echoed by `to` through the proxy, checked; where
/// the echo came from. The first datagram opens the flow while its upstream is set up:
/// retried, five times at most.
fn udp_echo(udp: &UdpSocket, to: &str, seed: u8) -> SocketAddr {
    udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let datagram = pattern(1200, seed);
    let mut buf = [0u8; 4096];
    for _ in 0..5 {
        udp.send_to(&datagram, to).unwrap();
        if let Ok((n, from)) = udp.recv_from(&mut buf) {
            assert_eq!(&buf[..n], &datagram[..]);
            return from;
        }
    }
    panic!("no echo from {to}");
}

/// One layout at a time: each runs danted, tunproxy and servers, and the timing checks (a
/// refusal within 1 s) must not share two cores with another test's 100 MiB transfer.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` in a namespace of its own, alone among this file's tests.
fn exclusive<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    in_netns(f)
}

fn both_modes(f: impl Fn(Mode) + Send + Sync + Copy + 'static) {
    for mode in [Mode::Direct, Mode::Socks5] {
        exclusive(move || f(mode));
    }
}

#[test]
fn curl_downloads_100_mib_through_the_proxy_and_the_capture_reads() {
    both_modes(|mode| {
        let mut layout = Layout::new(mode, &["--pcap", "{dir}/proxy.pcap"]);
        let capture = format!("{}/proxy.pcap", layout.dir);
        let got = sh(&format!(
            "curl -sS --max-time 60 http://{FAR}:8080/bulk | sha256sum"
        ));
        assert_eq!(
            got.split_whitespace().next(),
            Some(&*sha256(&pattern(BULK, 1)))
        );
        let counters = layout.stop();
        // The curl connection is the run's only one.
        assert_eq!(
            counter(&counters, "TCP connections relayed"),
            1,
            "{counters}"
        );
        assert!(
            counter(&counters, "bytes down") >= BULK as u64,
            "{counters}"
        );
        let read = sh(&format!(
            "tcpdump -nn -r {capture} 'tcp port 8080' 2>&1 | head -5"
        ));
        assert!(read.contains("link-type RAW"), "{read}");
        assert!(read.contains(&format!("{FAR}.8080 > 10.0.9.1.")), "{read}");
    });
}

#[test]
fn a_thousand_concurrent_connections_echo_through_the_proxy() {
    both_modes(|mode| {
        let mut layout = Layout::new(mode, &[]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let ok = rt.block_on(async {
            let tasks: Vec<_> = (0..1000u32)
                .map(|i| {
                    tokio::spawn(async move {
                        let mut s = tokio::net::TcpStream::connect((FAR, 7)).await?;
                        let data = pattern(1024, i as u8);
                        s.write_all(&data).await?;
                        let mut back = vec![0u8; data.len()];
                        s.read_exact(&mut back).await?;
                        Ok::<bool, std::io::Error>(back == data)
                    })
                })
                .collect();
            let mut ok = 0;
            for t in tasks {
                let r = tokio::time::timeout(Duration::from_secs(120), t).await;
                if let Ok(Ok(Ok(true))) = r {
                    ok += 1;
                }
            }
            ok
        });
        let counters = layout.stop();
        assert_eq!(ok, 1000, "{mode:?}: {counters}");
    });
}

#[test]
fn half_close_is_carried_both_ways() {
    both_modes(|mode| {
        let mut layout = Layout::new(mode, &[]);
        // The client shuts its write side and still receives the whole reply.
        let s = TcpStream::connect((FAR, 9000)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let up = pattern(1 << 20, 3);
        (&s).write_all(&up).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut reply = Vec::new();
        (&s).read_to_end(&mut reply).unwrap();
        assert_eq!(&reply[..64], sha256(&up).as_bytes(), "{mode:?}");
        assert_eq!(sha256(&reply[64..]), sha256(&pattern(1 << 20, 2)));

        // The server closes first, and the client still sends.
        let s = TcpStream::connect((FAR, 9001)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut bye = Vec::new();
        (&s).read_to_end(&mut bye).unwrap();
        assert_eq!(bye, b"bye");
        let late = pattern(1 << 20, 4);
        (&s).write_all(&late).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let (n, sum) = layout
            .late
            .recv_timeout(Duration::from_secs(30))
            .expect("the server's count");
        assert_eq!((n, sum), (late.len(), sha256(&late)), "{mode:?}");
        layout.stop();
    });
}

#[test]
fn a_refused_port_is_refused_within_a_second() {
    both_modes(|mode| {
        let mut layout = Layout::new(mode, &[]);
        // One connection first, relayed and closed: a freshly started danted forks its
        // workers on its first client, which can take a second of its own; what is timed
        // below is the proxy's refusal, not danted's start.
        let warm = TcpStream::connect_timeout(
            &format!("{FAR}:7").parse().unwrap(),
            Duration::from_secs(10),
        )
        .expect("a relayed connection");
        warm.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        (&warm).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        (&warm).read_exact(&mut b).unwrap();
        drop(warm);
        let start = Instant::now();
        let addr: SocketAddr = format!("{FAR}:9").parse().unwrap();
        let err = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
        assert_eq!(
            err.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{mode:?}"
        );
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{mode:?}: {:?}",
            start.elapsed()
        );
        let counters = layout.stop();
        assert_eq!(
            counter(&counters, "TCP connections refused"),
            1,
            "{counters}"
        );
    });
}

#[test]
fn udp_echo_a_dns_query_and_ping_to_any_address() {
    both_modes(|mode| {
        let mut layout = Layout::new(mode, &[]);
        let udp = UdpSocket::bind("0.0.0.0:0").unwrap();
        let from = udp_echo(&udp, &format!("{FAR}:7"), 6);
        assert_eq!(from.to_string(), format!("{FAR}:7"), "{mode:?}");
        let mut buf = [0u8; 4096];

        let query = dns_query(0x1234, "example.test");
        udp.send_to(&query, (FAR, 53)).unwrap();
        let (n, from) = udp.recv_from(&mut buf).expect("a DNS answer");
        assert_eq!(from.to_string(), format!("{FAR}:53"));
        assert_eq!(&buf[..2], &[0x12, 0x34]);
        assert_eq!(&buf[n - 4..n], &[192, 0, 2, 53]);

        let ping = sh("ping -c 2 -i 0.2 -W 5 203.0.113.99");
        assert!(ping.contains("2 received"), "{ping}");
        let counters = layout.stop();
        assert!(counter(&counters, "UDP flows relayed") >= 2, "{counters}");
        assert_eq!(
            counter(&counters, "echo requests to intercepted addresses answered"),
            2
        );
    });
}

/// IPv6 through the proxy as IPv4: 16 MiB echoed over TCP (sha256), a refused port refused,
/// a UDP echo answered from its destination, and pings to any address answered.
#[test]
fn ipv6_flows_through_the_proxy() {
    both_modes(|mode| {
        let mut layout = Layout::new(mode, &[]);
        let far6 = format!("[{FAR6}]");
        let s = TcpStream::connect(format!("{far6}:7")).unwrap();
        assert_eq!(s.peer_addr().unwrap().to_string(), format!("{far6}:7"));
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let data = pattern(16 << 20, 8);
        let got = kernel_echo(s, data.clone());
        assert_eq!(sha256(&got), sha256(&data), "{mode:?}");

        let refused = TcpStream::connect(format!("{far6}:1")).unwrap_err();
        assert_eq!(
            refused.kind(),
            std::io::ErrorKind::ConnectionRefused,
            "{mode:?}"
        );

        let udp = UdpSocket::bind("[::]:0").unwrap();
        let from = udp_echo(&udp, &format!("{far6}:7"), 9);
        assert_eq!(from.to_string(), format!("{far6}:7"), "{mode:?}");

        let ping = sh("ping -6 -c 2 -i 0.2 -W 5 2001:db8:99::1");
        assert!(ping.contains("2 received"), "{ping}");
        let counters = layout.stop();
        assert!(counter(&counters, "UDP flows relayed") >= 1, "{counters}");
    });
}

/// `--ping relay` sends each ping on from a kernel ping socket, the same in both modes (SOCKS5
/// carries no ICMP), so it runs once: a live destination's reply comes back (over IPv4 and
/// IPv6), an unroutable one gives the client host unreachable, and the stack answers nothing
/// by itself.
#[test]
fn relayed_pings_are_answered_only_as_their_destination_answers() {
    exclusive(|| {
        // Ping sockets for root's group, in this test's namespace only.
        sh("echo 0 0 > /proc/sys/net/ipv4/ping_group_range");
        let mut layout = Layout::new(Mode::Direct, &["--ping", "relay"]);
        sh("ip route add unreachable 198.51.100.98/32 table 100");
        let live = sh(&format!("ping -c 2 -i 0.2 -W 5 {FAR}"));
        assert!(live.contains("2 received"), "{live}");
        let live6 = sh(&format!("ping -6 -c 2 -i 0.2 -W 5 {FAR6}"));
        assert!(live6.contains("2 received"), "{live6}");
        let out = std::process::Command::new("ping")
            .args(["-c", "1", "-W", "5", "198.51.100.98"])
            .output()
            .unwrap();
        let dead = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{dead}");
        assert!(dead.contains("Destination Host Unreachable"), "{dead}");
        assert!(dead.contains("From 198.51.100.98"), "{dead}");
        let counters = layout.stop();
        assert_eq!(
            counter(&counters, "pings relayed and answered by their destination"),
            4,
            "{counters}"
        );
        assert_eq!(counter(&counters, "pings answered unreachable"), 1);
        assert_eq!(counter(&counters, "handed to the application"), 5);
    });
}

#[test]
fn the_connection_cap_refuses_the_next_syn_and_counts_it() {
    exclusive(|| {
        let mut layout = Layout::new(Mode::Direct, &["--max-conns", "5"]);
        let held: Vec<TcpStream> = (0..5)
            .map(|_| TcpStream::connect((FAR, 7)).unwrap())
            .collect();
        // Each of the five is established end to end before the sixth is tried.
        for s in &held {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            (&*s).write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            (&*s).read_exact(&mut b).unwrap();
        }
        let addr: SocketAddr = format!("{FAR}:7").parse().unwrap();
        let sixth = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap_err();
        assert_eq!(sixth.kind(), std::io::ErrorKind::ConnectionRefused);
        let counters = layout.stop();
        assert!(
            counter(&counters, "intercepted SYNs past the connection cap") >= 1,
            "{counters}"
        );
    });
}
