#!/usr/bin/env bash
# The install-to-running path, on this machine, as root (scripts/test.sh
# runs it as root; CI does): build both .deb files, install them with dpkg,
# check files, user, permissions; run check-config and `plugins list` as the
# net-gazer user; run the sensor as that user with only its two capabilities
# (setpriv, no systemd) on a namespace link and see a handshake; check the
# unit files with systemd-analyze; then `dpkg -r` and `dpkg -P` leave only
# what policy says (the net-gazer user).
#   sudo ./scripts/test-packages.sh
# It installs and then purges the packages net-gazer and net-gazer-collector.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/net-gazer-target}"

if [[ $(id -u) -ne 0 ]]; then
  echo "==================================================================" >&2
  echo "SKIPPED: the package test installs packages: run it as root" >&2
  echo "==================================================================" >&2
  exit 0
fi

# Never on an installation someone uses: the test installs, removes and
# purges the packages (an installed collector's database with them).
installed=()
for p in net-gazer net-gazer-collector; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" && installed+=("$p")
done
if ((${#installed[@]})) && [[ ${NG_TEST_PACKAGES_REPLACE:-0} != 1 ]]; then
  echo "==================================================================" >&2
  echo "REFUSED: ${installed[*]} installed here. The package test installs, removes" >&2
  echo "and PURGES the packages (configuration and the collector's database" >&2
  echo "included). Run it on a test machine, or set NG_TEST_PACKAGES_REPLACE=1" >&2
  echo "to let it replace this installation." >&2
  echo "==================================================================" >&2
  exit 1
fi

fail() {
  echo "test-packages: FAILED: $*" >&2
  exit 1
}
check() { # description, command...
  local what=$1
  shift
  "$@" || fail "$what"
  echo "test-packages: ok: $what" >&2
}

ns="ngpkg$$"
work="$(mktemp -d)"
cleanup() {
  ip netns del "$ns" 2>/dev/null || true
  ip link del "${ns}r" 2>/dev/null || true
  for pid in "${sensor:-}" "${listener:-}" "${notifier:-}"; do
    [[ -z $pid ]] || kill "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

debs=$(scripts/build-deb.sh)
sensor_deb=$(grep '/net-gazer_[^/]*\.deb$' <<<"$debs" | head -1)
collector_deb=$(grep '/net-gazer-collector_[^/]*\.deb$' <<<"$debs" | head -1)
[[ -f $sensor_deb && -f $collector_deb ]] || fail "build-deb.sh built both packages: $debs"

# A previous run's leftovers go first.
dpkg -P net-gazer net-gazer-collector >/dev/null 2>&1 || true

dpkg -i "$sensor_deb" "$collector_deb" >&2
for f in /usr/bin/net-gazer /usr/bin/net-gazer-collector /etc/net-gazer/net-gazer.toml \
  /etc/net-gazer/net-gazer-collector.toml /usr/lib/systemd/system/net-gazer.service \
  /usr/lib/systemd/system/net-gazer-collector.service /usr/share/man/man1/net-gazer.1.gz \
  /usr/share/man/man1/net-gazer-run.1.gz /usr/share/man/man1/net-gazer-collector.1.gz \
  /usr/share/bash-completion/completions/net-gazer /usr/share/zsh/vendor-completions/_net-gazer-collector \
  /usr/share/net-gazer/plugins/filter.wasm /usr/share/doc/net-gazer/operations.md; do
  [[ -e $f ]] || fail "installed: $f"
done
echo "test-packages: ok: the files are installed" >&2
check "the man page renders" bash -c "man -l /usr/share/man/man1/net-gazer-run.1.gz 2>/dev/null | grep -q -- '--iface'"
check "the conffiles are registered" bash -c \
  "dpkg-query -W -f='\${Conffiles}' net-gazer | grep -q /etc/net-gazer/net-gazer.toml"
check "user net-gazer exists, no login" bash -c "getent passwd net-gazer | grep -q ':/usr/sbin/nologin$'"
check "the sensor's configuration is root:net-gazer 0640" \
  test "$(stat -c '%U:%G %a' /etc/net-gazer/net-gazer.toml)" = "root:net-gazer 640"
check "the collector's configuration is root:net-gazer 0640" \
  test "$(stat -c '%U:%G %a' /etc/net-gazer/net-gazer-collector.toml)" = "root:net-gazer 640"
check "the plugin directory is empty (no plugin enabled)" \
  test -z "$(ls -A /etc/net-gazer/plugins)"
for d in /var/lib/net-gazer/spool /var/cache/net-gazer /var/lib/net-gazer-collector; do
  check "$d belongs to net-gazer" test "$(stat -c %U "$d")" = net-gazer
done
check "no file capabilities on the binary (systemd grants them)" \
  test -z "$(getcap /usr/bin/net-gazer 2>/dev/null || true)"

as_user() { runuser -u net-gazer -- "$@"; }
check "check-config as net-gazer" as_user net-gazer check-config -c /etc/net-gazer/net-gazer.toml
cp /usr/share/net-gazer/plugins/filter.wasm /etc/net-gazer/plugins/
check "plugins list as net-gazer sees the plugin dropped in" bash -c \
  "runuser -u net-gazer -- net-gazer plugins list -c /etc/net-gazer/net-gazer.toml 2>&1 | grep -q filter"
rm /etc/net-gazer/plugins/filter.wasm

# The sensor as net-gazer with CAP_NET_RAW and CAP_NET_ADMIN only, on the
# root side of a veth whose other end is in a namespace; a connection
# across it is a handshake.
ip netns add "$ns"
ip link add "${ns}r" type veth peer name "${ns}n"
ip link set "${ns}n" netns "$ns"
ip addr add 10.98.0.1/24 dev "${ns}r"
ip link set "${ns}r" up
ip -n "$ns" addr add 10.98.0.2/24 dev "${ns}n"
ip -n "$ns" link set "${ns}n" up
ip -n "$ns" link set lo up
chown net-gazer "$work"
python3 -c "
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('10.98.0.1', 18099)); s.listen(8)
while True:
    c, _ = s.accept(); c.close()
" &
listener=$!
# systemd's notification socket, played by Python: the sensor must say
# READY=1, feed the watchdog and say STOPPING=1.
python3 - "$work/notify.sock" >"$work/notify.log" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
os.chmod(sys.argv[1], 0o666)
s.settimeout(30)
try:
    while True:
        print(s.recv(512).decode().strip(), flush=True)
except socket.timeout:
    pass
PY
notifier=$!
for _ in $(seq 50); do [[ -S $work/notify.sock ]] && break; sleep 0.1; done
NOTIFY_SOCKET="$work/notify.sock" WATCHDOG_USEC=400000 sh -c 'WATCHDOG_PID=$$ exec "$@"' sh \
  setpriv --reuid=net-gazer --regid=net-gazer --init-groups \
  --inh-caps=-all,+net_raw,+net_admin --ambient-caps=-all,+net_raw,+net_admin \
  --bounding-set=-all,+net_raw,+net_admin \
  /usr/bin/net-gazer run -v -c /etc/net-gazer/net-gazer.toml -i "${ns}r" -o "$work/events.jsonl" \
  2>"$work/sensor.log" &
sensor=$!
for _ in $(seq 100); do grep -q capturing "$work/sensor.log" 2>/dev/null && break; sleep 0.1; done
grep -q capturing "$work/sensor.log" || fail "the sensor started as net-gazer: $(cat "$work/sensor.log")"
ip netns exec "$ns" python3 -c "
import socket
s = socket.create_connection(('10.98.0.1', 18099), timeout=5); s.close()
"
sleep 1
kill -TERM "$sensor"
wait "$sensor" || fail "the sensor exits 0 on SIGTERM: $(cat "$work/sensor.log")"
sensor=
check "the sensor running as net-gazer saw the handshake" bash -c \
  "grep '\"kind\":\"handshake\"' '$work/events.jsonl' | grep '\"outcome\":\"established\"' | grep -q '\"server_port\":18099'"
kill "$notifier" 2>/dev/null || true
check "it told systemd it was ready" grep -qx "READY=1" "$work/notify.log"
check "it fed the watchdog" test "$(grep -cx "WATCHDOG=1" "$work/notify.log")" -ge 2
check "it said it was stopping" grep -qx "STOPPING=1" "$work/notify.log"

# An upgrade (the same build as a later revision) keeps a changed
# configuration file, its permissions, the spool and the user.
echo "# changed by the administrator" >>/etc/net-gazer/net-gazer.toml
touch /var/lib/net-gazer/spool/kept
version=$(dpkg-query -W -f='${Version}' net-gazer)
cargo deb --locked --no-build --strip -p net-gazer --deb-revision 99 --output "$work/upgrade.deb" >/dev/null
dpkg -i --force-confold "$work/upgrade.deb" >&2
check "the upgrade installed revision 99 over $version" bash -c \
  "dpkg-query -W -f='\${Version}' net-gazer | grep -q -- '-99$'"
check "a changed configuration survives the upgrade" grep -q "changed by the administrator" /etc/net-gazer/net-gazer.toml
check "and keeps its permissions" test "$(stat -c '%U:%G %a' /etc/net-gazer/net-gazer.toml)" = "root:net-gazer 640"
check "the spool survives the upgrade" test -e /var/lib/net-gazer/spool/kept

# The unit files.
for u in net-gazer net-gazer-collector; do
  check "systemd-analyze verify $u.service" systemd-analyze verify --man=no "/usr/lib/systemd/system/$u.service"
  score=$(systemd-analyze security --offline=yes "/usr/lib/systemd/system/$u.service" 2>/dev/null |
    sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
  echo "test-packages: $u.service exposure $score" >&2
  check "$u.service exposure ≤ 3.0" awk -v s="$score" 'BEGIN { exit !(s != "" && s <= 3.0) }'
  check "$u.service does not restart on a configuration error (78)" \
    grep -qx 'RestartPreventExitStatus=78' "/usr/lib/systemd/system/$u.service"
done
check "the man page documents the exit statuses" bash -c "zcat /usr/share/man/man1/net-gazer.1.gz | grep -q 'EXIT STATUS'"

# Remove: programs go, configuration and data stay; purge: they go too.
dpkg -r net-gazer net-gazer-collector >&2
check "dpkg -r removes the programs" test ! -e /usr/bin/net-gazer -a ! -e /usr/bin/net-gazer-collector
check "dpkg -r keeps the configuration" test -e /etc/net-gazer/net-gazer.toml
check "dpkg -r keeps the collector's data" test -d /var/lib/net-gazer-collector
dpkg -P net-gazer net-gazer-collector >&2
for p in /etc/net-gazer /var/lib/net-gazer /var/cache/net-gazer /var/lib/net-gazer-collector \
  /usr/share/net-gazer /usr/share/doc/net-gazer /usr/lib/systemd/system/net-gazer.service; do
  [[ ! -e $p ]] || fail "purge left $p"
done
echo "test-packages: ok: purge left nothing of the packages" >&2
check "the net-gazer user stays after purge (Debian policy)" getent passwd net-gazer
echo "test-packages: all checks passed" >&2
