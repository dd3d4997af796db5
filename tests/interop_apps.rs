//! The apps against the Linux kernel in a namespace each test creates: curl against
//! http-server, and tapcat against the kernel's nc and UDP sockets.

mod apps;
mod common;

use apps::*;
use common::netns::*;
use common::{pattern, sha256};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::net::{TcpStream as KernelStream, UdpSocket as KernelUdp};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(30);
const BIG: usize = 100 << 20;

fn http_server(root: &std::path::Path) -> (Proc, crossbeam_channel::Receiver<String>) {
    let mut p = Proc::spawn(
        "http-server",
        Command::new(env!("CARGO_BIN_EXE_http-server"))
            .arg(root)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit()),
    );
    let out = lines(p.child.stdout.take().expect("stdout"));
    expect_line(&out, "listening", Duration::from_secs(10));
    (p, out)
}

/// SIGTERM, then the counters it prints; checks it exits cleanly.
fn stop(mut p: Proc, out: &crossbeam_channel::Receiver<String>) -> String {
    p.signal(libc::SIGTERM);
    let printed = rest(out, Duration::from_secs(10));
    assert!(p.wait(Duration::from_secs(10)).success(), "{printed}");
    printed
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "curl {args:?}: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

#[test]
fn curl_downloads_100_mib_and_keeps_alive() {
    in_netns(|| {
        let dir = TempDir::new("http");
        let want = write_pattern_file(&dir.path("big.bin"), BIG, 1);
        std::fs::write(dir.path("a.txt"), "first\n").unwrap();
        std::fs::write(dir.path("b.html"), "<p>second</p>\n").unwrap();
        let (server, out) = http_server(&dir.0);

        let start = Instant::now();
        let mut p = Proc::spawn(
            "curl",
            Command::new("curl")
                .args(["-sS", "--fail", "--max-time", "120"])
                .arg(format!("http://{STACK_IP}/big.bin"))
                .stdout(Stdio::piped()),
        );
        let body = chunks(p.child.stdout.take().expect("stdout"));
        let (mut h, mut len) = (Sha256::new(), 0);
        while let Ok(chunk) = body.recv_timeout(Duration::from_secs(120)) {
            h.update(&chunk);
            len += chunk.len();
        }
        assert!(p.wait(T).success(), "curl failed");
        let took = start.elapsed();
        assert_eq!(len, BIG);
        assert_eq!(format!("{:x}", h.finalize()), want);
        eprintln!("100 MiB in {took:?}");

        // Two URLs over one connection: the second needs no new connect.
        let w = "%{http_code} %{num_connects} %{content_type}\n";
        let (o1, o2) = (dir.path("o1"), dir.path("o2"));
        let got = curl(&[
            "-w",
            w,
            "-o",
            o1.to_str().unwrap(),
            &format!("http://{STACK_IP}/a.txt"),
            "-o",
            o2.to_str().unwrap(),
            &format!("http://{STACK_IP}/b.html"),
        ]);
        assert_eq!(
            got,
            "200 1 text/plain; charset=utf-8\n200 0 text/html; charset=utf-8\n"
        );
        assert_eq!(std::fs::read_to_string(&o1).unwrap(), "first\n");
        assert_eq!(std::fs::read_to_string(&o2).unwrap(), "<p>second</p>\n");

        let head = curl(&["-I", &format!("http://{STACK_IP}/big.bin")]);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(
            head.contains(&format!("Content-Length: {BIG}\r\n")),
            "{head}"
        );

        let missing = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("http://{STACK_IP}/missing"),
        ]);
        assert_eq!(missing, "404");

        let printed = stop(server, &out);
        assert_eq!(counter(&printed, "connections accepted"), 4, "{printed}");
        assert_eq!(counter(&printed, "2xx responses"), 4, "{printed}");
        assert_eq!(counter(&printed, "4xx responses"), 1, "{printed}");
    });
}

/// Sends `request` from a kernel socket and reads until the server closes.
fn raw(request: &str) -> String {
    let mut s = KernelStream::connect((STACK_IP, 80)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).expect("read to the server's close");
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn http_server_answers_errors_and_edge_cases() {
    in_netns(|| {
        let dir = TempDir::new("http-edge");
        std::fs::create_dir(dir.path("sub")).unwrap();
        std::fs::write(dir.path("sub/x.txt"), "x\n").unwrap();
        std::os::unix::fs::symlink("/etc", dir.path("out")).unwrap();
        let (server, out) = http_server(&dir.0);

        let r = raw("HEAD /sub/x.txt HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(
            r.contains("Content-Length: 2\r\n") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
        let r = raw("GET /sub/x.txt HTTP/1.0\r\n\r\n");
        assert!(
            r.contains("Connection: close\r\n") && r.ends_with("\r\n\r\nx\n"),
            "{r}"
        );
        // Pipelined on one connection; the second asks to close.
        let r = raw("GET /sub/x.txt HTTP/1.1\r\nHost: h\r\n\r\nGET /sub/ HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        assert_eq!(r.matches("HTTP/1.1 200 OK").count(), 2, "{r}");
        assert!(r.contains("<a href=\"x.txt\">x.txt</a>"), "{r}");
        let status = |req: &str| raw(req).lines().next().unwrap_or("").to_string();
        let h = "Host: h\r\nConnection: close\r\n\r\n";
        assert_eq!(
            status(&format!("GET /sub HTTP/1.1\r\n{h}")),
            "HTTP/1.1 301 Moved Permanently"
        );
        assert_eq!(
            status(&format!("GET /../etc/passwd HTTP/1.1\r\n{h}")),
            "HTTP/1.1 403 Forbidden"
        );
        assert_eq!(
            status(&format!("GET /out/passwd HTTP/1.1\r\n{h}")),
            "HTTP/1.1 403 Forbidden"
        );
        assert_eq!(status("GET / HTTP/1.1\r\n\r\n"), "HTTP/1.1 400 Bad Request");
        assert_eq!(status("BLAH\r\n\r\n"), "HTTP/1.1 400 Bad Request");
        let r = raw(&format!("DELETE /sub/x.txt HTTP/1.1\r\n{h}"));
        assert!(r.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"), "{r}");
        assert!(r.contains("Allow: GET, HEAD\r\n"), "{r}");
        let long = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "a".repeat(9000)
        );
        assert_eq!(
            status(&long),
            "HTTP/1.1 431 Request Header Fields Too Large"
        );

        let printed = stop(server, &out);
        assert_eq!(counter(&printed, "requests"), 11, "{printed}");
    });
}

/// Runs tapcat (already connected or accepting) against a kernel `nc`: writes `up` to
/// tapcat's stdin, reads `down_len` bytes from its stdout, and closes stdin only then when
/// `hold_stdin` (nc -l stops at the network's EOF). Returns what tapcat printed.
fn drive_tapcat(mut tapcat: Proc, up: Vec<u8>, down_len: usize, hold_stdin: bool) -> Vec<u8> {
    let mut stdin = tapcat.child.stdin.take().expect("stdin");
    let out = chunks(tapcat.child.stdout.take().expect("stdout"));
    let (release, released) = crossbeam_channel::bounded::<()>(1);
    let writer = std::thread::spawn(move || {
        stdin.write_all(&up).expect("write tapcat's stdin");
        if hold_stdin {
            let _ = released.recv_timeout(T);
        }
    });
    let mut got = Vec::new();
    loop {
        match out.recv_timeout(T) {
            Ok(c) => got.extend_from_slice(&c),
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => break,
            Err(e) => panic!("tapcat stdout stalled at {} bytes: {e}", got.len()),
        }
        if got.len() >= down_len {
            let _ = release.try_send(());
        }
    }
    writer.join().expect("writer");
    assert!(tapcat.wait(T).success(), "tapcat failed");
    got
}

#[test]
fn tapcat_connects_to_kernel_nc_both_ways() {
    in_netns(|| {
        let dir = TempDir::new("tapcat-client");
        let down_sha = write_pattern_file(&dir.path("down"), 16 << 20, 2);
        let mut nc = Proc::spawn(
            "nc",
            Command::new("nc")
                .args(["-N", "-l", KERNEL_IP, "5555"])
                .stdin(std::fs::File::open(dir.path("down")).unwrap())
                .stdout(std::fs::File::create(dir.path("up")).unwrap()),
        );
        wait_for_tcp_listener(5555, Duration::from_secs(10));
        let tapcat = Proc::spawn(
            "tapcat",
            Command::new(env!("CARGO_BIN_EXE_tapcat"))
                .args([KERNEL_IP, "5555"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        let up = pattern(16 << 20, 3);
        let up_sha = sha256(&up);
        let got = drive_tapcat(tapcat, up, 16 << 20, true);
        assert_eq!(sha256(&got), down_sha, "kernel -> tapcat");
        assert!(nc.wait(T).success(), "nc failed");
        assert_eq!(file_sha256(&dir.path("up")), up_sha, "tapcat -> kernel");
    });
}

#[test]
fn tapcat_listens_for_kernel_nc() {
    in_netns(|| {
        let dir = TempDir::new("tapcat-listen");
        let up_sha = write_pattern_file(&dir.path("up"), 16 << 20, 4);
        let mut tapcat = Proc::spawn(
            "tapcat",
            Command::new(env!("CARGO_BIN_EXE_tapcat"))
                .args(["-l", "6000"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let err = lines(tapcat.child.stderr.take().expect("stderr"));
        expect_line(&err, "listening on [::]:6000", Duration::from_secs(10));
        let mut nc = Proc::spawn(
            "nc",
            Command::new("nc")
                .args(["-N", STACK_IP, "6000"])
                .stdin(std::fs::File::open(dir.path("up")).unwrap())
                .stdout(std::fs::File::create(dir.path("down")).unwrap()),
        );
        let down = pattern(16 << 20, 5);
        let down_sha = sha256(&down);
        // Closing stdin at once: tapcat's FIN may well come before the kernel's.
        let got = drive_tapcat(tapcat, down, 16 << 20, false);
        assert_eq!(sha256(&got), up_sha, "kernel -> tapcat");
        assert!(nc.wait(T).success(), "nc failed");
        assert_eq!(file_sha256(&dir.path("down")), down_sha, "tapcat -> kernel");
    });
}

#[test]
fn tapcat_exchanges_udp_datagrams_with_the_kernel() {
    in_netns(|| {
        // Client: a line becomes a datagram, the answer goes to stdout.
        let kernel = KernelUdp::bind((KERNEL_IP, 0)).unwrap();
        kernel.set_read_timeout(Some(T)).unwrap();
        let port = kernel.local_addr().unwrap().port().to_string();
        let mut tapcat = Proc::spawn(
            "tapcat -u",
            Command::new(env!("CARGO_BIN_EXE_tapcat"))
                .args(["-u", "-q", "0.5", KERNEL_IP, &port])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        let out = lines(tapcat.child.stdout.take().expect("stdout"));
        let mut stdin = tapcat.child.stdin.take().expect("stdin");
        stdin.write_all(b"hello kernel\n").unwrap();
        let mut buf = [0u8; 1500];
        let (n, from) = kernel.recv_from(&mut buf).expect("datagram from tapcat");
        assert_eq!(&buf[..n], b"hello kernel\n");
        assert_eq!(from.ip().to_string(), STACK_IP);
        kernel.send_to(b"hello tapcat\n", from).unwrap();
        assert_eq!(expect_line(&out, "hello", T), "hello tapcat");
        drop(stdin);
        assert!(tapcat.wait(T).success(), "tapcat -u failed");

        // Listener: answers whoever sent last.
        let mut tapcat = Proc::spawn(
            "tapcat -u -l",
            Command::new(env!("CARGO_BIN_EXE_tapcat"))
                .args(["-u", "-l", "-q", "0.5", "7000"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let err = lines(tapcat.child.stderr.take().expect("stderr"));
        expect_line(&err, "listening on [::]:7000", Duration::from_secs(10));
        let out = lines(tapcat.child.stdout.take().expect("stdout"));
        kernel.send_to(b"ping\n", (STACK_IP, 7000)).unwrap();
        assert_eq!(expect_line(&out, "ping", T), "ping");
        let mut stdin = tapcat.child.stdin.take().expect("stdin");
        stdin.write_all(b"pong\n").unwrap();
        let (n, from) = kernel.recv_from(&mut buf).expect("answer from tapcat");
        assert_eq!((&buf[..n], from.port()), (&b"pong\n"[..], 7000));
        drop(stdin);
        assert!(tapcat.wait(T).success(), "tapcat -u -l failed");
    });
}

#[test]
fn tapcat_reports_a_refused_connection() {
    in_netns(|| {
        let out = Command::new(env!("CARGO_BIN_EXE_tapcat"))
            .args(["-w", "10", KERNEL_IP, "9"])
            .stdin(Stdio::null())
            .output()
            .expect("tapcat");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        assert!(
            err.contains("tapcat: connect 10.0.0.1:9: Connection refused (os error 111)"),
            "{err}"
        );
    });
}

/// http-server over IPv6 (its listener on `[::]` takes both families): `curl -g` of a file by
/// its IPv6 literal, and the same file over IPv4 from the same listener.
#[test]
fn curl_over_ipv6_and_ipv4_from_one_listener() {
    in_netns(|| {
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6");
        sh("ip -6 addr add 2001:db8::1/64 dev tap0 nodad");
        let dir = TempDir::new("http6");
        let want = write_pattern_file(&dir.path("f.bin"), 3 << 20, 4);
        let mut p = Proc::spawn(
            "http-server",
            Command::new(env!("CARGO_BIN_EXE_http-server"))
                .arg(&dir.0)
                .args(["--ip6", "2001:db8::2/64"])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        );
        let out = lines(p.child.stdout.take().expect("stdout"));
        expect_line(&out, "listening", Duration::from_secs(10));
        // DAD of the stack's address: ping until one reply, for at most 10 s.
        let ping = sh("ping -6 -n -c 1 -i 0.2 -w 10 2001:db8::2");
        // (Requests sent before DAD passed may go unanswered: one reply is enough.)
        assert!(answered(&ping), "{ping}");
        let path = dir.path("got6.bin");
        curl(&[
            "-g",
            "--fail",
            "-o",
            path.to_str().unwrap(),
            "http://[2001:db8::2]/f.bin",
        ]);
        assert_eq!(sha256(&std::fs::read(&path).unwrap()), want);
        let path4 = dir.path("got4.bin");
        curl(&[
            "--fail",
            "-o",
            path4.to_str().unwrap(),
            &format!("http://{STACK_IP}/f.bin"),
        ]);
        assert_eq!(sha256(&std::fs::read(&path4).unwrap()), want);
        stop(p, &out);
    });
}

/// http-server behind a tun serves curl over IPv6 as over a tap (3 MiB, sha256).
#[test]
fn curl_over_ipv6_through_a_tun() {
    in_netns(|| {
        sh("ip tuntap add dev tun0 mode tun");
        sh("echo 0 > /proc/sys/net/ipv6/conf/tun0/disable_ipv6");
        sh("ip -6 addr add 2001:db8:2::1/64 dev tun0 nodad");
        sh("ip link set tun0 up");
        let dir = TempDir::new("http6-tun");
        let want = write_pattern_file(&dir.path("f.bin"), 3 << 20, 7);
        let mut p = Proc::spawn(
            "http-server",
            Command::new(env!("CARGO_BIN_EXE_http-server"))
                .arg(&dir.0)
                .args(["--tun", "tun0", "--ip", "10.0.2.2/24"])
                .args(["--ip6", "2001:db8:2::2/64"])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        );
        let out = lines(p.child.stdout.take().expect("stdout"));
        expect_line(&out, "listening", Duration::from_secs(10));
        let ping = sh("ping -6 -n -c 1 -i 0.2 -w 10 2001:db8:2::2");
        assert!(answered(&ping), "{ping}");
        let path = dir.path("got.bin");
        curl(&[
            "-g",
            "--fail",
            "-o",
            path.to_str().unwrap(),
            "http://[2001:db8:2::2]/f.bin",
        ]);
        assert_eq!(sha256(&std::fs::read(&path).unwrap()), want);
        stop(p, &out);
    });
}

/// tapcat connects to an IPv6 literal (the kernel's nc -6 listening): 1 MiB each way, as over
/// IPv4 above; its first connect waits out DAD of its own address.
#[test]
fn tapcat_connects_to_an_ipv6_literal() {
    in_netns(|| {
        sh("echo 0 > /proc/sys/net/ipv6/conf/tap0/disable_ipv6");
        sh("ip -6 addr add 2001:db8::1/64 dev tap0 nodad");
        let dir = TempDir::new("tapcat-six");
        let down_sha = write_pattern_file(&dir.path("down"), 1 << 20, 5);
        let mut nc = Proc::spawn(
            "nc",
            Command::new("nc")
                .args(["-6", "-N", "-l", "2001:db8::1", "5556"])
                .stdin(std::fs::File::open(dir.path("down")).unwrap())
                .stdout(std::fs::File::create(dir.path("up")).unwrap()),
        );
        wait_for_tcp_listener(5556, Duration::from_secs(10));
        let tapcat = Proc::spawn(
            "tapcat",
            Command::new(env!("CARGO_BIN_EXE_tapcat"))
                .args(["--ip6", "2001:db8::2/64", "2001:db8::1", "5556"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped()),
        );
        let up = pattern(1 << 20, 6);
        let up_sha = sha256(&up);
        let got = drive_tapcat(tapcat, up, 1 << 20, true);
        assert_eq!(sha256(&got), down_sha, "kernel -> tapcat");
        assert!(nc.wait(T).success(), "nc failed");
        assert_eq!(file_sha256(&dir.path("up")), up_sha, "tapcat -> kernel");
    });
}

/// http-server on two queues of a multi-queue tap (`--queues 2`): 24 separate curl
/// connections each get the file whole (sha256), and both queues accept some of them.
#[test]
fn http_server_on_two_queues_serves_curl_on_both() {
    in_netns(|| {
        multi_queue_tap("tapq", "10.0.3.1/24");
        let dir = TempDir::new("httpq");
        let want = write_pattern_file(&dir.path("f.bin"), 1 << 20, 6);
        let mut p = Proc::spawn(
            "http-server",
            Command::new(env!("CARGO_BIN_EXE_http-server"))
                .arg(&dir.0)
                .args(["--tap", "tapq", "--ip", "10.0.3.2/24", "--queues", "2"])
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit()),
        );
        let out = lines(p.child.stdout.take().expect("stdout"));
        expect_line(&out, "2 queues", Duration::from_secs(10));
        for i in 0..24 {
            let path = dir.path(&format!("got{i}.bin"));
            curl(&[
                "--fail",
                "-o",
                path.to_str().unwrap(),
                "http://10.0.3.2/f.bin",
            ]);
            assert_eq!(sha256(&std::fs::read(&path).unwrap()), want, "request {i}");
        }
        let printed = stop(p, &out);
        let accepted: Vec<u64> = printed
            .lines()
            .filter(|l| l.starts_with("queue "))
            .map(|l| {
                l.split_whitespace()
                    .nth(2)
                    .and_then(|n| n.parse().ok())
                    .expect(l)
            })
            .collect();
        assert_eq!(accepted.len(), 2, "{printed}");
        assert!(accepted.iter().all(|&n| n > 0), "{printed}");
        assert_eq!(accepted.iter().sum::<u64>(), 24, "{printed}");
    });
}
