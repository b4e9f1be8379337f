#!/usr/bin/env bash
# Plugin chain benchmark (docs/benchmarks.md): CPU cost per event of 0, 1
# and 3 Rust plugins (per event and in batches; contract 0.3 reading nothing
# (demo) and three fields (lazy), contract 0.2 keeping every event) and of
# the Python plugins,
# reload latency (SIGHUP to new chain active, cached and cold), peak RSS
# with 10 plugins. Needs root for the reload part (a network namespace).
#   sudo ./scripts/bench-plugins.sh [RUNS]
source "$(dirname "$0")/bench-common.sh"
built="$(scripts/build-plugins.sh)"
work="$dir/plugins-bench"
rm -rf "$work" && mkdir -p "$work"

# setup NAME "file:source ..." "extra config": a plugin dir and config.
setup() {
  local name=$1 files=$2 extra=$3
  mkdir -p "$work/$name/plugins"
  for f in $files; do
    local src="$built/${f#*:}.wasm"
    [[ -f $src ]] || src="$built/testing/${f#*:}.wasm"
    cp "$src" "$work/$name/plugins/${f%%:*}.wasm"
  done
  printf '[track]\nmax_connections = 1100000\n[plugins]\ndir = "%s"\ncache_dir = "%s"\n%b' \
    "$work/$name/plugins" "$work/cache" "$extra" >"$work/$name/ng.toml"
}

# once NAME: CPU seconds (user+sys, pinned to one core) of a replay of the
# flood (1,000,000 handshake events), appended to $work/cpu as "NAME s";
# keeps the summary.
once() {
  local name=$1
  /usr/bin/time -f "%U %S %M" -o "$work/$name/time" taskset -c 0 \
    "$ng" replay -c "$work/$name/ng.toml" -o /dev/null --no-progress --summary-json "$dir/flood.pcap" \
    2>"$work/$name/summary"
  awk -v n="$name" '{print n, $1 + $2}' "$work/$name/time" >>"$work/cpu"
}

# cpu NAME: the median of NAME's runs.
cpu() { awk -v n="$1" '$1 == n {print $2}' "$work/cpu" | median; }

setup none "" ""
setup demo "demo:demo" '[plugins.demo]\nbatch = false\n'
setup demo-batch "demo:demo" '[plugins.demo]\nbatch = true\n'
setup three "a:demo b:filter c:testkit" '[plugins.a]\nbatch = false\n[plugins.b]\nbatch = false\n[plugins.c]\nbatch = false\n'
setup three-batch "a:demo b:filter c:testkit" '[plugins.a]\nbatch = true\n[plugins.b]\nbatch = true\n[plugins.c]\nbatch = true\n'
# Contract 0.2 (on wasmtime's generated bindings): a plugin that keeps
# every event.
setup v02 "t:testkit" '[plugins.t]\nmode = "keep"\nbatch = false\n'
setup v02-batch "t:testkit" '[plugins.t]\nmode = "keep"\nbatch = true\n'
# Contract 0.3: the floor, a plugin that reads nothing and keeps the event.
setup lazy-nothing "lazy:lazy" '[plugins.lazy]\nmode = "keep"\n'
setup lazy-nothing-batch "lazy:lazy" '[plugins.lazy]\nmode = "keep"\nbatch = true\n'
# Contract 0.3: a plugin reading three fields (server address and port, RTT).
setup lazy "lazy:lazy" '[plugins.lazy]\nmode = "three"\n'
setup lazy-batch "lazy:lazy" '[plugins.lazy]\nmode = "three"\nbatch = true\n'
# ...and one whose declared interest (port 1) excludes every event.
setup lazy-excluded "lazy:lazy" '[plugins.lazy]\nmode = "three"\nports = [1]\n'
setup python-nothing "lazy-py:lazy-py" '[plugins.lazy-py]\nmode = "keep"\n'
setup python-plain-batch "lazy-py:lazy-py" '[plugins.lazy-py]\nmode = "three-plain"\nbatch = true\n'
setup python-lazy "lazy-py:lazy-py" '[plugins.lazy-py]\nmode = "three"\n'
setup python-lazy-batch "lazy-py:lazy-py" '[plugins.lazy-py]\nmode = "three"\nbatch = true\n'
# An exporter whose endpoint accepts and never answers (exporters run off
# the chain: the replay must not wait for it).
python3 - "$work/hung-port" <<'PY' &
import socket, sys
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(4096)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
held = []
while True:
    held.append(s.accept()[0])
PY
hung_pid=$!
until [[ -s $work/hung-port ]]; do sleep 0.05; done
hung="127.0.0.1:$(cat "$work/hung-port")"
setup exporter-hung "exp:testkit" "[plugins.exp]\nrole = \"exporter\"\nmode = \"http\"\nurl = \"http://$hung/\"\nhttp_allow = [\"$hung\"]\n"
setup python "slow-rtt:slow-rtt" '[plugins.slow-rtt]\ndefault_ms = 100\n'
setup python-batch "slow-rtt:slow-rtt" '[plugins.slow-rtt]\ndefault_ms = 100\nbatch = true\n'
# Fill the cache (the Python plugin takes seconds to compile).
for name in three python python-nothing python-lazy; do
  "$ng" replay -c "$work/$name/ng.toml" -o /dev/null --no-progress "$dir/flood.pcap" 2>/dev/null
done

# Interleaved rounds: the machine's load drifts, and every set sees the same.
sets=(none demo demo-batch v02 v02-batch lazy-nothing lazy-nothing-batch lazy lazy-batch lazy-excluded exporter-hung three three-batch python python-batch python-nothing python-plain-batch python-lazy python-lazy-batch)
for _ in $(seq "$runs"); do
  for name in "${sets[@]}"; do once "$name"; done
done
base=$(cpu none)
events=$(tail -1 "$work/none/summary" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events"])')
echo "replay of $dir/flood.pcap: $events events; CPU seconds, median of $runs interleaved rounds, pinned to one core"
echo "  no plugins: $base s"
for v in demo:1 demo-batch:1 v02:1 v02-batch:1 lazy-nothing:1 lazy-nothing-batch:1 lazy:1 lazy-batch:1 lazy-excluded:1 three:3 three-batch:3 python:1 python-batch:1 python-nothing:1 python-plain-batch:1 python-lazy:1 python-lazy-batch:1; do
  name=${v%%:*} n=${v#*:}
  t=$(cpu "$name")
  inside=$(tail -1 "$work/$name/summary" | python3 -c '
import json, sys
s = json.load(sys.stdin)["plugins"]
print(" ".join("%s=%.0fns" % (k, v["busy_ns"] / max(v["events"], 1)) for k, v in s.items()))')
  awk -v t="$t" -v b="$base" -v e="$events" -v n="$n" -v name="$name" -v inside="$inside" 'BEGIN {
    printf "  %-12s %s s: +%.0f ns per event per plugin (time inside the calls: %s)\n", name, t, (t - b) * 1e9 / e / n, inside }'
done
kill "$hung_pid" 2>/dev/null || true
t=$(cpu exporter-hung)
idle=$(cpu lazy-excluded)
tail -1 "$work/exporter-hung/summary" | python3 -c '
import json, sys
p = json.load(sys.stdin)["plugins"]["exp"]
t, b, i, e = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
print("  exporter-hung %s s: %.3f of the run without plugins, %.3f of the run with a plugin never called (lazy-excluded);"
      " exporter took %d events, export_dropped %d (sum %d of %d)"
      % (t, t / b, t / i, p["events"], p["export_dropped"], p["events"] + p["export_dropped"], e - 1))' "$t" "$base" "$idle" "$events"

# Peak RSS: 10 Rust plugins loaded, replaying the flood.
setup ten "p0:demo p1:filter p2:testkit p3:demo p4:filter p5:testkit p6:demo p7:filter p8:testkit p9:demo" ""
for name in none ten python; do
  /usr/bin/time -f "%M" -o "$work/$name/rss" "$ng" replay -c "$work/$name/ng.toml" -o /dev/null --no-progress "$dir/flood.pcap" 2>/dev/null
  echo "  peak RSS, $name: $(cat "$work/$name/rss") KB"
done

# Reload latency, live: SIGHUP to "reloaded plugin chain active".
if [[ $(id -u) -ne 0 ]]; then
  echo "reload latency: skipped (needs root for the network namespace)"
  exit 0
fi
ns="ngbench$$"
ip netns add "$ns"
trap 'ip netns del "$ns" 2>/dev/null || true' EXIT
ip netns exec "$ns" ip link set lo up
setup live "demo:demo" ""
ip netns exec "$ns" "$ng" run -v -i lo -c "$work/live/ng.toml" -o /dev/null 2>"$work/live/log" &
pid=$!
until grep -q capturing "$work/live/log"; do sleep 0.1; done
stamp() { date -d "$1" +%s.%N; }
latency() { # prints ms from the last SIGHUP to the chain taking over
  local before
  before=$(grep -c "reloaded plugin chain active" "$work/live/log" || true)
  kill -HUP "$pid"
  until [[ $(grep -c "reloaded plugin chain active" "$work/live/log" || true) -gt $before ]]; do sleep 0.01; done
  local t0 t1
  t0=$(grep "SIGHUP received" "$work/live/log" | tail -1 | cut -d' ' -f1)
  t1=$(grep "reloaded plugin chain active" "$work/live/log" | tail -1 | cut -d' ' -f1)
  awk -v a="$(stamp "$t0")" -v b="$(stamp "$t1")" 'BEGIN {printf "%.1f", (b - a) * 1000}'
}
cached=() cold=()
for i in $(seq "$runs"); do
  cached+=("$(latency)")
  # A changed file (a custom section appended: a new sha256) and no cache:
  # compiled from scratch.
  cp "$built/demo.wasm" "$work/live/new.wasm"
  printf '\x00\x0a\x01x%08d' "$i" >>"$work/live/new.wasm"
  mv "$work/live/new.wasm" "$work/live/plugins/demo.wasm"
  rm -rf "$work/cache"
  cold+=("$(latency)")
done
kill -TERM "$pid"; wait "$pid" || true
echo "reload latency, SIGHUP to new chain active, median of $runs:"
echo "  unchanged plugin (compiled code in memory/cache): $(printf '%s\n' "${cached[@]}" | median) ms"
echo "  changed plugin, nothing cached (cold compile of demo.wasm): $(printf '%s\n' "${cold[@]}" | median) ms"
