//! The stack against the real Linux kernel over a tap, inside a namespace each test creates.

mod common;

use common::netns::*;
use common::{ipv4_frames, pattern, sha256, udp_segment};
use etherparse::IpNumber;
use rand::{Rng, SeedableRng};
use std::net::{Ipv4Addr, UdpSocket};
use std::time::Duration;
use tapstack::wire::MacAddr;

/// The replies ping's summary counts ("N received").
fn received(out: &str) -> u32 {
    out.split(',')
        .find_map(|part| part.trim().strip_suffix(" received")?.parse().ok())
        .unwrap_or(0)
}

fn ping(args: &str) -> String {
    sh(&format!("ping -n -W 2 {args} {STACK_IP}"))
}

#[test]
fn kernel_pings_plain_and_fragmented_and_resolves_our_mac() {
    in_netns(|| {
        let server = EchoServer::start(&[]);
        let out = ping("-c 3 -i 0.2");
        assert!(out.contains("3 received"), "{out}");
        let out = ping("-c 3 -i 0.2 -s 8000");
        assert!(
            out.contains("3 received") && out.contains("8008 bytes from"),
            "{out}"
        );
        let out = ping("-c 2 -i 0.2 -s 60000");
        assert!(
            out.contains("2 received") && out.contains("60008 bytes from"),
            "{out}"
        );
        let neigh = sh(&format!("ip neigh show {STACK_IP} dev tap0"));
        assert!(
            neigh.contains("02:00:0a:00:00:02"),
            "kernel ARP entry: {neigh}"
        );
        let counters = server.stop();
        assert_eq!(counter(&counters, "echo replies sent"), 8, "{counters}");
        assert!(
            counter(&counters, "datagrams reassembled") >= 5,
            "{counters}"
        );
        assert!(counter(&counters, "ARP replies sent") >= 1, "{counters}");
    });
}

/// Every size from 1 to 1600 (both sides of the one-frame limit, 1472), then every 257th size
/// and each fragment-count boundary up to 65507. Each datagram is checked byte for byte.
#[test]
fn udp_echo_from_a_kernel_socket_for_sizes_1_to_65507() {
    in_netns(|| {
        let server = EchoServer::start(&[]);
        let sock = UdpSocket::bind((KERNEL_IP, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock.connect((STACK_IP, 7)).unwrap();
        // One frame holds 1472 bytes; each further fragment 1480.
        let (sizes, retries) = echo_sizes(&sock, 1472, 1480);
        assert!(retries <= 3, "{retries} datagrams needed a second try");
        let counters = server.stop();
        assert!(counter(&counters, "UDP datagrams sent") >= sizes.len() as u64);
    });
}

#[test]
fn closed_port_is_refused_to_a_connected_kernel_socket() {
    in_netns(|| {
        let server = EchoServer::start(&[]);
        let sock = UdpSocket::bind((KERNEL_IP, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock.connect((STACK_IP, 9999)).unwrap(); // no service there
        sock.send(b"anyone?").unwrap();
        let err = sock.recv(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
        let counters = server.stop();
        assert_eq!(counter(&counters, "port unreachable messages sent"), 1);
    });
}

#[test]
fn pcap_capture_is_read_back_by_tcpdump() {
    in_netns(|| {
        let dir = std::env::temp_dir().join(format!("tapstack-pcap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("capture.pcap");
        let server = EchoServer::start(&["--pcap", path.to_str().unwrap()]);
        ping("-c 2 -i 0.2 -s 3000");
        let sock = UdpSocket::bind((KERNEL_IP, 0)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock.send_to(b"captured", (STACK_IP, 7)).unwrap();
        sock.recv(&mut [0u8; 16]).unwrap();
        server.stop();
        let dump = sh(&format!("tcpdump -nr {} 2>&1", path.display()));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            dump.contains("ARP, Request who-has 10.0.0.2 tell 10.0.0.2"),
            "{dump}"
        );
        assert!(
            dump.contains("ARP, Reply 10.0.0.2 is-at 02:00:0a:00:00:02"),
            "{dump}"
        );
        assert_eq!(dump.matches("ICMP echo request").count(), 2, "{dump}");
        assert_eq!(dump.matches("ICMP echo reply").count(), 2, "{dump}");
        assert!(dump.contains("10.0.0.2.7 > 10.0.0.1."), "{dump}");
        assert!(dump.contains("UDP, length 8"), "{dump}");
    });
}

/// `--trace`: a lossy echo through echo-server is traced from its SYN to its end, and
/// tapstack-plot draws it.
#[test]
fn trace_of_a_lossy_echo_is_written_and_drawn() {
    in_netns(|| {
        let dir = std::env::temp_dir().join(format!("tapstack-trace-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("stack.trace");
        let server = EchoServer::start(&[
            "--trace",
            path.to_str().unwrap(),
            "--drop-chance",
            "2",
            "--seed",
            "5",
        ]);
        let data = pattern(1 << 20, 4);
        let conn = std::net::TcpStream::connect((STACK_IP, 7)).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let client = conn.local_addr().unwrap().to_string();
        let mut writer = conn.try_clone().unwrap();
        let up = data.clone();
        let w = std::thread::spawn(move || {
            use std::io::Write;
            writer.write_all(&up).unwrap();
            writer.shutdown(std::net::Shutdown::Write).unwrap();
        });
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut &conn, &mut back).unwrap();
        w.join().unwrap();
        assert_eq!(sha256(&back), sha256(&data));
        drop(conn);
        let counters = server.stop();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["title"], "tapstack TCP trace");
        let ours: Vec<&serde_json::Value> = lines[1..]
            .iter()
            .filter(|r| r["remote"] == client.as_str())
            .collect();
        // From the SYN: the SYN itself, then the state it opened.
        assert_eq!(ours[0]["name"], "transport:packet_received");
        assert_eq!(ours[0]["data"]["flags"], "S");
        assert_eq!(ours[1]["data"]["new"], "syn_received", "{:?}", ours[1]);
        let sent: u64 = ours
            .iter()
            .filter(|r| r["name"] == "transport:packet_sent")
            .map(|r| r["data"]["len"].as_u64().unwrap())
            .sum();
        assert!(sent >= data.len() as u64, "{sent} bytes traced");
        let retransmissions = ours
            .iter()
            .filter(|r| r["data"]["trigger"] == "retransmission")
            .count();
        let retrans_segs = counter(&counters, "segments retransmitted");
        assert_eq!(retransmissions > 0, retrans_segs > 0, "{counters}");
        assert!(ours
            .iter()
            .any(|r| r["data"]["new"] == "closed" || r["data"]["new"] == "time_wait"));
        assert_eq!(
            counter(&counters, "per-connection trace records made"),
            (lines.len() - 1) as u64
        );
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tapstack-plot"))
            .args(["--trace", path.to_str().unwrap(), "--format", "svg"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let svg = std::fs::read_to_string(dir.join("stack-trace.svg")).unwrap();
        assert!(svg.contains(&format!("10.0.0.2:7 -&gt; {client}")));
        std::fs::remove_dir_all(&dir).unwrap();
    });
}

/// Frames the kernel dropped on its way to the stack (the tap's TX dropped counter).
fn tap_tx_dropped() -> u64 {
    let link = sh("ip -s link show tap0");
    link.lines()
        .skip_while(|l| !l.contains("TX:"))
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no TX dropped counter in: {link}"))
}

/// Garbage frames and a flood of never-completed fragments arrive while the kernel pings with
/// fragmented requests: the stack answers throughout and evicts the stale fragments.
///
/// A loss must be the stack's to count, so the tap's queue is as deep as the flood and a run in
/// which the kernel itself dropped frames on the way to the stack (it happened once in 2-core
/// CI under load, in the kernel's transmit path) says nothing about the stack: it is run again,
/// at most three times in all.
#[test]
fn survives_garbage_and_a_fragment_flood_while_answering() {
    in_netns(|| {
        sh("ip link set tap0 txqueuelen 70000");
        for attempt in 1..=3 {
            let dropped = tap_tx_dropped();
            let (out, server, garbage, fragments) = flood_while_pinging();
            let kernel_drops = tap_tx_dropped() - dropped;
            if kernel_drops > 0 {
                drop(server);
                eprintln!("attempt {attempt}: the kernel dropped {kernel_drops} frames; again");
                continue;
            }
            // Whether ping saw every reply depends on spare CPU: with the rest of the suite on
            // both cores the stack works through the flood late (round trips climb to 300 ms,
            // at 7514e81 as now) and ping, which waits only twice the largest round trip after
            // its last request, can give up on a reply the stack sent. The stack's own count
            // of replies, asserted below, says whether every request was answered.
            eprintln!("ping during the flood:\n{out}");
            let out = ping("-c 3 -i 0.2 -s 8000");
            assert!(out.contains("3 received"), "after the flood: {out}");
            let counters = server.stop();
            eprintln!("sent {garbage} garbage frames and {fragments} flood fragments\n{counters}");
            assert!(garbage > 10_000 && fragments > 20_000);
            assert!(
                counter(&counters, "incomplete datagrams evicted") > 0,
                "{counters}"
            );
            assert_eq!(counter(&counters, "echo replies sent"), 13);
            return;
        }
        panic!("the kernel dropped frames in each of three runs");
    });
}

/// Starts the echo-server, floods it with garbage and fragments from a raw socket while the
/// kernel pings with 8000 bytes; returns ping's output, the server, and what was sent.
fn flood_while_pinging() -> (String, EchoServer, u32, u32) {
    let server = EchoServer::start(&["--seed", "1"]);
    let stack_mac = MacAddr(STACK_MAC);
    let attacker_mac = MacAddr([2, 0, 0, 0, 0, 0x77]);
    let attacker = Ipv4Addr::new(10, 0, 0, 77);
    let stack_ip: Ipv4Addr = STACK_IP.parse().unwrap();
    let flood = std::thread::spawn(move || {
        let link = RawLink::open("tap0");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(99);
        let template = udp_segment(attacker, stack_ip, 1, 7, &pattern(4000, 3));
        let (mut garbage, mut fragments) = (0u32, 0u32);
        for i in 0..60_000u32 {
            let mut frames = ipv4_frames(
                attacker_mac,
                stack_mac,
                attacker,
                stack_ip,
                IpNumber::UDP,
                i as u16,
                &template,
                1500,
            );
            let mut f = frames.swap_remove(0);
            if i % 3 == 0 {
                // Garbage: random bytes changed, or cut short.
                for _ in 0..4 {
                    let at = rng.random_range(14..f.len());
                    f[at] = rng.random();
                }
                if rng.random() {
                    f.truncate(rng.random_range(14..f.len()));
                }
                garbage += link.send(&f) as u32;
            } else {
                fragments += link.send(&f) as u32;
            }
        }
        (garbage, fragments)
    });
    let out = ping("-c 10 -i 0.05 -s 8000");
    let (garbage, fragments) = flood.join().unwrap();
    (out, server, garbage, fragments)
}

/// The kernel's IPv6 on the tap (its own address without DAD) against `--ip6`: the stack's
/// addresses pass DAD, then the kernel resolves and pings the global and the link-local one.
#[test]
fn kernel_pings_ipv6_after_dad_and_resolves_our_mac() {
    in_netns(|| {
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6");
        sh("ip -6 addr add 2001:db8::1/64 dev tap0 nodad");
        let server = EchoServer::start(&["--ip6", "2001:db8::2/64"]);
        // DAD takes about a second (the kernel's first requests wait for its resolution of
        // our address meanwhile): ping until three replies, for at most 10 s.
        let out = sh("ping -6 -n -c 3 -i 0.2 -w 10 2001:db8::2");
        assert!(received(&out) >= 3, "{out}");
        let out = sh("ping -6 -n -c 3 -i 0.2 -w 10 -s 8000 fe80::aff:fe00:2%tap0");
        assert!(
            received(&out) >= 3 && out.contains("8008 bytes from"),
            "{out}"
        );
        // Fragmented both ways: the kernel's request reassembled, our reply fragmented.
        let out = sh("ping -6 -n -c 2 -i 0.2 -w 10 -s 8000 2001:db8::2");
        assert!(
            received(&out) >= 2 && out.contains("8008 bytes from"),
            "{out}"
        );
        let neigh = sh("ip -6 neigh show 2001:db8::2 dev tap0");
        assert!(
            neigh.contains("02:00:0a:00:00:02"),
            "kernel neighbour entry: {neigh}"
        );
        let counters = server.stop();
        assert_eq!(
            counter(&counters, "addresses that passed DAD"),
            2,
            "{counters}"
        );
        assert!(
            counter(&counters, "ICMPv6 echo replies sent") >= 6,
            "{counters}"
        );
        assert!(
            counter(&counters, "Neighbour Advertisements sent") >= 2,
            "{counters}"
        );
    });
}

/// An address the kernel already has: the stack's DAD hears the kernel defend it, and never
/// uses it; its link-local address still answers.
#[test]
fn an_ipv6_address_in_use_fails_dad_and_is_not_used() {
    in_netns(|| {
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6");
        sh("ip -6 addr add 2001:db8::2/64 dev tap0 nodad");
        let server = EchoServer::start(&["--ip6", "2001:db8::2/64"]);
        let out = sh("ping -6 -n -c 2 -i 0.2 -w 10 fe80::aff:fe00:2%tap0");
        assert!(received(&out) >= 2, "{out}");
        let counters = server.stop();
        assert_eq!(
            counter(&counters, "found in use by another node"),
            1,
            "{counters}"
        );
        assert_eq!(
            counter(&counters, "addresses that passed DAD"),
            1,
            "{counters}"
        );
    });
}

/// UDP over IPv6 from a kernel socket: echo of sizes up to 65527 bytes, fragmented both ways
/// above the MTU (sha256), an IPv4 client
/// served by the same dual-stack socket, and port unreachable for a closed port.
#[test]
fn udp_echo_over_ipv6_and_ipv4_through_one_dual_stack_socket() {
    in_netns(|| {
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6");
        sh("ip -6 addr add 2001:db8::1/64 dev tap0 nodad");
        let server = EchoServer::start(&["--ip6", "2001:db8::2/64"]);
        // Bounded wait for DAD: ping until one reply.
        let out = sh("ping -6 -n -c 1 -i 0.2 -w 10 2001:db8::2");
        assert!(received(&out) >= 1, "{out}");
        let sock = UdpSocket::bind("[2001:db8::1]:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock.connect("[2001:db8::2]:7").unwrap();
        let mut buf = vec![0u8; 70_000];
        for size in [1, 100, 1000, 1452, 1453, 8000, 65_527] {
            let data = pattern(size, size as u8);
            sock.send(&data).unwrap();
            let n = sock.recv(&mut buf).unwrap();
            assert_eq!(sha256(&buf[..n]), sha256(&data), "size {size}");
        }
        let v4 = UdpSocket::bind((KERNEL_IP, 0)).unwrap();
        v4.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        v4.send_to(b"over ipv4", (STACK_IP, 7)).unwrap();
        let (n, from) = v4.recv_from(&mut buf).unwrap();
        assert_eq!(
            (&buf[..n], from.to_string()),
            (&b"over ipv4"[..], format!("{STACK_IP}:7"))
        );
        let closed = UdpSocket::bind("[2001:db8::1]:0").unwrap();
        closed
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        closed.connect("[2001:db8::2]:4444").unwrap();
        closed.send(b"anyone?").unwrap();
        let err = closed.recv(&mut buf).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused, "{err}");
        let counters = server.stop();
        assert!(counter(&counters, "ICMPv6 errors sent") >= 1, "{counters}");
    });
}

/// IPv6 on by default on a tap: radvd (in this namespace) advertises 2001:db8:1::/64 and
/// an MTU of 1400; the stack, given no IPv6 flag, forms its address by SLAAC, learns its
/// default router and the MTU, and the kernel pings that address, fragmented at 1400 bytes.
#[test]
fn slaac_from_radvd_gives_an_address_the_kernel_pings() {
    in_netns(|| {
        // The kernel's link-local address at once (no DAD of its own), and router duty for
        // radvd, both in this namespace only.
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap0/accept_dad");
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6");
        sh("echo 1 > /proc/sys/net/ipv6/conf/all/forwarding");
        sh("ip -6 addr add 2001:db8:1::1/64 dev tap0 nodad");
        let server = EchoServer::start(&[]);
        let dir = sh("mktemp -d").trim().to_string();
        std::fs::write(
            format!("{dir}/radvd.conf"),
            "interface tap0 {\n AdvSendAdvert on;\n MinRtrAdvInterval 3;\n MaxRtrAdvInterval 4;\n \
             AdvLinkMTU 1400;\n prefix 2001:db8:1::/64 { AdvOnLink on; AdvAutonomous on; };\n};\n",
        )
        .unwrap();
        let mut radvd = std::process::Command::new("radvd")
            .args(["-n", "-m", "stderr", "-C"])
            .arg(format!("{dir}/radvd.conf"))
            .arg("-p")
            .arg(format!("{dir}/radvd.pid"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("radvd");
        // SLAAC, then DAD of the new address: ping until three replies, for at most 20 s.
        let out = std::process::Command::new("ping")
            .args(["-6", "-n", "-c", "3", "-i", "0.3", "-w", "20", "-s", "2000"])
            .arg("2001:db8:1::aff:fe00:2")
            .output()
            .unwrap();
        let _ = radvd.kill();
        let _ = radvd.wait();
        let _ = std::fs::remove_dir_all(&dir);
        let out = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            received(&out) >= 3 && out.contains("2008 bytes from"),
            "{out}"
        );
        let counters = server.stop();
        assert_eq!(
            counter(&counters, "formed from advertised prefixes"),
            1,
            "{counters}"
        );
        assert_eq!(
            counter(&counters, "default routers learned"),
            1,
            "{counters}"
        );
        assert!(
            counter(&counters, "Router Solicitations sent") >= 1,
            "{counters}"
        );
        assert!(counter(&counters, "IPv6 fragments sent") >= 6, "{counters}");
    });
}

/// Path MTU over IPv6 (RFC 8201): this namespace routes between the tap and a veth to a far
/// namespace whose link takes 1280 bytes on this side. radvd gives the stack its prefix and
/// default router; a far client sends 16 MiB to echo-server, whose 1500-byte echoes draw
/// Packet Too Big from the kernel router; the connection's MSS shrinks and the whole echo
/// arrives (sha256).
#[test]
fn packet_too_big_shrinks_the_mss_and_16_mib_get_through() {
    in_netns(|| {
        let far = format!("tpm-{}", std::process::id());
        sh(&format!("ip netns add {far}"));
        let cleanup = Cleanup(format!("ip netns del {far}"));
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap0/accept_dad");
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6");
        sh("echo 1 > /proc/sys/net/ipv6/conf/all/forwarding");
        sh("ip -6 addr add 2001:db8:1::1/64 dev tap0 nodad");
        sh(&format!(
            "ip link add vfar type veth peer name vnear netns {far}"
        ));
        sh("ip link set vfar mtu 1280 && ip link set vfar up");
        sh("ip -6 addr add 2001:db8:9::1/64 dev vfar nodad");
        sh(&format!(
            "ip -n {far} link set lo up && ip -n {far} link set vnear up && \
             ip netns exec {far} sh -c 'echo 0 > /proc/sys/net/ipv6/conf/vnear/accept_dad' && \
             ip -n {far} -6 addr add 2001:db8:9::2/64 dev vnear nodad && \
             ip -n {far} -6 route add default via 2001:db8:9::1"
        ));
        let server = EchoServer::start(&[]);
        let dir = sh("mktemp -d").trim().to_string();
        std::fs::write(
            format!("{dir}/radvd.conf"),
            "interface tap0 {\n AdvSendAdvert on;\n MinRtrAdvInterval 3;\n MaxRtrAdvInterval 4;\n \
             prefix 2001:db8:1::/64 { AdvOnLink on; AdvAutonomous on; };\n};\n",
        )
        .unwrap();
        let mut radvd = std::process::Command::new("radvd")
            .args(["-n", "-m", "stderr", "-C"])
            .arg(format!("{dir}/radvd.conf"))
            .arg("-p")
            .arg(format!("{dir}/radvd.pid"))
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("radvd");
        // The stack's SLAAC address answers from the far side (bounded).
        let ping = sh(&format!(
            "ip netns exec {far} ping -6 -n -c 1 -i 0.3 -w 20 2001:db8:1::aff:fe00:2"
        ));
        assert!(received(&ping) >= 1, "{ping}");
        // 16 MiB from the far side, echoed: a client in the far namespace, on this thread's
        // child (nc would not report the echo's hash), via python3.
        let script = format!("{dir}/client.py");
        std::fs::write(
            &script,
            "import hashlib, socket, sys, threading\n\
             data = bytes((i * 7) % 251 for i in range(16 << 20))\n\
             s = socket.create_connection(('2001:db8:1::aff:fe00:2', 7), timeout=60)\n\
             def send():\n    s.sendall(data)\n    s.shutdown(socket.SHUT_WR)\n\
             t = threading.Thread(target=send)\nt.start()\n\
             h = hashlib.sha256()\nn = 0\n\
             while True:\n    b = s.recv(1 << 16)\n    if not b: break\n    h.update(b)\n    n += len(b)\n\
             t.join()\n\
             print(n, h.hexdigest() == hashlib.sha256(data).hexdigest())\n",
        )
        .unwrap();
        let out = sh(&format!("ip netns exec {far} timeout 120 python3 {script}"));
        let _ = radvd.kill();
        let _ = radvd.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(out.trim(), format!("{} True", 16 << 20));
        let counters = server.stop();
        assert!(
            counter(&counters, "Packet Too Big messages received") >= 1,
            "{counters}"
        );
        assert!(counter(&counters, "path MTU reductions") >= 1, "{counters}");
        drop(cleanup);
    });
}

/// Runs a shell command when dropped (a namespace to remove, whatever the test's outcome).
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::process::Command::new("sh")
            .args(["-c", &self.0])
            .status();
    }
}

/// UDP over IPv6 from a kernel socket, as the IPv4 test above: every size from 1 to 1600
/// (across the one-packet limit, 1452), every 257th and each fragment-count boundary up to
/// 65507 (pieces of 1448 bytes), each datagram checked (sha256 of the whole stream).
#[test]
fn udp_echo_over_ipv6_for_sizes_1_to_65507() {
    in_netns(|| {
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6");
        sh("ip -6 addr add 2001:db8::1/64 dev tap0 nodad");
        let server = EchoServer::start(&["--ip6", "2001:db8::2/64"]);
        let out = sh("ping -6 -n -c 1 -i 0.2 -w 10 2001:db8::2");
        assert!(received(&out) >= 1, "{out}");
        let sock = UdpSocket::bind("[2001:db8::1]:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        sock.connect("[2001:db8::2]:7").unwrap();
        // One packet holds 1452 bytes; each further fragment 1448.
        let (sizes, retries) = echo_sizes(&sock, 1452, 1448);
        assert!(retries <= 3, "{retries} datagrams needed a second try");
        let counters = server.stop();
        assert!(counter(&counters, "UDP datagrams sent") >= sizes.len() as u64);
    });
}

/// On an IPv4-only link, IPv6 adds only what its link-local address takes: Duplicate Address
/// Detection's solicitation, the MLDv2 report that joins the address's solicited-node group
/// (RFC 4861 §7.2.1), and Router Solicitations; IPv4 works as before. With `--no-ip6` the
/// stack sends no IPv6 at all (tcpdump on the tap sees none in 5 s, the capture none).
#[test]
fn an_ipv4_only_link_sees_only_the_link_local_address_and_no_ip6_turns_it_off() {
    in_netns(|| {
        let dir = sh("mktemp -d").trim().to_string();
        for no_ip6 in [false, true] {
            let capture = format!("{dir}/v4only-{no_ip6}.pcap");
            let mut args = vec!["--pcap", capture.as_str()];
            if no_ip6 {
                args.push("--no-ip6");
            }
            let server = EchoServer::start(&args);
            let ping = sh(&format!("ping -n -c 3 -i 0.2 -W 5 {STACK_IP}"));
            assert_eq!(received(&ping), 3, "{ping}");
            let echo = sh(&format!("echo 'four only' | nc -N -w 5 {STACK_IP} 7"));
            assert_eq!(echo.trim(), "four only");
            // A Router Solicitation comes within 10 s (after DAD); with --no-ip6 nothing
            // IPv6 in 5.
            let watch = if no_ip6 {
                "timeout 5 tcpdump -i tap0 -c 1 -nn ip6 2>/dev/null; echo rc=$?"
            } else {
                "timeout 10 tcpdump -i tap0 -c 1 -nn 'icmp6 and ip6[40] == 133' 2>/dev/null; echo rc=$?"
            };
            let seen = sh(watch);
            let counters = server.stop();
            let frames = sh(&format!("tcpdump -nn -r {capture} ip6 2>/dev/null"));
            if no_ip6 {
                assert!(seen.contains("rc=124"), "IPv6 seen: {seen}");
                assert!(frames.trim().is_empty(), "{frames}");
                assert_eq!(counter(&counters, "IPv6 packets sent"), 0, "{counters}");
            } else {
                assert!(seen.contains("router solicitation"), "{seen}");
                for line in frames.lines() {
                    assert!(
                        [
                            "neighbor solicitation",
                            "listener report v2",
                            "router solicitation"
                        ]
                        .iter()
                        .any(|kind| line.contains(kind)),
                        "unexpected IPv6 on an IPv4-only link: {line}"
                    );
                }
                assert!(frames.contains("IP6 :: > ff02::1:ff00:2"), "DAD: {frames}");
            }
        }
        sh(&format!("rm -rf {dir}"));
    });
}

/// UDP GSO from the library to a kernel socket: one `send_segments_to` of 60 000 bytes at
/// 1400 reaches the kernel's socket as 43 datagrams (42 of 1400, one of 1200) with the bytes
/// in order (sha256), twice (the second send posted). The tap carried each send as one
/// packet: the kernel cut it (USO, Linux 6.2 on), as its tap counters show.
#[test]
fn segmented_udp_sends_reach_a_kernel_socket_as_datagrams() {
    in_netns(|| {
        let stack = library_stack(None);
        let sink = UdpSocket::bind("10.0.1.1:5001").unwrap();
        sink.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let sock = tapstack::UdpSocket::bind(&stack, "10.0.1.2:0").unwrap();
        let data = pattern(60_000, 11);
        // What the kernel received on tap1, from its counters (a shell in this namespace).
        let rx_packets = || -> u64 {
            let dev = sh("cat /proc/net/dev");
            let line = dev.lines().find(|l| l.trim_start().starts_with("tap1:"));
            let fields = line.and_then(|l| l.split(':').nth(1)).unwrap_or_default();
            fields
                .split_whitespace()
                .nth(1)
                .and_then(|n| n.parse().ok())
                .expect(&dev)
        };
        // The first send resolves the kernel's address.
        sock.send_to(b"hello", "10.0.1.1:5001").unwrap();
        let mut buf = vec![0u8; 2000];
        assert_eq!(sink.recv_from(&mut buf).unwrap().0, 5);
        let before = rx_packets();
        for _ in 0..2 {
            assert_eq!(
                sock.send_segments_to(&data, 1400, "10.0.1.1:5001").unwrap(),
                60_000
            );
            let mut got = Vec::new();
            for i in 0..43 {
                let (n, from) = sink.recv_from(&mut buf).unwrap();
                assert_eq!(from, sock.local_addr().unwrap());
                assert_eq!(n, if i < 42 { 1400 } else { 1200 }, "datagram {i}");
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(sha256(&got), sha256(&data));
        }
        let packets = rx_packets() - before;
        assert!(
            packets < 10,
            "{packets} packets on the tap for 86 datagrams: the kernel (6.2 or later) should cut them"
        );
    });
}
