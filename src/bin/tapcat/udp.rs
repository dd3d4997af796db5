//! UDP mode: each stdin line (or chunk) is a datagram; each datagram received goes to stdout.

use crate::{context, Target};
use std::io::{self, BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};
use tapstack::{Stack, UdpSocket};

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65507;
/// How often the receiver looks at stdin's state while no datagram arrives.
const TICK: Duration = Duration::from_millis(100);

/// Whom to send to: fixed when connecting, the last sender when listening.
#[derive(Default)]
struct Peer {
    addr: Mutex<Option<SocketAddr>>,
    known: Condvar,
}

impl Peer {
    fn set(&self, a: SocketAddr) {
        if let Ok(mut addr) = self.addr.lock() {
            *addr = Some(a);
            self.known.notify_all();
        }
    }

    /// Blocks until someone is known.
    fn get(&self) -> io::Result<SocketAddr> {
        let poisoned = |_| io::Error::other("peer lock poisoned");
        let mut addr = self.addr.lock().map_err(poisoned)?;
        loop {
            if let Some(a) = *addr {
                return Ok(a);
            }
            addr = self.known.wait(addr).map_err(poisoned)?;
        }
    }
}

pub fn run(stack: &Stack, target: Target, quit_after: Option<Duration>) -> io::Result<()> {
    // `[::]` with IPv6 on: either family's peer, v6 literals included.
    let ip = tapstack::cli::listen_ip(stack.config());
    let peer = Arc::new(Peer::default());
    let (sock, listening) = match &target {
        Target::Connect(host, port) => {
            let s = UdpSocket::bind(stack, (ip, 0))?;
            s.connect((host.as_str(), *port))
                .map_err(|e| context(e, format_args!("connect {host}:{port}")))?;
            peer.set(s.peer_addr()?);
            (s, false)
        }
        Target::Listen(port) => {
            let s = UdpSocket::bind(stack, (ip, *port))
                .map_err(|e| context(e, format_args!("listen on port {port}")))?;
            eprintln!("tapcat: listening on {} (udp)", s.local_addr()?);
            (s, true)
        }
    };
    let stdin_done = Arc::new(AtomicBool::new(false));
    let sender = {
        let (sock, peer, done) = (sock.try_clone()?, peer.clone(), stdin_done.clone());
        thread::spawn(move || {
            let r = stdin_to_peer(&sock, &peer);
            done.store(true, Ordering::SeqCst);
            r
        })
    };
    receive(&sock, &peer, listening, &stdin_done, quit_after)?;
    match sender.join() {
        Ok(r) => r,
        Err(_) => Err(io::Error::other("the stdin thread panicked")),
    }
}

fn stdin_to_peer(sock: &UdpSocket, peer: &Peer) -> io::Result<()> {
    let mut stdin = BufReader::with_capacity(MAX_DATAGRAM, io::stdin());
    loop {
        let buf = match stdin.fill_buf() {
            Ok([]) => return Ok(()),
            Ok(buf) => buf,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(context(e, "read stdin")),
        };
        let n = buf
            .iter()
            .position(|&b| b == b'\n')
            .map_or(buf.len(), |i| i + 1);
        let to = peer.get()?;
        sock.send_to(&buf[..n], to)
            .map_err(|e| context(e, format_args!("send to {to}")))?;
        stdin.consume(n);
    }
}

/// Prints datagrams until stdin is done and none has come for `quit_after`.
fn receive(
    sock: &UdpSocket,
    peer: &Peer,
    listening: bool,
    stdin_done: &AtomicBool,
    quit_after: Option<Duration>,
) -> io::Result<()> {
    sock.set_read_timeout(Some(TICK))?;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut stdout = io::stdout().lock();
    let mut last = Instant::now();
    let mut was_done = false;
    loop {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => {
                last = Instant::now();
                if listening {
                    peer.set(from);
                }
                stdout
                    .write_all(&buf[..n])
                    .and_then(|()| stdout.flush())
                    .map_err(|e| context(e, "write stdout"))?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(context(e, "receive")),
        }
        if stdin_done.load(Ordering::SeqCst) {
            if !was_done {
                was_done = true;
                last = last.max(Instant::now());
            }
            if quit_after.is_some_and(|q| last.elapsed() >= q) {
                return Ok(());
            }
        }
    }
}
