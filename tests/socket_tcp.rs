//! `TcpListener`/`TcpStream` through the runtime: two stacks joined by the in-memory link.

mod common;

use common::{config, config_v6, exchange, pattern, sha256};
use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tapstack::phy::memory_pair;
use tapstack::{Stack, TcpListener, TcpStream};

fn two_stacks() -> (Stack, Stack) {
    let (a, b) = memory_pair(1500).unwrap();
    (
        Stack::new(a, config(1, 1)).unwrap(),
        Stack::new(b, config(2, 2)).unwrap(),
    )
}

fn limit(s: &TcpStream) {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
}

#[test]
fn eight_mib_each_way_at_once() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5001").unwrap();
    assert_eq!(listener.local_addr().unwrap().to_string(), "0.0.0.0:5001");
    let up = pattern(8 << 20, 1);
    let down = pattern(8 << 20, 2);
    let down2 = down.clone();
    let server = std::thread::spawn(move || {
        let (s, peer) = listener.accept().unwrap();
        limit(&s);
        assert_eq!(peer.ip().to_string(), "10.0.0.1");
        exchange(&s, down2)
    });
    let c = TcpStream::connect(&a, "10.0.0.2:5001").unwrap();
    limit(&c);
    assert_eq!(c.peer_addr().unwrap().to_string(), "10.0.0.2:5001");
    let got = exchange(&c, up.clone());
    assert_eq!(sha256(&got), sha256(&down));
    assert_eq!(sha256(&server.join().unwrap()), sha256(&up));
}

#[test]
fn errors_match_std() {
    let (a, b) = two_stacks();
    let err = TcpStream::connect(&a, "10.0.0.2:9").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    let _l = TcpListener::bind(&b, "0.0.0.0:80").unwrap();
    assert_eq!(
        TcpListener::bind(&b, "10.0.0.2:80").unwrap_err().kind(),
        ErrorKind::AddrInUse
    );
    assert_eq!(
        TcpListener::bind(&b, "10.0.0.9:80").unwrap_err().kind(),
        ErrorKind::AddrNotAvailable
    );
    let start = Instant::now();
    let err =
        TcpStream::connect_timeout(&a, "10.0.0.99:80", Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(start.elapsed() < Duration::from_secs(5));
}

#[test]
fn read_timeout_nonblocking_half_close_and_graceful_drop() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:7").unwrap();
    let c = TcpStream::connect(&a, "10.0.0.2:7").unwrap();
    let (s, _) = listener.accept().unwrap();
    limit(&s);
    c.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 16];
    assert_eq!(
        (&c).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    c.set_nonblocking(true).unwrap();
    assert_eq!(
        (&c).read(&mut buf).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    c.set_nonblocking(false).unwrap();
    listener.set_nonblocking(true).unwrap();
    assert_eq!(listener.accept().unwrap_err().kind(), ErrorKind::WouldBlock);
    // Half-close: the server sees end of stream and can still answer.
    (&c).write_all(b"question").unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut q = String::new();
    (&s).read_to_string(&mut q).unwrap();
    assert_eq!(q, "question");
    (&s).write_all(b"answer").unwrap();
    // Dropping the server's stream does not block and still delivers what it buffered.
    let big = pattern(3 << 20, 9);
    (&s).write_all(&big[..1 << 20]).unwrap();
    drop(s);
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    (&c).read_to_end(&mut got).unwrap();
    assert_eq!(&got[..6], b"answer");
    assert_eq!(sha256(&got[6..]), sha256(&big[..1 << 20]));
    assert!(matches!((&c).write(b"x"), Err(e) if e.kind() == ErrorKind::BrokenPipe));
}

#[test]
fn fifty_concurrent_echo_connections() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:7").unwrap();
    let server = std::thread::spawn(move || {
        let mut workers = Vec::new();
        for _ in 0..50 {
            let (s, _) = listener.accept().unwrap();
            workers.push(std::thread::spawn(move || {
                limit(&s);
                let mut buf = vec![0u8; 16384];
                loop {
                    match (&s).read(&mut buf).unwrap() {
                        0 => break,
                        n => (&s).write_all(&buf[..n]).unwrap(),
                    }
                }
            }));
        }
        for w in workers {
            w.join().unwrap();
        }
    });
    let a = std::sync::Arc::new(a);
    let clients: Vec<_> = (0..50u8)
        .map(|i| {
            let a = a.clone();
            std::thread::spawn(move || {
                let c = TcpStream::connect(&a, "10.0.0.2:7").unwrap();
                limit(&c);
                c.set_nodelay(true).unwrap();
                let data = pattern(100_000, i);
                let got = exchange(&c, data.clone());
                assert_eq!(sha256(&got), sha256(&data), "connection {i}");
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    server.join().unwrap();
}

#[test]
fn dropping_the_stack_delivers_buffered_data_and_a_fin() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:7").unwrap();
    let c = TcpStream::connect(&a, "10.0.0.2:7").unwrap();
    let (s, _) = listener.accept().unwrap();
    limit(&s);
    let data = pattern(512 * 1024, 3);
    (&c).write_all(&data).unwrap();
    // The application exits at once: stream and stack dropped, nothing flushed by hand.
    drop(c);
    drop(a);
    let mut got = Vec::new();
    (&s).read_to_end(&mut got)
        .expect("a clean end of stream, not a reset");
    assert_eq!(sha256(&got), sha256(&data));
}

/// The default backlog queues a burst of connects far beyond std's 128 until they are
/// accepted; a small backlog drops the SYN that does not fit (counted), and the connect waits.
#[test]
fn backlog_queues_a_burst_and_a_full_queue_drops_syns() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5010").unwrap();
    let clients: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect_timeout(&a, "10.0.0.2:5010", Duration::from_secs(10)).unwrap())
        .collect();
    for _ in 0..clients.len() {
        listener.accept().unwrap();
    }
    assert_eq!(b.counters().unwrap().tcp_listen_drops, 0);

    let small = TcpListener::bind_with_backlog(&b, "0.0.0.0:5011", 2).unwrap();
    let queued: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect_timeout(&a, "10.0.0.2:5011", Duration::from_secs(10)).unwrap())
        .collect();
    let err =
        TcpStream::connect_timeout(&a, "10.0.0.2:5011", Duration::from_millis(300)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(b.counters().unwrap().tcp_listen_drops >= 1);
    drop((queued, small));
}

/// Dropping the stack wakes a read blocked without a timeout, and every later call on its
/// streams fails with `NotConnected`; none hangs.
#[test]
fn dropping_the_stack_wakes_blocked_readers_with_not_connected() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5020").unwrap();
    let c = TcpStream::connect(&a, "10.0.0.2:5020").unwrap();
    let (s, _) = listener.accept().unwrap();
    let reader = s.try_clone().unwrap();
    let (tx, rx) = crossbeam_channel::bounded(1);
    let t = std::thread::spawn(move || {
        let r = (&reader).read(&mut [0u8; 16]);
        tx.send(r.map_err(|e| e.kind())).unwrap();
    });
    // The reader is asleep: nothing has arrived.
    assert!(rx.recv_timeout(Duration::from_millis(100)).is_err());
    drop(listener);
    drop(b);
    let r = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the blocked reader woke");
    assert_eq!(r, Err(ErrorKind::NotConnected));
    t.join().unwrap();
    assert_eq!(
        (&s).write(b"x").unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    assert_eq!(
        (&s).read(&mut [0u8; 4]).unwrap_err().kind(),
        ErrorKind::NotConnected
    );
    drop(c);
}

/// An event loop on one thread: non-blocking streams registered with a `Poller` are reported
/// when data arrives, when the peer closes, and once at registration; a quiet stream is not.
#[test]
fn poller_reports_streams_that_changed() {
    use tapstack::socket::Poller;
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5030").unwrap();
    let clients: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(&a, "10.0.0.2:5030").unwrap())
        .collect();
    let poller = Poller::new();
    let servers: Vec<TcpStream> = (0..3)
        .map(|token| {
            let (s, _) = listener.accept().unwrap();
            s.set_nonblocking(true).unwrap();
            poller.register(&s, token);
            s
        })
        .collect();
    let mut ready = Vec::new();
    // Each is reported once at registration, all in one wait.
    poller.wait(&mut ready, Some(Duration::from_secs(10)));
    ready.sort();
    assert_eq!(ready, [0, 1, 2]);
    assert_eq!(
        (&servers[1]).read(&mut [0u8; 8]).unwrap_err().kind(),
        ErrorKind::WouldBlock
    );
    // Data on stream 1 reports it; the quiet stream 0 is never reported again.
    (&clients[1]).write_all(b"ping").unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < 4 {
        assert!(Instant::now() < deadline, "no data reported");
        poller.wait(&mut ready, Some(Duration::from_secs(10)));
        assert!(
            !ready.contains(&0),
            "the quiet stream was reported: {ready:?}"
        );
        let mut buf = [0u8; 8];
        while let Ok(n) = (&servers[1]).read(&mut buf) {
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(got, b"ping");
    // The peer's FIN reports stream 2, which then reads end of stream.
    clients[2].shutdown(Shutdown::Write).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "FIN not reported");
        poller.wait(&mut ready, Some(Duration::from_secs(10)));
        assert!(
            !ready.contains(&0),
            "the quiet stream was reported: {ready:?}"
        );
        if ready.contains(&2) && (&servers[2]).read(&mut [0u8; 8]).ok() == Some(0) {
            break;
        }
    }
}

/// A non-blocking listener in a `Poller`: reported once at registration, then when a
/// connection is ready to accept; `accept` takes it (no connection: `WouldBlock`); a stopping
/// stack reports it and makes `accept` fail with `NotConnected`.
#[test]
fn poller_reports_a_listener_with_connections_to_accept() {
    use tapstack::socket::Poller;
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5031").unwrap();
    listener.set_nonblocking(true).unwrap();
    let poller = Poller::new();
    poller.register(&listener, 7);
    let mut ready = Vec::new();
    poller.wait(&mut ready, Some(Duration::from_secs(10)));
    assert_eq!(ready, [7], "registration reports the listener once");
    assert_eq!(
        listener.accept().err().map(|e| e.kind()),
        Some(ErrorKind::WouldBlock)
    );
    let clients: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(&a, "10.0.0.2:5031").unwrap())
        .collect();
    let mut accepted = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while accepted.len() < clients.len() {
        assert!(Instant::now() < deadline, "connections not reported");
        poller.wait(&mut ready, Some(Duration::from_secs(10)));
        if ready.contains(&7) {
            while let Ok((s, peer)) = listener.accept() {
                accepted.push((s, peer));
            }
        }
    }
    let mut local: Vec<_> = clients.iter().map(|c| c.local_addr().unwrap()).collect();
    let mut peers: Vec<_> = accepted.iter().map(|(_, p)| *p).collect();
    local.sort();
    peers.sort();
    assert_eq!(local, peers);
    // An accepted stream works at once.
    (&clients[0]).write_all(b"hi").unwrap();
    let s = accepted
        .iter()
        .find(|(_, p)| *p == clients[0].local_addr().unwrap())
        .map(|(s, _)| s)
        .unwrap();
    limit(s);
    let mut got = [0u8; 2];
    let mut reader: &TcpStream = s;
    reader.read_exact(&mut got).unwrap();
    assert_eq!(&got, b"hi");
    drop(b);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the stop was not reported");
        poller.wait(&mut ready, Some(Duration::from_secs(10)));
        if ready.contains(&7) {
            break;
        }
    }
    assert_eq!(
        listener.accept().err().map(|e| e.kind()),
        Some(ErrorKind::NotConnected)
    );
}

/// `take_error` (`SO_ERROR`): a reset by the peer is reported once, then cleared.
#[test]
fn take_error_reports_a_reset_once() {
    use tapstack::socket::Poller;
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5032").unwrap();
    let c = TcpStream::connect(&a, "10.0.0.2:5032").unwrap();
    let (s, _) = listener.accept().unwrap();
    assert!(c.take_error().unwrap().is_none());
    (&c).write_all(b"unread").unwrap();
    limit(&s);
    let mut one = [0u8; 1];
    (&s).read_exact(&mut one).unwrap();
    // Closing with unread data resets (RFC 2525 §2.17).
    drop(s);
    let poller = Poller::new();
    poller.register(&c, 0);
    let mut ready = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        assert!(Instant::now() < deadline, "no reset");
        poller.wait(&mut ready, Some(Duration::from_secs(10)));
        if let Some(e) = c.take_error().unwrap() {
            break e;
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);
    assert!(c.take_error().unwrap().is_none(), "reported once");
}

/// `peek` shows what `read` then takes, waits for data like `read`, and sees the end of stream.
#[test]
fn peek_leaves_the_data_for_read() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5033").unwrap();
    let c = TcpStream::connect(&a, "10.0.0.2:5033").unwrap();
    let (s, _) = listener.accept().unwrap();
    limit(&s);
    (&c).write_all(b"look").unwrap();
    let mut buf = [0u8; 16];
    let n = s.peek(&mut buf).unwrap();
    assert_eq!(&buf[..n], &b"look"[..n]);
    let mut got = [0u8; 4];
    (&s).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"look", "peek took nothing");
    s.set_nonblocking(true).unwrap();
    assert_eq!(s.peek(&mut buf).unwrap_err().kind(), ErrorKind::WouldBlock);
    s.set_nonblocking(false).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(s.peek(&mut buf).unwrap(), 0, "end of stream");
}

/// `set_ttl` and `ttl` on a stream, as in `std::net`.
#[test]
fn stream_ttl_is_per_connection_and_checked() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5034").unwrap();
    let c = TcpStream::connect(&a, "10.0.0.2:5034").unwrap();
    let (s, _) = listener.accept().unwrap();
    assert_eq!(c.ttl().unwrap(), 64);
    assert_eq!(c.set_ttl(0).unwrap_err().kind(), ErrorKind::InvalidInput);
    c.set_ttl(200).unwrap();
    assert_eq!(c.ttl().unwrap(), 200);
    assert_eq!(s.ttl().unwrap(), 64, "the other end keeps its own");
}

/// `SO_LINGER`: zero resets the connection on drop; a positive linger makes the drop wait
/// (at most that long) for the peer to acknowledge everything written.
#[test]
fn linger_zero_resets_and_a_positive_linger_waits_for_the_peer() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5035").unwrap();

    let c = TcpStream::connect(&a, "10.0.0.2:5035").unwrap();
    let (s, _) = listener.accept().unwrap();
    limit(&s);
    assert_eq!(c.linger().unwrap(), None);
    c.set_linger(Some(Duration::ZERO)).unwrap();
    (&c).write_all(b"doomed").unwrap();
    drop(c);
    let mut buf = [0u8; 64];
    let err = loop {
        match (&s).read(&mut buf) {
            Ok(0) => panic!("a FIN, not a reset"),
            Ok(_) => continue,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ConnectionReset);

    // The peer reads nothing: its window fills and the last bytes stay unacknowledged. A send
    // buffer set larger than the peer's window fills only once that window is full.
    let c = TcpStream::connect(&a, "10.0.0.2:5035").unwrap();
    let (_s, _) = listener.accept().unwrap();
    c.set_send_buffer_size(2 << 20).unwrap();
    c.set_nonblocking(true).unwrap();
    let chunk = vec![7u8; 64 * 1024];
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "the send buffer never filled");
        match (&c).write(&chunk) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(e) => panic!("write: {e}"),
        }
    }
    c.set_linger(Some(Duration::from_millis(300))).unwrap();
    let start = Instant::now();
    drop(c);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(300), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn buffer_sizes_choose_the_window_scale_and_bound_writes() {
    use tapstack::socket::TcpSocket;
    let (a, b) = two_stacks();
    let server = TcpSocket::new(&b);
    server.set_recv_buffer_size(16 * 1024).unwrap();
    server.bind("0.0.0.0:5010").unwrap();
    let listener = server.listen(8).unwrap();
    assert_eq!(listener.recv_buffer_size().unwrap(), 16 * 1024);
    let client = TcpSocket::new(&a);
    assert_eq!(
        client.set_send_buffer_size(0).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    client.set_recv_buffer_size(4 << 20).unwrap();
    client.set_send_buffer_size(8192).unwrap();
    client.bind("0.0.0.0:40001").unwrap();
    let c = client.connect("10.0.0.2:5010").unwrap();
    let (s, peer) = listener.accept().unwrap();
    assert_eq!(peer.port(), 40001, "connected from the bound port");
    assert_eq!(c.recv_buffer_size().unwrap(), 4 << 20);
    assert_eq!(c.send_buffer_size().unwrap(), 8192);
    assert_eq!(s.recv_buffer_size().unwrap(), 16 * 1024, "inherited");
    // 4 MiB needs a shift of 7 to be advertised whole (RFC 7323 §2.3); 16 KiB needs none.
    let (ci, si) = (c.info().unwrap(), s.info().unwrap());
    assert_eq!((ci.rcv.wscale, si.snd.wscale), (7, 7));
    assert_eq!((si.rcv.wscale, ci.snd.wscale), (0, 0));
    // A write takes only what the 8 KiB send buffer holds.
    c.set_nonblocking(true).unwrap();
    assert_eq!((&c).write(&pattern(100_000, 1)).unwrap(), 8192);
    // Growing the send buffer makes room at once.
    c.set_send_buffer_size(1 << 20).unwrap();
    assert!((&c).write(&pattern(100_000, 2)).unwrap() > 0);
}

#[test]
fn tos_and_the_retransmission_limit_are_checked() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5011").unwrap();
    let c = TcpStream::connect(&a, "10.0.0.2:5011").unwrap();
    let (_s, _) = listener.accept().unwrap();
    c.set_tos(0xb8).unwrap();
    assert_eq!(c.set_tos(256).unwrap_err().kind(), ErrorKind::InvalidInput);
    listener.set_tos(0x28).unwrap();
    assert_eq!(
        listener.set_tos(300).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    // Before the connect: the SYN carries it (tests/conformance.rs checks the frames).
    let socket = tapstack::socket::TcpSocket::new(&a);
    socket.set_tos(0xb9).unwrap();
    assert_eq!(socket.tos().unwrap(), 0xb8, "the ECN bits are the stack's");
    assert_eq!(
        socket.set_tos(256).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let d = socket.connect("10.0.0.2:5011").unwrap();
    let (_t, _) = listener.accept().unwrap();
    d.set_tos(0).unwrap();
    c.set_retransmission_limit(Some(3)).unwrap();
    c.set_retransmission_limit(None).unwrap();
    assert_eq!(
        c.set_retransmission_limit(Some(0)).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
}

/// `shutdown` takes effect for the handle at once, without a wait for the stack thread: a
/// write right after `Shutdown::Write` fails with `EPIPE`, a read after `Shutdown::Read` sees
/// end of stream, and the peer still gets everything written before the FIN.
#[test]
fn shutdown_takes_effect_at_once_and_the_fin_follows_the_data() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5035").unwrap();
    let c = TcpStream::connect(&a, "10.0.0.2:5035").unwrap();
    let (s, _) = listener.accept().unwrap();
    let data = pattern(256 << 10, 3);
    (&c).write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        (&c).write(b"late").unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
    c.shutdown(Shutdown::Read).unwrap();
    let mut buf = [0u8; 16];
    assert_eq!((&c).read(&mut buf).unwrap(), 0, "reading shut down");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    (&s).read_to_end(&mut got).unwrap();
    assert_eq!(sha256(&got), sha256(&data));
    // The server's reset ends the connection: a shutdown now is asked of the stack, which
    // answers `ENOTCONN` once it is gone.
    s.set_linger(Some(Duration::ZERO)).unwrap();
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(20);
    let err = loop {
        match c.shutdown(Shutdown::Write) {
            Err(e) => break e,
            Ok(()) => assert!(Instant::now() < deadline, "the reset never arrived"),
        }
        std::thread::yield_now();
    };
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");
}

/// Durations too long to add to a clock are no timeout, as in std, and never panic the stack
/// thread: `connect_timeout(Duration::MAX)`, read and write timeouts of `Duration::MAX`, and a
/// stack whose linger and busy-poll are `Duration::MAX` (it still stops at once when idle).
#[test]
fn huge_durations_mean_no_timeout_and_panic_nothing() {
    let (a, b) = memory_pair(1500).unwrap();
    let mut cfg_a = config(1, 1);
    cfg_a.linger = Duration::MAX;
    cfg_a.busy_poll = Duration::MAX;
    let a = Stack::new(a, cfg_a).unwrap();
    let b = Stack::new(b, config(2, 2)).unwrap();
    let listener = TcpListener::bind(&b, "0.0.0.0:5036").unwrap();
    let c = TcpStream::connect_timeout(&a, "10.0.0.2:5036", Duration::MAX).unwrap();
    let (s, _) = listener.accept().unwrap();
    c.set_read_timeout(Some(Duration::MAX)).unwrap();
    c.set_write_timeout(Some(Duration::MAX)).unwrap();
    (&c).write_all(b"ping").unwrap();
    let mut got = [0u8; 4];
    (&s).read_exact(&mut got).unwrap();
    (&s).write_all(b"pong").unwrap();
    (&c).read_exact(&mut got).unwrap();
    assert_eq!(&got, b"pong");
    drop((c, s, listener));
    // Both stacks stop: a panic on either stack thread would fail this or hang it.
    let stopped = Instant::now();
    drop(a);
    drop(b);
    assert!(stopped.elapsed() < Duration::from_secs(30));
}

/// A thread blocked in `read` is woken by another thread's `shutdown(Read)` and sees end of
/// stream, and one blocked on a full send buffer gets `EPIPE` from `shutdown(Write)`.
#[test]
fn shutdown_wakes_the_threads_blocked_on_the_connection() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5037").unwrap();
    let c = TcpStream::connect(&a, "10.0.0.2:5037").unwrap();
    let (_s, _) = listener.accept().unwrap();
    c.set_send_buffer_size(64 << 10).unwrap();
    let reader = c.try_clone().unwrap();
    let writer = c.try_clone().unwrap();
    let (tx, rx) = crossbeam_channel::bounded(2);
    let read_tx = tx.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 16];
        let _ = read_tx.send(("read", (&reader).read(&mut buf).map(|n| n as i32)));
    });
    std::thread::spawn(move || {
        // The server never reads: the writer fills its window and the buffer, then blocks.
        let chunk = vec![7u8; 1 << 20];
        let r = loop {
            if let Err(e) = (&writer).write(&chunk) {
                break Err(e);
            }
        };
        let _ = tx.send(("write", r));
    });
    c.shutdown(Shutdown::Read).unwrap();
    let (who, got) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the reader woke");
    assert_eq!(who, "read");
    assert_eq!(got.unwrap(), 0, "end of stream");
    // The writer blocks once nothing more fits; shut writing down and it fails with EPIPE.
    c.shutdown(Shutdown::Write).unwrap();
    let (who, got) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the writer woke");
    assert_eq!(who, "write");
    assert_eq!(got.unwrap_err().kind(), ErrorKind::BrokenPipe);
}

/// TCP over IPv6, the same TCP: a dual-stack listener on `[::]` takes an IPv6 client (4 MiB
/// each way, sha256) and an IPv4 one, whose addresses it shows IPv4-mapped, as Linux does.
#[test]
fn one_dual_stack_listener_serves_tcp_over_both_families() {
    let (a, b) = memory_pair(1500).unwrap();
    let (a, b) = (
        Stack::new(a, config_v6(1, 1)).unwrap(),
        Stack::new(b, config_v6(2, 2)).unwrap(),
    );
    let listener = TcpListener::bind(&b, "[::]:7").unwrap();
    assert_eq!(listener.local_addr().unwrap().to_string(), "[::]:7");
    let c = TcpStream::connect(&a, "[2001:db8::2]:7").unwrap();
    let (s, peer) = listener.accept().unwrap();
    assert_eq!(peer, c.local_addr().unwrap());
    assert_eq!(c.local_addr().unwrap().ip().to_string(), "2001:db8::1");
    assert_eq!(s.local_addr().unwrap().to_string(), "[2001:db8::2]:7");
    let up = pattern(4 << 20, 1);
    let down = pattern(4 << 20, 2);
    let (up2, down2) = (up.clone(), down.clone());
    let s2 = s.try_clone().unwrap();
    let server = std::thread::spawn(move || {
        s2.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        (&s2).write_all(&down2).unwrap();
        s2.shutdown(Shutdown::Write).unwrap();
        let mut got = Vec::new();
        (&s2).read_to_end(&mut got).unwrap();
        assert_eq!(sha256(&got), sha256(&up2));
    });
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let got = exchange(&c, up);
    assert_eq!(sha256(&got), sha256(&down));
    server.join().unwrap();

    let c4 = TcpStream::connect(&a, "10.0.0.2:7").unwrap();
    let (s4, peer4) = listener.accept().unwrap();
    let port = c4.local_addr().unwrap().port();
    assert_eq!(peer4.to_string(), format!("[::ffff:10.0.0.1]:{port}"));
    assert_eq!(s4.local_addr().unwrap().to_string(), "[::ffff:10.0.0.2]:7");
    (&c4).write_all(b"four").unwrap();
    let mut buf = [0u8; 4];
    s4.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    (&s4).read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"four");

    // The dual-stack listener holds port 7 for IPv4 too; an IPv6-only one shares its port
    // with an IPv4 listener, each taking its own family.
    let err = TcpListener::bind(&b, "0.0.0.0:7").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrInUse);
    let only6 = tapstack::socket::TcpSocket::new(&b);
    only6.set_only_v6(true).unwrap();
    only6.bind("[::]:8").unwrap();
    let l6 = only6.listen(8).unwrap();
    let l4 = TcpListener::bind(&b, "0.0.0.0:8").unwrap();
    let _c6 = TcpStream::connect(&a, "[2001:db8::2]:8").unwrap();
    let _c4 = TcpStream::connect(&a, "10.0.0.2:8").unwrap();
    assert!(l6.accept().unwrap().1.is_ipv6());
    assert_eq!(
        l4.accept().unwrap().1.to_string().split(':').next(),
        Some("10.0.0.1")
    );
}

/// A writer whose bytes the test reads back.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// The JSON lines written so far.
    fn lines(&self) -> Vec<serde_json::Value> {
        let bytes = self.0.lock().unwrap().clone();
        String::from_utf8(bytes)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

#[test]
fn a_socket_is_traced_on_its_own_and_only_on_a_stack_with_a_trace_output() {
    let (a, b) = memory_pair(1500).unwrap();
    let (out_a, out_b) = (Captured::default(), Captured::default());
    let mut cfg_a = config(1, 1);
    cfg_a.trace = Some(tapstack::trace::TraceOutput::new(out_a.clone()));
    let mut cfg_b = config(2, 2);
    cfg_b.trace = Some(tapstack::trace::TraceOutput::new(out_b.clone()));
    let (a, b) = (Stack::new(a, cfg_a).unwrap(), Stack::new(b, cfg_b).unwrap());
    // The server traces what its listener accepts, from the SYN.
    let socket = tapstack::socket::TcpSocket::new(&b);
    socket.bind("0.0.0.0:7").unwrap();
    socket.set_trace(true).unwrap();
    let listener = socket.listen(8).unwrap();
    let server = std::thread::spawn(move || {
        // The client's first connection is accepted first and carries nothing.
        let (_first, _) = listener.accept().unwrap();
        let (s, _) = listener.accept().unwrap();
        limit(&s);
        let mut buf = vec![0u8; 4096];
        loop {
            let n = (&s).read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            (&s).write_all(&buf[..n]).unwrap();
        }
    });
    // Of the client's two connections, only the second is traced, from the time it asks.
    let untraced = TcpStream::connect(&a, "10.0.0.2:7").unwrap();
    limit(&untraced);
    let c = TcpStream::connect(&a, "10.0.0.2:7").unwrap();
    limit(&c);
    c.set_trace(true).unwrap();
    let data = pattern(200_000, 9);
    (&c).write_all(&data).unwrap();
    c.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    (&c).read_to_end(&mut got).unwrap();
    assert_eq!(sha256(&got), sha256(&data));
    let (traced_local, untraced_local) = (c.local_addr().unwrap(), untraced.local_addr().unwrap());
    drop((c, untraced));
    drop(a);
    server.join().unwrap();
    drop(b);

    let lines = out_a.lines();
    assert_eq!(lines[0]["title"], "tapstack TCP trace");
    let records = &lines[1..];
    assert!(records.len() > 20, "{} records", records.len());
    assert!(records
        .iter()
        .all(|r| r["local"] == traced_local.to_string().as_str()));
    assert!(!records
        .iter()
        .any(|r| r["local"] == untraced_local.to_string().as_str()));
    // Traced from the middle: the first record states where it stands.
    assert_eq!(records[0]["name"], "transport:connection_state_updated");
    assert_eq!(records[0]["data"]["new"], "established");
    let sent: u64 = records
        .iter()
        .filter(|r| r["name"] == "transport:packet_sent")
        .map(|r| r["data"]["len"].as_u64().unwrap())
        .sum();
    assert!(sent >= data.len() as u64);

    let server_records = &out_b.lines()[1..];
    let states: Vec<&str> = server_records
        .iter()
        .filter(|r| r["name"] == "transport:connection_state_updated")
        .filter(|r| r["local"] == "10.0.0.2:7" && r["remote"] == traced_local.to_string().as_str())
        .map(|r| r["data"]["new"].as_str().unwrap())
        .collect();
    assert_eq!(states[..2], ["syn_received", "established"], "{states:?}");
    let received = server_records
        .iter()
        .find(|r| r["name"] == "transport:packet_received")
        .unwrap();
    assert_eq!(received["data"]["flags"], "S");

    // Without a trace output, asking for a trace is an error, not a silent no-op.
    let (x, y) = two_stacks();
    let s = tapstack::socket::TcpSocket::new(&x);
    assert_eq!(
        s.set_trace(true).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let l = TcpListener::bind(&y, "0.0.0.0:9").unwrap();
    assert_eq!(
        l.set_trace(true).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    let c = TcpStream::connect(&x, "10.0.0.2:9").unwrap();
    assert_eq!(
        c.set_trace(true).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert_eq!(x.counters().unwrap().tcp_trace_records, 0);
}

/// A stream's two ends come from the state it shares with the core: read without a round trip
/// to the stack thread, and still after the stack has stopped, as with a kernel socket.
#[test]
fn a_streams_addresses_are_read_without_the_stack_thread() {
    let (a, b) = two_stacks();
    let listener = TcpListener::bind(&b, "0.0.0.0:5040").unwrap();
    let c = TcpStream::connect(&a, "10.0.0.2:5040").unwrap();
    let (s, peer) = listener.accept().unwrap();
    let (local, remote) = (c.local_addr().unwrap(), c.peer_addr().unwrap());
    assert_eq!(remote.to_string(), "10.0.0.2:5040");
    assert_eq!((s.peer_addr().unwrap(), peer), (local, local));
    assert_eq!(s.local_addr().unwrap(), remote);
    drop(a);
    assert_eq!(
        (c.local_addr().unwrap(), c.peer_addr().unwrap()),
        (local, remote)
    );
    drop(b);
}

/// An intercepted connection's buffers, made by the application's side, are the stack's like
/// any other's: autotuned from two initial windows, and charged to the memory budget.
#[test]
fn an_intercepted_connections_buffers_are_autotuned_and_budgeted() {
    use tapstack::config::InterceptConfig;
    use tapstack::socket::Interceptor;
    let (a, b) = memory_pair(1500).unwrap();
    let mut client_cfg = config(1, 1);
    client_cfg.gateway = Some([10, 0, 0, 2].into());
    let client = Stack::new(a, client_cfg).unwrap();
    let mut proxy_cfg = config(2, 2);
    proxy_cfg.intercept = Some(InterceptConfig::default());
    let proxy = Stack::new(b, proxy_cfg).unwrap();
    let interceptor = Interceptor::new(&proxy).unwrap();
    let server = std::thread::spawn(move || {
        let conn = interceptor.next_tcp().unwrap().accept().unwrap();
        limit(&conn);
        conn
    });
    let c = TcpStream::connect(&client, "192.0.2.7:80").unwrap();
    limit(&c);
    let s = server.join().unwrap();
    assert_eq!(
        s.send_buffer_size().unwrap(),
        2 * 14600,
        "autotuned from two windows"
    );
    // The client sends 200 000 bytes the proxy's application does not read yet: they sit in
    // the proxy's receive ring, which the budget counts.
    (&c).write_all(&pattern(200_000, 3)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while proxy.counters().unwrap().tcp_mem_bytes < 200_000 {
        assert!(Instant::now() < deadline, "{}", proxy.counters().unwrap());
        std::thread::yield_now();
    }
    let mut got = vec![0u8; 200_000];
    (&s).read_exact(&mut got).unwrap();
    assert_eq!(sha256(&got), sha256(&pattern(200_000, 3)));
    drop((c, s));
    drop((client, proxy));
}

/// A device that writes frames in parts, as the tap does with `writev`: it says so
/// (`gather`), and counts the super-segments it is handed as headers plus data from a send
/// buffer, which it joins for the in-memory link below.
struct Gathering {
    inner: tapstack::phy::MemoryDevice,
    parts: Arc<AtomicU64>,
    /// Frames handed over in parts with no data: none should be.
    empty: Arc<AtomicU64>,
}

impl tapstack::phy::Device for Gathering {
    fn recv(
        &mut self,
        now: tapstack::time::Instant,
        buf: &mut [u8],
    ) -> std::io::Result<Option<usize>> {
        self.inner.recv(now, buf)
    }
    fn send(&mut self, now: tapstack::time::Instant, frame: &[u8]) -> std::io::Result<()> {
        self.inner.send(now, frame)
    }
    fn send_gather(
        &mut self,
        now: tapstack::time::Instant,
        head: &[u8],
        data: [&[u8]; 2],
        tso_mss: Option<u16>,
    ) -> std::io::Result<()> {
        // A super-segment's data comes from its send buffer (counted; an assert here would
        // fail on the stack thread, seen only as a stall).
        let count = if data[0].is_empty() {
            &self.empty
        } else {
            &self.parts
        };
        count.fetch_add(1, Ordering::Relaxed);
        let frame = [head, data[0], data[1]].concat();
        match tso_mss {
            Some(mss) => self.inner.send_tso(now, &frame, mss),
            None => self.inner.send(now, &frame),
        }
    }
    fn capabilities(&self) -> tapstack::phy::DeviceCapabilities {
        tapstack::phy::DeviceCapabilities {
            gather: true,
            ..self.inner.capabilities()
        }
    }
    fn mtu(&self) -> usize {
        self.inner.mtu()
    }
    fn poll_fd(&self) -> Option<std::os::fd::RawFd> {
        self.inner.poll_fd()
    }
}

/// Super-segments go to a device that writes frames in parts as their headers and the data
/// where it lies in the send buffer, while the application keeps writing into that buffer:
/// 8 MiB each way at once arrive whole, and none of the data was copied out first.
#[test]
fn super_segments_go_to_a_gathering_device_straight_from_the_send_buffer() {
    let (a, b) = memory_pair(1500).unwrap();
    let (pa, pb, empty): (Arc<AtomicU64>, Arc<AtomicU64>, Arc<AtomicU64>) = Default::default();
    let gathering = |inner, parts: &Arc<AtomicU64>| Gathering {
        inner,
        parts: parts.clone(),
        empty: empty.clone(),
    };
    let a = Stack::new(gathering(a, &pa), config(1, 1)).unwrap();
    let b = Stack::new(gathering(b, &pb), config(2, 2)).unwrap();
    let listener = TcpListener::bind(&b, "0.0.0.0:5001").unwrap();
    let up = pattern(8 << 20, 3);
    let down = pattern(8 << 20, 4);
    let down2 = down.clone();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        limit(&s);
        exchange(&s, down2)
    });
    let c = TcpStream::connect(&a, "10.0.0.2:5001").unwrap();
    limit(&c);
    let got = exchange(&c, up.clone());
    assert_eq!(sha256(&got), sha256(&down));
    assert_eq!(sha256(&server.join().unwrap()), sha256(&up));
    let counters = a.counters().unwrap();
    let (sent_a, sent_b) = (pa.load(Ordering::Relaxed), pb.load(Ordering::Relaxed));
    assert!(sent_a > 0 && sent_b > 0, "gathered: {sent_a} and {sent_b}");
    assert_eq!(empty.load(Ordering::Relaxed), 0, "handed over without data");
    assert!(
        sent_a <= counters.tcp_out_tso,
        "only super-segments leave their data in the send buffer"
    );
}

/// Over a link of 64 KB frames (as the tap's GRO frames are), each in-order segment's data
/// stays in the buffer it was read into, queued on its connection until the application reads
/// it: 8 MiB one way and 12 MiB the other at once arrive whole, the 12 MiB read in pieces of
/// 1000 bytes, most ending inside a kept frame.
#[test]
fn large_frames_stay_in_their_buffers_until_read() {
    let (a, b) = memory_pair(65_000).unwrap();
    let a = Stack::new(a, config(1, 1)).unwrap();
    let b = Stack::new(b, config(2, 2)).unwrap();
    let listener = TcpListener::bind(&b, "0.0.0.0:5001").unwrap();
    let up = pattern(8 << 20, 7);
    let down = [pattern(8 << 20, 8), pattern(4 << 20, 9)].concat();
    let down2 = down.clone();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        limit(&s);
        let r = s.try_clone().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            (&r).read_to_end(&mut got).unwrap();
            got
        });
        (&s).write_all(&down2).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        reader.join().unwrap()
    });
    let c = TcpStream::connect(&a, "10.0.0.2:5001").unwrap();
    limit(&c);
    let w = c.try_clone().unwrap();
    let up2 = up.clone();
    let writer = std::thread::spawn(move || {
        (&w).write_all(&up2).unwrap();
        w.shutdown(Shutdown::Write).unwrap();
    });
    // Small reads, each ending inside a kept frame.
    let mut got = Vec::new();
    let mut piece = [0u8; 1000];
    loop {
        match (&c).read(&mut piece).unwrap() {
            0 => break,
            n => got.extend_from_slice(&piece[..n]),
        }
    }
    writer.join().unwrap();
    assert_eq!(sha256(&got), sha256(&down));
    assert_eq!(sha256(&server.join().unwrap()), sha256(&up));
    let (kept_a, kept_b) = (
        a.counters().unwrap().tcp_in_kept,
        b.counters().unwrap().tcp_in_kept,
    );
    assert!(kept_a > 0 && kept_b > 0, "kept: {kept_a} and {kept_b}");
}
