#!/usr/bin/env bash
# Traceroute benchmark (docs/benchmarks.md): wall time to trace the ten-hop
# namespace path (scripts/trace-lab.sh) with each method, against Debian's
# traceroute with its defaults (and -I, -T) and `mtr --report -c 1`, in the
# same run; then the probe rate against the budget. Needs root.
#   sudo ./scripts/bench-trace.sh [RUNS]
captures=0
source "$(dirname "$0")/bench-common.sh"
if [[ $(id -u) -ne 0 ]]; then
  echo "bench-trace: needs root (network namespaces, raw sockets)" >&2
  exit 1
fi
lab=ngb$$
delay=
trap '[[ -n $delay ]] && kill $delay 2>/dev/null; bash scripts/trace-lab.sh down $lab' EXIT
bash scripts/trace-lab.sh up "$lab"
dst=10.88.10.2
in_s() { ip netns exec "$lab-s" "$@"; }

# wall "LABEL" CMD...: median wall seconds of RUNS runs, and the hop count
# of the last run's output (lines starting with a hop number).
wall() {
  local label=$1
  shift
  local times=() out
  for _ in $(seq "$runs"); do
    local t0 t1
    t0=$(date +%s%N)
    out=$(in_s "$@" 2>&1) || true
    t1=$(date +%s%N)
    times+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", (b - a) / 1e9}')")
  done
  local hops
  hops=$(printf '%s\n' "$out" | grep -cE '^ *[0-9]+[ .]' || true)
  printf '| %s | %s | %s |\n' "$label" "$(printf '%s\n' "${times[@]}" | median)" "$hops"
}

# methods "PATH": the table head and one row per method and tool.
methods() {
  echo "| command (ten-hop path$1, $runs runs) | median wall s | hop lines |"
  echo "|---|---|---|"
  wall "net-gazer trace -p icmp" "$ng" trace "$dst" -p icmp
  wall "net-gazer trace -p udp" "$ng" trace "$dst" -p udp
  wall "net-gazer trace -p tcp" "$ng" trace "$dst" -p tcp
  wall "traceroute (defaults: UDP)" traceroute -n "$dst"
  wall "traceroute -I" traceroute -n -I "$dst"
  wall "traceroute -T" traceroute -n -T "$dst"
  wall "mtr --report -c 1" mtr --report -c 1 -n "$dst"
}

methods ""
wall "net-gazer trace -6 -p tcp" "$ng" trace fd88:10::2 -p tcp
wall "traceroute -6 -T" traceroute -6 -n -T fd88:10::2
# Process start-up alone, and net-gazer's own measure of a trace.
wall "net-gazer --version (start-up only)" "$ng" --version
wall "traceroute -V (start-up only)" traceroute -V
durations=()
for _ in $(seq "$runs"); do
  durations+=("$(in_s "$ng" trace "$dst" -p udp --json | sed 's/.*"duration_us":\([0-9.]*\).*/\1/')")
done
echo
echo "net-gazer's own measure of a UDP trace (duration_us, first probe to last answer): median $(printf '%s\n' "${durations[@]}" | median) µs"

# The same with 20 ms of latency beyond hop 5 (r5 holds every packet it
# forwards downstream: NFQUEUE and netsim, as the kernel has no netem).
cargo build --release --locked -p netsim >&2
netsim="$CARGO_TARGET_DIR/release/netsim"
# netsim exits when its standard input closes: a fifo held by this script.
ip netns exec "$lab-r5" "$netsim" delay --queue 0 --ms 20 < <(sleep 600) &
delay=$!
sleep 0.5
# nft's queue statement, or iptables' NFQUEUE where the kernel lacks nft_queue.
if ! ip netns exec "$lab-r5" nft -f - 2>/dev/null <<NFT
table inet delay {
  chain forward { type filter hook forward priority 0; iifname "${lab}5b" queue num 0; }
}
NFT
then
  ip netns exec "$lab-r5" iptables -A FORWARD -i "${lab}5b" -j NFQUEUE --queue-num 0
  ip netns exec "$lab-r5" ip6tables -A FORWARD -i "${lab}5b" -j NFQUEUE --queue-num 0
fi
echo
methods ", +20 ms after hop 5"
kill "$delay" 2>/dev/null || true
delay=
ip netns exec "$lab-r5" nft delete table inet delay 2>/dev/null ||
  { ip netns exec "$lab-r5" iptables -F FORWARD; ip netns exec "$lab-r5" ip6tables -F FORWARD; }

# The budget: 15 probes per hop at 50 probes/s (burst 100) must never put
# more than rate + burst probes in any one-second window.
cap="$dir/trace-probes.pcap"
# (ip netns exec execs tcpdump: $! is tcpdump itself.)
ip netns exec "$lab-s" tcpdump -q -n -B 16384 -i "${lab}1a" -w "$cap" 'udp and src host 10.88.1.1' \
  2>"$dir/trace-tcpdump.log" &
dump=$!
sleep 1
in_s "$ng" trace "$dst" -p udp -q 15 --rate 50 >/dev/null
sleep 0.5
kill -INT "$dump"
wait "$dump" 2>/dev/null || true
grep -h "dropped by kernel" "$dir/trace-tcpdump.log" || true
tcpdump -tt -n -r "$cap" 2>/dev/null | awk '
  { t[NR] = $1 }
  END {
    max = 0; j = 1
    for (i = 1; i <= NR; i++) { while (t[i] - t[j] >= 1) j++; if (i - j + 1 > max) max = i - j + 1 }
    printf "\nprobe budget: %d probes in %.2f s (rate 50/s, burst 100): at most %d in any 1 s window (budget %d)\n", NR, t[NR] - t[1], max, 150
  }'
