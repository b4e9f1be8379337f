//! Contract 0.3 (a draft: the host runs it, the SDK does not have it yet):
//! the plugin reads "the current event" through one host function per
//! field (`wit/v0.3`), so it pays for the fields it reads. The events are
//! lent to the plugin's Store for the call (`plugin::current`), not copied.
//!
//! The getters are not written here field by field: each event record's
//! field list comes from the schema (`net_gazer_core::handshake_fields!`
//! and the others, made by `declare_record!`) and [`getters!`] turns it
//! into the bindings' `Host` trait. A field added to the schema and not to
//! the WIT, or the other way round, does not compile; a field added to
//! both needs nothing here.

use std::net::IpAddr;

// The types the schema's field lists name.
#[allow(unused_imports)]
use net_gazer_core::event::schema::field_types::*;

use super::Version;
use crate::event::{self, Event, Tag};
use crate::plugin::chain::{MAX_KEY, MAX_TAGS, MAX_VALUE};
use crate::plugin::current::TagRefused;
use crate::plugin::store::State;

wasmtime::component::bindgen!({
    path: "../wit/v0.3",
    world: "sensor-plugin",
    imports: { default: trappable },
});

use self::net_gazer::plugin as contract;
pub use self::net_gazer::plugin::types;

pub const VERSION: Version = Version {
    major: 0,
    minor: 3,
    patch: 0,
};

/// How a value of the schema is carried in this contract.
pub trait Wit {
    type Type;
    fn wit(&self) -> Self::Type;
}

macro_rules! as_is {
    ($($t:ty),*) => {$(
        impl Wit for $t {
            type Type = $t;
            fn wit(&self) -> $t {
                *self
            }
        }
    )*};
}
as_is!(u8, u16, u32, u64, i64, f64, bool);

impl<T: Wit> Wit for Option<T> {
    type Type = Option<T::Type>;
    fn wit(&self) -> Self::Type {
        self.as_ref().map(Wit::wit)
    }
}

impl<T: Wit> Wit for Vec<T> {
    type Type = Vec<T::Type>;
    fn wit(&self) -> Self::Type {
        self.iter().map(Wit::wit).collect()
    }
}

/// A number, the high 64 bits of an IPv6 address first.
impl Wit for IpAddr {
    type Type = types::IpAddress;
    fn wit(&self) -> types::IpAddress {
        match self {
            IpAddr::V4(v4) => types::IpAddress::Ipv4(v4.to_bits()),
            IpAddr::V6(v6) => {
                let bits = v6.to_bits();
                types::IpAddress::Ipv6(((bits >> 64) as u64, bits as u64))
            }
        }
    }
}

/// As in JSON: RFC 3339, UTC, microseconds.
impl Wit for crate::time::Timestamp {
    type Type = String;
    fn wit(&self) -> String {
        self.rfc3339().to_string()
    }
}

/// The VLAN ids, outermost first.
impl Wit for crate::decode::VlanStack {
    type Type = Vec<u16>;
    fn wit(&self) -> Vec<u16> {
        self.ids().to_vec()
    }
}

impl Wit for crate::trace::HopResult {
    type Type = types::Hop;
    fn wit(&self) -> types::Hop {
        types::Hop {
            ttl: self.ttl,
            addr: self.addr.wit(),
            other_addrs: self.other_addrs.wit(),
            sent: self.sent,
            received: self.received,
            rtt_min_us: self.rtt_min_us,
            rtt_avg_us: self.rtt_avg_us,
            rtt_max_us: self.rtt_max_us,
            icmp_type: self.icmp_type,
            icmp_code: self.icmp_code,
            quoted_ttl: self.quoted_ttl,
        }
    }
}

/// Enums of the schema and of the WIT: the same cases, each way (the
/// schema test holds the names equal; a case added on one side only fails
/// to compile here).
macro_rules! same_cases {
    ($($schema:ty => $wit:ident { $($case:ident),* })*) => {$(
        impl Wit for $schema {
            type Type = types::$wit;
            fn wit(&self) -> types::$wit {
                match self {
                    $(<$schema>::$case => types::$wit::$case,)*
                }
            }
        }

        impl From<types::$wit> for $schema {
            fn from(v: types::$wit) -> $schema {
                match v {
                    $(types::$wit::$case => <$schema>::$case,)*
                }
            }
        }
    )*};
}
same_cases! {
    event::Direction => Direction { Outbound, Inbound, Internal, Transit }
    event::Outcome => Outcome { Established, Refused, Unanswered, Incomplete }
    event::Side => Side { Client, Server }
    event::FlowEnd => FlowEnd { Fin, Rst, Idle, Reused, Evicted, Shutdown }
    event::ScanType => ScanType { PortScan, AddressScan }
    event::ScanPhase => ScanPhase { Detected, Ended }
    crate::trace::Protocol => TraceProtocol { Icmp, Udp, Tcp }
    crate::trace::Style => TraceStyle { Paris, Classic }
}

/// The `Host` trait of interface `$interface` for events of kind
/// `$variant`: one getter per field of the schema's field list.
macro_rules! getters {
    ({ $interface:ident, $variant:ident } $($field:ident : $ty:ty,)*) => {
        impl contract::$interface::Host for State {
            $(
                fn $field(&mut self) -> wasmtime::Result<<$ty as Wit>::Type> {
                    match self.current.event() {
                        Some(Event::$variant(e)) => Ok(e.$field.wit()),
                        other => Err(wrong_kind(
                            concat!(stringify!($interface), ".", stringify!($field)),
                            other,
                        )),
                    }
                }
            )*
        }
    };
}
net_gazer_core::handshake_fields!(getters { handshake, Handshake });
net_gazer_core::flow_fields!(getters { flow, Flow });
net_gazer_core::scan_fields!(getters { scan, Scan });
net_gazer_core::route_fields!(getters { route, Route });

/// The trap of a getter called on another kind of event (or outside a call).
fn wrong_kind(getter: &str, event: Option<&Event>) -> wasmtime::Error {
    match event {
        Some(e) => wasmtime::format_err!("`{getter}` called on a {} event", e.kind().name()),
        None => wasmtime::format_err!("`{getter}` called with no current event"),
    }
}

impl types::Host for State {}

impl contract::event::Host for State {
    fn kind(&mut self) -> wasmtime::Result<types::EventKind> {
        match self.current.event() {
            Some(Event::Handshake(_)) => Ok(types::EventKind::Handshake),
            Some(Event::Flow(_)) => Ok(types::EventKind::Flow),
            Some(Event::Scan(_)) => Ok(types::EventKind::Scan),
            Some(Event::Route(_)) => Ok(types::EventKind::Route),
            other => Err(wrong_kind("event.kind", other)),
        }
    }

    fn tag(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        Ok(self.current.tag(&key).map(String::from))
    }

    fn tags(&mut self) -> wasmtime::Result<Vec<types::Tag>> {
        Ok(self
            .current
            .tags()
            .into_iter()
            .map(|t| types::Tag {
                key: t.key,
                value: t.value,
            })
            .collect())
    }

    /// Tags within the limits of every contract version; a tag beyond
    /// them traps (the plugin's error, counted as its failure).
    fn set_tag(&mut self, key: String, value: String) -> wasmtime::Result<()> {
        if key.is_empty() || key.len() > MAX_KEY || value.len() > MAX_VALUE {
            wasmtime::bail!("tag refused: keys are 1..={MAX_KEY} bytes, values at most {MAX_VALUE}");
        }
        match self.current.set_tag(Tag { key, value }, MAX_TAGS) {
            Ok(()) => Ok(()),
            Err(TagRefused::TooMany) => wasmtime::bail!("tag refused: at most {MAX_TAGS} tags per event"),
            Err(TagRefused::NoEvent) => wasmtime::bail!("`event.set-tag` called with no current event"),
        }
    }

    fn select(&mut self, index: u32) -> wasmtime::Result<bool> {
        Ok(usize::try_from(index).is_ok_and(|i| self.current.select(i)))
    }
}

impl contract::host::Host for State {
    fn log_enabled(&mut self, level: types::Level) -> wasmtime::Result<bool> {
        Ok(State::log_enabled(level.into()))
    }

    fn log(&mut self, level: types::Level, message: String) -> wasmtime::Result<()> {
        State::log(self, level.into(), message);
        Ok(())
    }

    fn counter_add(&mut self, name: String, delta: u64) -> wasmtime::Result<()> {
        self.metrics.counter_add(&name, delta);
        Ok(())
    }

    fn gauge_set(&mut self, name: String, value: f64) -> wasmtime::Result<()> {
        self.metrics.gauge_set(&name, value);
        Ok(())
    }
}

impl From<types::Level> for tracing::Level {
    fn from(level: types::Level) -> tracing::Level {
        match level {
            types::Level::Trace => tracing::Level::TRACE,
            types::Level::Debug => tracing::Level::DEBUG,
            types::Level::Info => tracing::Level::INFO,
            types::Level::Warn => tracing::Level::WARN,
            types::Level::Error => tracing::Level::ERROR,
        }
    }
}

/// This version, as the chain uses it.
pub struct V;

/// One instance's entry points.
pub struct Plugin {
    plugin: SensorPlugin,
}

/// A verdict with the tags set during the call.
fn verdict(v: types::Verdict, added: Vec<Tag>) -> super::Verdict {
    match v {
        types::Verdict::Drop => super::Verdict::Drop,
        types::Verdict::Keep if added.is_empty() => super::Verdict::Keep,
        types::Verdict::Keep => super::Verdict::Tag(added),
    }
}

fn event_kind(k: types::EventKind) -> event::EventKind {
    match k {
        types::EventKind::Handshake => event::EventKind::Handshake,
        types::EventKind::Flow => event::EventKind::Flow,
        types::EventKind::Scan => event::EventKind::Scan,
        types::EventKind::Route => event::EventKind::Route,
    }
}

type Store = wasmtime::Store<State>;

impl super::Contract for V {
    type Pre = SensorPluginPre<State>;
    type Instance = Plugin;
    /// Nothing is made ahead: the plugin reads the event itself.
    type Record = ();

    fn pre(pre: wasmtime::component::InstancePre<State>) -> wasmtime::Result<Self::Pre> {
        SensorPluginPre::new(pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store) -> wasmtime::Result<Plugin> {
        Ok(Plugin {
            plugin: pre.instantiate(store)?,
        })
    }

    fn describe(p: &Plugin, store: &mut Store) -> wasmtime::Result<super::Description> {
        let info = p.plugin.net_gazer_plugin_plugin().call_describe(store)?;
        let description = super::Description {
            name: info.name,
            version: info.version,
            wants: info.wants.into_iter().map(event_kind).collect(),
            batch: info.batch,
            role: match info.role {
                types::Role::Filter => crate::config::Role::Filter,
                types::Role::Exporter => crate::config::Role::Exporter,
            },
            interest: super::Interest {
                server_ports: info.interest.server_ports,
                directions: info.interest.directions.into_iter().map(Into::into).collect(),
                outcomes: info.interest.outcomes.into_iter().map(Into::into).collect(),
                local_networks: networks(info.interest.local_networks)?,
                remote_networks: networks(info.interest.remote_networks)?,
            },
        };
        description.interest.check().map_err(wasmtime::Error::msg)?;
        Ok(description)
    }

    fn init(p: &Plugin, store: &mut Store, config: &str) -> wasmtime::Result<Result<(), String>> {
        p.plugin.net_gazer_plugin_plugin().call_init(store, config)
    }

    fn tick(p: &Plugin, store: &mut Store, now_us: i64) -> wasmtime::Result<()> {
        p.plugin.net_gazer_plugin_plugin().call_on_tick(store, now_us)
    }

    fn record(event: &Event, _tags: &[Tag]) -> Option<()> {
        (!matches!(event, Event::Stats(_))).then_some(())
    }

    fn set_tags(_record: &mut (), _tags: &[Tag]) {}

    fn on_event(
        p: &Plugin,
        store: &mut Store,
        item: &mut event::Tagged,
        _record: &(),
    ) -> wasmtime::Result<super::Verdict> {
        let mut items = [item];
        store.data_mut().current.enter(&mut items);
        let result = p.plugin.net_gazer_plugin_plugin().call_on_event(&mut *store);
        let current = &mut store.data_mut().current;
        current.leave(&mut items);
        Ok(verdict(result?, current.added(0)))
    }

    fn on_batch(
        p: &Plugin,
        store: &mut Store,
        items: &mut [&mut event::Tagged],
        _records: &[&()],
    ) -> wasmtime::Result<Vec<super::Verdict>> {
        let count = u32::try_from(items.len())?;
        store.data_mut().current.enter(items);
        let result = p.plugin.net_gazer_plugin_plugin().call_on_batch(&mut *store, count);
        let current = &mut store.data_mut().current;
        current.leave(items);
        Ok(result?
            .into_iter()
            .enumerate()
            .map(|(i, v)| verdict(v, current.added(i)))
            .collect())
    }

    fn instance(instance: &super::Instance) -> Option<&Plugin> {
        match instance {
            super::Instance::V0_3(p) => Some(p),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn records(records: &mut super::Records) -> &mut Vec<Option<()>> {
        &mut records.v0_3
    }
}

#[cfg(test)]
mod tests;

/// The networks of a declared interest; a prefix longer than its address
/// refuses the plugin.
fn networks(list: Vec<types::IpNetwork>) -> wasmtime::Result<Vec<ipnet::IpNet>> {
    // The length is checked with the other lists (`Interest::check`).
    list.into_iter()
        .map(|n| {
            let addr = match n.addr {
                types::IpAddress::Ipv4(bits) => IpAddr::from(std::net::Ipv4Addr::from_bits(bits)),
                types::IpAddress::Ipv6((high, low)) => IpAddr::from(std::net::Ipv6Addr::from_bits(
                    (u128::from(high) << 64) | u128::from(low),
                )),
            };
            ipnet::IpNet::new(addr, n.prefix).map(|net| net.trunc()).map_err(|_| {
                wasmtime::format_err!(
                    "the declared interest has the network {addr}/{}: a prefix longer than the address",
                    n.prefix
                )
            })
        })
        .collect()
}
