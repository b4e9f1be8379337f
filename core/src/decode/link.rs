//! Link layers: find the IP packet inside a captured frame.
//!
//! Link-type numbers are the LINKTYPE_ values of pcap and pcap-ng
//! (tcpdump.org/linktypes.html), which for these types equal libpcap's DLT_
//! values on Linux.

use super::{be16, DecodeError, Ignored, Network, Skip, VlanStack};
use crate::packet::ethertype::{
    IPV4 as ETHERTYPE_IPV4, IPV6 as ETHERTYPE_IPV6, QINQ as ETHERTYPE_QINQ, QINQ_OLD as ETHERTYPE_QINQ_OLD,
    VLAN as ETHERTYPE_VLAN,
};

/// The link types net-gazer decodes; anything else is kept by number and
/// counted as `unsupported_link_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// LINKTYPE_NULL (0): BSD loopback, 4-byte family in the writer's byte order.
    Null,
    /// LINKTYPE_ETHERNET (1).
    Ethernet,
    /// LINKTYPE_RAW (101), and DLT_RAW's platform values 12 and 14.
    Raw,
    /// LINKTYPE_LOOP (108): like NULL, family in network byte order.
    Loop,
    /// LINKTYPE_LINUX_SLL (113).
    LinuxSll,
    /// LINKTYPE_IPV4 (228).
    Ipv4,
    /// LINKTYPE_IPV6 (229).
    Ipv6,
    /// LINKTYPE_NFLOG (239).
    Nflog,
    /// LINKTYPE_LINUX_SLL2 (276).
    LinuxSll2,
    Other(u32),
}

impl LinkType {
    pub fn from_linktype(n: u32) -> Self {
        match n {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::Raw,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            239 => LinkType::Nflog,
            276 => LinkType::LinuxSll2,
            other => LinkType::Other(other),
        }
    }

    pub fn to_linktype(self) -> u32 {
        match self {
            LinkType::Null => 0,
            LinkType::Ethernet => 1,
            LinkType::Raw => 101,
            LinkType::Loop => 108,
            LinkType::LinuxSll => 113,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::Nflog => 239,
            LinkType::LinuxSll2 => 276,
            LinkType::Other(n) => n,
        }
    }
}

pub(crate) struct L3<'a> {
    pub network: Network,
    pub payload: &'a [u8],
    pub vlan: VlanStack,
}

const SLL_HEADER_LEN: usize = 16;
const SLL2_HEADER_LEN: usize = 20;
const NFLOG_HEADER_LEN: usize = 4;
const NFULA_PAYLOAD: u16 = 9;
const AF_INET: u8 = 2;
const AF_INET6_LINUX: u8 = 10;

pub(crate) fn strip(link: LinkType, frame: &[u8]) -> Result<L3<'_>, Skip> {
    match link {
        LinkType::Ethernet => {
            let ethertype = be16(frame, 12, DecodeError::TruncatedLink)?;
            by_ethertype(ethertype, &frame[14..], VlanStack::NONE)
        }
        LinkType::LinuxSll => {
            let protocol = be16(frame, 14, DecodeError::TruncatedLink)?;
            by_ethertype(protocol, &frame[SLL_HEADER_LEN..], VlanStack::NONE)
        }
        LinkType::LinuxSll2 => {
            if frame.len() < SLL2_HEADER_LEN {
                return Err(DecodeError::TruncatedLink.into());
            }
            let protocol = be16(frame, 0, DecodeError::TruncatedLink)?;
            by_ethertype(protocol, &frame[SLL2_HEADER_LEN..], VlanStack::NONE)
        }
        LinkType::Raw => Ok(L3 {
            network: Network::FromVersion,
            payload: frame,
            vlan: VlanStack::NONE,
        }),
        LinkType::Ipv4 => Ok(L3 {
            network: Network::Ipv4,
            payload: frame,
            vlan: VlanStack::NONE,
        }),
        LinkType::Ipv6 => Ok(L3 {
            network: Network::Ipv6,
            payload: frame,
            vlan: VlanStack::NONE,
        }),
        LinkType::Null | LinkType::Loop => {
            let fam = frame.get(..4).ok_or(DecodeError::TruncatedLink)?;
            let family = if link == LinkType::Loop {
                u32::from_be_bytes([fam[0], fam[1], fam[2], fam[3]])
            } else {
                // Written in the capturing host's byte order: the family is
                // small, so whichever reading is small is the right one.
                let le = u32::from_le_bytes([fam[0], fam[1], fam[2], fam[3]]);
                if le <= 0xffff {
                    le
                } else {
                    le.swap_bytes()
                }
            };
            let network = match family {
                2 => Network::Ipv4,
                // AF_INET6 differs between systems: Linux 10, *BSD 24, FreeBSD 28, macOS 30.
                10 | 24 | 28 | 30 => Network::Ipv6,
                _ => return Err(Ignored::NotIp.into()),
            };
            Ok(L3 {
                network,
                payload: &frame[4..],
                vlan: VlanStack::NONE,
            })
        }
        LinkType::Nflog => nflog(frame),
        LinkType::Other(_) => Err(DecodeError::UnsupportedLinkType.into()),
    }
}

/// Follows 802.1Q / 802.1ad tags to the IP ethertype, collecting VLAN ids.
fn by_ethertype(mut ethertype: u16, mut rest: &[u8], mut vlan: VlanStack) -> Result<L3<'_>, Skip> {
    loop {
        match ethertype {
            ETHERTYPE_IPV4 => {
                return Ok(L3 {
                    network: Network::Ipv4,
                    payload: rest,
                    vlan,
                })
            }
            ETHERTYPE_IPV6 => {
                return Ok(L3 {
                    network: Network::Ipv6,
                    payload: rest,
                    vlan,
                })
            }
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                let tci = be16(rest, 0, DecodeError::TruncatedVlan)?;
                ethertype = be16(rest, 2, DecodeError::TruncatedVlan)?;
                vlan.push(tci);
                rest = &rest[4..];
            }
            _ => return Err(Ignored::NotIp.into()),
        }
    }
}

/// NFLOG (Linux netfilter log): a 4-byte header then TLVs whose length and
/// type are in the *capturing host's* byte order (little-endian on every
/// Linux platform we run on), each padded to 4 bytes. The packet is in the
/// NFULA_PAYLOAD TLV.
fn nflog(frame: &[u8]) -> Result<L3<'_>, Skip> {
    let family = *frame.first().ok_or(DecodeError::TruncatedLink)?;
    if frame.len() < NFLOG_HEADER_LEN {
        return Err(DecodeError::TruncatedLink.into());
    }
    let network = match family {
        AF_INET => Network::Ipv4,
        AF_INET6_LINUX => Network::Ipv6,
        _ => return Err(Ignored::NotIp.into()),
    };
    let mut at = NFLOG_HEADER_LEN;
    while at + 4 <= frame.len() {
        let len = u16::from_le_bytes([frame[at], frame[at + 1]]) as usize;
        let kind = u16::from_le_bytes([frame[at + 2], frame[at + 3]]) & 0x7fff;
        if len < 4 || at + len > frame.len() {
            return Err(DecodeError::MalformedNflog.into());
        }
        if kind == NFULA_PAYLOAD {
            return Ok(L3 {
                network,
                payload: &frame[at + 4..at + len],
                vlan: VlanStack::NONE,
            });
        }
        at += (len + 3) & !3;
    }
    Err(Ignored::NoPayload.into())
}
