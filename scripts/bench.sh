#!/usr/bin/env bash
# Replay benchmark against tcpdump (docs/benchmarks.md). Generates the
# captures once in $BENCH_DIR, then times, pinned to one core, several runs
# of each tool over the same file in the same session and prints medians.
#   ./scripts/bench.sh [RUNS]
source "$(dirname "$0")/bench-common.sh"
filter="$("$gen" filter)"
packets=$(tcpdump -r "$dir/mix.pcap" -w /dev/null 2>&1 | grep -o '^[0-9]*' || true)

timed() { # prints "seconds maxrss_kb" of one run
  /usr/bin/time -f "%e %M" -o "$dir/time.out" "$@" >/dev/null 2>&1
  cat "$dir/time.out"
}

cat "$dir/mix.pcap" >/dev/null # warm the page cache for both
# Pinned: everything net-gazer does (decode, track, and its JSON output
# thread) shares one core with nothing else, as tcpdump's single thread does.
# Unpinned: as each tool runs on a 2-core gateway.
for pin in "taskset -c 0" ""; do
  : >"$dir/ng.txt"; : >"$dir/td.txt"
  for _ in $(seq "$runs"); do
    timed $pin "$ng" replay -c /dev/null -o /dev/null --no-progress "$dir/mix.pcap" | awk '{print $1}' >>"$dir/ng.txt"
    timed $pin tcpdump -r "$dir/mix.pcap" -w /dev/null "$filter" | awk '{print $1}' >>"$dir/td.txt"
  done
  ng_s=$(median <"$dir/ng.txt"); td_s=$(median <"$dir/td.txt")
  echo "${pin:-unpinned}:"
  echo "  net-gazer replay (handshake mode, JSON to /dev/null), median of $runs: $ng_s s ($(awk -v p="${packets:-5000006}" -v s="$ng_s" 'BEGIN {printf "%.2f", p/s/1e6}') M packets/s)"
  echo "  tcpdump -r -w /dev/null with the handshake filter, median of $runs: $td_s s"
  echo "  ratio net-gazer / tcpdump: $(awk -v a="$ng_s" -v b="$td_s" 'BEGIN {printf "%.2f", a/b}')"
done
echo "capture: $dir/mix.pcap, $(stat -c %s "$dir/mix.pcap") bytes, ${packets:-5000006} packets"
for n in 1000 200000; do
  printf '[track]\nmax_connections = %s\n' "$n" >"$dir/flood.toml"
  read -r s rss < <(timed "$ng" replay -c "$dir/flood.toml" -o /dev/null --no-progress "$dir/flood.pcap")
  echo "SYN flood, 1,000,000 sources, max_connections $n: peak RSS $rss KB in $s s"
done
