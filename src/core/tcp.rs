//! The interface's side of TCP: checksums, handing segments to [`crate::tcp::Tcp`], and
//! putting its output on the IP layer. The socket operations flush output as they go.

use super::ipv4::{Datagram, IpRx, Pmtud};
use super::{Interface, SocketId};
use crate::tcp::shared::SocketIo;
use crate::tcp::tcb::State;
use crate::time::Instant;
use crate::wire::{transport_checksum_ok, FRAME_HEADROOM};
use etherparse::IpNumber;
use std::io;
use std::net::SocketAddrV4;
use std::sync::Arc;

impl Interface {
    pub(super) fn tcp_input(&mut self, now: Instant, rx: &IpRx<'_>) {
        // TCP never talks to broadcast addresses (RFC 1122 §4.2.3.10).
        if rx.broadcast {
            self.stats.tcp_in_errs += 1;
            return;
        }
        if !rx.csum_verified
            && !transport_checksum_ok(
                rx.src.octets(),
                rx.dst.octets(),
                IpNumber::TCP.0,
                rx.payload,
            )
        {
            self.stats.tcp_in_csum_errs += 1;
            return;
        }
        self.tcp.input(now, rx.src, rx.payload, &mut self.stats);
        self.flush_tcp(now);
    }

    /// Runs the output that segments received in this batch made due.
    pub(super) fn flush_deferred_tcp(&mut self) {
        let now = self.now;
        self.tcp.flush_deferred(now, &mut self.stats);
        self.flush_tcp(now);
    }

    /// Sends TCP's queued segments and passes on its events.
    pub(super) fn flush_tcp(&mut self, now: Instant) {
        let mut out = std::mem::take(&mut self.tcp.out.segs);
        for seg in out.drain(..) {
            let dg = Datagram {
                dst: seg.dst,
                proto: IpNumber::TCP,
                pmtud: Pmtud::Want,
                payload: seg.bytes,
                headroom: FRAME_HEADROOM,
                tso_mss: seg.tso_mss,
            };
            // A failure (no route) surfaces as retransmission timeouts, as in Linux.
            let _ = self.send_datagram(now, dg);
        }
        // The emptied vector keeps its capacity for the next batch.
        self.tcp.out.segs = out;
        self.events.extend(self.tcp.events.drain(..));
    }

    /// Opens a listening socket on `addr` (port 0 picks one).
    pub fn tcp_listen(
        &mut self,
        addr: SocketAddrV4,
        backlog: usize,
    ) -> io::Result<(SocketId, SocketAddrV4)> {
        self.tcp.listen(addr, backlog)
    }

    /// The next established connection on a listener, if one is waiting.
    pub fn tcp_accept(
        &mut self,
        listener: SocketId,
    ) -> Option<io::Result<(SocketId, SocketAddrV4)>> {
        self.tcp.accept(listener)
    }

    /// Starts connecting to `remote`; see [`Interface::tcp_connect_result`].
    pub fn tcp_connect(&mut self, now: Instant, remote: SocketAddrV4) -> io::Result<SocketId> {
        self.tcp_connect_from(now, None, remote)
    }

    /// Connects from a chosen local port (as after `bind`), or an ephemeral one.
    pub fn tcp_connect_from(
        &mut self,
        now: Instant,
        local_port: Option<u16>,
        remote: SocketAddrV4,
    ) -> io::Result<SocketId> {
        let id = self.tcp.connect(now, local_port, remote, &mut self.stats)?;
        self.flush_tcp(now);
        Ok(id)
    }

    /// Keep-alive after `idle` of silence, or off.
    pub fn tcp_set_keepalive(
        &mut self,
        now: Instant,
        id: SocketId,
        idle: Option<std::time::Duration>,
    ) -> io::Result<()> {
        self.tcp.set_keepalive(id, now, idle)
    }

    /// `None` while the handshake is under way.
    pub fn tcp_connect_result(&mut self, id: SocketId) -> Option<io::Result<()>> {
        self.tcp.connect_result(id)
    }

    pub fn tcp_send(&mut self, now: Instant, id: SocketId, data: &[u8]) -> io::Result<usize> {
        let r = self.tcp.send(id, now, data, &mut self.stats);
        self.flush_tcp(now);
        r
    }

    pub fn tcp_recv(&mut self, now: Instant, id: SocketId, buf: &mut [u8]) -> io::Result<usize> {
        let r = self.tcp.recv(id, now, buf, &mut self.stats);
        self.flush_tcp(now);
        r
    }

    /// The state a connection shares with its socket handle, which reads and writes through
    /// it without calling in here.
    pub fn tcp_shared(&self, id: SocketId) -> Option<Arc<SocketIo>> {
        self.tcp.io(id)
    }

    /// The accept queue listener `id` shares with its handle.
    pub fn tcp_listen_shared(&self, id: SocketId) -> Option<Arc<crate::tcp::shared::ListenIo>> {
        self.tcp.listen_io(id)
    }

    /// The handle queued data or reopened the window: output is owed.
    pub fn tcp_poke(&mut self, now: Instant, id: SocketId) {
        self.tcp.poke(id, now, &mut self.stats);
        self.flush_tcp(now);
    }

    pub fn tcp_shutdown(
        &mut self,
        now: Instant,
        id: SocketId,
        read: bool,
        write: bool,
    ) -> io::Result<()> {
        let r = self.tcp.shutdown(id, now, read, write, &mut self.stats);
        self.flush_tcp(now);
        r
    }

    /// Drops the handle: the connection closes gracefully on its own.
    pub fn tcp_close(&mut self, now: Instant, id: SocketId) {
        self.tcp.close(id, now, &mut self.stats);
        self.flush_tcp(now);
    }

    pub fn tcp_set_nodelay(&mut self, now: Instant, id: SocketId, on: bool) -> io::Result<()> {
        let r = self.tcp.set_nodelay(id, now, on, &mut self.stats);
        self.flush_tcp(now);
        r
    }

    pub fn tcp_nodelay(&self, id: SocketId) -> io::Result<bool> {
        self.tcp.nodelay(id)
    }

    /// (local, peer) addresses.
    pub fn tcp_addrs(&self, id: SocketId) -> io::Result<(SocketAddrV4, SocketAddrV4)> {
        self.tcp.addrs(id)
    }

    pub fn tcp_state(&self, id: SocketId) -> Option<State> {
        self.tcp.state(id)
    }

    /// Closes every listener and sends a FIN on every open connection (stack shutdown).
    pub fn tcp_shutdown_all(&mut self, now: Instant) {
        self.tcp.shutdown_all(now, &mut self.stats);
        self.flush_tcp(now);
    }

    /// No connection has data or a FIN still on its way.
    pub fn tcp_quiescent(&self) -> bool {
        self.tcp.quiescent()
    }

    /// Resets every connection still open (end of stack shutdown).
    pub fn tcp_abort_all(&mut self, now: Instant) {
        self.tcp.abort_all(now, &mut self.stats);
        self.flush_tcp(now);
    }

    /// A snapshot of connection `id`, for diagnostics and tests.
    pub fn tcp_info(&self, id: SocketId) -> Option<crate::tcp::TcpInfo> {
        self.tcp.info(id)
    }
}
