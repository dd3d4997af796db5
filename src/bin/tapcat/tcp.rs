//! TCP mode: one connection, stdin to the socket and the socket to stdout.

use crate::context;
use std::io::{self, BufRead, Read, Write};
use std::net::Shutdown;
use std::thread;
use std::time::Duration;
use tapstack::{Stack, TcpListener, TcpStream};

pub fn connect(
    stack: &Stack,
    host: &str,
    port: u16,
    wait: Option<Duration>,
) -> io::Result<TcpStream> {
    let addr = (host, port);
    // A fresh stack's IPv6 addresses are tentative for DAD's second: a connect then finds no
    // source address (EADDRNOTAVAIL, as Linux without optimistic DAD) and is tried again,
    // for a bounded while.
    let dad_deadline = std::time::Instant::now() + DAD_WAIT;
    loop {
        let attempt = match wait {
            Some(t) => TcpStream::connect_timeout(stack, addr, t),
            None => TcpStream::connect(stack, addr),
        };
        match attempt {
            Err(e)
                if e.kind() == io::ErrorKind::AddrNotAvailable
                    && std::time::Instant::now() < dad_deadline =>
            {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other.map_err(|e| context(e, format_args!("connect {host}:{port}"))),
        }
    }
}

/// How long a connect waits for the stack's IPv6 addresses to pass DAD.
const DAD_WAIT: Duration = Duration::from_secs(3);

/// Listens on `port`, announces it on stderr and accepts one connection; later ones are
/// refused.
pub fn accept_one(stack: &Stack, port: u16) -> io::Result<TcpStream> {
    let listener = TcpListener::bind(stack, (tapstack::cli::listen_ip(stack.config()), port))
        .map_err(|e| context(e, format_args!("listen on port {port}")))?;
    eprintln!("tapcat: listening on {}", listener.local_addr()?);
    let (stream, peer) = listener.accept().map_err(|e| context(e, "accept"))?;
    log::info!("connection from {peer}");
    Ok(stream)
}

/// Copies both ways until stdin is at EOF (then half-closes) and the peer has closed.
/// What is still unacknowledged at exit goes out while the stack lingers on drop.
pub fn relay(stream: TcpStream) -> io::Result<()> {
    let up = stream.try_clone()?;
    let sender = thread::spawn(move || stdin_to_socket(&up));
    socket_to_stdout(&stream)?;
    sender
        .join()
        .map_err(|_| io::Error::other("the stdin thread panicked"))?
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
