//! The async API against the Linux kernel over taps in a namespace each test creates:
//! echo-server `--async` (tokio tasks) serving kernel clients, and a tokio client on a stack
//! inside the test process talking to a kernel server.

mod common;

use common::netns::*;
use common::{pattern, sha256};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

/// Every wait is bounded by this.
const LIMIT: Duration = Duration::from_secs(60);

/// Kernel sockets are made by the thread that runs this runtime, inside the namespace.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Writes `data`, half-closes, and reads the echo to the end, both at once.
async fn echo_round<S>(conn: S, data: Vec<u8>) -> Vec<u8>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut r, mut w) = tokio::io::split(conn);
    let writer = tokio::spawn(async move {
        w.write_all(&data).await.expect("write");
        w.shutdown().await.expect("shutdown");
    });
    let mut got = Vec::new();
    r.read_to_end(&mut got).await.expect("read");
    writer.await.expect("writer");
    got
}

/// Echoes `data` through `conn` and checks every byte came back (sha256).
async fn echo_checked<S>(conn: S, data: Vec<u8>)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (len, want) = (data.len(), sha256(&data));
    let got = timeout(LIMIT, echo_round(conn, data))
        .await
        .expect("in time");
    assert_eq!(got.len(), len);
    assert_eq!(sha256(&got), want);
}

/// 1000 connections at once, each made by `connect` in its own task, each echoing 16 KiB
/// (a little more for later ones), checked.
async fn thousand_at_once<F, Fut, S>(connect: F)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = S> + Send,
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let mut tasks = Vec::new();
    for i in 0..1000usize {
        let connect = connect.clone();
        tasks.push(tokio::spawn(async move {
            let conn = connect().await;
            let data = pattern(16 * 1024 + i, i as u8);
            let want = sha256(&data);
            (sha256(&echo_round(conn, data).await), want)
        }));
    }
    for t in tasks {
        let (got, want) = timeout(LIMIT, t).await.expect("in time").expect("task");
        assert_eq!(got, want);
    }
}

#[test]
fn kernel_clients_echo_through_the_async_server() {
    in_netns(|| {
        let server = EchoServer::start(&["--async"]);
        runtime().block_on(async {
            // One connection moves 64 MiB each way.
            let conn = tokio::net::TcpStream::connect((STACK_IP, 7)).await.unwrap();
            echo_checked(conn, pattern(64 << 20, 11)).await;
            // Then 1000 at once, served by as many tasks.
            thousand_at_once(|| async {
                tokio::net::TcpStream::connect((STACK_IP, 7)).await.unwrap()
            })
            .await;
        });
        let counters = server.stop();
        assert!(
            counter(&counters, "segments received") > 1_000,
            "{counters}"
        );
    });
}

/// The kernel listener's backlog: room for the thousand connections at once.
const KERNEL_BACKLOG: u32 = 4096;

/// A kernel echo server on 10.0.1.1:5000: one task per connection. Its SYN and accept queues
/// take a thousand connections at once, so that the kernel neither drops SYNs (seconds of
/// retries) nor answers with SYN cookies, which reset a connection whose first data segments
/// arrive after a lost handshake ACK: the kernel's limits, not the stack's.
async fn kernel_echo_server() {
    sh(&format!(
        "sysctl -qw net.core.somaxconn={KERNEL_BACKLOG} \
         net.ipv4.tcp_max_syn_backlog={KERNEL_BACKLOG}"
    ));
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("10.0.1.1:5000".parse().unwrap()).unwrap();
    let listener = socket.listen(KERNEL_BACKLOG).unwrap();
    tokio::spawn(async move {
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let (mut r, mut w) = conn.split();
                tokio::io::copy(&mut r, &mut w).await.unwrap();
                w.shutdown().await.unwrap();
            });
        }
    });
}

#[test]
fn a_tokio_client_moves_64_mib_and_a_thousand_connections_through_a_kernel_server() {
    in_netns(|| {
        let stack = std::sync::Arc::new(library_stack(None));
        runtime().block_on(async {
            kernel_echo_server().await;
            let conn = tapstack::tokio::TcpStream::connect(&stack, "10.0.1.1:5000");
            let conn = timeout(LIMIT, conn).await.expect("in time").unwrap();
            echo_checked(conn, pattern(64 << 20, 12)).await;
            thousand_at_once(move || {
                let stack = stack.clone();
                async move {
                    tapstack::tokio::TcpStream::connect(&stack, "10.0.1.1:5000")
                        .await
                        .unwrap()
                }
            })
            .await;
        });
    });
}
