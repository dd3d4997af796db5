//! Urgent data (RFC 9293 §3.8.5; MUST-30 to MUST-33, MUST-62; RFC 6093). The urgent pointer
//! marks where a run of urgent data ends in the stream: SEG.SEQ + SEG.UP is the first octet
//! after it. The data itself stays in line, as with Linux's `SO_OOBINLINE`, which RFC 6093 §6
//! asks applications to use: nothing is taken out of the stream, and any length is urgent
//! (MUST-31). The receiver's mark lives in [`super::shared::IoState::rcv_urgent`], where
//! reads stop at it; the sender's in [`super::buffer::SendBuffer::urgent_end`].

use super::seq::Seq;
use super::tcb::Tcb;
use crate::stats::Counters;

/// The largest urgent pointer a header carries.
const MAX_POINTER: u32 = u16::MAX as u32;

/// RFC 9293 §3.10.7.4, sixth step (ESTABLISHED, FIN-WAIT-1, FIN-WAIT-2): a segment with URG
/// sets RCV.UP to max(RCV.UP, SEG.SEQ + SEG.UP). Urgent mode starts or goes on only if the
/// mark lies past what the application has read; the handle is woken either way by the
/// segment's arrival, which is how it learns of the urgent data (MUST-32). Returns whether
/// the mark opened or advanced urgent data.
pub fn receive_pointer(t: &mut Tcb, seq: Seq, pointer: u16, stats: &mut Counters) -> bool {
    let mark = seq + u32::from(pointer);
    let rcv_nxt = t.rcv.nxt;
    let mut io = t.io();
    let read_at = rcv_nxt - io.recv.readable() as u32;
    if !mark.gt(read_at) {
        // Every urgent octet has been read already (or the pointer is stale).
        return false;
    }
    let current = io.rcv_urgent.map(|left| read_at + left as u32);
    if current.is_some_and(|up| !mark.gt(up)) {
        return false;
    }
    io.rcv_urgent = Some(mark.since(read_at) as usize);
    stats.tcp_urgent_in += 1;
    true
}

/// The urgent pointer of a segment starting at `seq`, while SND.UP (`snd_up`) lies past it
/// (RFC 9293 §3.8.5, MUST-62: it points at the first octet after the urgent data). A mark
/// beyond the pointer's reach is sent as 65535, "further on", only if that lies past
/// everything sent (`snd_max`), so that it cannot mark data already sent as the end of the
/// urgent data; otherwise the segment goes without URG (Linux `tcp_transmit_skb`).
pub fn send_pointer(snd_up: Option<Seq>, seq: Seq, snd_max: Seq) -> Option<u16> {
    let up = snd_up.filter(|up| up.gt(seq))?;
    match up.since(seq) {
        near if near <= MAX_POINTER => Some(near as u16),
        _ if (seq + MAX_POINTER).gt(snd_max) => Some(u16::MAX),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::*;
    use super::*;

    #[test]
    fn the_pointer_counts_from_the_segment_and_saturates() {
        let (up, max) = (Some(Seq(1000)), Seq(1000));
        assert_eq!(send_pointer(up, Seq(990), max), Some(10));
        assert_eq!(
            send_pointer(up, Seq(1000), max),
            None,
            "past the urgent data"
        );
        assert_eq!(send_pointer(None, Seq(990), max), None);
        assert_eq!(
            send_pointer(Some(Seq(5)), Seq(u32::MAX - 4), Seq(5)),
            Some(10),
            "across the wrap"
        );
        // Beyond reach: 65535 while that lies past everything sent, else no URG.
        let far = Some(Seq(200_000));
        assert_eq!(send_pointer(far, Seq(0), Seq(1000)), Some(u16::MAX));
        assert_eq!(send_pointer(far, Seq(0), Seq(70_000)), None);
        assert_eq!(send_pointer(far, Seq(60_000), Seq(70_000)), Some(u16::MAX));
    }

    #[test]
    fn a_mark_opens_advances_and_ignores_what_is_behind_it() {
        let mut fx = Fixture::established();
        let data = [b'a'; 100];
        fx.send(seg(PEER_ISS + 1).ack(fx.iss + 1).data(&data).urgent(40));
        assert_eq!(fx.tcb().io().rcv_urgent, Some(40));
        fx.send(seg(PEER_ISS + 101).ack(fx.iss + 1).data(&data).urgent(50));
        assert_eq!(fx.tcb().io().rcv_urgent, Some(150), "the mark advanced");
        assert_eq!(fx.stats.tcp_urgent_in, 2);

        // A segment that repeats old data and brings new: its pointer lies behind the mark.
        let more = [b'b'; 150];
        fx.send(seg(PEER_ISS + 101).ack(fx.iss + 1).data(&more).urgent(10));
        assert_eq!(fx.tcb().io().rcv_urgent, Some(150), "never moves back");
        assert_eq!(fx.stats.tcp_urgent_in, 2);

        // Reads stop at the mark, and urgent mode ends there.
        let mut buf = [0u8; 1000];
        assert_eq!(fx.tcb().io().read(&mut buf).unwrap(), 150);
        assert_eq!(fx.tcb().io().rcv_urgent, None);
        assert_eq!(fx.tcb().io().read(&mut buf).unwrap(), 100);

        // A pointer at what was read already opens nothing.
        fx.send(seg(PEER_ISS + 251).ack(fx.iss + 1).urgent(0));
        assert_eq!(fx.tcb().io().rcv_urgent, None);
        assert_eq!(fx.stats.tcp_urgent_in, 2);

        // A mark past the FIN ends with the stream.
        fx.send(seg(PEER_ISS + 251).ack(fx.iss + 1).data(b"xyz").urgent(100));
        assert_eq!(fx.tcb().io().rcv_urgent, Some(100));
        fx.send(seg(PEER_ISS + 254).ack(fx.iss + 1).fin());
        assert_eq!(fx.tcb().io().rcv_urgent, Some(3));
    }

    /// Nagle never holds urgent data (Linux `tcp_nagle_test`).
    #[test]
    fn urgent_data_is_not_held_by_nagle() {
        let mut fx = Fixture::established();
        assert_eq!(fx.write(b"a").len(), 1);
        assert!(
            fx.write(b"b").is_empty(),
            "held behind the unacknowledged 'a'"
        );
        let (id, now) = (fx.id.expect("a connection"), fx.now);
        fx.tcp.send_urgent(id, now, b"!", &mut fx.stats).unwrap();
        let out = fx.output();
        assert_eq!(out.len(), 1, "{out:?}");
        assert_eq!(out[0].payload, b"b!");
        assert!(out[0].flags.urg && out[0].urgent_ptr == 2, "{out:?}");
    }
}
