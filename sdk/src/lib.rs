//! Write [net-gazer](https://github.com/net-gazer/net-gazer) plugins in Rust
//! (contract 0.3).
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2` that the
//! sensor loads from its plugin directory. A **filter** sees every event
//! (handshake, flow, scan, route) in the chain and returns a [`Verdict`]:
//! keep it, drop it, or keep it with tags added that later plugins and the
//! outputs see. An **exporter** gets the events that passed the chain, on
//! a thread of its own, and sends them somewhere.
//!
//! A plugin is called with nothing: it reads the fields it needs from the
//! current event through the getters of [`handshake`], [`flow`], [`scan`]
//! and [`route`] (one function per field of `docs/events.md`), and pays
//! only for those. A getter of another kind than the event's traps the
//! call; the per-kind methods of [`Plugin`] are only called for their kind.
//!
//! ```no_run
//! use net_gazer_sdk::{export_plugin, handshake, Config, Event, EventKind, Info, Plugin, Verdict};
//!
//! #[derive(serde::Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings {
//!     /// Tag handshakes slower than this.
//!     threshold_ms: f64,
//! }
//!
//! struct Slow {
//!     threshold_us: f64,
//! }
//!
//! impl Plugin for Slow {
//!     fn info() -> Info {
//!         Info::new("slow", env!("CARGO_PKG_VERSION")).wants(&[EventKind::Handshake])
//!     }
//!
//!     fn init(config: Config) -> Result<Self, String> {
//!         let settings: Settings = config.parse()?;
//!         Ok(Slow { threshold_us: settings.threshold_ms * 1000.0 })
//!     }
//!
//!     fn handshake(&mut self, _event: &Event) -> Verdict {
//!         match handshake::rtt_last_syn_us() {
//!             Some(rtt) if rtt > self.threshold_us => Verdict::tag("slow", "true"),
//!             _ => Verdict::Keep,
//!         }
//!     }
//! }
//!
//! export_plugin!(Slow);
//! ```
//!
//! Build it with `cargo build --release --target wasm32-wasip2` (crate type
//! `cdylib`), check it with `net-gazer plugins check target/wasm32-wasip2/release/slow.wasm`,
//! try it on a capture with `net-gazer replay` (`plugins/sample.pcap` in
//! the repository), copy it into `/etc/net-gazer/plugins/`, and send the
//! daemon SIGHUP. The
//! plugin's name in the configuration (`[plugins.<name>]`) is the file name
//! without `.wasm`. `docs/plugins.md` in the repository has the whole story.
//!
//! Built for another target than `wasm32` (`cargo test` of a plugin's own
//! logic), the getters and host functions compile but panic when called:
//! test what depends on events by replaying a capture through the real
//! component.

use std::cell::RefCell;

pub mod bindings {
    //! The generated bindings of `wit/net-gazer-plugin.wit`.
    wit_bindgen::generate!({
        path: "wit",
        world: "sensor-plugin",
        pub_export_macro: true,
        export_macro_name: "export_bindings",
        default_bindings_module: "net_gazer_sdk::bindings",
        additional_derives: [PartialEq],
    });
}

/// The current event's fields, when it is a flow.
#[cfg(target_arch = "wasm32")]
pub use bindings::net_gazer::plugin::flow;
/// The current event's fields, when it is a handshake: `handshake::server_port()`.
#[cfg(target_arch = "wasm32")]
pub use bindings::net_gazer::plugin::handshake;
/// The current event's fields, when it is a route.
#[cfg(target_arch = "wasm32")]
pub use bindings::net_gazer::plugin::route;
/// The current event's fields, when it is a scan.
#[cfg(target_arch = "wasm32")]
pub use bindings::net_gazer::plugin::scan;
pub use bindings::net_gazer::plugin::types::{
    Direction, EventKind, FlowEnd, Hop, Info, Interest, IpAddress, IpNetwork, Level, Outcome, Role, ScanPhase,
    ScanType, Side, Tag, TraceProtocol, TraceStyle,
};
/// Natively, the getters read the event of [`testing::run`].
#[cfg(not(target_arch = "wasm32"))]
pub use testing::{flow, handshake, route, scan};

#[cfg(target_arch = "wasm32")]
use bindings::net_gazer::plugin::event as current;
#[cfg(not(target_arch = "wasm32"))]
use testing::current;

/// The contract version this SDK builds plugins for.
pub const CONTRACT_VERSION: &str = "0.3.0";

impl From<IpAddress> for std::net::IpAddr {
    fn from(a: IpAddress) -> std::net::IpAddr {
        match a {
            IpAddress::Ipv4(bits) => std::net::Ipv4Addr::from_bits(bits).into(),
            IpAddress::Ipv6((high, low)) => {
                std::net::Ipv6Addr::from_bits((u128::from(high) << 64) | u128::from(low)).into()
            }
        }
    }
}

impl From<std::net::IpAddr> for IpAddress {
    fn from(a: std::net::IpAddr) -> IpAddress {
        match a {
            std::net::IpAddr::V4(v4) => IpAddress::Ipv4(v4.to_bits()),
            std::net::IpAddr::V6(v6) => {
                let bits = v6.to_bits();
                IpAddress::Ipv6(((bits >> 64) as u64, bits as u64))
            }
        }
    }
}

impl IpAddress {
    /// The address as the standard library's type.
    pub fn ip(self) -> std::net::IpAddr {
        self.into()
    }
}

impl IpNetwork {
    /// `"192.0.2.0/24"`, `"2001:db8::/32"`; the error says what is wrong.
    pub fn parse(text: &str) -> Result<IpNetwork, String> {
        let (addr, prefix) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a network (address/prefix)"))?;
        let addr: std::net::IpAddr = addr.parse().map_err(|e| format!("{text:?}: {e}"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix
            .parse::<u8>()
            .ok()
            .filter(|p| *p <= max)
            .ok_or_else(|| format!("{text:?}: the prefix is not 0 to {max}"))?;
        Ok(IpNetwork {
            addr: addr.into(),
            prefix,
        })
    }
}

/// `192.0.2.1`, `2001:db8::1`.
impl std::fmt::Display for IpAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::net::IpAddr::from(*self).fmt(f)
    }
}

/// What a filter decided about the current event.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Keep,
    Drop,
    /// Keep, with these tags added (a tag whose key is already there
    /// replaces its value).
    Tag(Vec<Tag>),
}

impl Verdict {
    /// Keep the event with one tag added.
    pub fn tag(key: impl Into<String>, value: impl Into<String>) -> Verdict {
        Verdict::Tag(vec![Tag::new(key, value)])
    }
}

impl Tag {
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> Tag {
        Tag {
            key: key.into(),
            value: value.into(),
        }
    }
}

/// The event being handled. Its fields are read through the getters of
/// its kind's module ([`handshake`], [`flow`], [`scan`], [`route`]); this
/// value gives what every kind has.
#[derive(Debug)]
pub struct Event {
    _current: (),
}

impl Event {
    pub fn kind(&self) -> EventKind {
        current::kind()
    }

    /// The value of tag `key`, set by the sensor or an earlier plugin.
    pub fn tag(&self, key: &str) -> Option<String> {
        current::tag(key)
    }

    /// Every tag, in the order they were added.
    pub fn tags(&self) -> Vec<Tag> {
        current::tags()
    }

    /// Adds a tag now (or replaces the value of `key`); a filter may also
    /// return [`Verdict::Tag`].
    pub fn set_tag(&self, key: &str, value: &str) {
        current::set_tag(key, value)
    }

    /// The other end as seen from the local networks: the client of an
    /// inbound handshake or flow and the server otherwise; the source of a
    /// scan; the destination of a route.
    pub fn remote_ip(&self) -> IpAddress {
        match current::kind() {
            EventKind::Handshake => match handshake::direction() {
                Direction::Inbound => handshake::client_ip(),
                _ => handshake::server_ip(),
            },
            EventKind::Flow => match flow::direction() {
                Direction::Inbound => flow::client_ip(),
                _ => flow::server_ip(),
            },
            EventKind::Scan => scan::src_ip(),
            EventKind::Route => route::dst_ip(),
        }
    }
}

/// A filter. `info` and `init` are required; every event method defaults
/// to [`Verdict::Keep`], so implement only the kinds you asked for in
/// `info`.
pub trait Plugin: Sized + 'static {
    /// Name, version, the event kinds to receive, the interest, batch or
    /// per event.
    fn info() -> Info;

    /// Builds the plugin from its table in net-gazer.toml. An error refuses
    /// the configuration: the daemon logs it and runs without the plugin.
    fn init(config: Config) -> Result<Self, String>;

    /// The interest once configured, when it depends on the configuration
    /// (the daemon asks after `init`): it replaces the one of `info`;
    /// `None` keeps that.
    fn interest(&self) -> Option<Interest> {
        None
    }

    fn handshake(&mut self, _event: &Event) -> Verdict {
        Verdict::Keep
    }

    fn flow(&mut self, _event: &Event) -> Verdict {
        Verdict::Keep
    }

    fn scan(&mut self, _event: &Event) -> Verdict {
        Verdict::Keep
    }

    fn route(&mut self, _event: &Event) -> Verdict {
        Verdict::Keep
    }

    /// About once a second, and before a reload or a stop.
    fn on_tick(&mut self, _now_us: i64) {}
}

/// An exporter: gets the events that passed the chain (of the kinds and
/// interest of its `info`), on its own thread with a bounded queue, so a
/// slow destination never holds up the sensor. Buffer in `export` and send
/// in `flush`.
pub trait Exporter: Sized + 'static {
    /// As [`Plugin::info`]; [`export_exporter!`] sets the role.
    fn info() -> Info;

    fn init(config: Config) -> Result<Self, String>;

    /// See [`Plugin::interest`].
    fn interest(&self) -> Option<Interest> {
        None
    }

    /// One event that passed the chain.
    fn export(&mut self, event: &Event);

    /// About once a second, and before a reload or a stop: send what is
    /// buffered.
    fn flush(&mut self, _now_us: i64) {}
}

impl EventKind {
    /// Every kind: for plugins that want them all.
    pub const ALL: [EventKind; 4] = [EventKind::Handshake, EventKind::Flow, EventKind::Scan, EventKind::Route];
}

impl Info {
    /// A filter that wants no events yet (add them with [`Info::wants`]),
    /// with no interest beyond the kinds, called in batches.
    ///
    /// Batches take up to a few hundred events per call into the plugin,
    /// which halves the cost of crossing; events are not held back for
    /// them: a batch is whatever the sensor has at hand.
    pub fn new(name: &str, version: &str) -> Info {
        Info {
            name: name.to_string(),
            version: version.to_string(),
            role: Role::Filter,
            wants: Vec::new(),
            interest: Interest::any(),
            batch: true,
        }
    }

    pub fn wants(mut self, kinds: &[EventKind]) -> Info {
        self.wants.extend_from_slice(kinds);
        self
    }

    /// The events wanted beyond their kind (see [`Interest`]): the daemon
    /// does not call the plugin for the others.
    pub fn interest(mut self, interest: Interest) -> Info {
        self.interest = interest;
        self
    }

    /// [`Interest::server_ports`] of this info's interest.
    pub fn server_ports(self, ports: &[u16]) -> Info {
        let i = self.interest.clone().server_ports(ports);
        self.interest(i)
    }

    /// [`Interest::directions`] of this info's interest.
    pub fn directions(self, directions: &[Direction]) -> Info {
        let i = self.interest.clone().directions(directions);
        self.interest(i)
    }

    /// [`Interest::outcomes`] of this info's interest.
    pub fn outcomes(self, outcomes: &[Outcome]) -> Info {
        let i = self.interest.clone().outcomes(outcomes);
        self.interest(i)
    }

    /// Called in batches (the default).
    pub fn batched(mut self) -> Info {
        self.batch = true;
        self
    }

    /// One call per event instead of batches.
    pub fn per_event(mut self) -> Info {
        self.batch = false;
        self
    }
}

impl Interest {
    /// Any event of the wanted kinds.
    pub fn any() -> Interest {
        Interest {
            server_ports: Vec::new(),
            directions: Vec::new(),
            outcomes: Vec::new(),
            local_networks: Vec::new(),
            remote_networks: Vec::new(),
        }
    }

    /// Only events whose local end is in one of these networks (the
    /// client of an outbound, internal or transit handshake or flow, the
    /// server of an inbound one; a scan's target; a route's source).
    pub fn local_networks(mut self, networks: &[IpNetwork]) -> Interest {
        self.local_networks.extend_from_slice(networks);
        self
    }

    /// Only events whose remote end is in one of these networks (see
    /// [`Event::remote_ip`]).
    pub fn remote_networks(mut self, networks: &[IpNetwork]) -> Interest {
        self.remote_networks.extend_from_slice(networks);
        self
    }

    /// Only handshakes and flows to these server ports (other kinds are
    /// not narrowed by it). At most 1024.
    pub fn server_ports(mut self, ports: &[u16]) -> Interest {
        self.server_ports.extend_from_slice(ports);
        self
    }

    /// Only handshakes and flows of these directions.
    pub fn directions(mut self, directions: &[Direction]) -> Interest {
        self.directions.extend_from_slice(directions);
        self
    }

    /// Only handshakes of these outcomes.
    pub fn outcomes(mut self, outcomes: &[Outcome]) -> Interest {
        self.outcomes.extend_from_slice(outcomes);
        self
    }
}

/// The keys the daemon adds to every plugin's table (the grants).
const HOST_KEYS: [&str; 2] = ["dirs", "http_allow"];

/// The plugin's table from net-gazer.toml (`[plugins.<name>]`) with the
/// grants the daemon adds (`dirs`, `http_allow`).
#[derive(Clone, Debug, Default)]
pub struct Config {
    value: serde_json::Value,
}

impl Config {
    pub fn from_json(text: &str) -> Result<Config, String> {
        let value = if text.trim().is_empty() {
            serde_json::Value::Object(Default::default())
        } else {
            serde_json::from_str(text).map_err(|e| format!("configuration is not JSON: {e}"))?
        };
        Ok(Config { value })
    }

    /// The plugin's own keys (the grants left out) as your
    /// `serde::Deserialize` type. The error names the key path
    /// ("key `ports[0]`: invalid type: string \"x\", expected u16"); with
    /// `#[serde(deny_unknown_fields)]` a misspelt key is refused ("unknown
    /// field `tresh_ms`, expected `threshold_ms`") instead of silently
    /// ignored.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        let mut own = self.value.clone();
        if let Some(table) = own.as_object_mut() {
            for key in HOST_KEYS {
                table.remove(key);
            }
        }
        serde_path_to_error::deserialize(own).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                format!("configuration: {}", e.inner())
            } else {
                format!("configuration: key `{path}`: {}", e.inner())
            }
        })
    }

    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.value.get(key)
    }

    /// The directories granted (`dirs`), canonical.
    pub fn dirs(&self) -> Vec<String> {
        self.strings("dirs")
    }

    /// The hosts HTTP may reach (`http_allow`).
    pub fn http_allow(&self) -> Vec<String> {
        self.strings("http_allow")
    }

    fn strings(&self, key: &str) -> Vec<String> {
        self.value
            .get(key)
            .and_then(|v| v.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    }

    pub fn json(&self) -> &serde_json::Value {
        &self.value
    }
}

/// Logging through the daemon's log, prefixed with the plugin's name.
pub mod log {
    use std::cell::Cell;

    #[cfg(target_arch = "wasm32")]
    pub use crate::bindings::net_gazer::plugin::host::log;
    pub use crate::Level;

    /// A line in the daemon's log (natively: kept for [`crate::testing::logs`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn log(level: Level, message: &str) {
        crate::testing::record(|r| r.logs.push((level, message.to_string())));
    }

    thread_local! {
        // The daemon's log level is fixed while it runs: ask once per level
        // and tick, not per event (a host call costs tens of ns).
        static ENABLED: Cell<[Option<bool>; 5]> = const { Cell::new([None; 5]) };
    }

    /// Whether the daemon would write a line at `level` (cached; the cache
    /// is refreshed every tick).
    pub fn log_enabled(level: Level) -> bool {
        let i = level as usize;
        let mut cache = ENABLED.with(Cell::get);
        if let Some(known) = cache[i] {
            return known;
        }
        #[cfg(target_arch = "wasm32")]
        let known = crate::bindings::net_gazer::plugin::host::log_enabled(level);
        #[cfg(not(target_arch = "wasm32"))]
        let known = true;
        cache[i] = Some(known);
        ENABLED.with(|c| c.set(cache));
        known
    }

    #[doc(hidden)]
    pub fn forget_levels() {
        ENABLED.with(|c| c.set([None; 5]));
    }

    /// `log!(Level::Info, "seen {} events", n)`: formats only when the
    /// daemon would write the line.
    #[macro_export]
    macro_rules! log {
        ($level:expr, $($arg:tt)+) => {{
            let level = $level;
            if $crate::log::log_enabled(level) {
                $crate::log::log(level, &::std::format!($($arg)+));
            }
        }};
    }
}

/// Counters and gauges shown per plugin in the daemon's stats and metrics.
pub mod metrics {
    #[cfg(target_arch = "wasm32")]
    pub use crate::bindings::net_gazer::plugin::host::{counter_add, gauge_set};

    /// Adds to a counter (natively: kept for [`crate::testing::counters`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn counter_add(name: &str, delta: u64) {
        crate::testing::record(|r| *r.counters.entry(name.to_string()).or_default() += delta as f64);
    }

    /// Sets a gauge (natively: kept for [`crate::testing::counters`]).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn gauge_set(name: &str, value: f64) {
        crate::testing::record(|r| {
            r.counters.insert(name.to_string(), value);
        });
    }
}

/// Built for the machine you develop on (`cargo test` of a plugin crate),
/// nothing calls a host: [`run`](testing::run) hands a plugin an event made
/// here (`testing::Handshake { server_port: 443, ..Default::default() }`,
/// one public field per getter) and the getters read it; `log!` and the
/// metrics are kept per thread for the test to look at.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use crate::{EventKind, Exporter, IpAddress, Level, Plugin, Tag, Verdict};

    // `Handshake`, `Flow`, `Scan`, `Route` (one field per getter, with
    // `Default`) and the getter modules `handshake`, `flow`, `scan` and
    // `route`, made by build.rs from the contract.
    include!(concat!(env!("OUT_DIR"), "/native.rs"));

    /// The value a field of a default event has.
    pub trait Fallback {
        fn fallback() -> Self;
    }

    macro_rules! fallback_default {
        ($($t:ty),*) => {$(
            impl Fallback for $t {
                fn fallback() -> Self {
                    Default::default()
                }
            }
        )*};
    }
    fallback_default!(u8, u16, u32, u64, i64, f64, bool, String);

    impl<T> Fallback for Option<T> {
        fn fallback() -> Self {
            None
        }
    }

    impl<T> Fallback for Vec<T> {
        fn fallback() -> Self {
            Vec::new()
        }
    }

    impl Fallback for IpAddress {
        fn fallback() -> Self {
            IpAddress::Ipv4(0)
        }
    }

    /// The event a native test hands a plugin.
    #[derive(Clone, Debug, PartialEq)]
    pub enum Current {
        Handshake(Handshake),
        Flow(Flow),
        Scan(Scan),
        Route(Route),
    }

    macro_rules! current_from {
        ($($k:ident),*) => {$(
            impl From<$k> for Current {
                fn from(e: $k) -> Current {
                    Current::$k(e)
                }
            }
        )*};
    }
    current_from!(Handshake, Flow, Scan, Route);

    impl Current {
        fn kind(&self) -> EventKind {
            match self {
                Current::Handshake(_) => EventKind::Handshake,
                Current::Flow(_) => EventKind::Flow,
                Current::Scan(_) => EventKind::Scan,
                Current::Route(_) => EventKind::Route,
            }
        }
    }

    thread_local! {
        static CURRENT: RefCell<Option<(Current, Vec<Tag>)>> = const { RefCell::new(None) };
    }

    fn with_current<R>(f: impl FnOnce(&Current) -> R) -> R {
        CURRENT.with(|c| match c.borrow().as_ref() {
            Some((e, _)) => f(e),
            None => panic!("no current event: call the plugin through net_gazer_sdk::testing::run"),
        })
    }

    fn wrong_kind(kind: &str, getter: &str) -> ! {
        let is = with_current(|e| e.kind());
        panic!("{kind}::{getter} called on a {is:?} event (the daemon traps the call)")
    }

    /// What `event` of the contract gives, natively.
    pub(crate) mod current {
        use super::CURRENT;
        use crate::{EventKind, Tag};

        pub fn kind() -> EventKind {
            super::with_current(|e| e.kind())
        }

        pub fn tag(key: &str) -> Option<String> {
            tags().into_iter().rev().find(|t| t.key == key).map(|t| t.value)
        }

        pub fn tags() -> Vec<Tag> {
            CURRENT.with(|c| c.borrow().as_ref().map(|(_, t)| t.clone()).unwrap_or_default())
        }

        pub fn set_tag(key: &str, value: &str) {
            CURRENT.with(|c| {
                if let Some((_, tags)) = c.borrow_mut().as_mut() {
                    match tags.iter_mut().find(|t| t.key == key) {
                        Some(t) => t.value = value.to_string(),
                        None => tags.push(Tag::new(key, value)),
                    }
                }
            })
        }

        pub fn select(_index: u32) -> bool {
            false
        }
    }

    /// Calls `plugin` on `event` as the daemon does (the method of its
    /// kind), with `tags` set by earlier plugins: its verdict, and the
    /// event's tags afterwards (a [`Verdict::Tag`] applied as the daemon
    /// applies it).
    pub fn run<P: Plugin>(plugin: &mut P, event: impl Into<Current>, tags: &[Tag]) -> (Verdict, Vec<Tag>) {
        let event = event.into();
        let kind = event.kind();
        CURRENT.with(|c| *c.borrow_mut() = Some((event, tags.to_vec())));
        let e = crate::Event { _current: () };
        let verdict = match kind {
            EventKind::Handshake => plugin.handshake(&e),
            EventKind::Flow => plugin.flow(&e),
            EventKind::Scan => plugin.scan(&e),
            EventKind::Route => plugin.route(&e),
        };
        if let Verdict::Tag(added) = &verdict {
            for t in added {
                current::set_tag(&t.key, &t.value);
            }
        }
        let after = CURRENT.with(|c| c.borrow_mut().take().map(|(_, t)| t).unwrap_or_default());
        (verdict, after)
    }

    /// Hands `event` to an exporter as the daemon does.
    pub fn export<E: Exporter>(exporter: &mut E, event: impl Into<Current>, tags: &[Tag]) {
        CURRENT.with(|c| *c.borrow_mut() = Some((event.into(), tags.to_vec())));
        exporter.export(&crate::Event { _current: () });
        CURRENT.with(|c| c.borrow_mut().take());
    }

    #[derive(Default)]
    pub(crate) struct Recorded {
        pub(crate) logs: Vec<(Level, String)>,
        pub(crate) counters: BTreeMap<String, f64>,
    }

    thread_local! {
        static RECORDED: RefCell<Recorded> = RefCell::new(Recorded::default());
    }

    pub(crate) fn record(f: impl FnOnce(&mut Recorded)) {
        RECORDED.with(|r| f(&mut r.borrow_mut()));
    }

    /// The lines logged on this thread since the last [`clear`].
    pub fn logs() -> Vec<(Level, String)> {
        RECORDED.with(|r| r.borrow().logs.clone())
    }

    /// The counters and gauges set on this thread since the last [`clear`]
    /// (one set of names, as in the daemon).
    pub fn counters() -> BTreeMap<String, f64> {
        RECORDED.with(|r| r.borrow().counters.clone())
    }

    pub fn clear() {
        RECORDED.with(|r| *r.borrow_mut() = Recorded::default());
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;

    #[test]
    fn natively_logs_and_counters_are_kept_for_the_test() {
        testing::clear();
        crate::log!(Level::Info, "seen {} events", 3);
        metrics::counter_add("slow", 2);
        metrics::counter_add("slow", 1);
        metrics::gauge_set("buffered", 7.5);
        assert_eq!(testing::logs(), vec![(Level::Info, "seen 3 events".to_string())]);
        assert_eq!(testing::counters().get("slow"), Some(&3.0));
        assert_eq!(testing::counters().get("buffered"), Some(&7.5));
    }

    #[test]
    fn natively_a_plugin_reads_the_event_a_test_hands_it() {
        struct P;
        impl Plugin for P {
            fn info() -> Info {
                Info::new("p", "0").wants(&[EventKind::Handshake])
            }
            fn init(_: Config) -> Result<Self, String> {
                Ok(P)
            }
            fn handshake(&mut self, e: &Event) -> Verdict {
                if handshake::server_port() != 443 {
                    return Verdict::Drop;
                }
                e.set_tag("seen", &e.tag("geo.country").unwrap_or_default());
                Verdict::tag("rtt", format!("{:?}", handshake::rtt_last_syn_us()))
            }
            // Reads a handshake's field from a flow: a mistake.
            fn flow(&mut self, _e: &Event) -> Verdict {
                let _ = handshake::server_port();
                Verdict::Keep
            }
        }
        let h = testing::Handshake {
            server_port: 443,
            rtt_last_syn_us: Some(2000.0),
            ..Default::default()
        };
        let (v, tags) = testing::run(&mut P, h.clone(), &[Tag::new("geo.country", "GB")]);
        assert_eq!(v, Verdict::tag("rtt", "Some(2000.0)"));
        let tags: Vec<(&str, &str)> = tags.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect();
        assert_eq!(tags, [("geo.country", "GB"), ("seen", "GB"), ("rtt", "Some(2000.0)")]);
        let other = testing::Handshake { server_port: 80, ..h };
        assert_eq!(testing::run(&mut P, other, &[]).0, Verdict::Drop);
        let wrong = std::panic::catch_unwind(|| testing::run(&mut P, testing::Flow::default(), &[]));
        assert!(wrong.is_err(), "a getter of another kind fails, as in the daemon");
    }

    #[test]
    fn config_errors_name_the_key_path_and_leave_the_grants_out() {
        #[derive(serde::Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct S {
            ports: Vec<u16>,
        }
        let c = |t: &str| Config::from_json(t).unwrap();
        let ok: S = c(r#"{"ports":[443],"dirs":["/x"],"http_allow":[]}"#).parse().unwrap();
        assert_eq!(ok.ports, [443]);
        assert_eq!(c(r#"{"dirs":["/x"]}"#).dirs(), ["/x"]);
        let e = c(r#"{"ports":["x"]}"#).parse::<S>().unwrap_err();
        assert!(e.contains("key `ports[0]`: invalid type"), "{e}");
        let e = c(r#"{"port":[1]}"#).parse::<S>().unwrap_err();
        assert!(e.contains("key `port`: unknown field `port`"), "{e}");
    }

    #[test]
    fn networks_parse_with_a_clear_error() {
        let n = IpNetwork::parse("192.0.2.0/24").unwrap();
        assert_eq!((n.addr, n.prefix), (IpAddress::Ipv4(0xc000_0200), 24));
        assert_eq!(IpNetwork::parse("2001:db8::/32").unwrap().prefix, 32);
        for (bad, why) in [
            ("192.0.2.0", "not a network"),
            ("192.0.2.0/33", "the prefix is not 0 to 32"),
            ("x/8", "invalid IP address syntax"),
        ] {
            let e = IpNetwork::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        let i = Interest::any().remote_networks(&[n]).server_ports(&[443]);
        assert_eq!((i.remote_networks.len(), i.server_ports.as_slice()), (1, &[443][..]));
    }

    #[test]
    fn addresses_convert_both_ways_and_print_as_json_does() {
        for text in ["192.0.2.1", "2001:db8::1"] {
            let ip: std::net::IpAddr = text.parse().unwrap();
            let a = IpAddress::from(ip);
            assert_eq!(a.to_string(), text);
            assert_eq!(a.ip(), ip);
        }
    }
}

#[doc(hidden)]
pub mod __private {
    //! What [`export_plugin!`](crate::export_plugin) and
    //! [`export_exporter!`](crate::export_exporter) expand to.
    use super::*;
    use crate::bindings::exports::net_gazer::plugin::plugin::{Guest, Verdict as Wit};

    thread_local! {
        // A component instance is single-threaded: one plugin value, made by
        // `init`, lives here until the host drops the instance.
        static STATE: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
    }

    fn with<P: 'static, R>(default: R, f: impl FnOnce(&mut P) -> R) -> R {
        STATE.with(|s| match s.borrow_mut().as_mut().and_then(|b| b.downcast_mut::<P>()) {
            Some(p) => f(p),
            None => default,
        })
    }

    /// `info` with the interest of the configured plugin, once there is one.
    fn describe<P: 'static>(mut info: Info, interest: impl FnOnce(&P) -> Option<Interest>) -> Info {
        if let Some(i) = with::<P, _>(None, |p| interest(p)) {
            info.interest = i;
        }
        info
    }

    fn store<P: 'static>(plugin: P) {
        STATE.with(|s| *s.borrow_mut() = Some(Box::new(plugin)));
    }

    /// The verdict on the current event, tags set through the host.
    fn answer(v: Verdict) -> Wit {
        match v {
            Verdict::Keep => Wit::Keep,
            Verdict::Drop => Wit::Drop,
            Verdict::Tag(tags) => {
                for t in &tags {
                    current::set_tag(&t.key, &t.value);
                }
                Wit::Keep
            }
        }
    }

    fn judge<P: Plugin>(p: &mut P) -> Verdict {
        let e = Event { _current: () };
        match current::kind() {
            EventKind::Handshake => p.handshake(&e),
            EventKind::Flow => p.flow(&e),
            EventKind::Scan => p.scan(&e),
            EventKind::Route => p.route(&e),
        }
    }

    /// Entry `i` of a batch made current, `f` called on it.
    fn each<R>(count: u32, mut f: impl FnMut() -> R) -> Vec<R> {
        (0..count).take_while(|i| current::select(*i)).map(|_| f()).collect()
    }

    pub struct Adapter<P>(std::marker::PhantomData<P>);

    impl<P: Plugin> Guest for Adapter<P> {
        fn describe() -> Info {
            describe::<P>(P::info(), P::interest)
        }

        fn init(config: String) -> Result<(), String> {
            store(P::init(Config::from_json(&config)?)?);
            Ok(())
        }

        fn on_event() -> Wit {
            answer(with::<P, _>(Verdict::Keep, judge))
        }

        fn on_batch(count: u32) -> Vec<Wit> {
            each(count, || answer(with::<P, _>(Verdict::Keep, judge)))
        }

        fn on_tick(now_us: i64) {
            crate::log::forget_levels();
            with::<P, _>((), |p| p.on_tick(now_us))
        }
    }

    pub struct ExporterAdapter<E>(std::marker::PhantomData<E>);

    impl<E: Exporter> Guest for ExporterAdapter<E> {
        fn describe() -> Info {
            let mut info = describe::<E>(E::info(), E::interest);
            info.role = Role::Exporter;
            info
        }

        fn init(config: String) -> Result<(), String> {
            store(E::init(Config::from_json(&config)?)?);
            Ok(())
        }

        fn on_event() -> Wit {
            with::<E, _>((), |e| e.export(&Event { _current: () }));
            Wit::Keep
        }

        fn on_batch(count: u32) -> Vec<Wit> {
            each(count, || {
                with::<E, _>((), |e| e.export(&Event { _current: () }));
                Wit::Keep
            })
        }

        fn on_tick(now_us: i64) {
            crate::log::forget_levels();
            with::<E, _>((), |e| e.flush(now_us))
        }
    }
}

/// Exports a [`Plugin`] implementation (a filter) as the component's
/// `plugin` interface. Use it once, in the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        type __NetGazerAdapter = $crate::__private::Adapter<$plugin>;
        $crate::bindings::export_bindings!(__NetGazerAdapter with_types_in $crate::bindings);
    };
}

/// Exports an [`Exporter`] implementation as the component's `plugin`
/// interface, with the role `exporter`.
#[macro_export]
macro_rules! export_exporter {
    ($exporter:ty) => {
        type __NetGazerAdapter = $crate::__private::ExporterAdapter<$exporter>;
        $crate::bindings::export_bindings!(__NetGazerAdapter with_types_in $crate::bindings);
    };
}
