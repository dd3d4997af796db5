//! Receive calls parked on the stack thread until data, an error, or their deadline.

use super::RecvRequest;
use crate::core::{Interface, SocketId};
use std::collections::HashMap;
use std::io;
use std::time::Instant;

#[derive(Default)]
pub(super) struct Waiters {
    recv: HashMap<SocketId, Vec<RecvRequest>>,
}

impl Waiters {
    /// Answers at once if possible, else parks the request.
    pub fn recv(&mut self, iface: &mut Interface, req: RecvRequest) {
        if let Some(result) = iface.udp_recv(req.id) {
            let _ = req.reply.send(result);
        } else if req.deadline.is_some_and(|d| d <= Instant::now()) {
            let _ = req.reply.send(Err(io::ErrorKind::WouldBlock.into()));
        } else {
            self.recv.entry(req.id).or_default().push(req);
        }
    }

    /// Serves the socket's waiters, oldest first, while it has data.
    pub fn readable(&mut self, iface: &mut Interface, id: SocketId) {
        let Some(queue) = self.recv.get_mut(&id) else {
            return;
        };
        while !queue.is_empty() {
            let Some(result) = iface.udp_recv(id) else {
                break;
            };
            let req = queue.remove(0);
            let _ = req.reply.send(result);
        }
        if queue.is_empty() {
            self.recv.remove(&id);
        }
    }

    /// Times out requests whose deadline passed with `WouldBlock`, as `SO_RCVTIMEO` does.
    pub fn expire(&mut self, now: Instant) {
        self.recv.retain(|_, queue| {
            queue.retain(|req| {
                let due = req.deadline.is_some_and(|d| d <= now);
                if due {
                    let _ = req.reply.send(Err(io::ErrorKind::WouldBlock.into()));
                }
                !due
            });
            !queue.is_empty()
        });
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        self.recv
            .values()
            .flatten()
            .filter_map(|r| r.deadline)
            .min()
    }

    /// The socket was closed under its waiters (by another handle of a `try_clone`).
    pub fn closed(&mut self, id: SocketId) {
        for req in self.recv.remove(&id).into_iter().flatten() {
            let _ = req
                .reply
                .send(Err(io::Error::from_raw_os_error(libc::EBADF)));
        }
    }

    /// Shutdown: dropping the reply channels tells every waiter the stack stopped.
    pub fn fail_all(&mut self) {
        self.recv.clear();
    }
}
