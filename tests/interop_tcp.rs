//! TCP against the Linux kernel over taps in a namespace each test creates: the kernel as
//! client of echo-server, and the stack as a library client of kernel servers.

mod common;

use common::netns::*;
use common::{pattern, sha256};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener as KernelListener, TcpStream as KernelStream};
use std::time::Duration;
use tapstack::phy::FaultConfig;
use tapstack::TcpStream;

#[test]
fn nc_echoes_through_the_stack() {
    in_netns(|| {
        let server = EchoServer::start(&[]);
        let out = sh(&format!(
            "echo 'hello through tapstack' | nc -N -w 5 {STACK_IP} 7"
        ));
        assert_eq!(out.trim(), "hello through tapstack");
        server.stop();
    });
}

#[test]
fn kernel_client_echoes_64_mib_through_the_stack() {
    in_netns(|| {
        let server = EchoServer::start(&[]);
        let s = KernelStream::connect((STACK_IP, 7)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let data = pattern(64 << 20, 5);
        let want = sha256(&data);
        let got = kernel_echo(s, data);
        assert_eq!(got.len(), 64 << 20);
        assert_eq!(sha256(&got), want);
        let counters = server.stop();
        // With the tap's offloads the kernel delivers up to 64 KB per segment (about 1100 for
        // 64 MiB); without them about 46 000 segments of 1448 bytes. The echo goes back as
        // super-segments the kernel splits, completing their checksums (the sha256 above).
        assert!(
            counter(&counters, "segments received") > 1_000,
            "{counters}"
        );
        assert!(
            counter(&counters, "super-segments sent") > 100,
            "{counters}"
        );
    });
}

#[test]
fn stack_client_moves_64_mib_each_way_with_a_kernel_server() {
    in_netns(|| {
        let stack = library_stack(None);
        let listener = KernelListener::bind("10.0.1.1:5000").unwrap();
        library_client_64_mib_each_way(&stack, listener, "10.0.1.1:5000", 6, None);
    });
}

/// The kernel echoes 64 MiB (pattern `seed`) through `echo-server ARGS`, checked by sha256;
/// the server's counters.
fn echo_64_mib(args: &[&str], seed: u8) -> String {
    let server = EchoServer::start(args);
    let s = KernelStream::connect((STACK_IP, 7)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let data = pattern(64 << 20, seed);
    let want = sha256(&data);
    let got = kernel_echo(s, data);
    assert_eq!(got.len(), 64 << 20);
    assert_eq!(sha256(&got), want);
    server.stop()
}

/// ECN with the kernel (RFC 3168), both ways: the kernel asks for it (`tcp_ecn = 1` in the
/// test's namespace), and echo-server's fault injector marks 1% of the ECN-capable frames
/// each way Congestion Experienced, as a router's AQM would. The stack agrees, sends its data
/// ECT(0), echoes the kernel's marks until the kernel's CWR, and answers the kernel's echoes
/// with a reduction and its own CWR; tcpdump reads each of these from the stack's capture.
/// 16 MiB each way, sha256.
#[test]
fn ecn_with_the_kernel_marks_are_echoed_and_answered_both_ways() {
    in_netns(|| {
        sh("sysctl -qw net.ipv4.tcp_ecn=1");
        let dir = std::env::temp_dir().join(format!("tapstack-ecn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pcap = dir.join("capture.pcap");
        let args = ["--mark-chance", "1", "--seed", "14", "--pcap"];
        let server = EchoServer::start(&[&args[..], &[pcap.to_str().unwrap()]].concat());
        let s = KernelStream::connect((STACK_IP, 7)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let data = pattern(16 << 20, 14);
        let want = sha256(&data);
        let got = kernel_echo(s, data);
        assert_eq!(sha256(&got), want);
        let counters = server.stop();
        assert_eq!(counter(&counters, "that agreed on ECN"), 1, "{counters}");
        for line in [
            "marked Congestion Experienced by the",
            "segments received marked",
        ] {
            assert!(counter(&counters, line) > 0, "{line}: {counters}");
        }
        assert!(
            counter(&counters, "answering an ECN-Echo") > 0,
            "{counters}"
        );
        let count = |filter: &str| -> u64 {
            let cmd = format!(
                "tcpdump -nr {} '{filter}' 2>/dev/null | wc -l",
                pcap.display()
            );
            sh(&cmd).trim().parse().expect("a count")
        };
        let kernel = format!("src host {KERNEL_IP} and tcp");
        let stack = format!("src host {STACK_IP} and tcp");
        let seen = [
            (
                "marks on the kernel's data",
                count(&format!("{kernel} and ip[1] & 3 == 3")),
            ),
            (
                "the stack's echoes",
                count(&format!("{stack} and tcp[tcpflags] & tcp-ece != 0")),
            ),
            (
                "the kernel's CWRs",
                count(&format!("{kernel} and tcp[tcpflags] & tcp-cwr != 0")),
            ),
            (
                "the stack's ECT(0) data",
                count(&format!("{stack} and ip[1] & 3 == 2")),
            ),
            (
                "the kernel's echoes",
                count(&format!("{kernel} and tcp[tcpflags] & tcp-ece != 0")),
            ),
            (
                "the stack's CWRs",
                count(&format!("{stack} and tcp[tcpflags] & tcp-cwr != 0")),
            ),
        ];
        std::fs::remove_dir_all(&dir).ok();
        eprintln!("{seen:?}");
        assert!(seen.iter().all(|&(_, n)| n > 0), "{seen:?}\n{counters}");
    });
}

/// The kernel as client of echo-server, whose fault injector drops 5% and reorders 5% of
/// frames both ways: 64 MiB each way, at the same time.
#[test]
fn kernel_client_echoes_64_mib_through_a_lossy_stack() {
    in_netns(|| {
        let counters = echo_64_mib(
            &[
                "--drop-chance",
                "5",
                "--reorder-chance",
                "5",
                "--seed",
                "11",
            ],
            9,
        );
        eprintln!("{counters}");
        assert!(
            counter(&counters, "frames dropped by") > 1_000,
            "{counters}"
        );
        assert!(
            counter(&counters, "frames reordered by") > 1_000,
            "{counters}"
        );
        assert!(
            counter(&counters, "segments retransmitted") > 100,
            "{counters}"
        );
    });
}

/// BBR over a real tap: echo-server, every connection BBR and paced by the stack thread's
/// timers, echoes 64 MiB to the kernel through 1% loss each way.
#[test]
fn bbr_echoes_64_mib_through_a_lossy_stack() {
    in_netns(|| {
        let counters = echo_64_mib(
            &["--congestion", "bbr", "--drop-chance", "1", "--seed", "12"],
            12,
        );
        assert!(
            counter(&counters, "segments retransmitted") > 100,
            "{counters}"
        );
    });
}

/// A library client chooses BBR on its socket (`TCP_CONGESTION` before connect) and sends
/// 16 MiB to a kernel server: the connection is BBR from its SYN, paced, and its TCP_INFO
/// shows BBR's state and model of this path.
#[test]
fn a_socket_chooses_bbr_and_shows_its_model() {
    in_netns(|| {
        let stack = library_stack(None);
        let listener = KernelListener::bind("10.0.1.1:5001").unwrap();
        let data = pattern(16 << 20, 13);
        let want = sha256(&data);
        let kernel = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut got = Vec::new();
            (&s).read_to_end(&mut got).unwrap();
            sha256(&got)
        });
        let socket = tapstack::socket::TcpSocket::new(&stack);
        socket
            .set_congestion(tapstack::CongestionAlgorithm::Bbr)
            .unwrap();
        let c = socket.connect("10.0.1.1:5001").unwrap();
        (&c).write_all(&data).unwrap();
        let info = c.info().unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        assert_eq!(kernel.join().unwrap(), want);
        assert_eq!(info.congestion, "bbr");
        assert!(info.cc_phase.is_some(), "{info:?}");
        assert!(info.pacing_rate.is_some_and(|r| r > 0), "{info:?}");
        let model = info.path_model.expect("BBR's model");
        assert!(model.max_bw > 0.0 && model.min_rtt.is_some(), "{model:?}");
        assert!(
            info.delivery.is_some_and(|(delivered, _)| delivered > 0),
            "{info:?}"
        );
    });
}

/// The stack as client of a kernel echo server, its fault injector dropping 5% and
/// reordering 5% of frames both ways: 64 MiB each way, at the same time.
#[test]
fn stack_client_survives_loss_and_reordering() {
    in_netns(|| {
        let faults = FaultConfig {
            drop_pct: 5.0,
            reorder_pct: 5.0,
            seed: 3,
            ..Default::default()
        };
        let stack = library_stack(Some(faults));
        let listener = KernelListener::bind("10.0.1.1:5000").unwrap();
        let kernel = std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            let echo = s.try_clone().unwrap();
            // Echo everything back, then close.
            let mut buf = vec![0u8; 65536];
            loop {
                let n = (&s).read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                (&echo).write_all(&buf[..n]).unwrap();
            }
            echo.shutdown(Shutdown::Write).unwrap();
        });
        let c = TcpStream::connect(&stack, "10.0.1.1:5000").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        let data = pattern(64 << 20, 8);
        let want = sha256(&data);
        let writer = c.try_clone().unwrap();
        let w = std::thread::spawn(move || {
            (&writer).write_all(&data).unwrap();
            writer.shutdown(Shutdown::Write).unwrap();
        });
        let mut got = Vec::new();
        if let Err(e) = (&c).read_to_end(&mut got) {
            // A stall: what the stack saw tells where it is.
            let counters = stack.counters().map(|c| c.to_string());
            panic!("read failed after {} bytes: {e}\n{counters:?}", got.len());
        }
        w.join().unwrap();
        kernel.join().unwrap();
        assert_eq!(sha256(&got), want);
        let counters = stack.counters().unwrap();
        eprintln!("{counters}");
        assert!(counters.fault_dropped > 1_000, "{counters}");
        assert!(counters.fault_reordered > 1_000, "{counters}");
        assert!(counters.tcp_retrans_segs > 100, "{counters}");
    });
}

#[test]
fn two_hundred_concurrent_echo_connections() {
    in_netns(|| {
        let server = EchoServer::start(&[]);
        let clients: Vec<_> = (0..200u32)
            .map(|i| {
                std::thread::spawn(move || {
                    let s = KernelStream::connect((STACK_IP, 7)).unwrap();
                    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                    let data = pattern(20_000 + i as usize * 97, i as u8);
                    let got = kernel_echo(s, data.clone());
                    (sha256(&got) == sha256(&data), i)
                })
            })
            .collect();
        for c in clients {
            let (ok, i) = c.join().unwrap();
            assert!(ok, "connection {i} corrupted");
        }
        let counters = server.stop();
        assert_eq!(
            counter(&counters, "passive connection openings"),
            200,
            "{counters}"
        );
    });
}

#[test]
fn refused_and_reset_surface_as_the_right_errors() {
    in_netns(|| {
        let server = EchoServer::start(&[]);
        let err = KernelStream::connect((STACK_IP, 1234)).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        server.stop();
        let stack = library_stack(None);
        let err = TcpStream::connect(&stack, "10.0.1.1:1234").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
        let listener = KernelListener::bind("10.0.1.1:5000").unwrap();
        let c = TcpStream::connect(&stack, "10.0.1.1:5000").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (k, _) = listener.accept().unwrap();
        // SO_LINGER 0: the kernel closes with a RST.
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt with a live linger struct on a socket we own.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&k),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&linger as *const libc::linger).cast(),
                std::mem::size_of::<libc::linger>() as u32,
            )
        };
        assert_eq!(rc, 0);
        drop(k);
        let err = (&c).read(&mut [0u8; 16]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    });
}

/// The inetd services beside echo, from kernel sockets: daytime (RFC 867) on TCP sends the
/// date line and closes; on UDP daytime and chargen (RFC 864) answer each datagram, discard
/// (RFC 863) answers none, echo returns it.
#[test]
fn daytime_discard_and_chargen_on_tcp_and_udp() {
    in_netns(|| {
        let server = EchoServer::start(&[]);
        let is_daytime = |line: &str| {
            // "Wed Dec  2 16:28:36 2026\r\n"
            let fields: Vec<&str> = line.split_whitespace().collect();
            line.ends_with("\r\n") && fields.len() == 5 && fields[3].len() == 8
        };
        let mut s = KernelStream::connect((STACK_IP, 13)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut line = String::new();
        s.read_to_string(&mut line).unwrap();
        assert!(is_daytime(&line), "{line:?}");

        let udp = std::net::UdpSocket::bind("10.0.0.1:0").unwrap();
        udp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 2048];
        // UDP may lose a datagram: ask again, up to three times.
        let mut ask = |port: u16| {
            (0..3).find_map(|_| {
                udp.send_to(b"?", (STACK_IP, port)).unwrap();
                udp.recv_from(&mut buf).ok().map(|(n, _)| buf[..n].to_vec())
            })
        };
        let day = ask(13).expect("a daytime answer");
        assert!(is_daytime(&String::from_utf8_lossy(&day)), "{day:?}");
        let chargen = ask(19).expect("a chargen answer");
        assert_eq!(chargen.len(), 74);
        assert!(chargen.ends_with(b"\r\n"));
        assert!(chargen[..72].iter().all(|c| (b' '..=b'~').contains(c)));
        assert_eq!(ask(7).expect("an echo"), b"?");
        udp.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        udp.send_to(b"gone", (STACK_IP, 9)).unwrap();
        assert!(udp.recv_from(&mut buf).is_err(), "discard answers nothing");
        let counters = server.stop();
        assert!(
            counter(&counters, "UDP datagrams delivered to sockets") >= 4,
            "{counters}"
        );
    });
}

/// Urgent data with the kernel both ways (RFC 9293 §3.8.5). The kernel's `send(MSG_OOB)`
/// marks the end of its urgent byte; the stack's reads stop at that mark. The stack's
/// `send_urgent` reaches the kernel as its out-of-band byte (`recv(MSG_OOB)`), taken out of
/// the ordinary stream as Linux does without `SO_OOBINLINE`.
#[test]
fn urgent_data_both_ways_with_the_kernel() {
    in_netns(|| {
        let stack = library_stack(None);
        let listener = KernelListener::bind("10.0.1.1:5002").unwrap();
        let c = TcpStream::connect(&stack, "10.0.1.1:5002").unwrap();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let (k, _) = listener.accept().unwrap();
        k.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&k);

        // Kernel to stack.
        (&k).write_all(b"abc").unwrap();
        // SAFETY: send of a live one-byte buffer on a socket we own.
        let sent = unsafe { libc::send(fd, b"X".as_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!(sent, 1);
        (&k).write_all(b"def").unwrap();
        k.shutdown(Shutdown::Write).unwrap();
        // Everything arrives first (the kernel sends the three writes as three segments),
        // so that a read could take all of it but for the mark.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while c.info().unwrap().readable < 7 {
            assert!(std::time::Instant::now() < deadline, "7 bytes within 10 s");
            std::thread::yield_now();
        }
        assert_eq!(c.urgent_left(), Some(4), "urgent up to and with the X");
        let mut buf = [0u8; 64];
        assert_eq!(
            (&c).read(&mut buf).unwrap(),
            4,
            "the read stops at the mark"
        );
        assert_eq!(&buf[..4], b"abcX");
        assert_eq!(c.urgent_left(), None);
        assert_eq!((&c).read(&mut buf).unwrap(), 3);
        assert_eq!(&buf[..3], b"def");
        assert_eq!((&c).read(&mut buf).unwrap(), 0);

        // Stack to kernel.
        (&c).write_all(b"hello ").unwrap();
        assert_eq!(c.send_urgent(b"!").unwrap(), 1);
        (&c).write_all(b" world").unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        // POLLPRI tells the kernel's reader of urgent data; the byte is taken before the
        // ordinary reads pass it (Linux forgets it then).
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLPRI,
            revents: 0,
        };
        // SAFETY: poll on one live pollfd.
        let ready = unsafe { libc::poll(&mut pfd, 1, 10_000) };
        assert_eq!((ready, pfd.revents & libc::POLLPRI), (1, libc::POLLPRI));
        let mut oob = [0u8; 1];
        // SAFETY: recv into a live one-byte buffer on a socket we own.
        let n = unsafe { libc::recv(fd, oob.as_mut_ptr().cast(), 1, libc::MSG_OOB) };
        assert_eq!((n, oob), (1, *b"!"), "{}", std::io::Error::last_os_error());
        let mut plain = Vec::new();
        (&k).read_to_end(&mut plain).unwrap();
        assert_eq!(plain, b"hello  world", "the urgent byte left the stream");
    });
}

/// TCP over IPv6 with the kernel, the same TCP as over IPv4: the kernel as client of
/// echo-server (nc -6, then 64 MiB echoed, sha256), and the stack as a library client of a
/// kernel server (64 MiB each way). Each side's addresses skip DAD (`nodad`, `dad_transmits`
/// 0): the link is theirs alone.
#[test]
fn tcp_over_ipv6_both_ways_with_the_kernel() {
    in_netns(|| {
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6");
        sh("ip -6 addr add 2001:db8::1/64 dev tap0 nodad");
        let server = EchoServer::start(&["--ip6", "2001:db8::2/64"]);
        // DAD of the stack's address: ping until one reply, for at most 10 s.
        let ping = sh("ping -6 -n -c 1 -i 0.2 -w 10 2001:db8::2");
        assert!(answered(&ping), "{ping}");
        let out = sh("echo 'hello over six' | nc -6 -N -w 5 2001:db8::2 7");
        assert_eq!(out.trim(), "hello over six");
        let s = KernelStream::connect("[2001:db8::2]:7").unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let data = pattern(64 << 20, 11);
        let want = sha256(&data);
        let got = kernel_echo(s, data);
        assert_eq!(sha256(&got), want);
        let counters = server.stop();
        assert!(
            counter(&counters, "passive connection openings") >= 2,
            "{counters}"
        );
        // TSO over IPv6 too: the echo leaves as super-segments the kernel splits.
        assert!(
            counter(&counters, "super-segments sent") > 100,
            "{counters}"
        );

        sh("ip tuntap add dev tap1 mode tap");
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap1/disable_ipv6");
        sh("ip -6 addr add 2001:db8:1::1/64 dev tap1 nodad");
        sh("ip link set tap1 up");
        let mut cfg = tapstack::StackConfig::new([10, 0, 1, 2].into(), 24);
        cfg.seed = 8;
        cfg.ipv6 = Some(tapstack::Ipv6Config {
            addrs: vec![("2001:db8:1::2".parse().unwrap(), 64)],
            dad_transmits: 0,
            ..Default::default()
        });
        let tap = tapstack::phy::TapDevice::open("tap1").unwrap();
        let stack = tapstack::Stack::new(tap, cfg).unwrap();
        let listener = KernelListener::bind("[2001:db8:1::1]:5000").unwrap();
        library_client_64_mib_each_way(
            &stack,
            listener,
            "[2001:db8:1::1]:5000",
            12,
            Some("2001:db8:1::2"),
        );
    });
}

/// The `queue k: …` figures from echo-server's output: connections accepted, frames
/// received and frames passed on, per queue.
fn queue_lines(out: &str) -> Vec<(u64, u64, u64)> {
    out.lines()
        .filter(|l| l.starts_with("queue "))
        .map(|l| {
            let n = |after: &str| -> u64 {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = words.iter().position(|w| *w == after).expect(l);
                words[at - 1].trim_end_matches(',').parse().expect(l)
            };
            (n("connections"), n("frames"), n("passed"))
        })
        .collect()
}

/// echo-server on two queues of a multi-queue tap: 64 kernel connections, 16 at a time,
/// each echo 256 KiB whole (sha256); both queues accept some, and frames land on the queue
/// that holds their connection (the kernel hands each flow to the queue that answered its
/// SYN): at most 1% are passed on (a late retransmission for a connection already gone is
/// passed on before the last queue answers it).
#[test]
fn echo_server_on_two_queues_serves_flows_on_both_and_each_stays_on_its_queue() {
    in_netns(|| {
        multi_queue_tap("tapq", "10.0.3.1/24");
        let server = EchoServer::start(&[
            "--tap",
            "tapq",
            "--ip",
            "10.0.3.2/24",
            "--queues",
            "2",
            "--no-ip6",
        ]);
        for round in 0..4u8 {
            let workers: Vec<_> = (0..16u8)
                .map(|i| {
                    std::thread::spawn(move || {
                        let s = KernelStream::connect(("10.0.3.2", 7)).unwrap();
                        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                        let data = pattern(256 << 10, round * 16 + i);
                        let want = sha256(&data);
                        let got = kernel_echo(s, data);
                        assert_eq!(sha256(&got), want);
                    })
                })
                .collect();
            for w in workers {
                w.join().unwrap();
            }
        }
        let out = server.stop();
        let queues = queue_lines(&out);
        assert_eq!(queues.len(), 2, "{out}");
        assert!(queues.iter().all(|(accepted, _, _)| *accepted > 0), "{out}");
        assert_eq!(queues.iter().map(|q| q.0).sum::<u64>(), 64, "{out}");
        let frames: u64 = queues.iter().map(|q| q.1).sum();
        let passed: u64 = queues.iter().map(|q| q.2).sum();
        assert!(passed * 100 <= frames, "{out}");
    });
}

/// Connections the library opens from one queue of two, to a kernel server: after 5.5 s
/// without a frame from us the kernel's flow entries have expired (3 s, collected on the
/// next whole second), and its next segments
/// go where its hash says, half of them to the other queue, which passes them on; every
/// connection still echoes whole. 16 connections: all 16 staying put has odds of 1 in
/// 65 536.
#[test]
fn connections_from_one_queue_survive_the_kernel_sending_to_the_other() {
    in_netns(|| {
        use std::io::{Read, Write};
        use tapstack::phy::TapDevice;
        multi_queue_tap("tapq", "10.0.3.1/24");
        let mut cfg = tapstack::StackConfig::new([10, 0, 3, 2].into(), 24);
        cfg.seed = 3;
        let stacks =
            tapstack::Stack::new_queues(TapDevice::open_queues("tapq", 2).unwrap(), cfg).unwrap();
        let listener = KernelListener::bind("10.0.3.1:5000").unwrap();
        let server = std::thread::spawn(move || {
            let conns: Vec<KernelStream> = (0..16).map(|_| listener.accept().unwrap().0).collect();
            conns
        });
        let mut streams: Vec<TcpStream> = (0..16)
            .map(|_| TcpStream::connect(&stacks[1], "10.0.3.1:5000").unwrap())
            .collect();
        let mut kernel = server.join().unwrap();
        for s in &streams {
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        }
        // The kernel's flow entries expire 3 s after our last write on each flow, at its next
        // garbage collection, rounded up to a whole second: a timer of the kernel's, waited
        // out with room.
        std::thread::sleep(Duration::from_millis(5500));
        for (i, k) in kernel.iter_mut().enumerate() {
            k.write_all(&pattern(10_000, i as u8)).unwrap();
        }
        for (i, s) in streams.iter_mut().enumerate() {
            let mut got = vec![0u8; 10_000];
            s.read_exact(&mut got).unwrap();
            assert_eq!(got, pattern(10_000, i as u8), "connection {i}");
            s.write_all(b"back").unwrap();
        }
        for k in &mut kernel {
            k.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut back = [0u8; 4];
            k.read_exact(&mut back).unwrap();
            assert_eq!(&back, b"back");
        }
        let passed = stacks[0].counters().unwrap().queue_passed_on;
        let taken = stacks[1].counters().unwrap().queue_taken_over;
        assert!(
            passed > 0 && taken >= passed,
            "passed on {passed}, taken over {taken}"
        );
    });
}
