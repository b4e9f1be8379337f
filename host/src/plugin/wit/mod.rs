//! The plugin contract, one module per version (Zed's `wit.rs` layout): a
//! host that grows the contract keeps loading plugins built against every
//! version it still lists here.
//!
//! A plugin's version is read from the name of the interface it exports
//! (`net-gazer:plugin/plugin@0.3.0`) before anything of it runs.

#[cfg(test)]
mod schema_tests;
pub mod since_v0_2;
pub mod since_v0_3;

use std::fmt;

use wasmtime::component::InstancePre;
use wasmtime::Store;

use super::store::State;
use crate::event::{self, EventKind, Tag};

/// The package and interface every plugin exports.
pub const EXPORT_PREFIX: &str = "net-gazer:plugin/plugin@";

/// A contract version.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl Version {
    pub fn parse(text: &str) -> Option<Version> {
        let mut parts = text.split('.').map(|p| p.parse::<u32>().ok());
        let v = Version {
            major: parts.next()??,
            minor: parts.next()??,
            patch: parts.next()??,
        };
        parts.next().is_none().then_some(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Which binding module runs a plugin of `version`: the same major and minor
/// (before 1.0, the minor is the breaking number, as in Cargo) and a patch
/// no newer than the host knows.
pub fn binding_for(version: Version) -> Option<Version> {
    SUPPORTED
        .iter()
        .copied()
        .find(|s| s.major == version.major && s.minor == version.minor && version.patch <= s.patch)
}

pub fn supported_list() -> String {
    SUPPORTED.iter().map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
}

/// What a plugin decided about an event, whatever its contract version.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    Keep,
    Drop,
    Tag(Vec<Tag>),
}

/// What a plugin says about itself (`describe`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    pub name: String,
    pub version: String,
    pub wants: Vec<EventKind>,
    pub batch: bool,
    /// Which events of the wanted kinds it wants (contract 0.3; any
    /// before).
    pub interest: Interest,
    /// Filter or exporter (contract 0.3; filter before).
    pub role: crate::config::Role,
}

/// The events a plugin wants beyond their kind: the chain does not call it
/// for the others. An empty list does not narrow; a condition on a field
/// an event kind does not have does not apply to that kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interest {
    /// The server's port (handshakes and flows).
    pub server_ports: Vec<u16>,
    /// Handshakes and flows.
    pub directions: Vec<event::Direction>,
    /// Handshakes.
    pub outcomes: Vec<event::Outcome>,
    /// The local end ([`local_end`]).
    pub local_networks: Vec<ipnet::IpNet>,
    /// The remote end ([`remote_end`]).
    pub remote_networks: Vec<ipnet::IpNet>,
}

/// The remote end of an event: the client of an inbound handshake or flow
/// and the server otherwise; a scan's source; a route's destination.
pub fn remote_end(e: &event::Event) -> Option<std::net::IpAddr> {
    match e {
        event::Event::Handshake(h) if h.direction == event::Direction::Inbound => Some(h.client_ip),
        event::Event::Handshake(h) => Some(h.server_ip),
        event::Event::Flow(f) if f.direction == event::Direction::Inbound => Some(f.client_ip),
        event::Event::Flow(f) => Some(f.server_ip),
        event::Event::Scan(s) => Some(s.src_ip),
        event::Event::Route(r) => Some(r.dst_ip),
        event::Event::Stats(_) => None,
    }
}

/// The local end of an event: the other end of [`remote_end`] (a scan's
/// target host, none for an address scan; a route's source).
pub fn local_end(e: &event::Event) -> Option<std::net::IpAddr> {
    match e {
        event::Event::Handshake(h) if h.direction == event::Direction::Inbound => Some(h.server_ip),
        event::Event::Handshake(h) => Some(h.client_ip),
        event::Event::Flow(f) if f.direction == event::Direction::Inbound => Some(f.server_ip),
        event::Event::Flow(f) => Some(f.client_ip),
        event::Event::Scan(s) => s.target_ip,
        event::Event::Route(r) => Some(r.src_ip),
        event::Event::Stats(_) => None,
    }
}

/// Entries a declared interest may have, per list: the chain matches them
/// on every event.
pub const MAX_INTEREST: usize = 1024;

impl Interest {
    /// Refused when a list is longer than [`MAX_INTEREST`].
    pub fn check(&self) -> Result<(), String> {
        let longest = self
            .server_ports
            .len()
            .max(self.directions.len())
            .max(self.outcomes.len())
            .max(self.local_networks.len())
            .max(self.remote_networks.len());
        if longest > MAX_INTEREST {
            return Err(format!(
                "the declared interest has a list of {longest} entries, more than {MAX_INTEREST}"
            ));
        }
        Ok(())
    }

    /// For people: "any", or "server ports 443; directions inbound".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        let list = |v: Vec<String>| v.join(", ");
        if !self.server_ports.is_empty() {
            parts.push(format!(
                "server ports {}",
                list(self.server_ports.iter().map(u16::to_string).collect())
            ));
        }
        if !self.directions.is_empty() {
            parts.push(format!(
                "directions {}",
                list(
                    self.directions
                        .iter()
                        .map(|d| format!("{d:?}").to_lowercase())
                        .collect()
                )
            ));
        }
        if !self.outcomes.is_empty() {
            parts.push(format!(
                "outcomes {}",
                list(self.outcomes.iter().map(|o| o.name().into()).collect())
            ));
        }
        for (what, nets) in [("local", &self.local_networks), ("remote", &self.remote_networks)] {
            if !nets.is_empty() {
                parts.push(format!(
                    "{what} networks {}",
                    list(nets.iter().map(|n| n.to_string()).collect())
                ));
            }
        }
        if parts.is_empty() {
            "any event of the wanted kinds".into()
        } else {
            parts.join("; ")
        }
    }

    pub fn is_any(&self) -> bool {
        self.server_ports.is_empty()
            && self.directions.is_empty()
            && self.outcomes.is_empty()
            && self.local_networks.is_empty()
            && self.remote_networks.is_empty()
    }

    pub fn matches(&self, e: &event::Event) -> bool {
        fn within<T: PartialEq>(list: &[T], v: &T) -> bool {
            list.is_empty() || list.contains(v)
        }
        // A network list narrows only the kinds that have that end.
        fn in_networks(list: &[ipnet::IpNet], ip: Option<std::net::IpAddr>) -> bool {
            list.is_empty() || ip.is_none_or(|ip| list.iter().any(|n| n.contains(&ip)))
        }
        if !in_networks(&self.local_networks, local_end(e)) || !in_networks(&self.remote_networks, remote_end(e)) {
            return false;
        }
        match e {
            event::Event::Handshake(h) => {
                within(&self.server_ports, &h.server_port)
                    && within(&self.directions, &h.direction)
                    && within(&self.outcomes, &h.outcome)
            }
            event::Event::Flow(f) => {
                within(&self.server_ports, &f.server_port) && within(&self.directions, &f.direction)
            }
            _ => true,
        }
    }
}

impl Description {
    /// The wanted kinds as WIT names: "handshake, flow".
    pub fn wants_list(&self) -> String {
        self.wants.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }
}

/// One contract version's bindings, as the chain uses them: each version
/// module has a `V` implementing it (by [`contract_version!`]).
pub trait Contract {
    /// The bindings' `InstancePre`.
    type Pre: Clone;
    /// A running instance's entry points.
    type Instance;
    /// The `event` record of this version.
    type Record;

    fn pre(pre: InstancePre<State>) -> wasmtime::Result<Self::Pre>;
    fn instantiate(pre: &Self::Pre, store: &mut Store<State>) -> wasmtime::Result<Self::Instance>;
    fn describe(instance: &Self::Instance, store: &mut Store<State>) -> wasmtime::Result<Description>;
    fn init(instance: &Self::Instance, store: &mut Store<State>, config: &str) -> wasmtime::Result<Result<(), String>>;
    fn tick(instance: &Self::Instance, store: &mut Store<State>, now_us: i64) -> wasmtime::Result<()>;
    /// The record a plugin sees; `None` for events plugins do not get (stats).
    fn record(event: &event::Event, tags: &[Tag]) -> Option<Self::Record>;
    /// Replaces the tags of a record (after a plugin added some).
    fn set_tags(record: &mut Self::Record, tags: &[Tag]);
    /// One event: `item` and this version's record of it.
    fn on_event(
        instance: &Self::Instance,
        store: &mut Store<State>,
        item: &mut event::Tagged,
        record: &Self::Record,
    ) -> wasmtime::Result<Verdict>;
    /// Several events, with their records in the same order.
    fn on_batch(
        instance: &Self::Instance,
        store: &mut Store<State>,
        items: &mut [&mut event::Tagged],
        records: &[&Self::Record],
    ) -> wasmtime::Result<Vec<Verdict>>;

    /// This version's instance, if `instance` is one.
    fn instance(instance: &Instance) -> Option<&Self::Instance>;
    /// This version's records of a batch.
    fn records(records: &mut Records) -> &mut Vec<Option<Self::Record>>;
}

/// Every contract version this host runs, newest first: the one list a
/// version is added to (with its `since_vX_Y` module). It makes
/// `SUPPORTED`, the per-version enums `Pre` and `Instance`, the `Records`
/// of a batch, the dispatch to a version's [`Contract`] ([`Pre::visit`]),
/// and the linking of each version's imports ([`add_to_linker`]).
macro_rules! versions {
    ($($module:ident => $variant:ident, $field:ident;)*) => {
        /// The contract versions this host runs, newest first.
        pub const SUPPORTED: &[Version] = &[$($module::VERSION,)*];

        /// A validated plugin of some contract version.
        #[derive(Clone)]
        pub enum Pre {
            $($variant(<$module::V as Contract>::Pre),)*
        }

        /// A contract version, to dispatch on ([`Binding::visit`]).
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Binding {
            $($variant,)*
        }

        impl Binding {
            /// `visitor` called with this contract version as `C`.
            pub fn visit<V: VersionVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $(Binding::$variant => visitor.visit::<$module::V>(),)*
                }
            }
        }

        /// A running plugin of some contract version.
        pub enum Instance {
            $($variant(<$module::V as Contract>::Instance),)*
        }

        /// The records of one batch as plugins of each version see them,
        /// made on first use.
        #[derive(Default)]
        pub struct Records {
            $(pub $field: Vec<Option<<$module::V as Contract>::Record>>,)*
        }

        impl Records {
            /// Item `i`'s tags changed: every version's record follows.
            pub fn retag(&mut self, i: usize, tags: &[Tag]) {
                $(
                    if let Some(Some(r)) = self.$field.get_mut(i) {
                        $module::V::set_tags(r, tags);
                    }
                )*
            }
        }

        impl Pre {
            /// The bindings of `version` over a pre-instantiated component.
            pub fn new(version: Version, pre: InstancePre<State>) -> wasmtime::Result<Pre> {
                match binding_for(version) {
                    $(Some($module::VERSION) => Ok(Pre::$variant($module::V::pre(pre)?)),)*
                    _ => wasmtime::bail!("contract version {version} is not supported"),
                }
            }

            /// Which contract version's bindings these are.
            pub fn binding(&self) -> Binding {
                match self {
                    $(Pre::$variant(_) => Binding::$variant,)*
                }
            }

            pub fn engine(&self) -> &wasmtime::Engine {
                match self {
                    $(Pre::$variant(p) => p.engine(),)*
                }
            }

            pub fn instantiate(&self, store: &mut Store<State>) -> wasmtime::Result<Instance> {
                Ok(match self {
                    $(Pre::$variant(p) => Instance::$variant($module::V::instantiate(p, store)?),)*
                })
            }
        }

        impl Instance {
            pub fn describe(&self, store: &mut Store<State>) -> wasmtime::Result<Description> {
                match self {
                    $(Instance::$variant(i) => $module::V::describe(i, store),)*
                }
            }

            pub fn init(&self, store: &mut Store<State>, config: &str) -> wasmtime::Result<Result<(), String>> {
                match self {
                    $(Instance::$variant(i) => $module::V::init(i, store, config),)*
                }
            }

            pub fn tick(&self, store: &mut Store<State>, now_us: i64) -> wasmtime::Result<()> {
                match self {
                    $(Instance::$variant(i) => $module::V::tick(i, store, now_us),)*
                }
            }
        }

        /// Every version's `host` interface into `linker`: each plugin
        /// links to the one of its version.
        pub fn add_to_linker(linker: &mut wasmtime::component::Linker<State>) -> wasmtime::Result<()> {
            $(
                $module::SensorPlugin::add_to_linker::<State, wasmtime::component::HasSelf<State>>(linker, |s| s)?;
            )*
            Ok(())
        }

    };
}

/// Code generic over the contract version, run with a plugin's
/// ([`Binding::visit`]).
pub trait VersionVisitor {
    type Output;
    fn visit<C: Contract>(self) -> Self::Output;
}

versions! {
    since_v0_3 => V0_3, v0_3;
    since_v0_2 => V0_2, v0_2;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Event;

    #[test]
    fn an_interest_narrows_only_by_the_fields_a_kind_has() {
        use crate::event::{Direction, Outcome};
        use crate::plugin::chain::tests::{handshake, scan};
        let h = handshake(1).event; // 443, inbound
        let Event::Handshake(hs) = &h else { unreachable!() };
        let (port, dir, outcome) = (hs.server_port, hs.direction, hs.outcome);
        assert!(Interest::default().is_any() && Interest::default().matches(&h));
        let on = |server_ports: Vec<u16>, directions: Vec<Direction>, outcomes: Vec<Outcome>| Interest {
            server_ports,
            directions,
            outcomes,
            ..Interest::default()
        };
        assert!(on(vec![port], vec![], vec![]).matches(&h));
        assert!(!on(vec![port + 1], vec![], vec![]).matches(&h));
        assert!(on(vec![1, port], vec![dir], vec![outcome]).matches(&h));
        let other = *Direction::VALUES.iter().find(|d| **d != dir).unwrap();
        assert!(
            !on(vec![port], vec![other], vec![]).matches(&h),
            "every list must match"
        );
        let other = *Outcome::VALUES.iter().find(|o| **o != outcome).unwrap();
        assert!(!on(vec![], vec![], vec![other]).matches(&h));
        // A scan has no server port: the condition does not apply.
        assert!(on(vec![1], vec![Direction::Outbound], vec![Outcome::Refused]).matches(&scan().event));
        // Networks: the remote end of an inbound handshake is its client.
        let nets = |local: &[&str], remote: &[&str]| Interest {
            local_networks: local.iter().map(|n| n.parse().unwrap()).collect(),
            remote_networks: remote.iter().map(|n| n.parse().unwrap()).collect(),
            ..Interest::default()
        };
        let (client, server) = (hs.client_ip, hs.server_ip);
        assert_eq!(hs.direction, Direction::Inbound);
        assert!(nets(&[], &[&format!("{client}/32")]).matches(&h));
        assert!(!nets(&[], &[&format!("{server}/32")]).matches(&h));
        assert!(nets(&[&format!("{server}/32")], &[]).matches(&h));
        assert!(!nets(&[&format!("{client}/32")], &[]).matches(&h));
        assert!(nets(&["0.0.0.0/0", "::/0"], &["0.0.0.0/0", "::/0"]).matches(&h));
        assert!(on((0..1024).collect(), vec![], vec![]).check().is_ok());
        let e = on((0..1025).collect(), vec![], vec![]).check().unwrap_err();
        assert!(e.contains("1025 entries, more than 1024"), "{e}");
    }

    #[test]
    fn versions_parse_and_match_like_cargo_before_1_0() {
        let v = |s| Version::parse(s).unwrap();
        assert_eq!(Version::parse("0.1"), None);
        assert_eq!(Version::parse("0.1.0.1"), None);
        assert_eq!(Version::parse("x.1.0"), None);
        assert_eq!(binding_for(v("0.1.0")), None, "0.1 was never released and is gone");
        assert_eq!(binding_for(v("0.2.0")), Some(v("0.2.0")));
        assert_eq!(binding_for(v("0.3.0")), Some(v("0.3.0")));
        assert_eq!(binding_for(v("0.4.0")), None);
        assert_eq!(binding_for(v("1.1.0")), None);
        assert_eq!(
            binding_for(v("0.2.7")),
            None,
            "a newer patch may use what this host lacks"
        );
    }
}
