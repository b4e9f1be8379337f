//! The getters of contract 0.3 against the JSON the sensor writes for the
//! same event: every field of the schema, read through the host functions
//! a plugin calls, is the value of the same key in the event's JSON.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::*;
use crate::plugin::chain::tests::{handshake, scan};
use crate::plugin::metrics::PluginMetrics;
use crate::plugin::store::Grants;

fn state() -> State {
    let grants = Grants {
        dirs: Vec::new(),
        http_allow: Vec::new(),
        memory_bytes: 1 << 20,
        http_timeout: Duration::from_secs(1),
    };
    State::new("test".into(), &grants, Arc::new(PluginMetrics::default())).unwrap()
}

/// A value of this contract as the sensor's JSON writes it.
trait Json {
    fn json(&self) -> Value;
}

macro_rules! number {
    ($($t:ty),*) => {$(
        impl Json for $t {
            fn json(&self) -> Value {
                json!(self)
            }
        }
    )*};
}
number!(u8, u16, u32, u64, i64, f64, bool, String);

impl<T: Json> Json for Option<T> {
    fn json(&self) -> Value {
        self.as_ref().map_or(Value::Null, Json::json)
    }
}

impl Json for types::IpAddress {
    fn json(&self) -> Value {
        let ip: IpAddr = match *self {
            types::IpAddress::Ipv4(v4) => std::net::Ipv4Addr::from_bits(v4).into(),
            types::IpAddress::Ipv6((hi, lo)) => {
                std::net::Ipv6Addr::from_bits((u128::from(hi) << 64) | u128::from(lo)).into()
            }
        };
        json!(ip.to_string())
    }
}

/// Enums: the case's name, `snake_case` as in JSON.
macro_rules! case_name {
    ($($t:ident),*) => {$(
        impl Json for types::$t {
            fn json(&self) -> Value {
                let camel = format!("{self:?}");
                let camel = camel.rsplit("::").next().unwrap_or(&camel);
                let mut snake = String::new();
                for (i, c) in camel.chars().enumerate() {
                    if c.is_uppercase() && i > 0 {
                        snake.push('_');
                    }
                    snake.push(c.to_ascii_lowercase());
                }
                json!(snake)
            }
        }
    )*};
}
case_name!(
    Direction,
    Outcome,
    Side,
    FlowEnd,
    ScanType,
    ScanPhase,
    TraceProtocol,
    TraceStyle
);

/// Lists: VLAN ids as JSON writes them (`100.200`, left out when empty)
/// are compared by the caller; other lists element by element.
impl<T: Json> Json for Vec<T> {
    fn json(&self) -> Value {
        Value::Array(self.iter().map(Json::json).collect())
    }
}

/// Every getter of `$interface` compared with the key of its field in
/// `$json`.
macro_rules! compare_all {
    ({ $interface:ident, $state:expr, $json:expr } $($field:ident : $ty:ty,)*) => {{
        use contract::$interface::Host as _;
        let mut compared = Vec::new();
        $(
            let got = $state.$field().unwrap().json();
            let key = stringify!($field);
            let want = $json.get(key).cloned().unwrap_or(Value::Null);
            let want = match (key, want) {
                // VLANs: "100.200" in JSON, left out when empty.
                ("vlan", Value::Null) => json!([]),
                ("vlan", Value::String(s)) => {
                    Value::Array(s.split('.').map(|id| json!(id.parse::<u16>().unwrap())).collect())
                }
                (_, w) => w,
            };
            assert_eq!(got, want, "{}.{key}", stringify!($interface));
            compared.push(key);
        )*
        compared
    }};
}

#[test]
fn every_handshake_getter_reads_what_the_json_says() {
    for i in 0..12 {
        let mut item = handshake(i);
        let json = serde_json::to_value(&item.event).unwrap();
        let mut s = state();
        s.current.enter(&mut [&mut item]);
        let compared = net_gazer_core::handshake_fields!(compare_all { handshake, s, json });
        assert_eq!(compared.len(), event::Handshake::FIELDS.len());
    }
}

#[test]
fn every_scan_getter_reads_what_the_json_says() {
    let mut item = scan();
    let json = serde_json::to_value(&item.event).unwrap();
    let mut s = state();
    s.current.enter(&mut [&mut item]);
    let compared = net_gazer_core::scan_fields!(compare_all { scan, s, json });
    assert_eq!(compared.len(), event::Scan::FIELDS.len());
}

#[test]
fn a_getter_of_another_kind_traps_naming_itself_and_the_kind() {
    use contract::flow::Host as _;
    let mut s = state();
    let e = contract::handshake::Host::server_port(&mut s).unwrap_err().to_string();
    assert_eq!(e, "`handshake.server_port` called with no current event");
    let mut item = handshake(1);
    s.current.enter(&mut [&mut item]);
    assert_eq!(contract::handshake::Host::server_port(&mut s).unwrap(), 443);
    let e = s.bytes_c2s().unwrap_err().to_string();
    assert_eq!(e, "`flow.bytes_c2s` called on a handshake event");
}

#[test]
fn tags_are_set_on_the_selected_event_within_the_limits() {
    use contract::event::Host as _;
    let mut s = state();
    let (mut first, mut second) = (handshake(0), scan());
    second.set(Tag {
        key: "before".into(),
        value: "0".into(),
    });
    let mut items = [&mut first, &mut second];
    s.current.enter(&mut items);
    assert_eq!(s.kind().unwrap(), types::EventKind::Handshake);
    s.set_tag("a".into(), "1".into()).unwrap();
    assert!(s.select(1).unwrap());
    assert_eq!(s.kind().unwrap(), types::EventKind::Scan);
    assert!(!s.select(2).unwrap(), "past the end");
    assert_eq!(
        s.kind().unwrap(),
        types::EventKind::Scan,
        "nothing changes past the end"
    );
    assert_eq!(s.tag("before".into()).unwrap().as_deref(), Some("0"));
    s.set_tag("b".into(), "2".into()).unwrap();
    s.set_tag("b".into(), "3".into()).unwrap();
    s.set_tag("before".into(), "1".into()).unwrap();
    assert_eq!(s.tag("b".into()).unwrap().as_deref(), Some("3"));
    assert_eq!(s.tag("before".into()).unwrap().as_deref(), Some("1"));
    assert_eq!(s.tags().unwrap().len(), 2, "`before` replaced, `b` added");
    assert!(s.set_tag(String::new(), "x".into()).is_err(), "an empty key");
    assert!(s.set_tag("k".into(), "v".repeat(MAX_VALUE + 1)).is_err());
    for i in 2..MAX_TAGS {
        s.set_tag(format!("k{i}"), "v".into()).unwrap();
    }
    let e = s.set_tag("one-more".into(), "v".into()).unwrap_err().to_string();
    assert!(e.contains("at most 32 tags"), "{e}");
    s.set_tag("b".into(), "4".into()).unwrap();
    s.current.leave(&mut items);
    // The events are back as they were; the tags set are apart.
    assert_eq!(first.tags, Vec::<Tag>::new());
    assert_eq!(second.tags.len(), 1);
    assert!(matches!(first.event, Event::Handshake(_)) && matches!(second.event, Event::Scan(_)));
    let tag = |k: &str, v: &str| Tag {
        key: k.into(),
        value: v.into(),
    };
    assert_eq!(s.current.added(0), vec![tag("a", "1")]);
    let added = s.current.added(1);
    assert_eq!(added[..2], [tag("b", "4"), tag("before", "1")]);
    assert_eq!(added.len(), MAX_TAGS);
    assert!(s.kind().is_err(), "no current event after the call");
}

#[test]
fn the_contract_links() {
    let engine = wasmtime::Engine::default();
    let mut linker = wasmtime::component::Linker::<State>::new(&engine);
    SensorPlugin::add_to_linker::<State, wasmtime::component::HasSelf<State>>(&mut linker, |s| s).unwrap();
}
