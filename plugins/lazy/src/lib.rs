//! A plugin built against contract 0.3 (`wit/v0.3`, a draft the host runs
//! before the SDK has it), for the daemon's tests. Not shipped.
//!
//! Modes (`mode` in its table): `tag` (the default: tags every event with
//! the tag `key`, default `lazy`, whose value lists the tag keys it saw),
//! `drop`, `keep` (reads nothing, keeps the event: the benchmarks' floor), `port` (keeps the handshakes to `port`, default 443, and drops
//! the others, reading three fields as the benchmarks do: the server's
//! address and port and the RTT; tags what it read), `three` (reads those
//! three fields of a handshake and keeps it, for the benchmarks), `trap`
//! (panics on every event), `loop` (never returns), `grow` (keeps 1 MiB
//! more per event), `garbage` (sets a tag with an empty key), `wrong-kind`
//! (reads a flow's field from every event). `ports = [..]` declares an interest in those server ports only, `remote = ["192.0.2.0/24", ..]` in those remote networks.

wit_bindgen::generate!({
    path: "../../wit/v0.3",
    world: "sensor-plugin",
});

use exports::net_gazer::plugin::plugin::Guest;
use net_gazer::plugin::types::{EventKind, Info, Interest, IpAddress, IpNetwork, Role, Verdict};
use net_gazer::plugin::{event, flow, handshake};

/// (mode, key, port) from the configuration.
static SETTINGS: std::sync::Mutex<(String, String, u16)> = std::sync::Mutex::new((String::new(), String::new(), 0));
/// What `grow` keeps.
static HOARD: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
/// `ports`: the server ports it declares an interest in (none: any).
static PORTS: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
/// `remote`: the networks of the remote end it declares an interest in
/// (none: any), as (address, prefix).
static REMOTE: std::sync::Mutex<Vec<(IpAddress, u8)>> = std::sync::Mutex::new(Vec::new());

fn settings() -> (String, String, u16) {
    SETTINGS.lock().map(|s| s.clone()).unwrap_or_default()
}

fn ip(a: IpAddress) -> String {
    match a {
        IpAddress::Ipv4(v4) => std::net::Ipv4Addr::from(v4).to_string(),
        IpAddress::Ipv6((hi, lo)) => std::net::Ipv6Addr::from((u128::from(hi) << 64) | u128::from(lo)).to_string(),
    }
}

/// The verdict on the current event.
fn judge() -> Verdict {
    let (mode, key, port) = settings();
    match mode.as_str() {
        "drop" => Verdict::Drop,
        // Nothing read, the event kept: the floor of a call (benchmarks).
        "keep" => Verdict::Keep,
        "trap" => panic!("lazy: trap mode"),
        "loop" => {
            let mut n = 0u64;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        // 1 MiB more per event, kept.
        "grow" => {
            if let Ok(mut hoard) = HOARD.lock() {
                hoard.push(vec![1u8; 1 << 20]);
            }
            Verdict::Keep
        }
        // A tag the host must refuse: an empty key.
        "garbage" => {
            event::set_tag("", "empty key");
            Verdict::Keep
        }
        // The benchmarks' plugin: reads three fields and keeps the event.
        "three" => {
            let _ = std::hint::black_box((
                handshake::server_ip(),
                handshake::server_port(),
                handshake::rtt_last_syn_us(),
            ));
            Verdict::Keep
        }
        "wrong-kind" => {
            let _ = flow::bytes_c2s();
            Verdict::Keep
        }
        "port" => {
            if event::kind() != EventKind::Handshake {
                return Verdict::Keep;
            }
            let server = ip(handshake::server_ip());
            let server_port = handshake::server_port();
            let rtt = handshake::rtt_last_syn_us();
            if server_port != port {
                return Verdict::Drop;
            }
            event::set_tag(&key, &format!("{server}:{server_port} {rtt:?}"));
            Verdict::Keep
        }
        _ => {
            let keys: Vec<String> = event::tags().into_iter().map(|t| t.key).collect();
            event::set_tag(&key, &keys.join(","));
            Verdict::Keep
        }
    }
}

struct Lazy;

impl Guest for Lazy {
    fn describe() -> Info {
        Info {
            name: "lazy".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            role: Role::Filter,
            wants: vec![EventKind::Handshake, EventKind::Flow, EventKind::Scan, EventKind::Route],
            interest: Interest {
                server_ports: PORTS.lock().map(|p| p.clone()).unwrap_or_default(),
                directions: Vec::new(),
                outcomes: Vec::new(),
                local_networks: Vec::new(),
                remote_networks: REMOTE
                    .lock()
                    .map(|r| r.iter().map(|&(addr, prefix)| IpNetwork { addr, prefix }).collect())
                    .unwrap_or_default(),
            },
            batch: false,
        }
    }

    fn init(config: String) -> Result<(), String> {
        let table: serde_json::Value = serde_json::from_str(&config).map_err(|e| e.to_string())?;
        let text = |name: &str, default: &str| table.get(name).and_then(|m| m.as_str()).unwrap_or(default).to_string();
        let port = table.get("port").and_then(|p| p.as_u64()).unwrap_or(443);
        let port = u16::try_from(port).map_err(|_| format!("port {port} is not a port"))?;
        *SETTINGS.lock().map_err(|e| e.to_string())? = (text("mode", "tag"), text("key", "lazy"), port);
        let ports: Vec<u16> = match table.get("ports") {
            None => Vec::new(),
            Some(p) => serde_json::from_value(p.clone()).map_err(|e| format!("ports: {e}"))?,
        };
        *PORTS.lock().map_err(|e| e.to_string())? = ports;
        let remote: Vec<String> = match table.get("remote") {
            None => Vec::new(),
            Some(r) => serde_json::from_value(r.clone()).map_err(|e| format!("remote: {e}"))?,
        };
        let remote = remote
            .iter()
            .map(|cidr| {
                let (addr, prefix) = cidr.split_once('/').ok_or(format!("remote: {cidr} is not a network"))?;
                let prefix: u8 = prefix.parse().map_err(|_| format!("remote: {cidr} is not a network"))?;
                let addr = match addr
                    .parse::<std::net::IpAddr>()
                    .map_err(|e| format!("remote: {cidr}: {e}"))?
                {
                    std::net::IpAddr::V4(v4) => IpAddress::Ipv4(v4.to_bits()),
                    std::net::IpAddr::V6(v6) => IpAddress::Ipv6(((v6.to_bits() >> 64) as u64, v6.to_bits() as u64)),
                };
                Ok((addr, prefix))
            })
            .collect::<Result<Vec<_>, String>>()?;
        *REMOTE.lock().map_err(|e| e.to_string())? = remote;
        Ok(())
    }

    fn on_event() -> Verdict {
        judge()
    }

    fn on_batch(count: u32) -> Vec<Verdict> {
        (0..count)
            .map(|i| if event::select(i) { judge() } else { Verdict::Keep })
            .collect()
    }

    fn on_tick(_now_us: i64) {}
}

export!(Lazy);
