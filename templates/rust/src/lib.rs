use net_gazer_sdk::{
    export_plugin, handshake, log, metrics, Config, Event, EventKind, Info, Interest, Level, Outcome, Plugin, Verdict,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default = "default_ports")]
    ports: Vec<u16>,
}

fn default_ports() -> Vec<u16> {
    vec![443]
}

struct TlsTag {
    ports: Vec<u16>,
}

impl Plugin for TlsTag {
    fn info() -> Info {
        Info::new("tls-tag", env!("CARGO_PKG_VERSION")).wants(&[EventKind::Handshake])
    }

    fn init(config: Config) -> Result<Self, String> {
        let settings: Settings = config.parse()?;
        log!(Level::Info, "tls-tag: ports {:?}", settings.ports);
        Ok(TlsTag { ports: settings.ports })
    }

    // Only established handshakes to these ports: the daemon does not call
    // the plugin for the others.
    fn interest(&self) -> Option<Interest> {
        Some(
            Interest::any()
                .server_ports(&self.ports)
                .outcomes(&[Outcome::Established]),
        )
    }

    fn handshake(&mut self, event: &Event) -> Verdict {
        metrics::counter_add("tls", 1);
        // One field read, through the host: the plugin pays for nothing else.
        if let Some(rtt_us) = handshake::rtt_last_syn_us() {
            event.set_tag("tls.rtt_ms", &format!("{:.1}", rtt_us / 1000.0));
        }
        Verdict::tag("tls", "true")
    }
}

export_plugin!(TlsTag);

#[cfg(test)]
mod tests {
    use net_gazer_sdk::{testing, Config, Plugin, Verdict};

    fn plugin(ports: &str) -> super::TlsTag {
        super::TlsTag::init(Config::from_json(&format!(r#"{{"ports": {ports}}}"#)).unwrap()).unwrap()
    }

    #[test]
    fn a_misspelt_key_is_refused_and_the_ports_are_logged() {
        let bad = Config::from_json(r#"{"port": [443]}"#).unwrap();
        let e = super::TlsTag::init(bad).err().unwrap();
        assert!(e.contains("key `port`: unknown field"), "{e}");
        testing::clear();
        plugin("[8443]");
        assert_eq!(testing::logs()[0].1, "tls-tag: ports [8443]");
    }

    #[test]
    fn a_handshake_is_tagged_with_its_rtt() {
        let mut p = plugin("[443]");
        let h = testing::Handshake {
            server_port: 443,
            rtt_last_syn_us: Some(25_000.0),
            ..Default::default()
        };
        let (verdict, tags) = testing::run(&mut p, h, &[]);
        assert_eq!(verdict, Verdict::tag("tls", "true"));
        let tags: Vec<(&str, &str)> = tags.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect();
        assert_eq!(tags, [("tls.rtt_ms", "25.0"), ("tls", "true")]);
        assert_eq!(testing::counters()["tls"], 1.0);
    }
}
