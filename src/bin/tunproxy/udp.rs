//! One intercepted UDP flow relayed to its destination, until the stack's idle timeout ends
//! the flow.

use crate::stats::Stats;
use crate::upstream::Upstream;
use std::io::ErrorKind;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tapstack::tokio::InterceptedUdp;

/// Room for the largest datagram.
const MAX_DATAGRAM: usize = 65536;

/// Opens the flow's upstream path, accepts the flow, and relays both ways.
pub async fn relay(offer: InterceptedUdp, upstream: Arc<Upstream>, stats: Arc<Stats>) {
    let dst = offer.local_addr();
    let path = match upstream.udp(dst).await {
        Ok(p) => p,
        Err(e) => {
            log::debug!("udp {} -> {dst}: upstream: {e}", offer.peer_addr());
            stats.udp_refused.fetch_add(1, Ordering::Relaxed);
            let _ = offer.refuse();
            return;
        }
    };
    let flow = match offer.accept() {
        Ok(f) => f,
        Err(e) => {
            log::debug!("udp {dst}: {e}");
            return;
        }
    };
    stats.udp_flows.fetch_add(1, Ordering::Relaxed);
    let up = async {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            // The flow's idle timeout (TimedOut) or the stack's end stops it.
            let n = flow.recv(&mut buf).await?;
            if let Err(e) = path.send(&buf[..n]).await {
                log::debug!("udp {dst}: send: {e}");
            }
            stats.udp_datagrams_up.fetch_add(1, Ordering::Relaxed);
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    };
    let down = async {
        let mut buf = vec![0u8; MAX_DATAGRAM];
        loop {
            match path.recv(&mut buf).await {
                Ok(n) => {
                    flow.send(&buf[..n]).await?;
                    stats.udp_datagrams_down.fetch_add(1, Ordering::Relaxed);
                }
                // An ICMP error from the destination, reported on the connected socket.
                Err(e) if e.kind() == ErrorKind::ConnectionRefused => continue,
                Err(e) => return Err::<(), std::io::Error>(e),
            }
        }
    };
    tokio::select! {
        r = up => log::debug!("udp {dst}: flow ended: {r:?}"),
        r = down => log::debug!("udp {dst}: upstream ended: {r:?}"),
        () = path.closed() => log::debug!("udp {dst}: the SOCKS5 association ended"),
    }
}
