//! A flow from a pcap (the kernel's side on the tap, or the stack's `--pcap`): what crossed
//! the wire, as tcptrace and Wireshark's Stevens graph draw it. Retransmissions are data
//! below the highest sequence number already sent.

use crate::flow::{rel, Flow, Kind, Sent};
use etherparse::{NetSlice, SlicedPacket, TcpOptionElement, TransportSlice};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

struct Seg {
    t: Duration,
    src: SocketAddr,
    dst: SocketAddr,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    window: u16,
    wscale: Option<u8>,
    sack: Vec<(u32, u32)>,
    len: usize,
}

fn parse(t: Duration, frame: &[u8]) -> Option<Seg> {
    let p = SlicedPacket::from_ethernet(frame).ok()?;
    let (src, dst): (IpAddr, IpAddr) = match p.net? {
        NetSlice::Ipv4(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        NetSlice::Ipv6(ip) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
        ),
        _ => return None,
    };
    let Some(TransportSlice::Tcp(tcp)) = p.transport else {
        return None;
    };
    let mut wscale = None;
    let mut sack = Vec::new();
    for o in tcp.options_iterator().flatten() {
        match o {
            // At most 14 (RFC 7323 §2.3), whatever the wire says.
            TcpOptionElement::WindowScale(s) => wscale = Some(s.min(14)),
            TcpOptionElement::SelectiveAcknowledgement(first, rest) => {
                sack.push(first);
                sack.extend(rest.into_iter().flatten());
            }
            _ => {}
        }
    }
    Some(Seg {
        t,
        src: SocketAddr::new(src, tcp.source_port()),
        dst: SocketAddr::new(dst, tcp.destination_port()),
        seq: tcp.sequence_number(),
        ack: tcp.ack().then_some(tcp.acknowledgment_number()),
        syn: tcp.syn(),
        window: tcp.window_size(),
        wscale,
        sack,
        len: tcp.payload().len(),
    })
}

/// The direction that carried the most data (among those with `port` at either end, and sent
/// by `from` if given), drawn from its first segment.
pub fn flow(
    frames: &[(Duration, Vec<u8>)],
    port: Option<u16>,
    from: Option<IpAddr>,
) -> Option<Flow> {
    let segs: Vec<Seg> = frames
        .iter()
        .filter_map(|(t, f)| parse(*t, f))
        .filter(|s| port.is_none_or(|p| s.src.port() == p || s.dst.port() == p))
        .collect();
    let mut bytes: HashMap<(SocketAddr, SocketAddr), usize> = HashMap::new();
    for s in &segs {
        *bytes.entry((s.src, s.dst)).or_default() += s.len;
    }
    let (src, dst) = bytes
        .into_iter()
        .filter(|((s, _), n)| *n > 0 && from.is_none_or(|ip| s.ip() == ip))
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))?
        .0;
    let conn: Vec<&Seg> = segs
        .iter()
        .filter(|s| (s.src, s.dst) == (src, dst) || (s.src, s.dst) == (dst, src))
        .collect();
    let t0 = conn.first()?.t;
    let secs = |s: &Seg| s.t.saturating_sub(t0).as_secs_f64();
    let ours = |s: &&&Seg| s.src == src;
    let base = conn.iter().find(ours)?.seq;
    // The receiver's window is scaled only if both SYNs carried the option (RFC 7323 §2.2).
    let syn_scale = |from: SocketAddr| {
        conn.iter()
            .find(|s| s.syn && s.src == from)
            .and_then(|s| s.wscale)
    };
    let shift = match (syn_scale(src), syn_scale(dst)) {
        (Some(_), Some(theirs)) => theirs,
        _ => 0,
    };
    let mut f = Flow {
        name: format!("{src} -> {dst}"),
        ..Flow::default()
    };
    let mut highest = 0.0f64;
    for s in conn {
        let t = secs(s);
        if s.src == src {
            if s.len == 0 {
                continue;
            }
            let start = rel(s.seq, base);
            let end = start + s.len as f64;
            let kind = if start < highest {
                Kind::Retransmission
            } else {
                Kind::New
            };
            highest = highest.max(end);
            f.sent.push(Sent {
                t,
                start,
                end,
                kind,
            });
        } else {
            if let Some(ack) = s.ack {
                let ack = rel(ack, base);
                f.acks.push((t, ack));
                let wnd = u32::from(s.window) << if s.syn { 0 } else { shift };
                f.window_edge.push((t, ack + f64::from(wnd)));
            }
            for &(l, r) in &s.sack {
                f.sacks.push((t, rel(l, base), rel(r, base)));
            }
        }
    }
    Some(f)
}
