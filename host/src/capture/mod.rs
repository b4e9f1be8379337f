//! capture: packets from an interface or a file, with their timestamps.
//!
//! Live capture is libpcap on AF_PACKET with the mode's filter compiled to
//! classic BPF and attached in the kernel ([`filter`]), so in handshake mode
//! only the segments the tracker needs cross into user space; kernel drops
//! are read back from the socket. Offline capture reads pcap and pcap-ng
//! files ([`file`]). Capture hands out borrowed frames and never blocks on
//! anything downstream.

pub mod caps;
pub mod file;
pub mod filter;
pub mod libpcap;
pub mod live;

use crate::decode::LinkType;
use crate::time::Timestamp;

/// One captured frame, borrowed from the capture's buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    pub ts: Timestamp,
    pub link: LinkType,
    pub data: &'a [u8],
    /// Length on the wire (more than `data.len()` when cut by the snap length).
    pub orig_len: u32,
}
