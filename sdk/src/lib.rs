//! Write [net-gazer](https://github.com/net-gazer/net-gazer) plugins in Rust.
//!
//! A plugin is a WebAssembly component built for `wasm32-wasip2` that the
//! sensor loads from its plugin directory. Every event (handshake, flow,
//! scan, route) passes through the plugins in order; each returns a
//! [`Verdict`]: keep the event, drop it, or keep it with tags added that
//! later plugins and the outputs see.
//!
//! Implement [`Plugin`] (only the events you want: the others have default
//! methods) and export it with [`export_plugin!`]:
//!
//! ```no_run
//! use net_gazer_sdk::{export_plugin, Config, EventKind, Handshake, Info, Plugin, Verdict};
//!
//! #[derive(serde::Deserialize)]
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
//!     fn handshake(&mut self, event: &Handshake) -> Verdict {
//!         match event.rtt_last_syn_us {
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
//! `cdylib`), copy `target/wasm32-wasip2/release/<name>.wasm` into
//! `/etc/net-gazer/plugins/`, and send the daemon SIGHUP. The plugin's name
//! in the configuration (`[plugins.<name>]`) is the file name without
//! `.wasm`. `docs/plugins.md` in the repository has the whole story.

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

pub use bindings::net_gazer::plugin::host;
pub use bindings::net_gazer::plugin::types::{
    Direction, Event, EventKind, Flow, FlowEnd, Handshake, Hop, HttpRequest, HttpResponse, Info, IpAddress, Level,
    Outcome, Route, Scan, ScanPhase, ScanType, Side, Tag, TraceProtocol, TraceStyle, Verdict,
};

/// The contract version this SDK builds plugins for.
pub const CONTRACT_VERSION: &str = "0.2.0";

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

/// `192.0.2.1`, `2001:db8::1`.
impl std::fmt::Display for IpAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::net::IpAddr::from(*self).fmt(f)
    }
}

impl Handshake {
    /// The other end as seen from the local networks: the client of an
    /// inbound connection, the server otherwise.
    pub fn remote_ip(&self) -> IpAddress {
        match self.direction {
            Direction::Inbound => self.client_ip,
            _ => self.server_ip,
        }
    }
}

impl Flow {
    /// The other end as seen from the local networks (see
    /// [`Handshake::remote_ip`]).
    pub fn remote_ip(&self) -> IpAddress {
        match self.direction {
            Direction::Inbound => self.client_ip,
            _ => self.server_ip,
        }
    }
}

/// A plugin. `info` and `init` are required; every event method defaults to
/// [`Verdict::Keep`], so implement only the kinds you asked for in `info`.
pub trait Plugin: Sized + 'static {
    /// Name, version, the event kinds to receive, batch or per event.
    fn info() -> Info;

    /// Builds the plugin from its table in net-gazer.toml. An error refuses
    /// the configuration: the daemon logs it and runs without the plugin.
    fn init(config: Config) -> Result<Self, String>;

    fn handshake(&mut self, _event: &Handshake) -> Verdict {
        Verdict::Keep
    }

    fn flow(&mut self, _event: &Flow) -> Verdict {
        Verdict::Keep
    }

    fn scan(&mut self, _event: &Scan) -> Verdict {
        Verdict::Keep
    }

    fn route(&mut self, _event: &Route) -> Verdict {
        Verdict::Keep
    }

    /// Several events at once, when `info` asked for batches. The default
    /// calls the per-event methods.
    fn batch(&mut self, events: &[Event]) -> Vec<Verdict> {
        events
            .iter()
            .map(|event| match event {
                Event::Handshake(e) => self.handshake(e),
                Event::Flow(e) => self.flow(e),
                Event::Scan(e) => self.scan(e),
                Event::Route(e) => self.route(e),
            })
            .collect()
    }

    /// About once a second.
    fn on_tick(&mut self, _now_us: i64) {}
}

impl EventKind {
    /// Every kind: for plugins that want them all.
    pub const ALL: [EventKind; 4] = [EventKind::Handshake, EventKind::Flow, EventKind::Scan, EventKind::Route];
}

impl Info {
    /// A plugin that wants no events yet; add them with [`Info::wants`].
    ///
    /// It is called in batches: [`Plugin::batch`], whose default calls the
    /// per-event methods in turn, takes up to a few hundred events at once,
    /// which halves the cost of crossing into the plugin. Events are not
    /// held back for it: a batch is whatever the sensor has at hand.
    pub fn new(name: &str, version: &str) -> Info {
        Info {
            name: name.to_string(),
            version: version.to_string(),
            wants: Vec::new(),
            batch: true,
        }
    }

    pub fn wants(mut self, kinds: &[EventKind]) -> Info {
        self.wants.extend_from_slice(kinds);
        self
    }

    /// Ask for [`Plugin::batch`] calls (the default).
    pub fn batched(mut self) -> Info {
        self.batch = true;
        self
    }

    /// Ask for one call per event instead of batches.
    pub fn per_event(mut self) -> Info {
        self.batch = false;
        self
    }
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

/// Tags an event already carries (from earlier plugins).
pub trait Tagged {
    fn tags(&self) -> &[Tag];

    /// The value of the tag `key`, if an earlier plugin set it.
    fn tag(&self, key: &str) -> Option<&str> {
        self.tags()
            .iter()
            .rev()
            .find(|t| t.key == key)
            .map(|t| t.value.as_str())
    }
}

macro_rules! tagged {
    ($($t:ty),*) => {$(
        impl Tagged for $t {
            fn tags(&self) -> &[Tag] {
                &self.tags
            }
        }
    )*};
}
tagged!(Handshake, Flow, Scan, Route);

impl Tagged for Event {
    fn tags(&self) -> &[Tag] {
        match self {
            Event::Handshake(e) => &e.tags,
            Event::Flow(e) => &e.tags,
            Event::Scan(e) => &e.tags,
            Event::Route(e) => &e.tags,
        }
    }
}

/// The plugin's table from net-gazer.toml (`[plugins.<name>]`), grant keys
/// (`dirs`, `http_allow`, ...) included.
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

    /// The table as your own `serde::Deserialize` type; the error names the
    /// key that did not fit.
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, String> {
        serde_json::from_value(self.value.clone()).map_err(|e| format!("configuration: {e}"))
    }

    pub fn get(&self, key: &str) -> Option<&serde_json::Value> {
        self.value.get(key)
    }

    pub fn json(&self) -> &serde_json::Value {
        &self.value
    }
}

/// Logging through the daemon's log, prefixed with the plugin's name.
pub mod log {
    use std::cell::Cell;

    pub use crate::bindings::net_gazer::plugin::host::log;
    pub use crate::Level;

    thread_local! {
        // The daemon's log level is fixed while it runs: ask once per level
        // and tick, not per event (a host call costs a few hundred ns).
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
        let known = crate::bindings::net_gazer::plugin::host::log_enabled(level);
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

/// Counters and gauges shown per plugin in the daemon's stats.
pub mod metrics {
    pub use crate::bindings::net_gazer::plugin::host::{counter_add, gauge_set};
}

/// HTTP, to the hosts the operator allowed (`http_allow`).
pub mod http {
    use crate::{HttpRequest, HttpResponse};

    /// `POST url` with a body; the error says why nothing was sent or what
    /// failed.
    pub fn post(url: &str, content_type: &str, body: Vec<u8>) -> Result<HttpResponse, String> {
        crate::host::http_send(&HttpRequest {
            method: "POST".into(),
            url: url.into(),
            headers: vec![("content-type".into(), content_type.into())],
            body,
        })
    }

    pub fn get(url: &str) -> Result<HttpResponse, String> {
        crate::host::http_send(&HttpRequest {
            method: "GET".into(),
            url: url.into(),
            headers: Vec::new(),
            body: Vec::new(),
        })
    }
}

#[doc(hidden)]
pub mod __private {
    //! What [`export_plugin!`](crate::export_plugin) expands to.
    use super::*;
    use crate::bindings::exports::net_gazer::plugin::plugin::Guest;

    thread_local! {
        // A component instance is single-threaded: one plugin value, made by
        // `init`, lives here until the host drops the instance.
        static STATE: RefCell<Option<Box<dyn std::any::Any>>> = const { RefCell::new(None) };
    }

    fn with<P: Plugin, R>(default: R, f: impl FnOnce(&mut P) -> R) -> R {
        STATE.with(|s| match s.borrow_mut().as_mut().and_then(|b| b.downcast_mut::<P>()) {
            Some(p) => f(p),
            None => default,
        })
    }

    pub struct Adapter<P>(std::marker::PhantomData<P>);

    impl<P: Plugin> Guest for Adapter<P> {
        fn describe() -> Info {
            P::info()
        }

        fn init(config: String) -> Result<(), String> {
            let plugin = P::init(Config::from_json(&config)?)?;
            STATE.with(|s| *s.borrow_mut() = Some(Box::new(plugin)));
            Ok(())
        }

        fn on_handshake(event: Handshake) -> Verdict {
            with::<P, _>(Verdict::Keep, |p| p.handshake(&event))
        }

        fn on_flow(event: Flow) -> Verdict {
            with::<P, _>(Verdict::Keep, |p| p.flow(&event))
        }

        fn on_scan(event: Scan) -> Verdict {
            with::<P, _>(Verdict::Keep, |p| p.scan(&event))
        }

        fn on_route(event: Route) -> Verdict {
            with::<P, _>(Verdict::Keep, |p| p.route(&event))
        }

        fn on_batch(events: Vec<Event>) -> Vec<Verdict> {
            let n = events.len();
            with::<P, _>(vec![Verdict::Keep; n], |p| p.batch(&events))
        }

        fn on_tick(now_us: i64) {
            crate::log::forget_levels();
            with::<P, _>((), |p| p.on_tick(now_us))
        }
    }
}

/// Exports a [`Plugin`] implementation as the component's `plugin`
/// interface. Use it once, in the crate root of a `cdylib`.
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        type __NetGazerAdapter = $crate::__private::Adapter<$plugin>;
        $crate::bindings::export_bindings!(__NetGazerAdapter with_types_in $crate::bindings);
    };
}
