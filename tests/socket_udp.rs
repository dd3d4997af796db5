//! The `UdpSocket` API through the runtime: two stacks, each with its own thread, joined by the
//! in-memory link. Real threads and real time; every wait is bounded.

mod common;

use common::{config, config_v6, pattern, sha256};
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tapstack::phy::memory_pair;
use tapstack::{Stack, UdpSocket};

fn two_stacks() -> (Stack, Stack) {
    let (a, b) = memory_pair(1500).unwrap();
    (
        Stack::new(a, config(1, 1)).unwrap(),
        Stack::new(b, config(2, 2)).unwrap(),
    )
}

fn timeout(s: &UdpSocket) {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
}

#[test]
fn send_to_and_recv_from_across_stacks() {
    let (a, b) = two_stacks();
    let server = UdpSocket::bind(&b, "0.0.0.0:7").unwrap();
    let client = UdpSocket::bind(&a, "10.0.0.1:0").unwrap();
    timeout(&server);
    timeout(&client);
    let local = client.local_addr().unwrap();
    assert_eq!(local.ip().to_string(), "10.0.0.1");
    assert!((32768..=60999).contains(&local.port()), "ephemeral {local}");
    let mut buf = vec![0u8; 70000];
    for size in [0, 1, 1472, 1473, 30000, 65507] {
        let data = pattern(size, 3);
        assert_eq!(client.send_to(&data, "10.0.0.2:7").unwrap(), size);
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!((n, from), (size, local));
        assert_eq!(sha256(&buf[..n]), sha256(&data));
        server.send_to(&buf[..n], from).unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(from, "10.0.0.2:7".parse::<SocketAddr>().unwrap());
        assert_eq!(sha256(&buf[..n]), sha256(&data));
    }
    // A datagram larger than the buffer is truncated, like std.
    client.send_to(&[7u8; 100], "10.0.0.2:7").unwrap();
    let mut small = [0u8; 10];
    assert_eq!(server.recv_from(&mut small).unwrap().0, 10);
}

#[test]
fn connect_filters_peers_and_reports_refusal() {
    let (a, b) = two_stacks();
    let server = UdpSocket::bind(&b, "10.0.0.2:7").unwrap();
    let other = UdpSocket::bind(&b, "10.0.0.2:8").unwrap();
    let client = UdpSocket::bind(&a, "0.0.0.0:5000").unwrap();
    timeout(&client);
    let err = client.send(b"x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EDESTADDRREQ));
    assert_eq!(
        client.peer_addr().unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    client.connect("10.0.0.2:7").unwrap();
    assert_eq!(client.peer_addr().unwrap().to_string(), "10.0.0.2:7");
    assert_eq!(client.local_addr().unwrap().to_string(), "10.0.0.1:5000");
    other.send_to(b"not my peer", "10.0.0.1:5000").unwrap();
    server.send_to(b"peer", "10.0.0.1:5000").unwrap();
    let mut buf = [0u8; 64];
    let n = client.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"peer", "the other sender was filtered");
    client.connect("10.0.0.2:9").unwrap();
    client.send(b"anyone?").unwrap();
    assert_eq!(
        client.recv(&mut buf).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
    let c = a.counters().unwrap();
    assert_eq!(c.udp_rx_filtered, 1);
    assert_eq!(
        c.icmp_tx_port_unreachable, 1,
        "no socket took the other sender's datagram: port unreachable, as Linux answers"
    );
    assert_eq!(c.icmp_rx_errors_delivered, 1);
}

#[test]
fn bind_errors_match_std() {
    let (a, _b) = two_stacks();
    let _s = UdpSocket::bind(&a, "0.0.0.0:7").unwrap();
    assert_eq!(
        UdpSocket::bind(&a, "10.0.0.1:7").unwrap_err().kind(),
        ErrorKind::AddrInUse
    );
    assert_eq!(
        UdpSocket::bind(&a, "10.9.9.9:0").unwrap_err().kind(),
        ErrorKind::AddrNotAvailable
    );
    assert_eq!(
        UdpSocket::bind(&a, "[::1]:0").unwrap_err().raw_os_error(),
        Some(libc::EAFNOSUPPORT)
    );
    let s = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    assert_eq!(
        s.send_to(&vec![0; 65508], "10.0.0.2:7")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EMSGSIZE)
    );
    s.set_dont_fragment(true).unwrap();
    assert_eq!(
        s.send_to(&[0; 1473], "10.0.0.2:7")
            .unwrap_err()
            .raw_os_error(),
        Some(libc::EMSGSIZE)
    );
    assert_eq!(
        s.send_to(b"x", "10.0.0.255:7").unwrap_err().kind(),
        ErrorKind::PermissionDenied,
        "broadcast needs set_broadcast"
    );
    s.set_broadcast(true).unwrap();
    s.send_to(b"x", "10.0.0.255:7").unwrap();
    assert!(s.set_read_timeout(Some(Duration::ZERO)).is_err());
    // The port is free again once the socket is dropped.
    drop(_s);
    UdpSocket::bind(&a, "0.0.0.0:7").unwrap();
}

#[test]
fn read_timeout_and_nonblocking_return_would_block() {
    let (a, _b) = two_stacks();
    let s = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    let mut buf = [0u8; 16];
    s.set_read_timeout(Some(Duration::from_millis(150)))
        .unwrap();
    assert_eq!(s.read_timeout().unwrap(), Some(Duration::from_millis(150)));
    let start = Instant::now();
    assert_eq!(s.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(150) && waited < Duration::from_secs(5),
        "{waited:?}"
    );
    s.set_nonblocking(true).unwrap();
    let start = Instant::now();
    assert_eq!(s.recv(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    assert!(start.elapsed() < Duration::from_secs(1));
}

#[test]
fn many_threads_share_sockets_and_clones() {
    let (a, b) = two_stacks();
    let server = UdpSocket::bind(&b, "0.0.0.0:7").unwrap();
    timeout(&server);
    let echo = server.try_clone().unwrap();
    let echo_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            if &buf[..n] == b"stop" {
                break;
            }
            echo.send_to(&buf[..n], from).unwrap();
        }
    });
    let clients: Vec<_> = (0..8)
        .map(|t| {
            let sock = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
            std::thread::spawn(move || {
                timeout(&sock);
                let mut buf = [0u8; 2048];
                for i in 0..50u32 {
                    let msg = format!("thread {t} message {i}");
                    sock.send_to(msg.as_bytes(), "10.0.0.2:7").unwrap();
                    let n = sock.recv(&mut buf).unwrap();
                    assert_eq!(&buf[..n], msg.as_bytes());
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    UdpSocket::bind(&a, "0.0.0.0:0")
        .unwrap()
        .send_to(b"stop", "10.0.0.2:7")
        .unwrap();
    echo_thread.join().unwrap();
    assert_eq!(b.counters().unwrap().udp_rx_datagrams, 401);
}

#[test]
fn dropping_the_stack_stops_its_thread_and_fails_sockets() {
    let (a, b) = two_stacks();
    let s = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    let blocked = s.try_clone().unwrap();
    // Whether the receive is parked on the stack thread when it stops, or reaches it after,
    // the caller gets NotConnected rather than hanging.
    let waiter = std::thread::spawn(move || blocked.recv(&mut [0u8; 8]).unwrap_err().kind());
    drop(a);
    assert_eq!(waiter.join().unwrap(), ErrorKind::NotConnected);
    assert_eq!(
        s.send_to(b"x", "10.0.0.2:7").unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    drop(b);
}

/// `set_ttl` and `ttl` as in `std::net`: 1 to 255, the stack's 64 until set.
#[test]
fn ttl_is_per_socket_and_checked() {
    let (a, _b) = two_stacks();
    let s = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    assert_eq!(s.ttl().unwrap(), 64);
    for bad in [0, 256] {
        assert_eq!(s.set_ttl(bad).unwrap_err().kind(), ErrorKind::InvalidInput);
    }
    s.set_ttl(5).unwrap();
    assert_eq!(s.ttl().unwrap(), 5);
}

/// A non-blocking UDP socket in a `Poller`: reported once at registration, then when a
/// datagram arrives; `recv_from` takes it.
#[test]
fn poller_reports_a_udp_socket_with_a_datagram() {
    use tapstack::socket::Poller;
    let (a, b) = two_stacks();
    let rx = UdpSocket::bind(&b, "0.0.0.0:7070").unwrap();
    rx.set_nonblocking(true).unwrap();
    let poller = Poller::new();
    poller.register(&rx, 3);
    let mut ready = Vec::new();
    poller.wait(&mut ready, Some(Duration::from_secs(10)));
    assert_eq!(ready, [3], "registration reports the socket once");
    let mut buf = [0u8; 64];
    assert_eq!(
        rx.recv_from(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    let tx = UdpSocket::bind(&a, "0.0.0.0:0").unwrap();
    tx.send_to(b"ping", "10.0.0.2:7070").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let got = loop {
        assert!(Instant::now() < deadline, "the datagram was not reported");
        poller.wait(&mut ready, Some(Duration::from_secs(10)));
        if ready.contains(&3) {
            if let Ok((n, _)) = rx.recv_from(&mut buf) {
                break buf[..n].to_vec();
            }
        }
    };
    assert_eq!(got, b"ping");
}

/// Two dual-stack stacks over the in-memory link: a `[::]` server answers an IPv6 client (which
/// resolves it by Neighbour Discovery) and an IPv4 one, whose address it sees IPv4-mapped, as
/// `std::net` shows it on Linux.
#[test]
fn one_dual_stack_socket_serves_both_families() {
    let (a, b) = memory_pair(1500).unwrap();
    let (a, b) = (
        Stack::new(a, config_v6(1, 1)).unwrap(),
        Stack::new(b, config_v6(2, 2)).unwrap(),
    );
    let server = UdpSocket::bind(&b, "[::]:7").unwrap();
    timeout(&server);
    assert_eq!(server.local_addr().unwrap().to_string(), "[::]:7");
    let c6 = UdpSocket::bind(&a, "[::]:0").unwrap();
    let c4 = UdpSocket::bind(&a, "10.0.0.1:0").unwrap();
    timeout(&c6);
    timeout(&c4);
    let mut buf = vec![0u8; 2000];
    let data = pattern(1400, 6);
    c6.send_to(&data, "[2001:db8::2]:7").unwrap();
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(sha256(&buf[..n]), sha256(&data));
    assert_eq!(from.ip().to_string(), "2001:db8::1");
    server.send_to(&buf[..n], from).unwrap();
    let (n, back) = c6.recv_from(&mut buf).unwrap();
    assert_eq!((n, back.to_string()), (1400, "[2001:db8::2]:7".to_string()));

    c4.send_to(b"four", "10.0.0.2:7").unwrap();
    let (n, from) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"four");
    assert_eq!(
        from,
        format!("[::ffff:10.0.0.1]:{}", c4.local_addr().unwrap().port())
            .parse::<SocketAddr>()
            .unwrap()
    );
    server.send_to(b"mapped back", from).unwrap();
    let (n, back) = c4.recv_from(&mut buf).unwrap();
    assert_eq!(
        (&buf[..n], back.to_string()),
        (&b"mapped back"[..], "10.0.0.2:7".to_string())
    );
}

/// `set_only_v6(true)` frees the port's IPv4 side for an IPv4 socket; turning it off again
/// then fails, as the port is shared.
#[test]
fn only_v6_leaves_ipv4_to_another_socket() {
    let (a, _b) = memory_pair(1500).unwrap();
    let a = Stack::new(a, config_v6(1, 1)).unwrap();
    let six = UdpSocket::bind(&a, "[::]:53").unwrap();
    assert!(!six.only_v6().unwrap());
    assert_eq!(
        UdpSocket::bind(&a, "0.0.0.0:53").unwrap_err().kind(),
        ErrorKind::AddrInUse
    );
    six.set_only_v6(true).unwrap();
    let four = UdpSocket::bind(&a, "0.0.0.0:53").unwrap();
    assert_eq!(
        six.set_only_v6(false).unwrap_err().kind(),
        ErrorKind::AddrInUse
    );
    assert_eq!(four.only_v6().unwrap_err().kind(), ErrorKind::InvalidInput);
}

/// A receive takes what is queued under the socket's own lock, without the stack thread: the
/// datagrams that arrived before the stack stopped are still read after it is gone, then
/// receives fail with `NotConnected`; the socket's address is read the same way.
#[test]
fn queued_datagrams_are_received_without_the_stack_thread() {
    let (a, b) = two_stacks();
    let server = UdpSocket::bind(&b, "0.0.0.0:7").unwrap();
    let client = UdpSocket::bind(&a, "10.0.0.1:0").unwrap();
    timeout(&server);
    for i in 0..3u8 {
        client.send_to(&[i; 10], "10.0.0.2:7").unwrap();
    }
    // The first one arrived: so did the others, queued behind it in order.
    let mut buf = [0u8; 64];
    let (n, _) = server.recv_from(&mut buf).unwrap();
    assert_eq!(&buf[..n], &[0; 10]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.counters().unwrap().udp_rx_datagrams < 3 {
        assert!(Instant::now() < deadline, "the datagrams did not arrive");
        std::thread::yield_now();
    }
    let local = server.local_addr().unwrap();
    drop(b);
    assert_eq!(
        server.local_addr().unwrap(),
        local,
        "no round trip: answered after the stop"
    );
    server.set_nonblocking(true).unwrap();
    for i in 1..3u8 {
        let (n, _) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], &[i; 10]);
    }
    assert_eq!(
        server.recv_from(&mut buf).unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    drop(a);
}

/// After the first datagram to a destination, sends are posted without waiting for the stack
/// thread: a burst of 150 arrives whole and in order, and so do the counters.
#[test]
fn sends_after_the_first_are_posted_and_keep_their_order() {
    let (a, b) = two_stacks();
    let server = UdpSocket::bind(&b, "0.0.0.0:7").unwrap();
    let client = UdpSocket::bind(&a, "10.0.0.1:0").unwrap();
    client.connect("10.0.0.2:7").unwrap();
    timeout(&server);
    // The first one waits for its verdict, and resolves the server's address: the burst is
    // not held back by ARP (whose queue keeps only the last few datagrams, as Linux's does).
    let mut buf = [0u8; 2000];
    client.send(b"first").unwrap();
    assert_eq!(server.recv(&mut buf).unwrap(), 5);
    let sent: Vec<Vec<u8>> = (0..150u32)
        .map(|i| {
            let mut d = pattern(1000, i as u8);
            d[..4].copy_from_slice(&i.to_be_bytes());
            d
        })
        .collect();
    for d in &sent {
        assert_eq!(client.send(d).unwrap(), 1000);
    }
    for (i, d) in sent.iter().enumerate() {
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], &d[..], "datagram {i}");
    }
    assert_eq!(a.counters().unwrap().udp_tx_datagrams, 151);
}

/// UDP GSO over a link that cuts nothing itself: a send of 10 000 bytes cut at 1000 arrives
/// as ten datagrams of 1000 bytes, in order, over IPv4 and IPv6 through one dual-stack
/// socket; the second send is posted (no wait); a segment as long as the data sends one
/// datagram, and so does a zero segment; a datagram over the MTU is `EMSGSIZE`, more than
/// 128 datagrams `EINVAL`; with don't-fragment set, a segmented send still goes (its
/// datagrams fit).
#[test]
fn segmented_sends_arrive_as_datagrams_of_the_segment_size() {
    let (a, b) = memory_pair(1500).unwrap();
    let (a, b) = (
        Stack::new(a, config_v6(1, 1)).unwrap(),
        Stack::new(b, config_v6(2, 2)).unwrap(),
    );
    let server = UdpSocket::bind(&b, "[::]:7").unwrap();
    let client = UdpSocket::bind(&a, "[::]:0").unwrap();
    timeout(&server);
    let data = pattern(10_000, 4);
    let mut buf = vec![0u8; 2000];
    for dst in ["10.0.0.2:7", "[2001:db8::2]:7"] {
        for _ in 0..2 {
            assert_eq!(client.send_segments_to(&data, 1000, dst).unwrap(), 10_000);
            let mut got = Vec::new();
            for i in 0..10 {
                let (n, _) = server.recv_from(&mut buf).unwrap();
                assert_eq!(n, 1000, "datagram {i} to {dst}");
                got.extend_from_slice(&buf[..n]);
            }
            assert_eq!(sha256(&got), sha256(&data), "to {dst}");
        }
        assert_eq!(
            client.send_segments_to(&data[..900], 1000, dst).unwrap(),
            900
        );
        assert_eq!(server.recv_from(&mut buf).unwrap().0, 900, "one datagram");
        let refused = |segment: usize, len: usize, errno: i32| {
            let e = client
                .send_segments_to(&data[..len], segment, dst)
                .unwrap_err();
            assert_eq!(e.raw_os_error(), Some(errno), "{segment} {len} {dst}");
        };
        assert_eq!(client.send_segments_to(&data[..700], 0, dst).unwrap(), 700);
        assert_eq!(
            server.recv_from(&mut buf).unwrap().0,
            700,
            "zero: one datagram"
        );
        refused(50, 6401, libc::EINVAL);
        refused(1473, 3000, libc::EMSGSIZE);
        refused(1473, 1473, libc::EMSGSIZE);
    }
    client.set_dont_fragment(true).unwrap();
    assert_eq!(
        client.send_segments_to(&data, 1000, "10.0.0.2:7").unwrap(),
        10_000
    );
    for _ in 0..10 {
        assert_eq!(server.recv_from(&mut buf).unwrap().0, 1000);
    }
    server.set_nonblocking(true).unwrap();
    assert_eq!(
        server.recv_from(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock,
        "nothing more arrived"
    );
}
