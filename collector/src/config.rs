//! The collector's configuration file.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use net_gazer_common::config_file;
pub use net_gazer_common::config_file::{ConfigError, Invalid};
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
            retention_days: 30,
            sensors: BTreeMap::new(),
            location: None,
            falkordb: None,
        }
    }
}

impl Config {
    /// Loads `path`, or the first file of [`SEARCH_PATH`] that exists, or
    /// the defaults.
    pub fn load(path: Option<&Path>) -> Result<(Config, Option<PathBuf>), ConfigError> {
        config_file::load(path, &SEARCH_PATH, Config::parse)
    }

    /// Parses and checks TOML text; the error names the key and the line.
    pub fn parse(text: &str) -> Result<Config, Invalid> {
        let config: Config = toml::from_str(text).map_err(|e| config_file::toml_problem(text, &e))?;
        config
            .validate()
            .map_err(|(key, message)| config_file::key_problem(text, &key, message))?;
        Ok(config)
    }

    /// Checks values that parse but make no sense: the key and what is wrong.
    fn validate(&self) -> Result<(), (String, String)> {
        let config = self;
        let bad = |key: &str, message: String| Err((key.to_string(), message));
        if config.body_limit_mb == 0 {
            return bad("body_limit_mb", "must be at least 1".into());
        }
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
            if f.batch == 0 {
                return bad("falkordb.batch", "must be at least 1".into());
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
        let e = Config::parse("[sensors.gw1]\ntoken = \"0123456789abcdef\"\nlocation = [151.0, 0.0]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sensors.gw1.location"), "{e}");
    }
}
