//! TCP mode: one connection, stdin to the socket and the socket to stdout.

use crate::context;
use std::io::{self, BufRead, Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::{Duration, Instant};
use tapstack::{Stack, TcpListener, TcpStream};

/// Longest wait at exit for the peer to acknowledge what we sent.
const LINGER_MAX: Duration = Duration::from_secs(10);
/// TCP silence taken to mean nothing more is in flight.
const LINGER_QUIET: Duration = Duration::from_millis(300);

pub fn connect(
    stack: &Stack,
    host: &str,
    port: u16,
    wait: Option<Duration>,
) -> io::Result<TcpStream> {
    let addr = (host, port);
    match wait {
        Some(t) => TcpStream::connect_timeout(stack, addr, t),
        None => TcpStream::connect(stack, addr),
    }
    .map_err(|e| context(e, format_args!("connect {host}:{port}")))
}

/// Listens on `port`, announces it on stderr and accepts one connection; later ones are
/// refused.
pub fn accept_one(stack: &Stack, port: u16) -> io::Result<TcpStream> {
    let listener = TcpListener::bind(stack, (stack.config().ip, port))
        .map_err(|e| context(e, format_args!("listen on port {port}")))?;
    eprintln!("tapcat: listening on {}", listener.local_addr()?);
    let (stream, peer) = listener.accept().map_err(|e| context(e, "accept"))?;
    log::info!("connection from {peer}");
    Ok(stream)
}

/// Copies both ways until stdin is at EOF (then half-closes) and the peer has closed.
pub fn relay(stack: &Stack, stream: TcpStream) -> io::Result<()> {
    let up = stream.try_clone()?;
    let sender = thread::spawn(move || stdin_to_socket(&up));
    socket_to_stdout(&stream)?;
    sender
        .join()
        .map_err(|_| io::Error::other("the stdin thread panicked"))??;
    linger(stack, &stream);
    Ok(())
}

fn stdin_to_socket(mut s: &TcpStream) -> io::Result<()> {
    let mut stdin = io::stdin().lock();
    loop {
        let chunk = match stdin.fill_buf() {
            Ok([]) => break,
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(context(e, "read stdin")),
        };
        let n = chunk.len();
        s.write_all(chunk).map_err(|e| context(e, "send"))?;
        stdin.consume(n);
    }
    s.shutdown(Shutdown::Write)
        .map_err(|e| context(e, "shutdown"))
}

fn socket_to_stdout(mut s: &TcpStream) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut stdout = io::stdout().lock();
    loop {
        let n = s.read(&mut buf).map_err(|e| context(e, "receive"))?;
        if n == 0 {
            return Ok(());
        }
        stdout
            .write_all(&buf[..n])
            .and_then(|()| stdout.flush())
            .map_err(|e| context(e, "write stdout"))?;
    }
}

/// Keeps the stack running until the peer has acknowledged everything: a stopped stack
/// drops unsent data. The socket API offers no `SO_LINGER`, so this watches for the
/// connection to close (our FIN acknowledged in LAST-ACK) or for TCP to fall silent.
fn linger(stack: &Stack, s: &TcpStream) {
    let deadline = Instant::now() + LINGER_MAX;
    let mut last = traffic(stack);
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        if let Err(e) = s.shutdown(Shutdown::Read) {
            if e.raw_os_error() == Some(libc::ENOTCONN) {
                return;
            }
        }
        thread::sleep(Duration::from_millis(10));
        let now = traffic(stack);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= LINGER_QUIET {
            return;
        }
    }
    log::warn!("the peer did not acknowledge everything within {LINGER_MAX:?}");
}

/// TCP segments in and out so far.
fn traffic(stack: &Stack) -> Option<(u64, u64)> {
    let c = stack.counters().ok()?;
    Some((c.tcp_in_segs, c.tcp_out_segs))
}
