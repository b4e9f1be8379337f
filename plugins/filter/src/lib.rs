//! Drops events by address, port, direction, outcome and kind.
//!
//! ```toml
//! [plugins.filter]
//! # Every rule lists conditions that must all hold; an event matching any
//! # `drop` rule is dropped. When there are `keep` rules, an event must also
//! # match one of them.
//! [[plugins.filter.drop]]
//! ports = [22]                  # the operator's own SSH
//! [[plugins.filter.drop]]
//! server = ["10.0.0.0/8", "fd00::/8"]
//! directions = ["internal"]
//! ```
//!
//! Conditions: `kinds` (handshake, flow, scan, route), `hosts` (CIDR, either
//! end), `client` and `server` (CIDR of that end; a scan's source is its
//! client, its target its server; a route's destination its server),
//! `ports` (the server port, a scan's target port, a route's destination
//! port), `directions` (outbound, inbound, internal, transit) and
//! `outcomes` (established, refused, unanswered, incomplete).

use std::net::IpAddr;

use net_gazer_sdk::{
    export_plugin, flow, handshake, metrics, route, scan, Config, Direction, Event, EventKind, Info, IpAddress,
    Outcome, Plugin, Verdict,
};
use serde::Deserialize;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    drop: Vec<RuleSettings>,
    #[serde(default)]
    keep: Vec<RuleSettings>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RuleSettings {
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    client: Vec<String>,
    #[serde(default)]
    server: Vec<String>,
    #[serde(default)]
    ports: Vec<u16>,
    #[serde(default)]
    directions: Vec<String>,
    #[serde(default)]
    outcomes: Vec<String>,
}

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug)]
struct Cidr {
    net: IpAddr,
    len: u8,
}

impl Cidr {
    fn parse(text: &str) -> Result<Cidr, String> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{text}` is not an address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let len = match len {
            Some(l) => l
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|l| *l <= max)
                .ok_or_else(|| format!("`{text}`: prefix length must be 0..={max}"))?,
            None => max,
        };
        Ok(Cidr { net, len })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                prefix_eq(u128::from(u32::from(n)) << 96, u128::from(u32::from(a)) << 96, self.len)
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => prefix_eq(u128::from(n), u128::from(a), self.len),
            _ => false,
        }
    }
}

fn prefix_eq(a: u128, b: u128, len: u8) -> bool {
    len == 0 || (a ^ b) >> (128 - u32::from(len)) == 0
}

/// What the rules look at, the same for every kind of event.
struct Facts {
    kind: EventKind,
    client: Option<IpAddr>,
    server: Option<IpAddr>,
    port: Option<u16>,
    direction: Option<Direction>,
    outcome: Option<Outcome>,
}

#[derive(Default)]
struct Rule {
    kinds: Vec<EventKind>,
    hosts: Vec<Cidr>,
    client: Vec<Cidr>,
    server: Vec<Cidr>,
    ports: Vec<u16>,
    directions: Vec<Direction>,
    outcomes: Vec<Outcome>,
}

fn one_of<T: Copy>(what: &str, text: &str, names: &[(&str, T)]) -> Result<T, String> {
    names.iter().find(|(n, _)| *n == text).map(|(_, v)| *v).ok_or_else(|| {
        let known: Vec<&str> = names.iter().map(|(n, _)| *n).collect();
        format!("unknown {what} `{text}` (one of: {})", known.join(", "))
    })
}

impl Rule {
    fn from_settings(s: RuleSettings) -> Result<Rule, String> {
        let cidrs = |v: Vec<String>| v.iter().map(|t| Cidr::parse(t)).collect::<Result<Vec<_>, _>>();
        let kinds = [
            ("handshake", EventKind::Handshake),
            ("flow", EventKind::Flow),
            ("scan", EventKind::Scan),
            ("route", EventKind::Route),
        ];
        let directions = [
            ("outbound", Direction::Outbound),
            ("inbound", Direction::Inbound),
            ("internal", Direction::Internal),
            ("transit", Direction::Transit),
        ];
        let outcomes = [
            ("established", Outcome::Established),
            ("refused", Outcome::Refused),
            ("unanswered", Outcome::Unanswered),
            ("incomplete", Outcome::Incomplete),
        ];
        Ok(Rule {
            kinds: s
                .kinds
                .iter()
                .map(|k| one_of("kind", k, &kinds))
                .collect::<Result<_, _>>()?,
            hosts: cidrs(s.hosts)?,
            client: cidrs(s.client)?,
            server: cidrs(s.server)?,
            ports: s.ports,
            directions: s
                .directions
                .iter()
                .map(|d| one_of("direction", d, &directions))
                .collect::<Result<_, _>>()?,
            outcomes: s
                .outcomes
                .iter()
                .map(|o| one_of("outcome", o, &outcomes))
                .collect::<Result<_, _>>()?,
        })
    }

    fn matches(&self, f: &Facts) -> bool {
        let (client, server) = (f.client, f.server);
        let within = |blocks: &[Cidr], addr: Option<IpAddr>| {
            blocks.is_empty() || addr.is_some_and(|a| blocks.iter().any(|b| b.contains(a)))
        };
        (self.kinds.is_empty() || self.kinds.contains(&f.kind))
            && (self.hosts.is_empty() || within(&self.hosts, client) || within(&self.hosts, server))
            && within(&self.client, client)
            && within(&self.server, server)
            && (self.ports.is_empty() || f.port.is_some_and(|p| self.ports.contains(&p)))
            && (self.directions.is_empty() || f.direction.is_some_and(|d| self.directions.contains(&d)))
            && (self.outcomes.is_empty() || f.outcome.is_some_and(|o| self.outcomes.contains(&o)))
    }
}

struct Filter {
    drop: Vec<Rule>,
    keep: Vec<Rule>,
}

impl Filter {
    fn judge(&self, facts: Facts) -> Verdict {
        let dropped = self.drop.iter().any(|r| r.matches(&facts))
            || (!self.keep.is_empty() && !self.keep.iter().any(|r| r.matches(&facts)));
        if dropped {
            metrics::counter_add("dropped", 1);
            Verdict::Drop
        } else {
            Verdict::Keep
        }
    }
}

impl Plugin for Filter {
    fn info() -> Info {
        Info::new("filter", env!("CARGO_PKG_VERSION")).wants(&EventKind::ALL)
    }

    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        let rules = |v: Vec<RuleSettings>, what: &str| {
            v.into_iter()
                .enumerate()
                .map(|(i, r)| Rule::from_settings(r).map_err(|e| format!("{what}[{i}]: {e}")))
                .collect::<Result<Vec<_>, _>>()
        };
        Ok(Filter {
            drop: rules(s.drop, "drop")?,
            keep: rules(s.keep, "keep")?,
        })
    }

    fn handshake(&mut self, _e: &Event) -> Verdict {
        self.judge(Facts {
            kind: EventKind::Handshake,
            client: Some(handshake::client_ip().ip()),
            server: Some(handshake::server_ip().ip()),
            port: Some(handshake::server_port()),
            direction: Some(handshake::direction()),
            outcome: Some(handshake::outcome()),
        })
    }

    fn flow(&mut self, _e: &Event) -> Verdict {
        self.judge(Facts {
            kind: EventKind::Flow,
            client: Some(flow::client_ip().ip()),
            server: Some(flow::server_ip().ip()),
            port: Some(flow::server_port()),
            direction: Some(flow::direction()),
            outcome: None,
        })
    }

    fn scan(&mut self, _e: &Event) -> Verdict {
        self.judge(Facts {
            kind: EventKind::Scan,
            client: Some(scan::src_ip().ip()),
            server: scan::target_ip().map(IpAddress::ip),
            port: scan::target_port(),
            direction: Some(Direction::Inbound),
            outcome: None,
        })
    }

    fn route(&mut self, _e: &Event) -> Verdict {
        self.judge(Facts {
            kind: EventKind::Route,
            client: Some(route::src_ip().ip()),
            server: Some(route::dst_ip().ip()),
            port: route::dst_port(),
            direction: None,
            outcome: None,
        })
    }
}

export_plugin!(Filter);
