//! GeoIP enrichment: country, city, coordinates, ASN and organisation of
//! the remote host of every handshake, flow and scan, and of every hop and
//! the destination of every route, from MaxMind-format databases (GeoLite2,
//! GeoIP2, DB-IP and IPinfo mmdb files).
//!
//! ```toml
//! [plugins.geoip]
//! dirs = ["/usr/share/GeoIP"]         # granted read-only
//! city_db = "GeoLite2-City.mmdb"      # or a Country database; in the first dir unless absolute
//! asn_db = "GeoLite2-ASN.mmdb"
//! ```
//!
//! Tags on the event (the remote host: the server of an outbound or transit
//! connection, the client of an inbound one, a scan's source, a route's
//! destination): `geo.country` (ISO code), `geo.country_name`, `geo.city`,
//! `geo.lat`, `geo.lon`, `asn`, `asn.org`; on route events the same per hop
//! as `hop.<ttl>.geo.country`, `hop.<ttl>.asn`, … Private and special-use
//! addresses are not looked up: they get `geo.scope` (`private`,
//! `loopback`, `link_local`, `shared`, `documentation`, `multicast`,
//! `reserved`, `unique_local`). Internal connections (both ends local) get
//! nothing. A missing or unreadable database makes `init` fail with the
//! file's name; SIGHUP re-reads the files.

use std::net::IpAddr;

use maxminddb::{geoip2, Reader};
use net_gazer_sdk::{
    export_plugin, flow, handshake, metrics, route, scan, Config, Direction, Event, EventKind, Info, IpAddress, Plugin,
    Tag, Verdict,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    city_db: Option<String>,
    #[serde(default)]
    asn_db: Option<String>,
}

/// The databases, read into memory at `init`.
pub struct Geo {
    city: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
}

/// Where an address is, as tags (without a prefix).
pub type Found = Vec<(&'static str, String)>;

/// Special-use ranges (RFC 6890 and friends) that are never looked up.
pub fn scope(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(a) => {
            let o = a.octets();
            Some(if a.is_loopback() {
                "loopback"
            } else if a.is_private() {
                "private"
            } else if a.is_link_local() {
                "link_local"
            } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
                "shared"
            } else if a.is_documentation() {
                "documentation"
            } else if a.is_multicast() {
                "multicast"
            } else if a.is_unspecified() || a.is_broadcast() || o[0] == 0 || o[0] >= 240 {
                "reserved"
            } else {
                return None;
            })
        }
        IpAddr::V6(a) => {
            if let Some(v4) = a.to_ipv4_mapped() {
                return scope(IpAddr::V4(v4));
            }
            let s = a.segments();
            Some(if a.is_loopback() {
                "loopback"
            } else if a.is_unspecified() {
                "reserved"
            } else if (s[0] & 0xffc0) == 0xfe80 {
                "link_local"
            } else if (s[0] & 0xfe00) == 0xfc00 {
                "unique_local"
            } else if s[0] == 0x2001 && s[1] == 0x0db8 {
                "documentation"
            } else if a.is_multicast() {
                "multicast"
            } else {
                return None;
            })
        }
    }
}

fn open(path: &str, kinds: &[&str]) -> Result<Reader<Vec<u8>>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let reader = Reader::from_source(bytes).map_err(|e| format!("{path} is not a MaxMind database: {e}"))?;
    let kind = reader.metadata.database_type.clone();
    if !kinds.iter().any(|k| kind.contains(k)) {
        return Err(format!(
            "{path} is a `{kind}` database, expected one of: {}",
            kinds.join(", ")
        ));
    }
    Ok(reader)
}

impl Geo {
    /// Opens the configured files (`city_db` and `asn_db`, relative to the
    /// first granted directory unless absolute).
    pub fn open(city_db: Option<&str>, asn_db: Option<&str>, dirs: &[String]) -> Result<Geo, String> {
        if city_db.is_none() && asn_db.is_none() {
            return Err("set city_db and/or asn_db (MaxMind database files in a granted directory)".into());
        }
        let resolve = |name: &str| -> String {
            if name.starts_with('/') {
                name.to_string()
            } else {
                match dirs.first() {
                    Some(d) => format!("{}/{name}", d.trim_end_matches('/')),
                    None => name.to_string(),
                }
            }
        };
        Ok(Geo {
            // DB-IP and IPinfo name their types differently; a City or
            // Country layout is what matters.
            city: city_db
                .map(|n| {
                    open(
                        &resolve(n),
                        &["City", "Country", "city", "country", "Location", "location"],
                    )
                })
                .transpose()?,
            asn: asn_db.map(|n| open(&resolve(n), &["ASN", "asn", "ISP"])).transpose()?,
        })
    }

    /// What the databases say of `ip` (empty when nothing is known); the
    /// `geo.scope` tag alone for special-use addresses.
    pub fn find(&self, ip: IpAddr) -> Found {
        let mut found = Found::new();
        if let Some(s) = scope(ip) {
            found.push(("geo.scope", s.to_string()));
            return found;
        }
        if let Some(city) = self.city.as_ref().and_then(|r| r.lookup(ip).ok()) {
            if let Ok(Some(c)) = city.decode::<geoip2::City>() {
                if let Some(code) = c.country.iso_code {
                    found.push(("geo.country", code.to_string()));
                }
                if let Some(name) = c.country.names.english {
                    found.push(("geo.country_name", name.to_string()));
                }
                if let Some(name) = c.city.names.english {
                    found.push(("geo.city", name.to_string()));
                }
                if let (Some(lat), Some(lon)) = (c.location.latitude, c.location.longitude) {
                    found.push(("geo.lat", lat.to_string()));
                    found.push(("geo.lon", lon.to_string()));
                }
            }
        }
        if let Some(asn) = self.asn.as_ref().and_then(|r| r.lookup(ip).ok()) {
            if let Ok(Some(a)) = asn.decode::<geoip2::Asn>() {
                if let Some(n) = a.autonomous_system_number {
                    found.push(("asn", n.to_string()));
                }
                if let Some(org) = a.autonomous_system_organization {
                    found.push(("asn.org", org.to_string()));
                }
            }
        }
        found
    }
}

struct GeoPlugin {
    geo: Geo,
    lookups: u64,
}

/// The remote end of a handshake or flow of `direction`: the client of an
/// inbound one, the server otherwise; none for internal ones.
fn remote(
    direction: Direction,
    client: impl FnOnce() -> IpAddress,
    server: impl FnOnce() -> IpAddress,
) -> Option<IpAddr> {
    match direction {
        Direction::Inbound => Some(client().ip()),
        Direction::Outbound | Direction::Transit => Some(server().ip()),
        Direction::Internal => None,
    }
}

impl GeoPlugin {
    fn tags(&mut self, ip: Option<IpAddr>, prefix: &str, out: &mut Vec<Tag>) {
        let Some(ip) = ip else { return };
        self.lookups += 1;
        for (k, v) in self.geo.find(ip) {
            out.push(Tag::new(format!("{prefix}{k}"), v));
        }
    }

    fn verdict(tags: Vec<Tag>) -> Verdict {
        if tags.is_empty() {
            Verdict::Keep
        } else {
            Verdict::Tag(tags)
        }
    }
}

impl Plugin for GeoPlugin {
    fn info() -> Info {
        // Internal handshakes and flows have no remote end: not called for
        // them (the interest narrows only handshakes and flows).
        Info::new("geoip", env!("CARGO_PKG_VERSION"))
            .wants(&EventKind::ALL)
            .directions(&[Direction::Inbound, Direction::Outbound, Direction::Transit])
    }

    fn init(config: Config) -> Result<Self, String> {
        let s: Settings = config.parse()?;
        let geo = Geo::open(s.city_db.as_deref(), s.asn_db.as_deref(), &config.dirs())?;
        Ok(GeoPlugin { geo, lookups: 0 })
    }

    fn handshake(&mut self, _e: &Event) -> Verdict {
        let mut tags = Vec::new();
        let ip = remote(handshake::direction(), handshake::client_ip, handshake::server_ip);
        self.tags(ip, "", &mut tags);
        Self::verdict(tags)
    }

    fn flow(&mut self, _e: &Event) -> Verdict {
        let mut tags = Vec::new();
        self.tags(
            remote(flow::direction(), flow::client_ip, flow::server_ip),
            "",
            &mut tags,
        );
        Self::verdict(tags)
    }

    fn scan(&mut self, _e: &Event) -> Verdict {
        let mut tags = Vec::new();
        self.tags(Some(scan::src_ip().ip()), "", &mut tags);
        Self::verdict(tags)
    }

    fn route(&mut self, _e: &Event) -> Verdict {
        let mut tags = Vec::new();
        self.tags(Some(route::dst_ip().ip()), "", &mut tags);
        for hop in &route::hops() {
            let prefix = format!("hop.{}.", hop.ttl);
            self.tags(hop.addr.map(IpAddress::ip), &prefix, &mut tags);
        }
        Self::verdict(tags)
    }

    fn on_tick(&mut self, _now_us: i64) {
        metrics::gauge_set("lookups", self.lookups as f64);
    }
}

export_plugin!(GeoPlugin);
