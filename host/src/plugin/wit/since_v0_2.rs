//! Contract 0.2: the generated bindings of `wit/net-gazer-plugin.wit` and
//! the conversions from the sensor's events to its records (no strings:
//! addresses as numbers, VLANs as ids, a route's protocol and style as
//! enums).

use super::Version;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "sensor-plugin",
});

pub use self::exports::net_gazer::plugin::plugin as exports_plugin;
pub use self::net_gazer::plugin::types;

pub mod lower;

super::contract_version!(V0_2, v0_2);

pub const VERSION: Version = Version {
    major: 0,
    minor: 2,
    patch: 0,
};

/// The address as a number (`ip-address`).
pub fn ip(a: std::net::IpAddr) -> types::IpAddress {
    match a {
        std::net::IpAddr::V4(v4) => types::IpAddress::Ipv4(v4.to_bits()),
        std::net::IpAddr::V6(v6) => {
            let bits = v6.to_bits();
            types::IpAddress::Ipv6(((bits >> 64) as u64, bits as u64))
        }
    }
}

/// The VLAN ids, outermost first.
fn vlan(v: &crate::decode::VlanStack) -> Vec<u16> {
    v.ids().to_vec()
}

fn protocol(p: crate::trace::Protocol) -> types::TraceProtocol {
    match p {
        crate::trace::Protocol::Icmp => types::TraceProtocol::Icmp,
        crate::trace::Protocol::Udp => types::TraceProtocol::Udp,
        crate::trace::Protocol::Tcp => types::TraceProtocol::Tcp,
    }
}

fn style(s: crate::trace::Style) -> types::TraceStyle {
    match s {
        crate::trace::Style::Paris => types::TraceStyle::Paris,
        crate::trace::Style::Classic => types::TraceStyle::Classic,
    }
}

super::records::event_records!();

crate::plugin::host_api::host_interface!(since_v0_2);
