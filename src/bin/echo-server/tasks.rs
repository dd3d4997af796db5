//! The async API's server (`--async`): on a tokio runtime, one task per listener, per UDP
//! service and per connection.
//!
//! A connection task holds no buffer while its peer is quiet: it waits with `readable()`,
//! then reads into its worker thread's buffer and writes back what fits at once; only what
//! does not fit is kept (for echo), so 10 000 idle connections cost their sockets alone.

use crate::{chargen_block, daytime_line, stopped, Service, UdpAnswers};
use std::cell::RefCell;
use std::io::{self, ErrorKind};
use std::sync::{Arc, OnceLock};
use tapstack::tokio::{TcpListener, TcpStream, UdpSocket};
use tokio::io::AsyncWriteExt;
use tokio::runtime::Runtime;

/// Starts the runtime and the services' tasks on it.
pub fn start(
    listeners: Vec<(tapstack::TcpListener, Service)>,
    udp: Vec<(tapstack::UdpSocket, Service)>,
) -> io::Result<Runtime> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .thread_name("echo-server-task")
        .build()?;
    for (listener, service) in listeners {
        runtime.spawn(accept_loop(TcpListener::from_std(listener)?, service));
    }
    for (socket, service) in udp {
        runtime.spawn(udp_loop(UdpSocket::from_std(socket)?, service));
    }
    Ok(runtime)
}

/// The services on a stack run as a task of a current-thread runtime
/// (`tapstack::tokio::spawn_stack`): the stack, the listeners and every connection share one
/// thread, named `echo-server-task`, so no handoff between them costs a context switch.
/// Returns the stack and the runtime's handle; the thread runs until `stop` is dropped.
pub fn start_local(
    device: &tapstack::cli::DeviceArgs,
    services: &[(u16, Service)],
    stop: tokio::sync::oneshot::Receiver<()>,
) -> io::Result<(
    tapstack::Stack,
    tokio::runtime::Handle,
    std::thread::JoinHandle<()>,
)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let stack = {
        let _runtime = runtime.enter();
        device.spawn_with(device.config())?
    };
    let handle = runtime.handle().clone();
    let thread = std::thread::Builder::new()
        .name("echo-server-task".into())
        .spawn(move || {
            let _ = runtime.block_on(stop);
        })?;
    // Bound from here while the runtime's thread runs the stack: awaited, never blocking it.
    let any = tapstack::cli::listen_ip(stack.config());
    handle.block_on(async {
        for &(port, service) in services {
            let listener = TcpListener::bind(&stack, (any, port)).await?;
            tokio::spawn(accept_loop(listener, service));
            let socket = UdpSocket::bind(&stack, (any, port)).await?;
            tokio::spawn(udp_loop(socket, service));
        }
        Ok::<(), io::Error>(())
    })?;
    Ok((stack, handle, thread))
}

async fn accept_loop(listener: TcpListener, service: Service) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                tokio::spawn(serve(conn, service));
            }
            Err(e) if stopped(&e) => return,
            Err(e) => log::warn!("{service:?} accept: {e}"),
        }
    }
}

async fn serve(mut conn: TcpStream, service: Service) {
    let done = match service {
        Service::Echo => echo(&conn).await,
        Service::Discard => discard(&conn).await,
        Service::Chargen => chargen(&mut conn).await,
        Service::Daytime => {
            let line = daytime_line(std::time::SystemTime::now());
            conn.write_all(line.as_bytes()).await
        }
    };
    if let Err(e) = done {
        if !stopped(&e) {
            log::debug!("{service:?}: {e}");
        }
    }
}

thread_local! {
    /// The worker thread's read buffer, used between two awaits only.
    static BUF: RefCell<Vec<u8>> = RefCell::new(vec![0; 64 * 1024]);
}

/// Reads what is there into the thread's buffer and hands each piece to `f`, until the
/// stream would block (`Ok(true)`), `f` says stop (`Ok(true)`) or the stream ends
/// (`Ok(false)`).
fn drain(conn: &TcpStream, mut f: impl FnMut(&[u8]) -> bool) -> io::Result<bool> {
    BUF.with_borrow_mut(|buf| loop {
        match conn.try_read(buf) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                if !f(&buf[..n]) {
                    return Ok(true);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(true),
            Err(e) => return Err(e),
        }
    })
}

/// RFC 862: each read is written back at once as far as it fits; the rest waits in
/// `pending`, and no more is read until it is written.
async fn echo(conn: &TcpStream) -> io::Result<()> {
    let mut pending = Vec::new();
    loop {
        let mut rest = &pending[..];
        while !rest.is_empty() {
            conn.writable().await?;
            match conn.try_write(rest) {
                Ok(n) => rest = &rest[n..],
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        pending.clear();
        conn.readable().await?;
        let mut failed = None;
        let open = drain(conn, |data| {
            let n = match conn.try_write(data) {
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => 0,
                Err(e) => {
                    failed = Some(e);
                    return false;
                }
            };
            pending.extend_from_slice(&data[n..]);
            pending.is_empty()
        })?;
        if let Some(e) = failed {
            return Err(e);
        }
        if !open && pending.is_empty() {
            return Ok(());
        }
    }
}

/// RFC 863: everything read is dropped.
async fn discard(conn: &TcpStream) -> io::Result<()> {
    loop {
        conn.readable().await?;
        if !drain(conn, |_| true)? {
            return Ok(());
        }
    }
}

/// RFC 864: the pattern until the peer goes away.
async fn chargen(conn: &mut TcpStream) -> io::Result<()> {
    static BLOCK: OnceLock<Arc<[u8]>> = OnceLock::new();
    let block = BLOCK.get_or_init(|| chargen_block().into()).clone();
    let mut offset = 0;
    loop {
        let n = conn.write(&block[offset..]).await?;
        offset = (offset + n) % block.len();
    }
}

/// One UDP service: each datagram is answered as [`UdpAnswers`] says.
async fn udp_loop(socket: UdpSocket, service: Service) {
    let mut buf = vec![0u8; 65536];
    let mut answers = UdpAnswers::new(service);
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) if stopped(&e) => return,
            Err(e) => {
                log::debug!("udp {service:?}: {e}");
                continue;
            }
        };
        if let Some(answer) = answers.answer(&buf[..n]) {
            if let Err(e) = socket.send_to(&answer, from).await {
                log::warn!("udp {service:?} to {from}: {e}");
            }
        }
    }
}
