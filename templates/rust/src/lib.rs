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
    use net_gazer_sdk::{testing, Config, Plugin};

    #[test]
    fn a_misspelt_key_is_refused_and_the_ports_are_logged() {
        let bad = Config::from_json(r#"{"port": [443]}"#).unwrap();
        let e = super::TlsTag::init(bad).err().unwrap();
        assert!(e.contains("key `port`: unknown field"), "{e}");
        testing::clear();
        let ok = Config::from_json(r#"{"ports": [8443]}"#).unwrap();
        assert!(super::TlsTag::init(ok).is_ok());
        assert_eq!(testing::logs()[0].1, "tls-tag: ports [8443]");
    }
}
