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

# A PostgreSQL server of the benchmark's own in "$1" (initdb, then postgres
# on a free loopback port; as nobody when root, which PostgreSQL refuses):
# sets pg_url and pg_pid. Debian's postgresql (setup.sh installs it with
# NG_SETUP_TESTS=1).
start_postgres() {
  local work="$1" bin run=()
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  [[ -x $bin/initdb ]] || { echo "no PostgreSQL: apt-get install postgresql (scripts/setup.sh)" >&2; exit 1; }
  mkdir -p "$work/pg"
  if [[ $(id -u) == 0 ]]; then
    chmod 755 "$work"
    chown nobody "$work/pg"
    run=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
  fi
  "${run[@]}" "$bin/initdb" -D "$work/pg" -U netgazer --auth=trust -N -E UTF8 --locale=C >/dev/null
  local port
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "${run[@]}" "$bin/postgres" -D "$work/pg" -p "$port" -c listen_addresses=127.0.0.1 -c unix_socket_directories= \
    -c max_connections=200 -c shared_buffers=1GB -c max_wal_size=8GB 2>"$work/pg.log" &
  pg_pid=$!
  pg_url="host=127.0.0.1 port=$port user=netgazer dbname=postgres"
  for _ in $(seq 300); do "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" && return 0; sleep 0.1; done
  echo "PostgreSQL did not start: $(cat "$work/pg.log")" >&2
  exit 1
}
