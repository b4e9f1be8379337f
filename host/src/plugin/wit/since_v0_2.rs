//! Contract 0.2: a plugin gets whole records (every field of an event,
//! lowered into its memory by wasmtime's generated bindings). No strings:
//! addresses as numbers, VLANs as ids, a route's protocol and style as
//! enums. Superseded by 0.3, which runs faster: it lowers only the fields a
//! plugin reads.

mod records;

use wasmtime::component::InstancePre;
use wasmtime::Store;

use super::{Contract, Description, Interest, Verdict, Version};
use crate::config::Role;
use crate::event::{self, Tag, Tagged};
use crate::plugin::http::Request;
use crate::plugin::store::State;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "sensor-plugin",
});

use self::net_gazer::plugin as contract;
pub use self::net_gazer::plugin::types;

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

fn verdict(v: types::Verdict) -> Verdict {
    match v {
        types::Verdict::Keep => Verdict::Keep,
        types::Verdict::Drop => Verdict::Drop,
        types::Verdict::Tag(tags) => Verdict::Tag(
            tags.into_iter()
                .map(|t| Tag {
                    key: t.key,
                    value: t.value,
                })
                .collect(),
        ),
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

/// This version, as the chain uses it: every call through the generated
/// bindings.
pub struct V;

impl Contract for V {
    type Pre = SensorPluginPre<State>;
    type Instance = SensorPlugin;
    type Record = types::Event;

    fn pre(pre: InstancePre<State>) -> wasmtime::Result<Self::Pre> {
        SensorPluginPre::new(pre)
    }

    fn instantiate(pre: &Self::Pre, store: &mut Store<State>) -> wasmtime::Result<SensorPlugin> {
        pre.instantiate(store)
    }

    fn describe(p: &SensorPlugin, store: &mut Store<State>) -> wasmtime::Result<Description> {
        let info = p.net_gazer_plugin_plugin().call_describe(store)?;
        Ok(Description {
            name: info.name,
            version: info.version,
            wants: info.wants.into_iter().map(event_kind).collect(),
            batch: info.batch,
            interest: Interest::default(),
            role: Role::Filter,
        })
    }

    fn init(p: &SensorPlugin, store: &mut Store<State>, config: &str) -> wasmtime::Result<Result<(), String>> {
        p.net_gazer_plugin_plugin().call_init(store, config)
    }

    fn tick(p: &SensorPlugin, store: &mut Store<State>, now_us: i64) -> wasmtime::Result<()> {
        p.net_gazer_plugin_plugin().call_on_tick(store, now_us)
    }

    fn record(event: &event::Event, tags: &[Tag]) -> Option<types::Event> {
        records::record(event, tags)
    }

    fn set_tags(record: &mut types::Event, tags: &[Tag]) {
        records::set_tags(record, tags)
    }

    fn on_event(
        p: &SensorPlugin,
        store: &mut Store<State>,
        _item: &mut Tagged,
        record: &types::Event,
    ) -> wasmtime::Result<Verdict> {
        let g = p.net_gazer_plugin_plugin();
        let v = match record {
            types::Event::Handshake(e) => g.call_on_handshake(store, e),
            types::Event::Flow(e) => g.call_on_flow(store, e),
            types::Event::Scan(e) => g.call_on_scan(store, e),
            types::Event::Route(e) => g.call_on_route(store, e),
        }?;
        Ok(verdict(v))
    }

    fn on_batch(
        p: &SensorPlugin,
        store: &mut Store<State>,
        _items: &mut [&mut Tagged],
        records: &[&types::Event],
    ) -> wasmtime::Result<Vec<Verdict>> {
        // The generated call takes the records side by side: copied once.
        let records: Vec<types::Event> = records.iter().map(|r| (*r).clone()).collect();
        let verdicts = p.net_gazer_plugin_plugin().call_on_batch(store, &records)?;
        Ok(verdicts.into_iter().map(verdict).collect())
    }

    fn instance(instance: &super::Instance) -> Option<&SensorPlugin> {
        match instance {
            super::Instance::V0_2(p) => Some(p),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    fn records(records: &mut super::Records) -> &mut Vec<Option<types::Event>> {
        &mut records.v0_2
    }
}

impl contract::types::Host for State {}

impl From<contract::types::Level> for tracing::Level {
    fn from(level: contract::types::Level) -> tracing::Level {
        match level {
            contract::types::Level::Trace => tracing::Level::TRACE,
            contract::types::Level::Debug => tracing::Level::DEBUG,
            contract::types::Level::Info => tracing::Level::INFO,
            contract::types::Level::Warn => tracing::Level::WARN,
            contract::types::Level::Error => tracing::Level::ERROR,
        }
    }
}

impl contract::host::Host for State {
    fn log_enabled(&mut self, level: contract::types::Level) -> bool {
        State::log_enabled(level.into())
    }

    fn log(&mut self, level: contract::types::Level, message: String) {
        State::log(self, level.into(), message)
    }

    fn counter_add(&mut self, name: String, delta: u64) {
        self.metrics.counter_add(&name, delta);
    }

    fn gauge_set(&mut self, name: String, value: f64) {
        self.metrics.gauge_set(&name, value);
    }

    fn http_send(&mut self, r: contract::types::HttpRequest) -> Result<contract::types::HttpResponse, String> {
        let request = Request {
            method: r.method,
            url: r.url,
            headers: r.headers,
            body: r.body,
        };
        State::http_send(self, request).map(|r| contract::types::HttpResponse {
            status: r.status,
            headers: r.headers,
            body: r.body,
        })
    }
}
