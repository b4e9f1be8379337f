#!/usr/bin/env bash
# GeoIP plugin benchmark (docs/benchmarks.md): addresses per second looked
# up inside the plugin (City + ASN, in the real host, per event and in
# batches) against native `maxminddb` lookups of the same addresses, in
# the same run, on the MaxMind test databases of testdata/mmdb.
#   ./scripts/bench-geoip.sh [RUNS]
captures=0
source "$(dirname "$0")/bench-common.sh"
mmdb="$(pwd)/testdata/mmdb"
built="$(scripts/build-plugins.sh)"
cargo build --release --locked -p net-gazer --example geoip_bench >&2
work="$dir/geoip-bench"
rm -rf "$work" && mkdir -p "$work/plugins"
cp "$built/geoip.wasm" "$work/plugins/"
"$CARGO_TARGET_DIR/release/examples/geoip_bench" "$mmdb/GeoIP2-City-Test.mmdb" "$mmdb/GeoLite2-ASN-Test.mmdb" \
  "$mmdb/source-data/GeoIP2-City-Test.json" "$work/geo.pcap" 200000
for batch in false true; do
  printf '[track]\nlocal_networks = ["10.0.0.0/8", "fd00::/8"]\nmax_connections = 300000\n[plugins]\ndir = "%s"\n[plugins.geoip]\ndirs = ["%s"]\ncity_db = "GeoIP2-City-Test.mmdb"\nasn_db = "GeoLite2-ASN-Test.mmdb"\nbatch = %s\n' \
    "$work/plugins" "$mmdb" "$batch" >"$work/ng.toml"
  for _ in $(seq "$runs"); do
    "$ng" replay -c "$work/ng.toml" -o /dev/null --no-progress --summary-json "$work/geo.pcap" 2>&1 >/dev/null |
      grep '^{' | python3 -c '
import json, sys
p = json.load(sys.stdin)["plugins"]["geoip"]
print(p["busy_ns"] / max(p["events"], 1))'
  done | median | awk -v b="$batch" '{ printf "geoip plugin (batch = %s): %.0f ns per event inside the call (City + ASN): %.0f addresses/s\n", b, $1, 1e9 / $1 }'
done
