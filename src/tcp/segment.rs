//! TCP segments in and out: parsing with options, and building with options and checksum.

use super::seq::Seq;
use crate::rxbuf::RxFrame;
use etherparse::{TcpOptionElement, TcpSlice};
use std::sync::Arc;

/// Control bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    /// SYN: synchronize sequence numbers.
    pub syn: bool,
    /// ACK: the acknowledgment number is significant.
    pub ack: bool,
    /// FIN: no more data from the sender.
    pub fin: bool,
    /// RST: reset the connection.
    pub rst: bool,
    /// PSH: push function.
    pub psh: bool,
    /// URG: the urgent pointer is significant (RFC 9293 §3.8.5).
    pub urg: bool,
    /// ECE: ECN-Echo, a congestion mark to report, or in a SYN the wish to use ECN
    /// (RFC 3168 §6.1).
    pub ece: bool,
    /// CWR: Congestion Window Reduced, the sender answered an ECN-Echo (RFC 3168 §6.1).
    pub cwr: bool,
}

impl Flags {
    const NONE: Flags = Flags {
        syn: false,
        ack: false,
        fin: false,
        rst: false,
        psh: false,
        urg: false,
        ece: false,
        cwr: false,
    };
    /// ACK alone: every segment after the first SYN (RFC 9293 §3.10.7).
    pub const ACK: Flags = Flags {
        ack: true,
        ..Flags::NONE
    };
    /// The first segment of an active open.
    pub const SYN: Flags = Flags {
        syn: true,
        ..Flags::NONE
    };
    /// The answer to a SYN.
    pub const SYN_ACK: Flags = Flags {
        syn: true,
        ack: true,
        ..Flags::NONE
    };
    /// A reset: with ACK when it answers a segment without one (RFC 9293 §3.10.7.1).
    pub const fn rst(ack: bool) -> Flags {
        Flags {
            rst: true,
            ack,
            ..Flags::NONE
        }
    }
}

/// Options we understand (RFC 9293 §3.2, RFC 7323, RFC 2018).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Maximum Segment Size (RFC 9293 §3.7.1).
    pub mss: Option<u16>,
    /// Window Scale shift (RFC 7323 §2.3); a received one is capped at 14.
    pub wscale: Option<u8>,
    /// SACK-permitted (RFC 2018 §2).
    pub sack_permitted: bool,
    /// (TSval, TSecr)
    pub timestamp: Option<(u32, u32)>,
    /// SACK blocks as (left, right) edges; at most four.
    pub sack: [Option<(Seq, Seq)>; 4],
}

/// Where the ports and the sequence number sit in a TCP header (RFC 9293 §3.1): the first 8
/// bytes, all an ICMP error must quote (RFC 792).
const SRC_PORT: std::ops::Range<usize> = 0..2;
const DST_PORT: std::ops::Range<usize> = 2..4;
const SEQ: std::ops::Range<usize> = 4..8;

/// The source port, destination port and sequence number of a segment quoted by an ICMP
/// error, which may hold only its first 8 bytes.
pub fn quoted(header: &[u8]) -> Option<(u16, u16, Seq)> {
    let be16 =
        |r: std::ops::Range<usize>| Some(u16::from_be_bytes(header.get(r)?.try_into().ok()?));
    let seq = u32::from_be_bytes(header.get(SEQ)?.try_into().ok()?);
    Some((be16(SRC_PORT)?, be16(DST_PORT)?, Seq(seq)))
}

/// TCP option kinds we read (RFC 9293 §3.2, RFC 7323, RFC 2018).
mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WSCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMP: u8 = 8;
}

/// Reads the options we understand and steps over every other one by its length (RFC 9293
/// §3.1: a TCP MUST ignore options it does not implement, MUST-6, and cope with an illegal
/// length, MUST-7): a malformed length ends the parse with what was read so far.
fn parse_options(mut raw: &[u8]) -> Options {
    let mut o = Options::default();
    let be16 = |b: &[u8]| u16::from_be_bytes([b[0], b[1]]);
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    while let Some(&k) = raw.first() {
        match k {
            kind::END => break,
            kind::NOP => {
                raw = &raw[1..];
                continue;
            }
            _ => {}
        }
        let Some(&len) = raw.get(1) else { break };
        let len = usize::from(len);
        if len < 2 || len > raw.len() {
            break;
        }
        let body = &raw[2..len];
        match (k, body.len()) {
            (kind::MSS, 2) => o.mss = Some(be16(body)),
            (kind::WSCALE, 1) => o.wscale = Some(body[0].min(super::tcb::MAX_WSCALE)),
            (kind::SACK_PERMITTED, 0) => o.sack_permitted = true,
            (kind::TIMESTAMP, 8) => o.timestamp = Some((be32(body), be32(&body[4..]))),
            (kind::SACK, n) if n > 0 && n % 8 == 0 => {
                for (slot, b) in o.sack.iter_mut().zip(body.chunks_exact(8)) {
                    *slot = Some((Seq(be32(b)), Seq(be32(&b[4..]))));
                }
            }
            // Unknown, or a known kind with the wrong length: skipped.
            _ => {}
        }
        raw = &raw[len..];
    }
    o
}

/// A parsed incoming segment; `payload` borrows the datagram.
pub struct SegmentIn<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// SEG.SEQ: the sequence number of the segment's first octet.
    pub seq: Seq,
    /// SEG.ACK: the acknowledgment number, significant only with the ACK flag.
    pub ack: Seq,
    /// Control bits.
    pub flags: Flags,
    /// SEG.WND as received: not yet shifted by the peer's window scale.
    pub window: u16,
    /// SEG.UP: with URG, the offset from SEG.SEQ of the first octet after the urgent data
    /// (RFC 9293 §3.8.5, MUST-62).
    pub urgent_ptr: u16,
    /// The options we understand.
    pub options: Options,
    /// The segment's data.
    pub payload: &'a [u8],
    /// Its IP header carried Congestion Experienced (RFC 3168 §5).
    pub ce: bool,
    /// The buffer of the frame the segment arrived in, when the connection may keep it
    /// instead of copying the data out ([`super::buffer::RecvBuffer::adopt`]).
    pub frame: Option<&'a Arc<RxFrame>>,
    /// Small buffers for out-of-order data that came in no frame worth keeping
    /// ([`super::buffer::RecvBuffer::hold_copy`]).
    pub small_frames: Option<&'a Arc<crate::rxbuf::FramePool>>,
}

impl SegmentIn<'_> {
    /// SEG.LEN: data plus one for each of SYN and FIN (RFC 9293 §3.3.1).
    pub fn seg_len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.flags.syn) + u32::from(self.flags.fin)
    }
}

/// Parses a segment whose checksum the caller verified. Malformed options end option
/// processing (RFC 9293 §3.2 says to be robust to them) rather than dropping the segment.
pub fn parse(bytes: &[u8]) -> Option<SegmentIn<'_>> {
    let tcp = TcpSlice::from_slice(bytes).ok()?;
    let options = parse_options(tcp.options());
    Some(SegmentIn {
        src_port: tcp.source_port(),
        dst_port: tcp.destination_port(),
        seq: Seq(tcp.sequence_number()),
        ack: Seq(tcp.acknowledgment_number()),
        flags: Flags {
            syn: tcp.syn(),
            ack: tcp.ack(),
            fin: tcp.fin(),
            rst: tcp.rst(),
            psh: tcp.psh(),
            urg: tcp.urg(),
            ece: tcp.ece(),
            cwr: tcp.cwr(),
        },
        window: tcp.window_size(),
        urgent_ptr: tcp.urgent_pointer(),
        options,
        payload: tcp.payload(),
        ce: false,
        frame: None,
        small_frames: None,
    })
}

/// What to put in an outgoing segment's header.
pub struct SegmentOut {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// SEG.SEQ: the sequence number of the segment's first octet.
    pub seq: Seq,
    /// SEG.ACK; `Some` also sets the ACK bit, whatever `flags.ack` says.
    pub ack: Option<Seq>,
    /// Control bits; the ACK bit follows `ack` instead.
    pub flags: Flags,
    /// The 16-bit window field, already scaled down (a SYN's never is, RFC 7323 §2.2).
    pub window: u16,
    /// The urgent pointer, written when `flags.urg` is set (RFC 9293 §3.8.5).
    pub urgent_ptr: u16,
    /// Options to write; the header is padded to 32 bits.
    pub options: Options,
}

/// Serializes the header and options (padded to 32 bits) into `out`, leaving the checksum zero;
/// the caller appends the payload and fills the checksum.
pub fn write_header(seg: &SegmentOut, out: &mut Vec<u8>) {
    let mut elements: [TcpOptionElement; 8] = [const { TcpOptionElement::Noop }; 8];
    let mut n = 0;
    let mut push = |e| {
        elements[n] = e;
        n += 1;
    };
    if let Some(m) = seg.options.mss {
        push(TcpOptionElement::MaximumSegmentSize(m));
    }
    if seg.options.sack_permitted {
        push(TcpOptionElement::SelectiveAcknowledgementPermitted);
    }
    if let Some((v, e)) = seg.options.timestamp {
        push(TcpOptionElement::Timestamp(v, e));
    }
    if let Some(s) = seg.options.wscale {
        push(TcpOptionElement::WindowScale(s));
    }
    if let Some(first) = seg.options.sack[0] {
        let mut rest = [None; 3];
        for (slot, b) in rest.iter_mut().zip(&seg.options.sack[1..]) {
            *slot = b.map(|(l, r)| (l.0, r.0));
        }
        push(TcpOptionElement::SelectiveAcknowledgement(
            (first.0 .0, first.1 .0),
            rest,
        ));
    }
    let mut header = etherparse::TcpHeader::new(seg.src_port, seg.dst_port, seg.seq.0, seg.window);
    header.acknowledgment_number = seg.ack.map_or(0, |a| a.0);
    header.ack = seg.ack.is_some();
    header.syn = seg.flags.syn;
    header.fin = seg.flags.fin;
    header.rst = seg.flags.rst;
    header.psh = seg.flags.psh;
    header.urg = seg.flags.urg;
    header.ece = seg.flags.ece;
    header.cwr = seg.flags.cwr;
    header.urgent_pointer = if seg.flags.urg { seg.urgent_ptr } else { 0 };
    // Our option sets always fit the 40 bytes (at most MSS+SACK-OK+TS+WS, or TS+3 SACK blocks).
    if header.set_options(&elements[..n]).is_err() {
        header.set_options(&[]).ok();
    }
    out.extend_from_slice(&header.to_bytes());
}

/// Bytes of options a segment with these options carries (padded).
pub fn options_len(options: &Options) -> usize {
    let mut len = 0;
    if options.mss.is_some() {
        len += 4;
    }
    if options.sack_permitted {
        len += 2;
    }
    if options.timestamp.is_some() {
        len += 10;
    }
    if options.wscale.is_some() {
        len += 3;
    }
    let blocks = options.sack.iter().flatten().count();
    if blocks > 0 {
        len += 2 + 8 * blocks;
    }
    len.div_ceil(4) * 4
}

#[cfg(test)]
mod option_tests {
    use super::*;

    /// RFC 9293 MUST-6: an option we do not know is stepped over by its length, and the ones
    /// after it still count (etherparse's iterator stopped at the first unknown kind).
    #[test]
    fn unknown_options_are_skipped_and_later_ones_read() {
        let raw = [
            253,
            4,
            0xaa,
            0xbb,
            kind::MSS,
            4,
            0x04,
            0xb0,
            kind::NOP,
            kind::WSCALE,
            3,
            7,
        ];
        let o = parse_options(&raw);
        assert_eq!(o.mss, Some(1200));
        assert_eq!(o.wscale, Some(7));
    }

    /// RFC 9293 MUST-7: an illegal length (0, 1, or past the end) ends the options without a
    /// panic; a known kind with the wrong length is ignored.
    #[test]
    fn illegal_option_lengths_end_the_parse_safely() {
        assert_eq!(
            parse_options(&[kind::MSS, 4, 0x05, 0xb4, 99, 0]).mss,
            Some(1460)
        );
        assert_eq!(parse_options(&[99, 1, kind::MSS, 4, 1, 1]).mss, None);
        assert_eq!(parse_options(&[kind::MSS, 9, 1, 1]), Options::default());
        assert_eq!(
            parse_options(&[kind::MSS, 3, 1, kind::SACK_PERMITTED, 2]).mss,
            None
        );
        assert!(parse_options(&[kind::MSS, 3, 1, kind::SACK_PERMITTED, 2]).sack_permitted);
        for len in 0..=255u8 {
            let _ = parse_options(&[kind::TIMESTAMP, len, 1, 2, 3]);
        }
    }
}
