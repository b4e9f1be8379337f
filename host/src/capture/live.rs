//! Live capture on an interface: libpcap over AF_PACKET (TPACKET_V3 ring),
//! the mode's filter attached in the kernel, nanosecond kernel timestamps.

use std::net::IpAddr;

use ipnet::IpNet;

use super::caps::{self, Capability};
use super::libpcap;
use super::{filter, RawPacket};
use crate::decode::LinkType;
use crate::time::Timestamp;
use crate::track::Mode;

/// Settings for [`LiveCapture::open`].
#[derive(Clone, Debug)]
pub struct LiveConfig {
    pub interface: String,
    pub mode: Mode,
    pub client_rtt: bool,
    pub filter: Option<String>,
    pub promiscuous: bool,
    pub snaplen: u32,
    pub buffer_mb: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error("no interface named `{name}` (interfaces here: {available})")]
    NoSuchInterface { name: String, available: String },
    #[error("interface `{name}` is down (bring it up: ip link set {name} up)")]
    InterfaceDown { name: String },
    #[error("no interface to capture on: none is up, not loopback and with an address; name one with -i")]
    NoUsableInterface,
    #[error("capturing on `{interface}` needs {missing}: run as root, or grant the binary the capabilities (setcap cap_net_raw,cap_net_admin=eip $(command -v net-gazer)) or the service AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN")]
    PermissionDenied { interface: String, missing: String },
    #[error("capture filter `{expression}` is invalid: {message}")]
    BadFilter { expression: String, message: String },
    #[error("cannot list interfaces: {0}")]
    List(String),
    #[error("capture on `{interface}` failed while {operation}: {message}")]
    Pcap {
        interface: String,
        operation: &'static str,
        message: String,
    },
}

/// An interface and its networks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub networks: Vec<IpNet>,
    pub up: bool,
    pub loopback: bool,
}

/// All interfaces libpcap can capture on.
pub fn interfaces() -> Result<Vec<Interface>, LiveError> {
    let devices = libpcap::devices().map_err(|e| LiveError::List(e.to_string()))?;
    Ok(devices
        .into_iter()
        .map(|d| Interface {
            networks: d
                .addresses
                .iter()
                .filter_map(|a| match (a.addr, a.netmask) {
                    (IpAddr::V4(_), Some(mask @ IpAddr::V4(_))) | (IpAddr::V6(_), Some(mask @ IpAddr::V6(_))) => {
                        IpNet::with_netmask(a.addr, mask).ok().map(|n| n.trunc())
                    }
                    (addr, _) => IpNet::new(addr, if addr.is_ipv4() { 32 } else { 128 }).ok(),
                })
                .collect(),
            up: d.is_up(),
            loopback: d.is_loopback(),
            name: d.name,
        })
        .collect())
}

/// The named interface, which must exist and be up.
pub fn find_interface(name: &str) -> Result<Interface, LiveError> {
    let all = interfaces()?;
    let Some(iface) = all.iter().find(|i| i.name == name) else {
        let available = all.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ");
        return Err(LiveError::NoSuchInterface {
            name: name.into(),
            available,
        });
    };
    if !iface.up {
        return Err(LiveError::InterfaceDown { name: name.into() });
    }
    Ok(iface.clone())
}

/// The first interface that is up, not loopback, and has an address.
pub fn pick_interface() -> Result<Interface, LiveError> {
    interfaces()?
        .into_iter()
        .find(|i| i.up && !i.loopback && !i.networks.is_empty())
        .ok_or(LiveError::NoUsableInterface)
}

/// Kernel counters of the capture socket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// Packets that passed the kernel filter.
    pub received: u64,
    /// Dropped because the ring buffer was full.
    pub dropped: u64,
    /// Dropped by the interface or driver.
    pub if_dropped: u64,
}

pub struct LiveCapture {
    cap: libpcap::Live,
    link: LinkType,
    units_per_sec: u64,
    interface: String,
    filter: String,
    /// The last read found nothing: wait on the socket before the next.
    idle: bool,
    /// libpcap's counters are 32-bit and wrap; widen them here.
    stats: KernelStats,
    last_raw: (u32, u32, u32),
}

impl LiveCapture {
    pub fn open(cfg: &LiveConfig) -> Result<Self, LiveError> {
        let name = cfg.interface.clone();
        let err = |operation: &'static str| {
            let name = name.clone();
            move |e: libpcap::Error| LiveError::Pcap {
                interface: name,
                operation,
                message: e.to_string(),
            }
        };
        let missing = caps::missing(&[Capability::NetRaw]);
        if !missing.is_empty() {
            return Err(permission_denied(&name, &missing));
        }
        let settings = libpcap::Settings {
            device: &name,
            snaplen: i32::try_from(cfg.snaplen).unwrap_or(i32::MAX),
            promiscuous: cfg.promiscuous,
            buffer_bytes: i32::try_from(cfg.buffer_mb).unwrap_or(i32::MAX).saturating_mul(1 << 20),
            timeout_ms: 100,
        };
        let mut cap = libpcap::Live::open(&settings).map_err(|e| {
            let message = e.to_string();
            if message.contains("ermission") || message.contains("not permitted") {
                permission_denied(&name, &[Capability::NetRaw, Capability::NetAdmin])
            } else {
                LiveError::Pcap {
                    interface: name.clone(),
                    operation: "opening",
                    message,
                }
            }
        })?;
        let expression = filter::expression(cfg.mode, cfg.client_rtt, cfg.filter.as_deref());
        cap.set_filter(&expression).map_err(|e| LiveError::BadFilter {
            expression: expression.clone(),
            message: e.to_string(),
        })?;
        // Non-blocking reads plus our own poll with a timeout: a blocking
        // TPACKET_V3 read on an idle interface may never return, and the
        // loop must see SIGTERM.
        cap.set_nonblocking().map_err(err("switching to non-blocking reads"))?;
        let link = LinkType::from_linktype(cap.datalink());
        let units_per_sec = if cap.nanoseconds { 1_000_000_000 } else { 1_000_000 };
        Ok(LiveCapture {
            cap,
            link,
            units_per_sec,
            interface: name,
            filter: expression,
            idle: true,
            stats: KernelStats::default(),
            last_raw: (0, 0, 0),
        })
    }

    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The filter attached in the kernel.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    pub fn link_type(&self) -> LinkType {
        self.link
    }

    /// The next packet, or None when the read timed out (100 ms) so the
    /// caller can run its timers and look at signals.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, LiveError> {
        if self.idle {
            let mut pfd = libc::pollfd {
                fd: self.cap.fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call. An
            // interrupted or failed poll just means "try reading".
            unsafe { libc::poll(&mut pfd, 1, 100) };
        }
        let (link, units_per_sec) = (self.link, self.units_per_sec);
        match self.cap.next_packet() {
            Ok(Some(p)) => {
                self.idle = false;
                let ts = Timestamp::from_parts(
                    #[allow(clippy::unnecessary_cast)] // time_t is not i64 everywhere
                    (p.ts.tv_sec as i64),
                    p.ts.tv_usec as u64,
                    units_per_sec,
                );
                Ok(Some(RawPacket {
                    ts,
                    link,
                    data: p.data,
                    orig_len: p.len,
                }))
            }
            Ok(None) => {
                self.idle = true;
                Ok(None)
            }
            Err(e) => Err(LiveError::Pcap {
                interface: self.interface.clone(),
                operation: "reading",
                message: e.to_string(),
            }),
        }
    }

    /// Kernel counters since the capture opened.
    pub fn stats(&mut self) -> KernelStats {
        if let Ok((received, dropped, if_dropped)) = self.cap.stats() {
            let (r, d, i) = self.last_raw;
            self.stats.received += received.wrapping_sub(r) as u64;
            self.stats.dropped += dropped.wrapping_sub(d) as u64;
            self.stats.if_dropped += if_dropped.wrapping_sub(i) as u64;
            self.last_raw = (received, dropped, if_dropped);
        }
        self.stats
    }
}

fn permission_denied(interface: &str, missing: &[Capability]) -> LiveError {
    let missing = missing.iter().map(|c| c.name()).collect::<Vec<_>>().join(" and ");
    LiveError::PermissionDenied {
        interface: interface.into(),
        missing,
    }
}
