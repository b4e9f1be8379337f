//! decode: captured bytes → one validated TCP [`Segment`].
//!
//! Owns the link layers (Ethernet with 802.1Q/802.1ad tags, Linux SLL and
//! SLL2, raw IP, NULL/loopback, NFLOG), IPv4, IPv6 with its extension headers
//! and TCP with its options. Every read is bounds-checked: a packet cut by the
//! snap length or lying about its lengths becomes a counted [`DecodeError`],
//! never a panic. Lengths of the *payload* come from the IP header, not from
//! the captured bytes, so snaplen-truncated data segments still count their
//! full size. Decode keeps no state and does no I/O.

mod fast;
mod ip;
mod link;
mod tcp;

use std::fmt;
use std::net::IpAddr;

pub use link::LinkType;
pub use tcp::{TcpFlags, TcpOptions};

/// The meaning of one captured TCP segment, copied out of the packet so the
/// capture buffer can be reused at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub vlan: VlanStack,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// IPv4 identification; 0 for IPv6.
    pub ip_id: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    pub checksum: u16,
    /// TCP payload length from the IP lengths (not limited by the snap length).
    pub payload_len: u32,
    pub options: TcpOptions,
}

impl Segment {
    pub fn ip_version(&self) -> u8 {
        if self.src.is_ipv4() {
            4
        } else {
            6
        }
    }
}

/// Up to two VLAN ids, outermost first (802.1Q, or 802.1ad Q-in-Q). Deeper
/// stacks keep their outer two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VlanStack {
    ids: [u16; 2],
    len: u8,
}

impl VlanStack {
    pub const NONE: VlanStack = VlanStack { ids: [0; 2], len: 0 };

    pub fn push(&mut self, id: u16) {
        if (self.len as usize) < self.ids.len() {
            self.ids[self.len as usize] = id & 0x0fff;
            self.len += 1;
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn ids(&self) -> &[u16] {
        &self.ids[..self.len as usize]
    }
}

impl fmt::Display for VlanStack {
    /// `42`, or `10.20` for an outer tag 10 and inner 20 (Wireshark's notation).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, id) in self.ids().iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            write!(f, "{id}")?;
        }
        Ok(())
    }
}

/// Why a packet did not yield a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Skip {
    /// Valid traffic that is not ours to track (ARP, UDP, later fragments…).
    Ignored(Ignored),
    /// Truncated or malformed input.
    Error(DecodeError),
}

macro_rules! counted_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident => $label:literal,)* }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vm])* $variant,)* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();
            /// The snake_case name used in summaries, stats events and metrics.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => $label,)* }
            }
            pub fn index(self) -> usize { self as usize }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
        }
    };
}

counted_enum! {
    /// Packets skipped on purpose.
    pub enum Ignored {
        /// ARP, LLDP, 802.3 length frames, other ethertypes or address families.
        NotIp => "not_ip",
        /// IP, but UDP, ICMP or any other protocol.
        NotTcp => "not_tcp",
        /// A non-first IP fragment (no TCP header in it), or a first fragment
        /// (its TCP lengths cannot be checked).
        Fragment => "fragment",
        /// NFLOG messages without a packet payload.
        NoPayload => "no_payload",
        /// TCP the capture mode does not need (handshake mode: data
        /// segments), dropped as the kernel filter drops them live.
        OutsideMode => "outside_mode",
    }
}

counted_enum! {
    /// Truncated or malformed input, by where decoding stopped.
    pub enum DecodeError {
        UnsupportedLinkType => "unsupported_link_type",
        TruncatedLink => "truncated_link",
        TruncatedVlan => "truncated_vlan",
        MalformedNflog => "malformed_nflog",
        TruncatedIpv4 => "truncated_ipv4",
        BadIpVersion => "bad_ip_version",
        BadIpv4HeaderLength => "bad_ipv4_header_length",
        BadIpv4TotalLength => "bad_ipv4_total_length",
        TruncatedIpv6 => "truncated_ipv6",
        TruncatedIpv6ExtHeader => "truncated_ipv6_ext_header",
        Ipv6Jumbogram => "ipv6_jumbogram",
        TruncatedTcp => "truncated_tcp",
        BadTcpDataOffset => "bad_tcp_data_offset",
        /// The TCP header is longer than the IP payload that should hold it.
        TcpHeaderBeyondIpPayload => "tcp_header_beyond_ip_payload",
        /// Options with a bad length: the segment is kept, options after the
        /// bad one are ignored (counted, not skipped).
        MalformedTcpOption => "malformed_tcp_option",
    }
}

/// Which TCP segments the tracker wants: the user-space twin of the kernel
/// filter (`capture::filter`), so a replay sees what live capture would,
/// and unwanted segments cost no option parsing or tracking.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Interest {
    /// Every segment (quality mode).
    pub all_tcp: bool,
    /// Payload-free ACKs too (handshake mode, for the client's ACK).
    pub pure_acks: bool,
}

impl Interest {
    pub const ALL: Interest = Interest {
        all_tcp: true,
        pure_acks: true,
    };

    fn wants(self, flags: TcpFlags, payload_len: u32) -> bool {
        let control = TcpFlags::SYN | TcpFlags::RST | TcpFlags::FIN;
        self.all_tcp || flags.bits() & control.bits() != 0 || (self.pure_acks && flags.ack() && payload_len == 0)
    }
}

/// Decodes one captured frame of the given link type.
///
/// `MalformedTcpOption` is the one error that still yields a segment; it is
/// reported through `on_warning` so it can be counted.
pub fn decode(
    link: LinkType,
    frame: &[u8],
    interest: Interest,
    on_warning: impl FnOnce(DecodeError),
) -> Result<Segment, Skip> {
    if fast::outside_interest(link, frame, interest) {
        return Err(Ignored::OutsideMode.into());
    }
    decode_all(link, frame, interest, on_warning)
}

/// Whether [`decode`]'s fast path skips this frame (for the fuzz target
/// that holds it to [`decode_all`]).
pub fn skipped_fast(link: LinkType, frame: &[u8], interest: Interest) -> bool {
    fast::outside_interest(link, frame, interest)
}

/// [`decode`] without the fast path for segments outside the mode.
pub fn decode_all(
    link: LinkType,
    frame: &[u8],
    interest: Interest,
    on_warning: impl FnOnce(DecodeError),
) -> Result<Segment, Skip> {
    let l3 = link::strip(link, frame)?;
    let ipd = ip::parse(l3.network, l3.payload)?;
    let (tcp, warning) = tcp::parse(ipd.payload, ipd.payload_len, interest)?;
    if let Some(w) = warning {
        on_warning(w);
    }
    let h = tcp.header;
    Ok(Segment {
        src: ipd.src,
        dst: ipd.dst,
        src_port: h.src_port(),
        dst_port: h.dst_port(),
        vlan: l3.vlan,
        ttl: ipd.ttl,
        ip_id: ipd.id,
        seq: h.seq(),
        ack: h.ack(),
        flags: h.flags(),
        window: h.window(),
        checksum: h.checksum(),
        payload_len: tcp.payload_len,
        options: tcp.options,
    })
}

/// The network protocol a link layer announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Network {
    Ipv4,
    Ipv6,
    /// The link layer does not say (raw IP): read the version nibble.
    FromVersion,
}

impl From<DecodeError> for Skip {
    fn from(e: DecodeError) -> Self {
        Skip::Error(e)
    }
}

impl From<Ignored> for Skip {
    fn from(i: Ignored) -> Self {
        Skip::Ignored(i)
    }
}

/// Per-kind counters for skipped packets.
#[derive(Clone, Debug, Default)]
pub struct DecodeCounters {
    pub errors: [u64; DecodeError::COUNT],
    pub ignored: [u64; Ignored::COUNT],
}

impl DecodeCounters {
    pub fn count(&mut self, skip: Skip) {
        match skip {
            Skip::Error(e) => self.errors[e.index()] += 1,
            Skip::Ignored(i) => self.ignored[i.index()] += 1,
        }
    }

    pub fn count_error(&mut self, e: DecodeError) {
        self.errors[e.index()] += 1;
    }

    pub fn total_errors(&self) -> u64 {
        self.errors.iter().sum()
    }

    /// Non-zero error counters by name.
    pub fn errors_by_kind(&self) -> impl Iterator<Item = (DecodeError, u64)> + '_ {
        DecodeError::ALL
            .iter()
            .map(|&e| (e, self.errors[e.index()]))
            .filter(|(_, n)| *n > 0)
    }

    pub fn ignored_by_kind(&self) -> impl Iterator<Item = (Ignored, u64)> + '_ {
        Ignored::ALL
            .iter()
            .map(|&i| (i, self.ignored[i.index()]))
            .filter(|(_, n)| *n > 0)
    }
}

/// Big-endian reads that fail with the given error instead of panicking.
pub(crate) fn be16(b: &[u8], at: usize, err: DecodeError) -> Result<u16, DecodeError> {
    crate::packet::be16(b, at).ok_or(err)
}

#[cfg(test)]
mod tests;
