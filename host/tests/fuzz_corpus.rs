//! Replays every fuzz target of the sensor on its corpus and regressions
//! (fuzz/replay.rs), on the stable toolchain (docs/reliability.md).

#[path = "../../fuzz/replay.rs"]
mod corpus;
use corpus::replay;

#[test]
fn capture_file() {
    replay("capture_file", 10, net_gazer::fuzzing::capture_file);
}

#[test]
fn decode() {
    replay("decode", 10, net_gazer::fuzzing::decode);
}

#[test]
fn tracker() {
    replay("tracker", 5, net_gazer::fuzzing::tracker);
}

#[test]
fn trace_answer() {
    replay("trace_answer", 5, net_gazer::fuzzing::trace_answer);
}

#[test]
fn sensor_config() {
    replay("sensor_config", 3, net_gazer::fuzzing::sensor_config);
}

#[test]
fn plugin_file() {
    replay("plugin_file", 3, net_gazer::fuzzing::plugin_file);
}
