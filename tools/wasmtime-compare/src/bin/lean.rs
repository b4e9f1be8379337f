//! `lean LEAN.wasm`: the one-entry-per-event sketches of `lean/lean.wit`.
//! The plugin (`lean/guest`) reads three fields of a handshake through host
//! calls and drops the event: through a borrowed handle (`on-handshake`)
//! and through plain host functions reading the current event
//! (`on-current`). Prints the best of seven runs per event.

use wasmtime::component::{HasSelf, Resource};
use wasmtime_compare::{best, load, Loaded, State};

wasmtime::component::bindgen!({
    path: "lean/lean.wit",
    world: "lean",
    with: { "net-gazer:lean/types.handshake": Current },
});

use net_gazer::lean::current;
use net_gazer::lean::types::IpAddress;

/// The handle's type: the host keeps the event, the plugin gets rep 0.
pub struct Current;

/// What the host functions read: the event being handled.
#[derive(Clone, Copy)]
struct Event {
    server_ip: u32,
    server_port: u16,
    rtt_last_syn_us: Option<f64>,
}

/// The host's side: the event being handled and the tags added to it.
struct Sensor {
    current: Event,
    tags: Vec<(String, String)>,
}

impl net_gazer::lean::types::Host for State<Sensor> {}

impl current::Host for State<Sensor> {
    fn server_ip(&mut self) -> IpAddress {
        IpAddress::Ipv4(self.host.current.server_ip)
    }
    fn server_port(&mut self) -> u16 {
        self.host.current.server_port
    }
    fn rtt_last_syn_us(&mut self) -> Option<f64> {
        self.host.current.rtt_last_syn_us
    }
    fn add_tag(&mut self, key: String, value: String) {
        self.host.tags.push((key, value));
    }
}

/// The handle's methods read the same current event.
impl net_gazer::lean::types::HostHandshake for State<Sensor> {
    fn server_ip(&mut self, _event: Resource<Current>) -> IpAddress {
        current::Host::server_ip(self)
    }
    fn server_port(&mut self, _event: Resource<Current>) -> u16 {
        current::Host::server_port(self)
    }
    fn rtt_last_syn_us(&mut self, _event: Resource<Current>) -> Option<f64> {
        current::Host::rtt_last_syn_us(self)
    }
    fn add_tag(&mut self, _event: Resource<Current>, key: String, value: String) {
        current::Host::add_tag(self, key, value)
    }
    fn drop(&mut self, _event: Resource<Current>) -> wasmtime::Result<()> {
        Ok(())
    }
}

fn main() -> wasmtime::Result<()> {
    let host = Sensor {
        current: Event {
            server_ip: 0,
            server_port: 0,
            rtt_last_syn_us: None,
        },
        tags: Vec::new(),
    };
    let Loaded {
        component,
        linker,
        mut store,
    } = load("lean LEAN.wasm (tools/wasmtime-compare/lean/guest)", host, |linker| {
        Lean::add_to_linker::<State<Sensor>, HasSelf<State<Sensor>>>(linker, |s| s)
    })?;
    let lean = Lean::instantiate(&mut store, &component, &linker)?;
    let events: Vec<Event> = (0..256)
        .map(|i| Event {
            server_ip: 0xc000_0200 + i,
            server_port: 443,
            rtt_last_syn_us: Some(1000.0 + f64::from(i)),
        })
        .collect();
    let n = 200_000u32;
    let one = best(n, || {
        for i in 0..n {
            store.data_mut().host.current = events[(i % 256) as usize];
            let v = lean.call_on_handshake(&mut store, Resource::new_borrow(0));
            assert!(matches!(v, Ok(Verdict::Drop)), "{v:?}");
        }
    });
    let current = best(n, || {
        for i in 0..n {
            store.data_mut().host.current = events[(i % 256) as usize];
            let v = lean.call_on_current(&mut store);
            assert!(matches!(v, Ok(Verdict::Drop)), "{v:?}");
        }
    });
    println!("one entry per event, three fields read: through a handle {one:?}, as the current event {current:?}");
    Ok(())
}
