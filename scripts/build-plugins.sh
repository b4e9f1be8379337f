#!/usr/bin/env bash
# Builds every first-party plugin into $PLUGIN_OUT (default
# $CARGO_TARGET_DIR/plugins): the Rust ones for wasm32-wasip2 (most through
# the SDK, contract 0.3), slow-rtt with componentize-py. Installs what is missing: the wasm32-wasip2
# target (rustup; else Debian's rustc-web with build-std, see DESIGN.md) and
# componentize-py from PyPI.
#   ./scripts/build-plugins.sh            # all plugins
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/net-gazer-target}"
out="${PLUGIN_OUT:-$CARGO_TARGET_DIR/plugins}"
mkdir -p "$out"

rust_plugins=(demo filter geoip testkit lazy influx)
# Built for the tests only, installed in $out/testing.
test_plugins=" testkit lazy "
log() { echo "build-plugins: $*" >&2; }

# --- Rust plugins ---------------------------------------------------------
build_with_rustup() {
  if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    log "installing the wasm32-wasip2 target"
    rustup target add wasm32-wasip2 >&2 || return 1
  fi
  (cd plugins && cargo build --release --locked --target wasm32-wasip2 >&2) || return 1
  install_rust_plugins
}

# The plugins to ship in $out; the test plugin in $out/testing, so that
# copying $out/*.wasm never installs it.
install_rust_plugins() {
  mkdir -p "$out/testing"
  rm -f "$out/testkit.wasm" # where older builds put it
  for p in "${rust_plugins[@]}"; do
    local dest="$out/$p.wasm"
    [[ $test_plugins == *" $p "* ]] && dest="$out/testing/$p.wasm"
    cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/$p.wasm" "$dest"
  done
}

# Debian only: rustc-web (a newer rustc) + its std sources, lld, wasi-libc,
# and wasm-component-ld from crates.io as the linker.
build_with_debian() {
  log "rustup cannot provide wasm32-wasip2; using Debian's rustc-web with build-std"
  if command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q rustc-web rust-web-src lld wasi-libc >&2
  fi
  local rustc_web
  rustc_web=$(ls /usr/bin/rustc-web* 2>/dev/null | head -1 || true)
  [[ -n $rustc_web ]] || { log "no rustc-web found"; return 1; }
  command -v wasm-component-ld >/dev/null || cargo install --locked wasm-component-ld >&2
  (cd plugins && RUSTC="$rustc_web" RUSTC_BOOTSTRAP=1 \
    CARGO_TARGET_WASM32_WASIP2_LINKER=wasm-component-ld \
    RUSTFLAGS="-L native=/usr/lib/wasm32-wasi" \
    cargo build --release --locked --target wasm32-wasip2 -Zbuild-std=std,panic_abort >&2) || return 1
  install_rust_plugins
}

build_with_rustup || build_with_debian || { log "cannot build the Rust plugins"; exit 1; }

# The Rust template (templates/rust, the example of docs/plugins.md): built
# like a plugin of an author's own, for the tests that hold the guide true.
(cd templates/rust && cargo build --release --locked --target wasm32-wasip2 >&2)
cp "$CARGO_TARGET_DIR/wasm32-wasip2/release/tls_tag.wasm" "$out/testing/tls-tag.wasm"

# --- Python plugin --------------------------------------------------------
if ! command -v componentize-py >/dev/null; then
  log "installing componentize-py"
  python3 -m pip install -q componentize-py==0.25.1 >&2 ||
    python3 -m pip install -q --break-system-packages componentize-py==0.25.1 >&2
  hash -r
fi
contract="$root/wit/v0.3/net-gazer-plugin.wit"
# componentize NAME SRC OUT [WIT_DIR WORLD]: the Python plugin SRC/app.py as
# a component (default: world sensor-plugin of wit/v0.3). componentize-py
# takes 10-20 s: only when the source, its world or the contract changed.
componentize() {
  local name=$1 src=$2 dest=$3 wit=${4:-$root/wit/v0.3} world=${5:-sensor-plugin}
  if [[ -f $dest && ! $src/app.py -nt $dest && ! $contract -nt $dest && ! $wit/world.wit -nt $dest ]]; then
    return
  fi
  log "componentize-py: $name"
  componentize-py -d "$wit" -w "$world" componentize -p "$src" app -o "$dest.tmp" >&2
  mv "$dest.tmp" "$dest"
}

componentize slow-rtt "$root/plugins/slow-rtt" "$out/slow-rtt.wasm"
# The webhook exporter (contract 0.3 + wasi:http): its world includes the
# contract, which goes beside the WASI packages of its deps/ (copies keep
# their times, for the check above).
wh_wit=$(mktemp -d)
mkdir "$wh_wit/deps"
cp -p "$root/plugins/webhook/wit/world.wit" "$wh_wit/"
cp -p "$root/plugins/webhook"/wit/deps/*.wit "$contract" "$wh_wit/deps/"
componentize webhook "$root/plugins/webhook" "$out/webhook.wasm" "$wh_wit" webhook
rm -rf "$wh_wit"
# The Python template (the guide's example in Python) and the contract 0.3
# test plugin: for the tests and benchmarks only.
componentize templates/python "$root/templates/python" "$out/testing/tls-tag-py.wasm"
componentize lazy-py "$root/plugins/lazy-py" "$out/testing/lazy-py.wasm"

ls -1 "$out"/*.wasm "$out"/testing/*.wasm >&2
echo "$out"
