//! TUN mode against the Linux kernel, in a namespace each test creates: echo-server `--tun`
//! answers ping (fragmented too), UDP and TCP echo over bare IP, and its capture is raw IP.

mod common;

use common::netns::*;
use common::{pattern, sha256};
use std::net::{TcpStream, UdpSocket};
use std::time::Duration;

const TUN_KERNEL_IP: &str = "10.0.2.1";
const TUN_STACK_IP: &str = "10.0.2.2";

/// tun0 with IPv6 too (kernel side 2001:db8:2::1/64), and echo-server on it at 2001:db8:2::2
/// as well, capturing to `capture`.
fn ipv6_tun_server(capture: &str) -> EchoServer {
    make_tun();
    sh("echo 0 > /proc/sys/net/ipv6/conf/tun0/disable_ipv6");
    sh("ip -6 addr add 2001:db8:2::1/64 dev tun0 nodad");
    EchoServer::start(&[
        "--tun",
        "tun0",
        "--ip",
        &format!("{TUN_STACK_IP}/24"),
        "--ip6",
        "2001:db8:2::2/64",
        "--pcap",
        capture,
    ])
}

/// Creates tun0 (kernel side 10.0.2.1/24) in the current namespace.
fn make_tun() {
    sh("ip tuntap add dev tun0 mode tun");
    sh("echo 1 > /proc/sys/net/ipv6/conf/tun0/disable_ipv6");
    sh(&format!("ip addr add {TUN_KERNEL_IP}/24 dev tun0"));
    sh("ip link set tun0 up");
}

#[test]
fn ping_udp_and_64_mib_of_tcp_echo_over_a_tun_with_a_raw_ip_capture() {
    in_netns(|| {
        make_tun();
        let dir = tempdir();
        let capture = format!("{dir}/tun.pcap");
        let server = EchoServer::start(&[
            "--tun",
            "tun0",
            "--ip",
            &format!("{TUN_STACK_IP}/24"),
            "--pcap",
            &capture,
        ]);
        let ping = sh(&format!("ping -c 3 -i 0.2 -W 5 {TUN_STACK_IP}"));
        assert!(ping.contains("3 received"), "{ping}");
        let big = sh(&format!("ping -c 1 -s 8000 -W 5 {TUN_STACK_IP}"));
        assert!(big.contains("1 received"), "{big}");

        let udp = UdpSocket::bind((TUN_KERNEL_IP, 0)).unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let datagram = pattern(3000, 4);
        udp.send_to(&datagram, (TUN_STACK_IP, 7)).unwrap();
        let mut buf = [0u8; 4000];
        let (n, from) = udp.recv_from(&mut buf).unwrap();
        assert_eq!(from.to_string(), format!("{TUN_STACK_IP}:7"));
        assert_eq!(&buf[..n], &datagram[..]);

        let tcp = TcpStream::connect((TUN_STACK_IP, 7)).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let data = pattern(64 << 20, 9);
        let want = sha256(&data);
        let got = kernel_echo(tcp, data);
        assert_eq!(got.len(), 64 << 20);
        assert_eq!(sha256(&got), want);

        let counters = server.stop();
        assert_eq!(counter(&counters, "ARP"), 0, "{counters}");
        assert!(
            counter(&counters, "super-segments sent") > 100,
            "{counters}"
        );
        let read = sh(&format!("tcpdump -nn -r {capture} icmp 2>&1"));
        assert!(read.contains("link-type RAW"), "{read}");
        assert!(
            read.contains(&format!(
                "{TUN_STACK_IP} > {TUN_KERNEL_IP}: ICMP echo reply"
            )),
            "{read}"
        );
        sh(&format!("rm -r {dir}"));
    });
}

#[test]
fn a_pcapng_capture_names_the_interface_and_the_stack() {
    in_netns(|| {
        make_tun();
        let dir = tempdir();
        let capture = format!("{dir}/tun.pcapng");
        let server = EchoServer::start(&[
            "--tun",
            "tun0",
            "--ip",
            &format!("{TUN_STACK_IP}/24"),
            "--seed",
            "42",
            "--pcap",
            &capture,
        ]);
        let ping = sh(&format!("ping -c 2 -i 0.2 -W 5 {TUN_STACK_IP}"));
        assert!(ping.contains("2 received"), "{ping}");
        server.stop();
        let read = sh(&format!("tcpdump -nn -r {capture} 2>&1"));
        assert!(read.contains("link-type RAW"), "{read}");
        assert_eq!(read.matches("ICMP echo reply").count(), 2, "{read}");
        let bytes = std::fs::read(&capture).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains("tun0"), "no interface name");
        assert!(
            text.contains("stack 10.0.2.2/24") && text.contains("seed 42"),
            "no comment"
        );
        sh(&format!("rm -r {dir}"));
    });
}

/// A fresh directory for a capture.
fn tempdir() -> String {
    sh("mktemp -d").trim().to_string()
}

/// IPv6 over a tun (`--ip6` turns it on there; no link layer, so no DAD or Neighbour
/// Discovery): ping -6, plain and fragmented both ways, and UDP echo over IPv6 and IPv4
/// through the one dual-stack socket, with a raw-IP capture tcpdump reads as IPv6.
#[test]
fn ipv6_over_a_tun_ping_and_udp() {
    in_netns(|| {
        let dir = tempdir();
        let capture = format!("{dir}/tun6.pcap");
        let server = ipv6_tun_server(&capture);
        let ping = sh("ping -6 -c 3 -i 0.2 -W 5 2001:db8:2::2");
        assert!(ping.contains("3 received"), "{ping}");
        let big = sh("ping -6 -c 1 -s 8000 -W 5 2001:db8:2::2");
        assert!(big.contains("1 received"), "{big}");
        let udp = UdpSocket::bind("[2001:db8:2::1]:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let datagram = pattern(3000, 6);
        udp.send_to(&datagram, "[2001:db8:2::2]:7").unwrap();
        let mut buf = [0u8; 4000];
        let (n, from) = udp.recv_from(&mut buf).unwrap();
        assert_eq!(from.to_string(), "[2001:db8:2::2]:7");
        assert_eq!(sha256(&buf[..n]), sha256(&datagram));
        let v4 = UdpSocket::bind((TUN_KERNEL_IP, 0)).unwrap();
        v4.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        v4.send_to(b"four", (TUN_STACK_IP, 7)).unwrap();
        let (n, _) = v4.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"four");
        let counters = server.stop();
        assert!(
            counter(&counters, "ICMPv6 echo replies sent") >= 4,
            "{counters}"
        );
        let shown = sh(&format!("tcpdump -nr {capture} ip6 2>/dev/null | head -3"));
        assert!(shown.contains("2001:db8:2::1 > 2001:db8:2::2"), "{shown}");
        sh(&format!("rm -rf {dir}"));
    });
}

/// IPv6 over a tun as over a tap: the kernel's nc, and its 64 MiB echoed through echo-server
/// (sent back as GSO_TCPV6 super-segments); UDP datagrams of 1 to 65 507 bytes (fragmented
/// both ways past 1452); the stack as a library client of a kernel server over a second tun,
/// 64 MiB each way; and the capture shows it.
#[test]
fn tcp_and_udp_over_ipv6_on_a_tun_both_ways() {
    in_netns(|| {
        let dir = tempdir();
        let capture = format!("{dir}/tun6.pcap");
        let server = ipv6_tun_server(&capture);
        let ping = sh("ping -6 -n -c 1 -i 0.2 -w 10 2001:db8:2::2");
        assert!(answered(&ping), "{ping}");
        let out = sh("echo 'hello over a tun' | nc -6 -N -w 5 2001:db8:2::2 7");
        assert_eq!(out.trim(), "hello over a tun");
        let s = TcpStream::connect("[2001:db8:2::2]:7").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let data = pattern(64 << 20, 21);
        let want = sha256(&data);
        let got = kernel_echo(s, data);
        assert_eq!(got.len(), 64 << 20);
        assert_eq!(sha256(&got), want);
        let udp = UdpSocket::bind("[2001:db8:2::1]:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        udp.connect("[2001:db8:2::2]:7").unwrap();
        // One packet holds 1452 bytes; each further fragment 1448.
        let (sizes, retries) = echo_sizes(&udp, 1452, 1448);
        assert!(retries <= 3, "{retries} datagrams needed a second try");
        let counters = server.stop();
        assert!(
            counter(&counters, "super-segments sent") > 100,
            "{counters}"
        );
        assert!(counter(&counters, "UDP datagrams sent") >= sizes.len() as u64);
        let shown = sh(&format!("tcpdump -nn -r {capture} ip6 2>/dev/null"));
        assert!(shown.contains("> 2001:db8:2::2.7: Flags [S]"), "a SYN");
        assert!(
            shown.contains("2001:db8:2::2 > 2001:db8:2::1: frag ("),
            "a fragment"
        );

        sh("ip tuntap add dev tun1 mode tun");
        sh("echo 0 > /proc/sys/net/ipv6/conf/tun1/disable_ipv6");
        sh("ip -6 addr add 2001:db8:3::1/64 dev tun1 nodad");
        sh("ip link set tun1 up");
        let mut cfg = tapstack::StackConfig::new([10, 0, 3, 2].into(), 24);
        cfg.seed = 22;
        cfg.ipv6 = Some(tapstack::Ipv6Config {
            addrs: vec![("2001:db8:3::2".parse().unwrap(), 64)],
            dad_transmits: 0,
            ..Default::default()
        });
        let tun = tapstack::phy::TunDevice::open("tun1").unwrap();
        let stack = tapstack::Stack::new(tun, cfg).unwrap();
        let listener = std::net::TcpListener::bind("[2001:db8:3::1]:5000").unwrap();
        library_client_64_mib_each_way(
            &stack,
            listener,
            "[2001:db8:3::1]:5000",
            23,
            Some("2001:db8:3::2"),
        );
        sh(&format!("rm -rf {dir}"));
    });
}
