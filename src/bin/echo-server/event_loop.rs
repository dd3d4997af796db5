//! The blocking API's server: one thread serves every TCP listener and connection over
//! non-blocking sockets and a `Poller`.

use crate::{chargen_block, daytime_line, stopped, Service};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
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
}

impl Conn {
    /// Moves what can move without blocking. False once the connection is over.
    fn serve(&mut self, buf: &mut [u8], block: &[u8]) -> bool {
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
                continue;
            }
            match (&self.stream).read(buf)? {
                0 => return Ok(false),
                n => self.pending.extend_from_slice(&buf[..n]),
            }
        }
    }

    fn discard(&mut self, buf: &mut [u8]) -> std::io::Result<bool> {
        loop {
            if (&self.stream).read(buf)? == 0 {
                return Ok(false);
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
        }
    }
}

/// Serves every TCP listener and connection from one thread: sockets are non-blocking and the
/// `Poller` says which changed, so 10 000 connections cost 10 000 small states, not threads.
/// Ends when the stack stops (every listener fails) and every connection is over.
pub fn event_loop(poller: Poller, listeners: Vec<(TcpListener, Service)>) {
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
    while !listeners.is_empty() || !conns.is_empty() {
        poller.wait(&mut ready, Some(std::time::Duration::from_millis(200)));
        for token in &ready {
            if let Some((listener, service)) = listeners.get(token) {
                let service = *service;
                match accept_all(listener, service, &mut next_token, &poller, &mut conns) {
                    Err(e) if stopped(&e) => {
                        listeners.remove(token);
                    }
                    Err(e) => log::warn!("{service:?} accept: {e}"),
                    Ok(()) => {}
                }
            } else if let Some(conn) = conns.get_mut(token) {
                if !conn.serve(&mut buf, &block) {
                    conns.remove(token);
                }
            }
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
            },
        );
    }
}
