//! The collector's configuration file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use net_gazer_common::config_file;
pub use net_gazer_common::config_file::{ConfigError, Invalid};
use net_gazer_common::duration::serde as duration;
use net_gazer_common::range::{self, Bounded};
use serde::{Deserialize, Serialize};

/// Where the file is looked for when `-c` is not given.
pub const SEARCH_PATH: [&str; 3] = [
    "./etc/net-gazer/net-gazer-collector.toml",
    "/usr/local/etc/net-gazer/net-gazer-collector.toml",
    "/etc/net-gazer/net-gazer-collector.toml",
];

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address and port of the HTTP API.
    pub listen: SocketAddr,
    /// The SQLite database file (created when missing).
    pub database: PathBuf,
    /// Largest request body, after decompression, in MiB.
    pub body_limit_mb: u64,
    /// Connections served at once; more are answered 503 and closed.
    pub max_connections: u32,
    /// A request's line and headers must arrive within this (also the
    /// longest a kept-alive connection waits for its next request).
    #[serde(with = "duration")]
    pub header_timeout: Duration,
    /// A request's whole body must arrive within this.
    #[serde(with = "duration")]
    pub body_timeout: Duration,
    /// A connection on which nothing moves either way for this long is
    /// closed (a client that stops reading its answer, say).
    #[serde(with = "duration")]
    pub idle_timeout: Duration,
    /// A query (`/api/v1/…`) running longer is stopped and answered 503.
    #[serde(with = "duration")]
    pub query_timeout: Duration,
    /// Events older than this many days (by their `ts_us`) are deleted,
    /// hourly; 0 keeps everything.
    pub retention_days: u32,
    /// `[sensors.<id>]`: the sensors allowed to send, each with its token.
    pub sensors: BTreeMap<String, Sensor>,
    /// Where the sensors are when their table does not say,
    /// `[latitude, longitude]` (the map's arcs start here).
    pub location: Option<[f64; 2]>,
    /// `[falkordb]`: also write the traced paths to a FalkorDB graph.
    pub falkordb: Option<crate::graphdb::FalkorConfig>,
    /// `[source.nats]`: batches also come from NATS JetStream.
    pub source: Sources,
    /// `[postgres]`: store in this PostgreSQL database (shared by any
    /// number of collectors) instead of the SQLite file `database`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<crate::store::postgres::Settings>,
}

/// `[source.*]`: where batches come from besides `POST /api/v1/events`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Sources {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats: Option<NatsSource>,
}

/// What JetStream does with a message once a collector acknowledged it.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Retention {
    /// Deleted: the stream is a queue between sensors and collectors.
    #[default]
    WorkQueue,
    /// Kept until `max_age` (or `max_mb`): other consumers may read it too.
    Limits,
}

/// `[source.nats]`: a durable pull consumer on a JetStream stream, shared
/// by every collector that names it (each message is handled by one of
/// them), and acknowledged once the store committed the batch
/// (docs/fleet.md). The connection keys of
/// [`net_gazer_common::nats::Connection`] besides these.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct NatsSource {
    #[serde(flatten)]
    pub connection: net_gazer_common::nats::Connection,
    /// The stream the sensors publish to.
    #[serde(default = "nats_defaults::stream")]
    pub stream: String,
    /// Its subjects; the last token of a message's subject is the sensor
    /// (which the batch must name).
    #[serde(default = "nats_defaults::subjects")]
    pub subjects: Vec<String>,
    /// The durable consumer every collector shares.
    #[serde(default = "nats_defaults::consumer")]
    pub consumer: String,
    /// Create the streams and the consumer when missing (and bring their
    /// settings up to date); false: they must exist.
    #[serde(default = "nats_defaults::yes")]
    pub create: bool,
    /// Copies of each message in the cluster (when creating the streams).
    #[serde(default = "nats_defaults::replicas")]
    pub replicas: u32,
    #[serde(default)]
    pub retention: Retention,
    /// Messages older than this leave the stream, handled or not.
    #[serde(default = "nats_defaults::max_age", with = "duration")]
    pub max_age: Duration,
    /// The stream's size limit in MiB (0: none); beyond it the oldest
    /// messages are dropped.
    #[serde(default)]
    pub max_mb: u64,
    /// A message id seen again within this window is dropped by JetStream.
    #[serde(default = "nats_defaults::duplicate_window", with = "duration")]
    pub duplicate_window: Duration,
    /// A message not acknowledged within this is delivered again (to any
    /// collector).
    #[serde(default = "nats_defaults::ack_wait", with = "duration")]
    pub ack_wait: Duration,
    /// A batch the store fails on this many deliveries goes to the
    /// dead-letter stream.
    #[serde(default = "nats_defaults::max_deliver")]
    pub max_deliver: u32,
    /// Messages asked for at a time.
    #[serde(default = "nats_defaults::fetch")]
    pub fetch: u32,
    /// Where messages (or the events of them) that cannot be stored go,
    /// on `<dead_letter_prefix>.<sensor>`, with the reason in a header.
    #[serde(default = "nats_defaults::dead_letter_stream")]
    pub dead_letter_stream: String,
    #[serde(default = "nats_defaults::dead_letter_prefix")]
    pub dead_letter_prefix: String,
    /// Keys no field took (refused by validation: the connection is
    /// flattened, so serde cannot refuse them itself).
    #[serde(flatten, skip_serializing)]
    pub unknown: BTreeMap<String, toml::Value>,
}

/// The defaults of `[source.nats]`.
pub mod nats_defaults {
    use std::time::Duration;

    pub fn stream() -> String {
        "NET_GAZER".into()
    }
    pub fn subjects() -> Vec<String> {
        vec!["net-gazer.events.>".into()]
    }
    pub fn consumer() -> String {
        "net-gazer-collector".into()
    }
    pub fn yes() -> bool {
        true
    }
    pub fn replicas() -> u32 {
        1
    }
    pub fn max_age() -> Duration {
        Duration::from_secs(7 * 86_400)
    }
    pub fn duplicate_window() -> Duration {
        Duration::from_secs(120)
    }
    pub fn ack_wait() -> Duration {
        Duration::from_secs(30)
    }
    pub fn max_deliver() -> u32 {
        5
    }
    pub fn fetch() -> u32 {
        64
    }
    pub fn dead_letter_stream() -> String {
        "NET_GAZER_DEAD".into()
    }
    pub fn dead_letter_prefix() -> String {
        "net-gazer.dead".into()
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Sensor {
    /// The bearer token the sensor sends (`Authorization: Bearer …`).
    pub token: String,
    /// Where the sensor is, `[latitude, longitude]`: the map draws its
    /// arcs from here (default: the top-level `location`).
    pub location: Option<[f64; 2]>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database: PathBuf::from("/var/lib/net-gazer-collector/events.sqlite"),
            body_limit_mb: 16,
            max_connections: 512,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            query_timeout: Duration::from_secs(30),
            retention_days: 30,
            sensors: BTreeMap::new(),
            location: None,
            falkordb: None,
            source: Sources::default(),
            postgres: None,
        }
    }
}

impl Config {
    /// Loads `path`, or the first file of [`SEARCH_PATH`] that exists, or
    /// the defaults.
    pub fn load(path: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        config_file::load(path, &SEARCH_PATH, Config::parse)
    }

    /// Where the events are stored: `[postgres]` when there is one, the
    /// SQLite file `database` otherwise.
    pub fn store(&self) -> crate::store::Location {
        match &self.postgres {
            Some(p) => crate::store::Location::Postgres(crate::store::postgres::Settings {
                graph_queue: self.falkordb.is_some(),
                ..p.clone()
            }),
            None => crate::store::Location::Sqlite(self.database.clone()),
        }
    }

    /// Parses and checks TOML text; the error names the key and the line.
    pub fn parse(text: &str) -> Result<Config, Invalid> {
        let config: Config = toml::from_str(text).map_err(|e| config_file::toml_problem(text, &e))?;
        config
            .validate()
            .map_err(|(key, message)| config_file::key_problem(text, &key, message))?;
        Ok(config)
    }

    /// Every numeric key with its accepted range (docs/collector-api.md
    /// lists the same; a test holds them equal).
    pub fn bounds(&self) -> Vec<Bounded> {
        let s = Duration::from_secs;
        let mut list = vec![
            range::count("body_limit_mb", self.body_limit_mb, 1, 1024),
            range::count("max_connections", self.max_connections, 1, 65_535),
            range::time("header_timeout", self.header_timeout, s(1), s(300)),
            range::time("body_timeout", self.body_timeout, s(1), s(3600)),
            range::time("idle_timeout", self.idle_timeout, s(1), s(3600)),
            range::time("query_timeout", self.query_timeout, s(1), s(3600)),
            range::count("retention_days", self.retention_days, 0, 36_500),
        ];
        if let Some(f) = &self.falkordb {
            list.push(range::count("falkordb.batch", f.batch, 1, 100_000));
        }
        if let Some(p) = &self.postgres {
            list.push(range::time("postgres.connect_timeout", p.connect_timeout, s(1), s(300)));
        }
        if let Some(n) = &self.source.nats {
            list.extend([
                range::count("source.nats.replicas", n.replicas, 1, 5),
                range::time("source.nats.max_age", n.max_age, s(60), s(365 * 86_400)),
                range::count("source.nats.max_mb", n.max_mb, 0, 1 << 30),
                range::time("source.nats.duplicate_window", n.duplicate_window, s(1), s(86_400)),
                range::time("source.nats.ack_wait", n.ack_wait, s(1), s(3600)),
                range::count("source.nats.max_deliver", n.max_deliver, 1, 1000),
                range::count("source.nats.fetch", n.fetch, 1, 10_000),
            ]);
        }
        list
    }

    /// Checks values that parse but make no sense: the key and what is wrong.
    fn validate(&self) -> Result<(), (String, String)> {
        let config = self;
        let bad = |key: &str, message: String| Err((key.to_string(), message));
        range::check_all(&self.bounds())?;
        check_location("location", config.location)?;
        if let Some(f) = &config.falkordb {
            if !(f.url.starts_with("redis://") || f.url.starts_with("unix://")) {
                return bad(
                    "falkordb.url",
                    format!("must be redis://HOST:PORT (or unix:///PATH), not `{}`", f.url),
                );
            }
            if f.graph.is_empty() {
                return bad("falkordb.graph", "must not be empty".into());
            }
        }
        if let Some(p) = &config.postgres {
            if let Err(e) = p.config() {
                return bad(
                    "postgres.url",
                    format!("not a PostgreSQL connection string or URL: {e}"),
                );
            }
            if let Some(f) = p.tls_ca_file.as_ref().filter(|f| !f.is_file()) {
                return bad("postgres.tls_ca_file", format!("{}: no such file", f.display()));
            }
        }
        if let Some(n) = &config.source.nats {
            if let Some(key) = n.unknown.keys().next() {
                return bad(&format!("source.nats.{key}"), "unknown key".into());
            }
            n.connection.check("source.nats")?;
            let name_ok =
                |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
            for (key, name) in [
                ("stream", &n.stream),
                ("consumer", &n.consumer),
                ("dead_letter_stream", &n.dead_letter_stream),
            ] {
                if !name_ok(name) {
                    return bad(
                        &format!("source.nats.{key}"),
                        format!("`{name}`: letters, digits, `-` and `_` only"),
                    );
                }
            }
            if n.stream == n.dead_letter_stream {
                return bad("source.nats.dead_letter_stream", "must differ from stream".into());
            }
            if n.subjects.is_empty() {
                return bad("source.nats.subjects", "name at least one subject".into());
            }
            if !net_gazer_common::nats::is_subject(&n.dead_letter_prefix) {
                return bad(
                    "source.nats.dead_letter_prefix",
                    "must be a NATS subject: tokens joined by `.`, no wildcard or space".into(),
                );
            }
            if n.duplicate_window > n.max_age {
                return bad("source.nats.duplicate_window", "must not exceed max_age".into());
            }
        }
        for (id, s) in &config.sensors {
            if s.token.len() < 16 {
                return bad(&format!("sensors.{id}.token"), "must be at least 16 characters".into());
            }
            check_location(&format!("sensors.{id}.location"), s.location)?;
        }
        Ok(())
    }

    /// The sensor a bearer token belongs to.
    pub fn sensor_of(&self, token: &str) -> Option<&str> {
        self.sensors
            .iter()
            .find(|(_, s)| constant_time_eq(s.token.as_bytes(), token.as_bytes()))
            .map(|(id, _)| id.as_str())
    }
}

fn check_location(key: &str, location: Option<[f64; 2]>) -> Result<(), (String, String)> {
    match location {
        Some([lat, lon]) if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) => Err((
            key.to_string(),
            format!("must be [latitude, longitude] with latitude -90..90 and longitude -180..180, not [{lat}, {lon}]"),
        )),
        _ => Ok(()),
    }
}

/// Compares without stopping at the first difference.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse("listen = \"nowhere\"\n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "{e}");
        let e = Config::parse("[sensors.gw1]\ntoken = \"short\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sensors.gw1.token"), "{e}");
        assert!(e.starts_with("line 2: "), "the line of the key: {e}");
        let e = Config::parse("bogus = 1\n").unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let c = Config::parse("[sensors.gw1]\ntoken = \"0123456789abcdef\"\n").unwrap();
        assert_eq!(c.sensor_of("0123456789abcdef"), Some("gw1"));
        assert_eq!(c.sensor_of("0123456789abcdeX"), None);
        let e = Config::parse("body_limit_mb = 17592186044416\n")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "line 1: key `body_limit_mb`: must be from 1 to 1024, not 17592186044416"
        );
        let e = Config::parse("\nheader_timeout = \"9999999999h\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("line 2: key `header_timeout`: must be from 1s to 5m"),
            "{e}"
        );
        let e = Config::parse("[sensors.gw1]\ntoken = \"0123456789abcdef\"\nlocation = [151.0, 0.0]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sensors.gw1.location"), "{e}");
    }

    #[test]
    fn source_nats_names_what_is_wrong() {
        let c = Config::parse("[source.nats]\nservers = [\"nats://a:4222\"]\n").unwrap();
        let n = c.source.nats.unwrap();
        assert_eq!(
            (n.stream.as_str(), n.consumer.as_str()),
            ("NET_GAZER", "net-gazer-collector")
        );
        assert_eq!(n.retention, Retention::WorkQueue);
        for (text, key) in [
            ("servers = [\"nats://a:4222\"]\nstraem = \"X\"\n", "source.nats.straem"),
            ("servers = []\n", "source.nats.servers"),
            (
                "servers = [\"nats://a:4222\"]\nstream = \"a.b\"\n",
                "source.nats.stream",
            ),
            (
                "servers = [\"nats://a:4222\"]\ndead_letter_stream = \"NET_GAZER\"\n",
                "source.nats.dead_letter_stream",
            ),
            ("servers = [\"nats://a:4222\"]\nreplicas = 7\n", "source.nats.replicas"),
            (
                "servers = [\"nats://a:4222\"]\nmax_deliver = 0\n",
                "source.nats.max_deliver",
            ),
            (
                "servers = [\"nats://a:4222\"]\nretention = \"forever\"\n",
                "source.nats.retention",
            ),
        ] {
            let e = Config::parse(&format!("[source.nats]\n{text}"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(&format!("`{key}`")) || e.contains(key), "{text}: {e}");
        }
    }

    /// `[postgres]`: a bad url, a missing CA file, an unknown key or a
    /// timeout out of range name their key; a good table is the store.
    #[test]
    fn postgres_keys_are_checked() {
        for (text, key) in [
            ("url = \"host=db1 sslmode=verify-full\"", "postgres.url"),
            (
                "url = \"host=db1\"\ntls_ca_file = \"/nonexistent/ca.pem\"",
                "postgres.tls_ca_file",
            ),
            ("url = \"host=db1\"\npasword = \"x\"", "pasword"),
            (
                "url = \"host=db1\"\nconnect_timeout = \"0s\"",
                "postgres.connect_timeout",
            ),
        ] {
            let e = Config::parse(&format!("[postgres]\n{text}\n")).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let c = Config::parse("[postgres]\nurl = \"postgresql://collector@db1/netgazer\"\n[falkordb]\n").unwrap();
        match c.store() {
            crate::store::Location::Postgres(s) => assert!(s.graph_queue, "[falkordb] queues the routes"),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn shipped_file_parses_and_equals_the_defaults() {
        let text = include_str!("../../etc/net-gazer/net-gazer-collector.toml");
        assert_eq!(Config::parse(text).unwrap(), Config::default());
    }

    /// docs/collector-api.md states the range of every numeric key.
    #[test]
    fn every_range_is_documented() {
        let c = Config {
            falkordb: Some(Default::default()),
            source: Config::parse("[source.nats]\nservers = [\"nats://127.0.0.1:4222\"]\n")
                .unwrap()
                .source,
            postgres: Config::parse("[postgres]\nurl = \"host=db1\"\n").unwrap().postgres,
            ..Config::default()
        };
        let doc = include_str!("../../docs/collector-api.md");
        let missing = range::undocumented(&c.bounds(), doc);
        assert!(
            missing.is_empty(),
            "docs/collector-api.md lacks the ranges of {missing:?}"
        );
    }
}
