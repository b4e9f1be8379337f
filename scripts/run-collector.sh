#!/usr/bin/env bash
# Builds net-gazer-collector (release) and runs it with the given arguments,
# e.g.: ./scripts/run-collector.sh -c etc/net-gazer/net-gazer-collector.toml -v
# The web UI is then at http://127.0.0.1:8080/ (the file's `listen`).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/net-gazer-target}"
cargo build --release --locked -p net-gazer-collector >&2
exec "$CARGO_TARGET_DIR/release/net-gazer-collector" "$@"
