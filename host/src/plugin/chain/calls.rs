//! The cost of calls into a plugin, without the sensor around them:
//! `cargo test --release -p net-gazer --lib plugin::chain::calls -- --ignored --nocapture`
//! (docs/benchmarks.md, "Plugin chain").

use super::tests::{handshake, running};
use super::*;
use std::time::Duration;

/// The best of five runs of `f` over `n` events, per event.
fn best(n: u32, mut f: impl FnMut()) -> Duration {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed() / n
        })
        .min()
        .unwrap_or_default()
}

fn measure<C: Contract>(name: &str, plugin: &str, mode: &str) {
    let Some(mut running) = running(plugin, mode) else {
        return;
    };
    let events: Vec<Tagged> = (0..256)
        .map(handshake)
        .map(|mut t| {
            t.tags.clear();
            t
        })
        .collect();
    let rounds = 800;
    let n = rounds * 256;
    // The call alone, the record made beforehand.
    let records: Vec<C::Record> = events.iter().filter_map(|t| C::record(&t.event, &t.tags)).collect();
    let mut items = events.clone();
    let (store, instance) = running.instance.as_mut().unwrap();
    let p = C::instance(instance).unwrap();
    let call = best(n, || {
        for _ in 0..rounds {
            for (item, r) in items.iter_mut().zip(&records) {
                C::on_event(p, store, item, r).unwrap();
            }
        }
    });
    // One entry into the plugin and nothing else: no argument area to
    // allocate in it, no result to free after (`on-tick`).
    let entry = best(n, || {
        for _ in 0..n {
            instance.tick(store, 0).unwrap();
        }
    });
    // The chain's per-event and batch paths over batches of 256 (less
    // copying the batch, which the sensor does not do).
    let copy = best(n, || {
        for _ in 0..rounds {
            std::hint::black_box(events.clone());
        }
    });
    let mut chain = |batch: bool| {
        running.batch = batch;
        best(n, || {
            for _ in 0..rounds {
                let mut all = events.clone();
                running.run(&mut Work::new(&mut all));
            }
        })
        .saturating_sub(copy)
    };
    let per_event = chain(false);
    let batched = chain(true);
    eprintln!(
        "{name}: an empty entry (on-tick) {entry:?}; the call alone {call:?}; \
         the chain {per_event:?} per event, {batched:?} in batches"
    );
}

#[test]
#[ignore]
fn calls_v0_2() {
    measure::<crate::plugin::wit::since_v0_2::V>("contract 0.2 (testkit)", "testkit", "drop");
}

#[test]
#[ignore]
fn calls_v0_3() {
    use crate::plugin::wit::since_v0_3::V;
    measure::<V>("contract 0.3 (lazy), reading nothing", "lazy", "drop");
    measure::<V>("contract 0.3 (lazy), reading three fields", "lazy", "three");
    // The chain's cost for an event the plugin's interest excludes.
    let Some(mut running) = running("lazy", "three") else {
        return;
    };
    running.interest = crate::plugin::wit::Interest {
        server_ports: vec![1],
        ..Default::default()
    };
    let events: Vec<Tagged> = (0..256).map(handshake).collect();
    let rounds = 800;
    let n = rounds * 256;
    let copy = best(n, || {
        for _ in 0..rounds {
            std::hint::black_box(events.clone());
        }
    });
    let excluded = best(n, || {
        for _ in 0..rounds {
            let mut all = events.clone();
            running.run(&mut Work::new(&mut all));
        }
    })
    .saturating_sub(copy);
    assert_eq!(running.metrics.snapshot().events, 0, "no call for an excluded event");
    eprintln!("contract 0.3 (lazy), events its interest excludes: the chain {excluded:?} per event");
}
