#!/usr/bin/env bash
# Replays every capture of testdata/ (and any given) with two net-gazer
# binaries, in both modes, with and without local networks and VLAN keys,
# and compares the outputs byte for byte: the check for a change that must
# not change behaviour (a refactoring).
#   ./scripts/compare-replay.sh OLD_BINARY NEW_BINARY [CAPTURE...]
# Generated captures make good extra inputs:
#   cargo run --release --example gen_capture -- mix /tmp/mix.pcap 400000
set -euo pipefail
cd "$(dirname "$0")/.."
old=$1 new=$2; shift 2
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
run() { # BINARY OUTDIR CAPTURE...
  local bin=$1 dir=$2; shift 2
  mkdir -p "$dir"
  for f in "$@"; do
    n=$(basename "$f")
    for mode in handshake quality; do
      "$bin" replay -c /dev/null --no-progress -m "$mode" -o "$dir/$n.$mode.jsonl" "$f" 2>/dev/null
      "$bin" replay -c /dev/null --no-progress -m "$mode" --vlan-in-key \
        -l 10.0.0.0/8,192.168.0.0/16,172.16.0.0/12,fc00::/7,2001:db8::/32 \
        -o "$dir/$n.$mode.local.jsonl" "$f" 2>/dev/null
    done
  done
}
captures=(testdata/pcaps/*.pcap "$@")
run "$old" "$out/old" "${captures[@]}"
run "$new" "$out/new" "${captures[@]}"
if diff -rq "$out/old" "$out/new"; then
  echo "identical: ${#captures[@]} captures, $(cat "$out"/new/* | wc -l) events, 4 runs each"
else
  echo "DIFFERENT (outputs kept in $out)" >&2
  trap - EXIT
  exit 1
fi
