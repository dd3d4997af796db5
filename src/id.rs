//! Socket ids and the events the core reports about them: a leaf module, shared by the core
//! ([`crate::core`]) and the protocols under it ([`crate::tcp`]), that depends on nothing else
//! in the crate.

/// The top bit of a TCP socket's id: TCP and UDP hand out their own ids, and an id says which
/// protocol owns it.
const TCP_BIT: u64 = 1 << 63;

/// Names a socket inside one interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketId(u64);

impl SocketId {
    /// Whether a TCP socket (listener or connection) has this id.
    pub fn is_tcp(self) -> bool {
        self.0 & TCP_BIT != 0
    }
}

/// Hands out the ids of one protocol's sockets, never the same twice.
pub struct IdSource {
    next: u64,
    tag: u64,
}

impl IdSource {
    /// Ids for TCP sockets.
    pub fn tcp() -> IdSource {
        IdSource {
            next: 1,
            tag: TCP_BIT,
        }
    }

    /// Ids for UDP sockets.
    pub fn udp() -> IdSource {
        IdSource { next: 1, tag: 0 }
    }

    /// A fresh id.
    pub fn next_id(&mut self) -> SocketId {
        let id = SocketId(self.tag | self.next);
        self.next += 1;
        id
    }
}

/// Something a socket's waiters may want to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The socket's state changed (data, space, a connection, an error): waiters retry.
    Ready(SocketId),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_and_udp_ids_never_meet() {
        let (mut t, mut u) = (IdSource::tcp(), IdSource::udp());
        let (a, b) = (t.next_id(), u.next_id());
        assert_ne!(a, b);
        assert!(a.is_tcp() && !b.is_tcp());
        assert_ne!(t.next_id(), a);
    }
}
