//! The blocking API's server: one thread serves every TCP listener and connection over
//! non-blocking sockets and a `Poller`.

use crate::{chargen_block, daytime_line, stopped, Service};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::time::Duration;
use tapstack::socket::Poller;
use tapstack::{TcpListener, TcpStream};

/// One connection of the event loop.
struct Conn {
    stream: TcpStream,
    service: Service,
    /// Echo: bytes read and not yet written back.
    pending: Vec<u8>,
    /// Chargen: where in the pattern block the next write starts.
    offset: usize,
    /// Bytes the last `serve` read and wrote.
    moved: usize,
    /// Whether the last `serve` wrote anything: answered a request, or sent data.
    wrote: bool,
}

impl Conn {
    /// Moves what can move without blocking. False once the connection is over.
    fn serve(&mut self, buf: &mut [u8], block: &[u8]) -> bool {
        self.moved = 0;
        self.wrote = false;
        let r = match self.service {
            Service::Echo => self.echo(buf),
            Service::Discard => self.discard(buf),
            Service::Chargen => self.chargen(block),
            Service::Daytime => self.daytime(),
        };
        match r {
            Ok(open) => open,
            Err(e) if e.kind() == ErrorKind::WouldBlock => true,
            Err(e) => {
                if !stopped(&e) {
                    log::debug!("{:?}: {e}", self.service);
                }
                false
            }
        }
    }

    /// Writes back what is pending before reading more, so at most one buffer waits.
    fn echo(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        loop {
            if !self.pending.is_empty() {
                let n = (&self.stream).write(&self.pending)?;
                self.pending.drain(..n);
                self.moved += n;
                self.wrote = true;
                continue;
            }
            match (&self.stream).read(buf)? {
                0 => return Ok(false),
                n => {
                    self.moved += n;
                    self.pending.extend_from_slice(&buf[..n]);
                }
            }
        }
    }

    fn discard(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        loop {
            match (&self.stream).read(buf)? {
                0 => return Ok(false),
                n => self.moved += n,
            }
        }
    }

    /// The line is written once, when the connection is first served; the stream is then
    /// dropped, which sends it and the FIN.
    fn daytime(&mut self) -> std::io::Result<bool> {
        let line = daytime_line(std::time::SystemTime::now());
        (&self.stream).write_all(line.as_bytes())?;
        Ok(false)
    }

    fn chargen(&mut self, block: &[u8]) -> std::io::Result<bool> {
        loop {
            let n = (&self.stream).write(&block[self.offset..])?;
            self.offset = (self.offset + n) % block.len();
            self.moved += n;
            self.wrote = true;
        }
    }
}

/// Bytes moved in one turn of the loop from which on it is bulk transfer, not an exchange of
/// requests: more than a few requests' worth, less than one large received segment.
const BULK: usize = 16 * 1024;

/// Serves every TCP listener and connection from one thread: sockets are non-blocking and the
/// `Poller` says which changed, so 10 000 connections cost 10 000 small states, not threads.
/// Ends when the stack stops (every listener fails) and every connection is over.
///
/// After a turn of small exchanges (requests answered, connections accepted or closed), the
/// wait spins up to `busy_poll` before it sleeps: the next request or connection usually
/// follows within it, and neither this thread nor the stack's then sleeps and wakes for it.
/// After a turn that moved bulk data ([`BULK`]) or only took data in, it sleeps at once,
/// leaving the cores to the stack thread and the peer: a sink that spins takes each arrival
/// in small reads, and measured 15–25% slower.
pub fn event_loop(mut poller: Poller, listeners: Vec<(TcpListener, Service)>, busy_poll: Duration) {
    let mut listeners: HashMap<usize, (TcpListener, Service)> =
        listeners.into_iter().enumerate().collect();
    for (token, (l, _)) in &listeners {
        poller.register(l, *token);
    }
    let mut next_token = listeners.len();
    let mut conns: HashMap<usize, Conn> = HashMap::new();
    let mut ready = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let block = chargen_block();
    let mut exchanged = false;
    while !listeners.is_empty() || !conns.is_empty() {
        poller.set_busy_poll(if exchanged { busy_poll } else { Duration::ZERO });
        poller.wait(&mut ready, Some(Duration::from_millis(200)));
        let (mut moved, mut wrote, mut came_or_went) = (0, false, false);
        for token in &ready {
            if let Some((listener, service)) = listeners.get(token) {
                let service = *service;
                match accept_all(listener, service, &mut next_token, &poller, &mut conns) {
                    Err(e) if stopped(&e) => {
                        listeners.remove(token);
                    }
                    Err(e) => log::warn!("{service:?} accept: {e}"),
                    Ok(()) => came_or_went = true,
                }
            } else if let Some(conn) = conns.get_mut(token) {
                let open = conn.serve(&mut buf, &block);
                moved += conn.moved;
                wrote |= conn.wrote;
                if !open {
                    conns.remove(token);
                    came_or_went = true;
                }
            }
        }
        // A turn that took data in without answering is a sink's; one that moved nothing
        // (an event with nothing to do) leaves the mode as it was.
        if moved >= BULK || (moved > 0 && !wrote && !came_or_went) {
            exchanged = false;
        } else if wrote || came_or_went {
            exchanged = true;
        }
    }
}

/// Accepts every connection waiting on `listener` into `conns`, until `WouldBlock`.
fn accept_all(
    listener: &TcpListener,
    service: Service,
    next_token: &mut usize,
    poller: &Poller,
    conns: &mut HashMap<usize, Conn>,
) -> std::io::Result<()> {
    loop {
        let stream = match listener.accept() {
            Ok((stream, _)) => stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        stream.set_nonblocking(true)?;
        let token = *next_token;
        *next_token += 1;
        // Registering reports the stream once: the next wait serves what already arrived.
        poller.register(&stream, token);
        conns.insert(
            token,
            Conn {
                stream,
                service,
                pending: Vec::new(),
                offset: 0,
                moved: 0,
                wrote: false,
            },
        );
    }
}
