//! Replays every fuzz target of the collector on its corpus and
//! regressions (fuzz/replay.rs), on the stable toolchain
//! (docs/reliability.md).

#[path = "../../fuzz/replay.rs"]
mod corpus;
use corpus::replay;

#[test]
fn ingest() {
    replay("ingest", 5, net_gazer_collector::fuzzing::ingest);
}

#[test]
fn stored_values() {
    replay("stored_values", 3, net_gazer_collector::fuzzing::stored_values);
}

#[test]
fn collector_config() {
    replay("collector_config", 2, net_gazer_collector::fuzzing::collector_config);
}
