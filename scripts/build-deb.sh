#!/usr/bin/env bash
# Builds the Debian packages of the sensor (net-gazer) and the collector
# (net-gazer-collector) with cargo-deb, and prints their paths:
#   ./scripts/build-deb.sh
# Installs what is missing first (scripts/setup.sh, cargo-deb from
# crates.io). The packages land in $CARGO_TARGET_DIR/debian/.
set -euo pipefail
cd "$(dirname "$0")/.."
# dpkg-shlibdeps (dpkg-dev) works out the library dependencies.
NG_SETUP_DEB=1 source scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/net-gazer-target}"
log() { echo "build-deb: $*" >&2; }

cargo_deb_version=3.8.0
if ! cargo deb --version 2>/dev/null | grep -q "$cargo_deb_version"; then
  log "installing cargo-deb $cargo_deb_version"
  cargo install --locked --version "$cargo_deb_version" cargo-deb >&2
fi

cargo build --release --locked -p net-gazer -p net-gazer-collector >&2
plugins="$(scripts/build-plugins.sh)"

# Man pages and completions from the clap definitions; the plugins to ship
# (not the test plugin in $plugins/testing).
rm -rf debian/build
cargo run --release --locked -q -p net-gazer --example sensor-docs -- debian/build/net-gazer >&2
cargo run --release --locked -q -p net-gazer-collector --example collector-docs -- debian/build/net-gazer-collector >&2
gzip -9n debian/build/*/man/*.1
mkdir -p debian/build/plugins
cp "$plugins"/*.wasm debian/build/plugins/

for p in net-gazer net-gazer-collector; do
  cargo deb --locked --no-build --strip -p "$p" >&2
done
ls "$CARGO_TARGET_DIR"/debian/net-gazer_*.deb "$CARGO_TARGET_DIR"/debian/net-gazer-collector_*.deb
