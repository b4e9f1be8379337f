#!/usr/bin/env bash
# Web UI benchmark (docs/benchmarks.md): time from opening the paths graph
# in headless Chromium to its first drawn frame, for about 1,000 and 5,000
# nodes (hosts, hops, local hosts) served by a release collector.
#   ./scripts/bench-ui.sh
captures=0
# chromium and chromium-driver (setup.sh installs them in test mode).
export NG_SETUP_TESTS=1
source "$(dirname "$0")/bench-common.sh"
cargo build --release --locked -p net-gazer-collector --bin net-gazer-collector --example graph_bench >&2
work="$dir/ui-bench"
rm -rf "$work" && mkdir -p "$work/1k" "$work/5k"
# graph_bench HOSTS: HOSTS remote hosts, up to 1,800 hops, 50 local hosts.
"$CARGO_TARGET_DIR/release/examples/graph_bench" "$work/1k" 100 >/dev/null
"$CARGO_TARGET_DIR/release/examples/graph_bench" "$work/5k" 3150 >/dev/null
# The e2e tests run the binaries of the target directory: build them first.
cargo build --release --locked -p net-gazer -p net-gazer-collector >&2
NG_BENCH_UI="$work/1k/graph.sqlite,$work/5k/graph.sqlite" \
  cargo test --release --locked -p net-gazer-e2e --test ui -- --ignored --nocapture bench_graph_first_render 2>&1 |
  grep -E "^graph first render|SKIPPED|panicked"
