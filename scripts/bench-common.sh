# Sourced by the benchmark scripts: set-up, the release binaries, the
# generated captures in $BENCH_DIR (unless captures=0), and a median helper. Sets ng, gen, dir
# and runs (the first argument of the script, default 5).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/net-gazer-target}"
runs="${1:-5}"
dir="${BENCH_DIR:-/var/tmp/ng-bench}"
mkdir -p "$dir"
cargo build --release --locked -p net-gazer --bin net-gazer --example gen_capture >&2
ng="$CARGO_TARGET_DIR/release/net-gazer"
gen="$CARGO_TARGET_DIR/release/examples/gen_capture"
# Scripts that replay no capture set captures=0 before sourcing this.
if [[ ${captures:-1} == 1 ]]; then
  [[ -f $dir/mix.pcap ]] || "$gen" mix "$dir/mix.pcap" 5000000
  [[ -f $dir/flood.pcap ]] || "$gen" flood "$dir/flood.pcap" 1000000
fi

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
