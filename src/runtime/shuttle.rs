//! The whole runtime under shuttle (`RUSTFLAGS="--cfg shuttle" cargo test --lib shuttle`):
//! two stacks over the in-memory link, their threads and the application's all scheduled by
//! shuttle's randomised scheduler, each run a different interleaving. Every run must end: no
//! call waits for ever, whatever the stack threads were doing when the stacks were dropped,
//! and whatever the sockets were doing when they were.

use crate::phy::memory_pair;
use crate::socket::{TcpListener, TcpStream, UdpSocket};
use crate::sync::thread;
use crate::wire::MacAddr;
use crate::{Stack, StackConfig};
use std::io::{Read, Write};
use std::net::Ipv4Addr;
use std::time::Duration;

/// Schedules tried per test: each is a whole run of the runtime, a fraction of a second.
const SCHEDULES: usize = 1000;

fn config(last_octet: u8) -> StackConfig {
    let mut c = StackConfig::new(Ipv4Addr::new(10, 0, 0, last_octet), 24);
    c.mac = MacAddr([0x02, 0, 0, 0, 0, last_octet]);
    c.seed = u64::from(last_octet);
    // Short: the model of `poll` spins through the linger under the scheduler.
    c.linger = Duration::from_millis(20);
    c.busy_poll = Duration::ZERO;
    c
}

/// A client stack (10.0.0.1) and a server stack (10.0.0.2) joined by the in-memory link.
fn two_stacks() -> (Stack, Stack) {
    let (a, b) = memory_pair(1500).unwrap();
    (
        Stack::new(a, config(1)).unwrap(),
        Stack::new(b, config(2)).unwrap(),
    )
}

fn check(f: impl Fn() + Send + Sync + 'static) {
    let mut config = ::shuttle::Config::new();
    // A stack thread's frames are deep: shuttle's default 32 KiB stacks are not enough.
    config.stack_size = 4 << 20;
    config.max_steps = ::shuttle::MaxSteps::FailAfter(50_000_000);
    let scheduler = ::shuttle::scheduler::RandomScheduler::new(SCHEDULES);
    ::shuttle::Runner::new(scheduler, config).run(f);
}

/// An echo over TCP, a UDP receive waiting for a datagram that never comes and an accept
/// waiting for a connection that never comes, while the main thread drops both stacks at a
/// point the schedule picks: the echo completes whole or fails, the waits fail, and every
/// thread ends.
#[test]
fn every_call_ends_when_the_stacks_stop_mid_echo() {
    check(|| {
        let (client_stack, server_stack) = two_stacks();
        let listener = TcpListener::bind(&server_stack, "0.0.0.0:7").unwrap();
        let udp = UdpSocket::bind(&client_stack, "0.0.0.0:9").unwrap();
        let server = thread::spawn(move || {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 64];
            while let Ok(n @ 1..) = conn.read(&mut buf) {
                if conn.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        });
        let conn = TcpStream::connect(&client_stack, "10.0.0.2:7");
        let client = thread::spawn(move || {
            let Ok(mut conn) = conn else {
                return;
            };
            if conn.write_all(b"hello").is_err() {
                return;
            }
            let mut got = Vec::new();
            let mut buf = [0u8; 16];
            while got.len() < 5 {
                match conn.read(&mut buf) {
                    Ok(n @ 1..) => got.extend_from_slice(&buf[..n]),
                    _ => return,
                }
            }
            assert_eq!(got, b"hello");
        });
        let receiver = thread::spawn(move || {
            let mut buf = [0u8; 8];
            // Nothing is ever sent to it: only the stack's stop can end the wait.
            assert!(udp.recv_from(&mut buf).is_err());
        });
        let idle = TcpListener::bind(&server_stack, "0.0.0.0:8").unwrap();
        let acceptor = thread::spawn(move || {
            // Nobody connects: only the stack's stop can end the wait.
            assert!(idle.accept().is_err());
        });
        drop(server_stack);
        drop(client_stack);
        for t in [server, client, receiver, acceptor] {
            t.join().unwrap();
        }
    });
}

/// Handles dropped, and calls made, on several threads while the stack stops: a stream
/// whose clone reads on while another is dropped, a listener dropped while a connect is
/// under way, a send on a stack that has stopped. Nothing panics or waits for ever.
#[test]
fn handles_dropped_while_the_stack_stops() {
    check(|| {
        let (client_stack, server_stack) = two_stacks();
        let listener = TcpListener::bind(&server_stack, "0.0.0.0:7").unwrap();
        let conn = TcpStream::connect(&client_stack, "10.0.0.2:7").unwrap();
        let reader = conn.try_clone().unwrap();
        let udp = UdpSocket::bind(&client_stack, "0.0.0.0:9").unwrap();
        let read = thread::spawn(move || {
            let mut reader = reader;
            let mut buf = [0u8; 8];
            // The peer never writes: the read ends by the close, the reset or the stop.
            let _ = reader.read(&mut buf);
        });
        let drops = thread::spawn(move || {
            drop(conn);
            drop(listener);
            let _ = udp.send_to(b"x", "10.0.0.2:9");
        });
        drop(client_stack);
        drop(server_stack);
        for t in [read, drops] {
            t.join().unwrap();
        }
    });
}
