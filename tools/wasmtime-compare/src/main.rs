//! `wasmtime-compare PLUGIN.wasm`: calls a contract-0.2 plugin configured
//! with `mode = "drop"` (the testkit plugin) through wasmtime's generated
//! bindings, and prints the best of seven runs per call: an empty entry
//! (`on-tick`), one `on-handshake`, and `on-batch` per event in batches of
//! 256. The host functions do nothing.

use wasmtime::component::HasSelf;
use wasmtime_compare::{best, load, Loaded, State};

wasmtime::component::bindgen!({ path: "../../wit", world: "sensor-plugin" });

use net_gazer::plugin::types::*;

impl net_gazer::plugin::types::Host for State<()> {}

impl net_gazer::plugin::host::Host for State<()> {
    fn log_enabled(&mut self, _level: Level) -> bool {
        false
    }
    fn log(&mut self, _level: Level, _message: String) {}
    fn counter_add(&mut self, _name: String, _delta: u64) {}
    fn gauge_set(&mut self, _name: String, _value: f64) {}
    fn http_send(&mut self, _request: HttpRequest) -> Result<HttpResponse, String> {
        Err("no HTTP here".into())
    }
}

/// An established outbound handshake, every option set, no VLAN or tags.
fn handshake(i: u32) -> Handshake {
    Handshake {
        id: u64::from(i),
        ts_us: 1,
        client_ip: IpAddress::Ipv4(0x0a00_0001 + i),
        client_port: 40_000,
        server_ip: IpAddress::Ipv4(0xc000_0201),
        server_port: 443,
        ip_version: 4,
        vlan: Vec::new(),
        direction: Direction::Outbound,
        outcome: Outcome::Established,
        completed: true,
        syn_count: 1,
        syns_before_synack: 1,
        synack_count: 1,
        first_syn_us: 1,
        first_synack_us: Some(2),
        ack_us: Some(3),
        rtt_last_syn_us: Some(1000.0),
        rtt_first_syn_us: Some(1000.0),
        client_rtt_us: Some(10.0),
        reordered: false,
        synack_seq_changed: false,
        rst_from: None,
        client_ttl: 64,
        client_initial_ttl: 64,
        client_hops: 0,
        server_ttl: Some(50),
        server_initial_ttl: Some(64),
        server_hops: Some(14),
        client_mss: Some(1460),
        client_wscale: Some(7),
        client_sack_permitted: true,
        client_timestamps: true,
        server_mss: Some(1400),
        server_wscale: Some(9),
        server_sack_permitted: Some(true),
        server_timestamps: Some(true),
        syn_data_len: 0,
        ecn_setup: false,
        tags: Vec::new(),
    }
}

fn main() -> wasmtime::Result<()> {
    let Loaded {
        component,
        linker,
        mut store,
    } = load("wasmtime-compare PLUGIN.wasm (the testkit plugin)", (), |linker| {
        SensorPlugin::add_to_linker::<State<()>, HasSelf<State<()>>>(linker, |s| s)
    })?;
    let plugin = SensorPlugin::instantiate(&mut store, &component, &linker)?;
    let calls = plugin.net_gazer_plugin_plugin();
    calls
        .call_init(&mut store, r#"{"mode":"drop"}"#)?
        .map_err(wasmtime::Error::msg)?;

    let events: Vec<Handshake> = (0..256).map(handshake).collect();
    let batch: Vec<Event> = events.iter().cloned().map(Event::Handshake).collect();
    let n = 200_000u32;
    let tick = best(n, || {
        for _ in 0..n {
            calls.call_on_tick(&mut store, 0).expect("on-tick");
        }
    });
    let one = best(n, || {
        for i in 0..n {
            let v = calls.call_on_handshake(&mut store, &events[(i % 256) as usize]);
            assert!(matches!(v, Ok(Verdict::Drop)), "{v:?}");
        }
    });
    let rounds = n / 256;
    let batched = best(rounds * 256, || {
        for _ in 0..rounds {
            let v = calls.call_on_batch(&mut store, &batch).expect("on-batch");
            assert_eq!(v.len(), batch.len());
        }
    });
    println!("on-tick {tick:?}, on-handshake {one:?}, on-batch {batched:?} per event");
    Ok(())
}
