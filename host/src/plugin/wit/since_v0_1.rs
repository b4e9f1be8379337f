//! Contract 0.1: the generated bindings of `wit/net-gazer-plugin.wit` and
//! the conversions from the sensor's events to its records.

use super::Version;

wasmtime::component::bindgen!({
    path: "../wit/v0.1",
    world: "sensor-plugin",
});

pub use self::exports::net_gazer::plugin::plugin as exports_plugin;
pub use self::net_gazer::plugin::types;

pub mod lower;

super::contract_version!(V0_1, v0_1);

pub const VERSION: Version = Version {
    major: 0,
    minor: 1,
    patch: 0,
};

/// Addresses as text ("192.0.2.1").
fn ip(a: std::net::IpAddr) -> String {
    a.to_string()
}

/// The VLAN stack as text ("100.200"), empty when none.
fn vlan(v: &crate::decode::VlanStack) -> String {
    if v.is_empty() {
        String::new()
    } else {
        v.to_string()
    }
}

fn protocol(p: crate::trace::Protocol) -> String {
    p.name().to_string()
}

fn style(s: crate::trace::Style) -> String {
    s.name().to_string()
}

super::records::event_records!();

crate::plugin::host_api::host_interface!(since_v0_1);
