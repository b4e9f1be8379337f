#!/usr/bin/env bash
# The cost of calls into a plugin under wasmtime 48 (what net-gazer uses)
# and a newer wasmtime, same code, same toolchain, interleaved rounds
# (tools/wasmtime-compare; docs/benchmarks.md, "Plugin chain"): contract
# 0.2 through the generated bindings, and the one-entry-per-event sketches
# of tools/wasmtime-compare/lean.
#   ./scripts/bench-wasmtime.sh [ROUNDS] [NEWER_VERSION]
# wasmtime 49 needs rustc 1.96, 50 needs 1.97; this machine's toolchain is
# 1.95 (no other can be fetched). The script uses the toolchain in $TOOLCHAIN (default: nightly) for
# both builds and stops with a message when it is missing or too old.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
newer=${2:-50.0.1}
toolchain=${TOOLCHAIN:-nightly}
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/net-gazer-target}"
plugin="$CARGO_TARGET_DIR/plugins/testing/testkit.wasm"
[[ -f $plugin ]] || ./scripts/build-plugins.sh >/dev/null

# wasmtime N has needed rustc 1.(N+47) so far: 48 -> 1.95, 49 -> 1.96, 50 -> 1.97.
need=$((${newer%%.*} + 47))
minor=$(rustc "+$toolchain" --version 2>/dev/null | sed -n 's/^rustc 1\.\([0-9]*\).*/\1/p' || true)
if [[ -z $minor || $minor -lt $need ]]; then
  echo "bench-wasmtime: needs a Rust toolchain >= 1.$need as +$toolchain (wasmtime $newer);" \
    "this machine has: $(rustup toolchain list 2>/dev/null | tr '\n' ' ')" >&2
  exit 1
fi

(cd tools/wasmtime-compare/lean/guest &&
  CARGO_TARGET_DIR=/var/tmp/net-gazer-lean-guest cargo build --release -q --target wasm32-wasip2)
lean=/var/tmp/net-gazer-lean-guest/wasm32-wasip2/release/lean_guest.wasm

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
bins=()
for version in 48.0.8 "$newer"; do
  src="$work/$version"
  cp -r tools/wasmtime-compare "$src"
  sed -i "s/=48\.0\.8/=$version/g" "$src/Cargo.toml"
  sed -i "s|\.\./\.\./wit|$PWD/wit|" "$src/src/main.rs"
  rm -rf "$src/lean/guest"
  echo "bench-wasmtime: building with wasmtime $version ($(rustc "+$toolchain" --version))" >&2
  (cd "$src" && CARGO_TARGET_DIR="/var/tmp/net-gazer-wasmtime-$version" \
    cargo "+$toolchain" build --release -q)
  bins+=("/var/tmp/net-gazer-wasmtime-$version/release")
done
for r in $(seq "$rounds"); do
  for i in 0 1; do
    version=$([[ $i -eq 0 ]] && echo 48.0.8 || echo "$newer")
    echo "round $r, wasmtime $version: $("${bins[$i]}/wasmtime-compare" "$plugin")"
    echo "round $r, wasmtime $version: $("${bins[$i]}/lean" "$lean")"
  done
done
