#!/usr/bin/env bash
# Collector ingest benchmark (docs/benchmarks.md): events/s through the
# collector's check-and-store path against a plain bulk insert of the same
# rows, in the same run on one core; then over HTTP to a running collector;
# then the graph query over 10,000 remote hosts with ten-hop routes. First,
# the same into PostgreSQL (a server of the benchmark's own, on the other
# core): the collector's path against a plain COPY and multi-row INSERTs.
#   ./scripts/bench-collector.sh [EVENTS]
captures=0
source "$(dirname "$0")/bench-common.sh"
events="${1:-200000}"
cargo build --release --locked -p net-gazer-collector --bin net-gazer-collector --example ingest_bench --example graph_bench >&2
work="$dir/collector-bench"
rm -rf "$work" && mkdir -p "$work"
token=bench-token-0123456789
printf 'listen = "127.0.0.1:0"\ndatabase = "%s/http.sqlite"\nbody_limit_mb = 64\n[sensors.bench]\ntoken = "%s"\n' \
  "$work" "$token" >"$work/collector.toml"
taskset -c 1 "$CARGO_TARGET_DIR/release/net-gazer-collector" -c "$work/collector.toml" 2>"$work/collector.log" &
pid=$!
start_postgres "$work"
trap 'kill $pid $pg_pid 2>/dev/null' EXIT
taskset -p -c 1 "$pg_pid" >/dev/null
for _ in $(seq 100); do grep -q "listening on" "$work/collector.log" && break; sleep 0.1; done
url="http://$(sed -n 's/^net-gazer-collector: listening on //p' "$work/collector.log")"
NG_BENCH_POSTGRES="$pg_url" taskset -c 0 "$CARGO_TARGET_DIR/release/examples/ingest_bench" "$work" "$events" 1000 "$url" "$token"
taskset -c 0 "$CARGO_TARGET_DIR/release/examples/graph_bench" "$work" 10000
