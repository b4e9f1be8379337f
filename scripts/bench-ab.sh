#!/usr/bin/env bash
# A/B replay benchmark: an older net-gazer binary against this tree's
# release build and tcpdump, interleaved on the benchmark capture, pinned
# to one core, medians (docs/benchmarks.md). Build the older binary in a
# worktree first, e.g.
#   git worktree add /tmp/old <commit> && (cd /tmp/old && cargo build --release -p net-gazer)
#   ./scripts/bench-ab.sh "$CARGO_TARGET_DIR/release/net-gazer-old" 11
# (copy the old binary aside: both trees share the target directory).
old=$1
shift
source "$(dirname "$0")/bench-common.sh"
filter="$("$gen" filter)"
cat "$dir/mix.pcap" >/dev/null
: >"$dir/a.txt"; : >"$dir/b.txt"; : >"$dir/td.txt"
timed() { # prints the seconds of one run
  /usr/bin/time -f "%e" -o "$dir/time.out" taskset -c 0 "$@" >/dev/null 2>&1
  cat "$dir/time.out"
}
for _ in $(seq "$runs"); do
  timed "$old" replay -c /dev/null -o /dev/null --no-progress "$dir/mix.pcap" >>"$dir/a.txt"
  timed "$ng" replay -c /dev/null -o /dev/null --no-progress "$dir/mix.pcap" >>"$dir/b.txt"
  timed tcpdump -r "$dir/mix.pcap" -w /dev/null "$filter" >>"$dir/td.txt"
done
a=$(median <"$dir/a.txt"); b=$(median <"$dir/b.txt"); td=$(median <"$dir/td.txt")
echo "pinned, median of $runs interleaved runs each:"
echo "  old ($old): $a s, ratio to tcpdump $(awk -v a="$a" -v t="$td" 'BEGIN {printf "%.2f", a/t}')"
echo "  new ($ng): $b s, ratio to tcpdump $(awk -v a="$b" -v t="$td" 'BEGIN {printf "%.2f", a/t}')"
echo "  tcpdump: $td s; new / old: $(awk -v a="$b" -v o="$a" 'BEGIN {printf "%.3f", a/o}')"
