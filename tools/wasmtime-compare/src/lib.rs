//! What both hosts of the comparison share: the store's data, the engine
//! and linker with WASI, and the timing.

use std::time::{Duration, Instant};

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// A store's data: WASI (nothing granted) and the host's own `E`.
pub struct State<E> {
    wasi: WasiCtx,
    table: ResourceTable,
    pub host: E,
}

impl<E: Send + 'static> WasiView for State<E> {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A plugin ready to instantiate.
pub struct Loaded<E: 'static> {
    pub component: Component,
    /// WASI and what the host added.
    pub linker: Linker<State<E>>,
    /// Its deadline never comes.
    pub store: Store<State<E>>,
}

/// The component in the file named by the first argument (`usage` names
/// it otherwise), with a linker that has WASI and what `link` adds.
pub fn load<E: Send + 'static>(
    usage: &str,
    host: E,
    link: impl FnOnce(&mut Linker<State<E>>) -> wasmtime::Result<()>,
) -> wasmtime::Result<Loaded<E>> {
    let Some(file) = std::env::args().nth(1) else {
        wasmtime::bail!("usage: {usage}");
    };
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config)?;
    let component = Component::from_file(&engine, &file)?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    link(&mut linker)?;
    let state = State {
        wasi: WasiCtx::builder().build(),
        table: ResourceTable::new(),
        host,
    };
    let mut store = Store::new(&engine, state);
    store.set_epoch_deadline(u64::MAX / 2);
    Ok(Loaded {
        component,
        linker,
        store,
    })
}

/// The best of seven runs of `f`, per call when `f` makes `n` calls.
pub fn best(n: u32, mut f: impl FnMut()) -> Duration {
    (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed() / n
        })
        .min()
        .unwrap_or_default()
}
