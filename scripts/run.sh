#!/usr/bin/env bash
# Builds net-gazer (release) and runs the sensor with the given arguments,
# e.g.: sudo ./scripts/run.sh -i eth0 -v
# Installs what is missing first (scripts/setup.sh). Capturing needs root or
# CAP_NET_RAW + CAP_NET_ADMIN.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/net-gazer-target}"
cargo build --release --locked -p net-gazer >&2
# The first-party plugins, built into $CARGO_TARGET_DIR/plugins; the daemon
# loads those in its plugin directory (/etc/net-gazer/plugins, or
# NG_PLUGIN_DIR / --plugin-dir): copy the ones you want there.
built="$(scripts/build-plugins.sh)"
echo "run: plugins built in $built (install: cp $built/filter.wasm /etc/net-gazer/plugins/)" >&2
exec "$CARGO_TARGET_DIR/release/net-gazer" "$@"
