//! `lean LEAN.wasm`: the one-entry-per-event sketches of `lean/lean.wit`.
//! The plugin (`lean/guest`) reads three fields of a handshake through host
//! calls and drops the event: through a borrowed handle (`on-handshake`)
//! and through plain host functions reading the current event
//! (`on-current`). Prints the best of seven runs per event.

use std::time::{Duration, Instant};

use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

wasmtime::component::bindgen!({
    path: "lean/lean.wit",
    world: "lean",
    with: { "net-gazer:lean/types.handshake": Current },
});

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

struct State {
    wasi: WasiCtx,
    table: ResourceTable,
    current: Event,
    tags: Vec<(String, String)>,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl net_gazer::lean::types::Host for State {}

impl net_gazer::lean::current::Host for State {
    fn server_ip(&mut self) -> IpAddress {
        IpAddress::Ipv4(self.current.server_ip)
    }
    fn server_port(&mut self) -> u16 {
        self.current.server_port
    }
    fn rtt_last_syn_us(&mut self) -> Option<f64> {
        self.current.rtt_last_syn_us
    }
    fn add_tag(&mut self, key: String, value: String) {
        self.tags.push((key, value));
    }
}

impl net_gazer::lean::types::HostHandshake for State {
    fn server_ip(&mut self, _event: Resource<Current>) -> IpAddress {
        IpAddress::Ipv4(self.current.server_ip)
    }
    fn server_port(&mut self, _event: Resource<Current>) -> u16 {
        self.current.server_port
    }
    fn rtt_last_syn_us(&mut self, _event: Resource<Current>) -> Option<f64> {
        self.current.rtt_last_syn_us
    }
    fn add_tag(&mut self, _event: Resource<Current>, key: String, value: String) {
        self.tags.push((key, value));
    }
    fn drop(&mut self, _event: Resource<Current>) -> wasmtime::Result<()> {
        Ok(())
    }
}

fn best(n: u32, mut f: impl FnMut()) -> Duration {
    (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed() / n
        })
        .min()
        .unwrap_or_default()
}

fn main() -> wasmtime::Result<()> {
    let Some(file) = std::env::args().nth(1) else {
        wasmtime::bail!("usage: lean LEAN.wasm (tools/wasmtime-compare/lean/guest)");
    };
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config)?;
    let component = Component::from_file(&engine, &file)?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    Lean::add_to_linker::<State, HasSelf<State>>(&mut linker, |s| s)?;
    let state = State {
        wasi: WasiCtx::builder().build(),
        table: ResourceTable::new(),
        current: Event {
            server_ip: 0,
            server_port: 0,
            rtt_last_syn_us: None,
        },
        tags: Vec::new(),
    };
    let mut store = Store::new(&engine, state);
    store.set_epoch_deadline(u64::MAX / 2);
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
            store.data_mut().current = events[(i % 256) as usize];
            let v = lean.call_on_handshake(&mut store, Resource::new_borrow(0));
            assert!(matches!(v, Ok(Verdict::Drop)), "{v:?}");
        }
    });
    let current = best(n, || {
        for i in 0..n {
            store.data_mut().current = events[(i % 256) as usize];
            let v = lean.call_on_current(&mut store);
            assert!(matches!(v, Ok(Verdict::Drop)), "{v:?}");
        }
    });
    println!("one entry per event, three fields read: through a handle {one:?}, as the current event {current:?}");
    Ok(())
}
