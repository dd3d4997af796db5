//! Echo requests relayed (`--ping relay`): each ping to an intercepted address is sent on to
//! that address from a kernel ICMP or ICMPv6 datagram socket (a "ping socket", marked and
//! bound as every upstream socket), so the client learns whether the destination is really
//! up. A reply within [`PING_TIMEOUT`] becomes an echo reply from the address pinged, an
//! error becomes host (or address) unreachable, and silence stays silence.

use crate::stats::Stats;
use crate::upstream::Upstream;
use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tapstack::socket::InterceptedEcho;
use tokio::io::unix::AsyncFd;

/// How long a relayed ping waits for the destination's reply (as `ping -W 5`).
pub const PING_TIMEOUT: Duration = Duration::from_secs(5);

/// ICMP echo request and reply types (RFC 792).
const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
/// ICMPv6's (RFC 4443 §4).
const ECHO6_REQUEST: u8 = 128;
const ECHO6_REPLY: u8 = 129;
/// Where the sequence number and the data start in an echo message.
const SEQ: usize = 6;
const DATA: usize = 8;
/// Pings relayed at once; past this a ping is dropped and counted (each holds a socket for
/// up to [`PING_TIMEOUT`]).
pub const MAX_PINGS: usize = 256;

/// Whether a ping socket's error came from the network (an ICMP error, no route), which the
/// client is told as host unreachable; other errors are ours and the ping is dropped.
fn from_network(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EHOSTUNREACH
                | libc::ENETUNREACH
                | libc::EHOSTDOWN
                | libc::ENETDOWN
                | libc::ECONNREFUSED
                | libc::EPROTO
                | libc::EACCES
        )
    )
}

/// A non-blocking ping socket of the family of `v6`, prepared as the upstream sockets are.
/// `PermissionDenied` says what to change when the kernel does not allow this group to open
/// one.
pub fn ping_socket(upstream: &Upstream, v6: bool) -> io::Result<OwnedFd> {
    let (family, protocol) = if v6 {
        (libc::AF_INET6, libc::IPPROTO_ICMPV6)
    } else {
        (libc::AF_INET, libc::IPPROTO_ICMP)
    };
    // SAFETY: plain socket(2); the descriptor is owned from here on.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::PermissionDenied {
            return Err(io::Error::new(
                e.kind(),
                "--ping relay needs ping sockets for this group: \
                 sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"",
            ));
        }
        return Err(e);
    }
    // SAFETY: `fd` was just opened and is owned by nothing else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    upstream.prepare(fd.as_raw_fd())?;
    Ok(fd)
}

/// Relays one echo request and answers it as the destination did.
pub async fn relay(offer: InterceptedEcho, upstream: Arc<Upstream>, stats: Arc<Stats>) {
    let dst = offer.local_addr();
    let asked = echo(&upstream, dst, offer.sequence(), offer.data());
    match tokio::time::timeout(PING_TIMEOUT, asked).await {
        Ok(Ok(())) => {
            stats.ping_replied.fetch_add(1, Ordering::Relaxed);
            let _ = offer.reply();
        }
        Ok(Err(e)) if from_network(&e) => {
            log::debug!("ping {dst}: {e}");
            stats.ping_unreachable.fetch_add(1, Ordering::Relaxed);
            let _ = offer.unreachable();
        }
        Ok(Err(e)) => {
            log::warn!("ping {dst}: {e}");
            stats.ping_failed.fetch_add(1, Ordering::Relaxed);
            let _ = offer.ignore();
        }
        Err(_) => {
            stats.ping_timed_out.fetch_add(1, Ordering::Relaxed);
            let _ = offer.ignore();
        }
    }
}

/// Pings `dst` with `seq` and `data`; `Ok` once the matching reply arrives, the socket's
/// error if the kernel reports one (an ICMP error, no route).
async fn echo(upstream: &Upstream, dst: IpAddr, seq: u16, data: &[u8]) -> io::Result<()> {
    // SAFETY: the OwnedFd keeps its descriptor open and unchanged while the AsyncFd owns it.
    let fd = unsafe { AsyncFd::register(ping_socket(upstream, dst.is_ipv6())?) }?;
    let rc = match dst {
        IpAddr::V4(dst) => {
            let to = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(dst.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `to` is a valid sockaddr_in of the length passed.
            unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&to as *const libc::sockaddr_in).cast(),
                    std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
                )
            }
        }
        IpAddr::V6(dst) => {
            let to = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: 0,
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: dst.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: `to` is a valid sockaddr_in6 of the length passed.
            unsafe {
                libc::connect(
                    fd.as_raw_fd(),
                    (&to as *const libc::sockaddr_in6).cast(),
                    std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
                )
            }
        }
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let (request_type, reply_type) = if dst.is_ipv6() {
        (ECHO6_REQUEST, ECHO6_REPLY)
    } else {
        (ECHO_REQUEST, ECHO_REPLY)
    };
    // The kernel fills in the identifier (the socket's) and the checksum.
    let mut request = vec![request_type, 0, 0, 0, 0, 0];
    request.extend_from_slice(&seq.to_be_bytes());
    request.extend_from_slice(data);
    loop {
        let mut guard = fd.writable().await?;
        // SAFETY: sends from a live buffer of the length passed.
        let sent = guard.try_io(|fd| {
            let n =
                unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
        match sent {
            Ok(r) => {
                r?;
                break;
            }
            Err(_would_block) => continue,
        }
    }
    // A longer datagram is not the reply: one byte more shows it.
    let mut reply = vec![0u8; request.len() + 1];
    loop {
        let mut guard = fd.readable().await?;
        // SAFETY: receives into a live buffer of the length passed.
        let got = guard.try_io(|fd| {
            let n =
                unsafe { libc::recv(fd.as_raw_fd(), reply.as_mut_ptr().cast(), reply.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(n as usize)
        });
        let n = match got {
            Ok(r) => r?,
            Err(_would_block) => continue,
        };
        let m = &reply[..n];
        if n >= DATA
            && m[0] == reply_type
            && m[SEQ..DATA] == seq.to_be_bytes()
            && &m[DATA..] == data
        {
            return Ok(());
        }
    }
}
