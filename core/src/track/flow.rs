//! Per-flow path quality (capture mode `quality`): data retransmissions,
//! SACK blocks, duplicate ACKs, zero windows, bytes and packets each way.
//!
//! The rules follow Wireshark's TCP analysis so results can be checked
//! against tshark: a segment carrying data (or FIN) that starts below the
//! highest sequence number already seen in its direction is a
//! retransmission, except a keep-alive (at most one byte, one below it); a
//! duplicate ACK repeats the previous ACK number and window with no data and
//! no SYN/FIN/RST; a zero window is any such segment advertising window 0.

use crate::decode::Segment;

/// One direction of a flow.
#[derive(Clone, Debug, Default)]
pub(crate) struct HalfFlow {
    pub packets: u64,
    pub bytes: u64,
    pub retrans: u64,
    pub sack_blocks: u64,
    pub dup_acks: u64,
    pub zero_window: u64,
    pub fin: bool,
    /// One past the highest sequence number sent so far.
    next_seq: Option<u32>,
    last_ack: Option<u32>,
    last_window: u16,
}

/// `a < b` in sequence space (RFC 9293 §3.4, modulo 2^32).
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

impl HalfFlow {
    pub fn update(&mut self, seg: &Segment) {
        let f = seg.flags;
        let len = seg.payload_len;
        self.packets += 1;
        self.bytes += len as u64;
        self.sack_blocks += seg.options.sack_blocks as u64;
        let control = f.syn() || f.fin() || f.rst();
        if !control
            && len == 0
            && f.ack()
            && seg.window != 0
            && self.last_ack == Some(seg.ack)
            && self.last_window == seg.window
            && self.next_seq == Some(seg.seq)
        {
            self.dup_acks += 1;
        }
        if seg.window == 0 && !control {
            self.zero_window += 1;
        }
        let seg_end = seg
            .seq
            .wrapping_add(len)
            .wrapping_add(u32::from(f.syn()))
            .wrapping_add(u32::from(f.fin()));
        match self.next_seq {
            Some(next) if !f.syn() && !f.rst() => {
                let keep_alive = len <= 1 && !f.fin() && seg.seq == next.wrapping_sub(1);
                if (len > 0 || f.fin()) && seq_lt(seg.seq, next) && !keep_alive {
                    self.retrans += 1;
                }
                if seq_lt(next, seg_end) {
                    self.next_seq = Some(seg_end);
                }
            }
            Some(_) => {}
            None if !f.rst() => self.next_seq = Some(seg_end),
            None => {}
        }
        if f.fin() {
            self.fin = true;
        }
        if f.ack() {
            self.last_ack = Some(seg.ack);
            self.last_window = seg.window;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{TcpFlags, TcpOptions, VlanStack};

    fn seg(seq: u32, ack: u32, len: u32, flags: TcpFlags, window: u16) -> Segment {
        Segment {
            src: "10.0.0.1".parse().unwrap(),
            dst: "10.0.0.2".parse().unwrap(),
            src_port: 40000,
            dst_port: 80,
            vlan: VlanStack::NONE,
            ttl: 64,
            ip_id: 0,
            seq,
            ack,
            flags,
            window,
            checksum: 0,
            payload_len: len,
            options: TcpOptions::default(),
        }
    }

    #[test]
    fn resent_data_is_a_retransmission_and_keepalive_is_not() {
        let a = TcpFlags::ACK;
        let mut h = HalfFlow::default();
        h.update(&seg(100, 1, 0, TcpFlags::SYN, 1000));
        h.update(&seg(101, 1, 500, a, 1000));
        h.update(&seg(601, 1, 500, a, 1000));
        h.update(&seg(101, 1, 500, a, 1000)); // resent
        h.update(&seg(1100, 1, 1, a, 1000)); // keep-alive: one byte below next
        h.update(&seg(1101, 1, 0, TcpFlags::FIN | a, 1000));
        h.update(&seg(1101, 1, 0, TcpFlags::FIN | a, 1000)); // FIN resent
        assert_eq!(h.retrans, 2);
        assert_eq!(h.bytes, 1501);
        assert!(h.fin);
    }

    #[test]
    fn sequence_numbers_wrap() {
        let mut h = HalfFlow::default();
        h.update(&seg(u32::MAX - 10, 1, 0, TcpFlags::SYN, 1000));
        h.update(&seg(u32::MAX - 9, 1, 100, TcpFlags::ACK, 1000));
        h.update(&seg(90, 1, 100, TcpFlags::ACK, 1000));
        assert_eq!(h.retrans, 0);
        h.update(&seg(u32::MAX - 9, 1, 100, TcpFlags::ACK, 1000));
        assert_eq!(h.retrans, 1);
    }

    #[test]
    fn repeated_acks_are_duplicates_and_zero_windows_count() {
        let a = TcpFlags::ACK;
        let mut h = HalfFlow::default();
        h.update(&seg(1, 500, 0, a, 1000));
        h.update(&seg(1, 500, 0, a, 1000));
        h.update(&seg(1, 500, 0, a, 1000));
        h.update(&seg(1, 500, 0, a, 2000)); // window update, not a dup
        h.update(&seg(1, 500, 0, a, 0));
        assert_eq!(h.dup_acks, 2);
        assert_eq!(h.zero_window, 1);
    }
}
