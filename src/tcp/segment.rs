//! TCP segments in and out: parsing with options, and building with options and checksum.

use super::seq::Seq;
use etherparse::{TcpOptionElement, TcpSlice};

/// Control bits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Flags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

impl Flags {
    const NONE: Flags = Flags {
        syn: false,
        ack: false,
        fin: false,
        rst: false,
        psh: false,
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
    pub mss: Option<u16>,
    pub wscale: Option<u8>,
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

/// A parsed incoming segment; `payload` borrows the datagram.
pub struct SegmentIn<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: Seq,
    pub ack: Seq,
    pub flags: Flags,
    pub window: u16,
    pub options: Options,
    pub payload: &'a [u8],
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
    let mut options = Options::default();
    for opt in tcp.options_iterator() {
        match opt {
            Ok(TcpOptionElement::MaximumSegmentSize(m)) => options.mss = Some(m),
            Ok(TcpOptionElement::WindowScale(s)) => options.wscale = Some(s.min(14)),
            Ok(TcpOptionElement::SelectiveAcknowledgementPermitted) => {
                options.sack_permitted = true
            }
            Ok(TcpOptionElement::Timestamp(v, e)) => options.timestamp = Some((v, e)),
            Ok(TcpOptionElement::SelectiveAcknowledgement(first, rest)) => {
                options.sack[0] = Some((Seq(first.0), Seq(first.1)));
                for (slot, block) in options.sack[1..].iter_mut().zip(rest) {
                    *slot = block.map(|(l, r)| (Seq(l), Seq(r)));
                }
            }
            Ok(TcpOptionElement::Noop) => {}
            Err(_) => break,
        }
    }
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
        },
        window: tcp.window_size(),
        options,
        payload: tcp.payload(),
    })
}

/// What to put in an outgoing segment's header.
pub struct SegmentOut {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: Seq,
    pub ack: Option<Seq>,
    pub flags: Flags,
    pub window: u16,
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
