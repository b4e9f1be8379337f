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
py_src="$root/plugins/slow-rtt"
py_out="$out/slow-rtt.wasm"
# componentize-py takes ~20 s: only when the source or the contract changed.
if [[ ! -f $py_out || $py_src/app.py -nt $py_out || $root/wit/v0.3/net-gazer-plugin.wit -nt $py_out ]]; then
  log "componentize-py: slow-rtt"
  componentize-py -d "$root/wit/v0.3" -w sensor-plugin componentize -p "$py_src" app -o "$py_out.tmp" >&2
  mv "$py_out.tmp" "$py_out"
fi

# The webhook exporter (Python, contract 0.3 + wasi:http): its world
# includes the contract, which goes beside the WASI packages of its deps/.
wh_src="$root/plugins/webhook"
wh_out="$out/webhook.wasm"
if [[ ! -f $wh_out || $wh_src/app.py -nt $wh_out || $wh_src/wit/world.wit -nt $wh_out ||
  $root/wit/v0.3/net-gazer-plugin.wit -nt $wh_out ]]; then
  log "componentize-py: webhook"
  wh_wit=$(mktemp -d)
  cp "$wh_src/wit/world.wit" "$wh_wit/"
  mkdir "$wh_wit/deps"
  cp "$wh_src"/wit/deps/*.wit "$root/wit/v0.3/net-gazer-plugin.wit" "$wh_wit/deps/"
  componentize-py -d "$wh_wit" -w webhook componentize -p "$wh_src" app -o "$wh_out.tmp" >&2
  rm -rf "$wh_wit"
  mv "$wh_out.tmp" "$wh_out"
fi

# The Python template (templates/python, the guide's example in Python),
# for the test that holds the guide true.
tp_out="$out/testing/tls-tag-py.wasm"
if [[ ! -f $tp_out || $root/templates/python/app.py -nt $tp_out || $root/wit/v0.3/net-gazer-plugin.wit -nt $tp_out ]]; then
  log "componentize-py: templates/python"
  componentize-py -d "$root/wit/v0.3" -w sensor-plugin componentize -p "$root/templates/python" app -o "$tp_out.tmp" >&2
  mv "$tp_out.tmp" "$tp_out"
fi

# The contract 0.3 test plugin in Python (tests and benchmarks only).
py3_src="$root/plugins/lazy-py"
py3_out="$out/testing/lazy-py.wasm"
if [[ ! -f $py3_out || $py3_src/app.py -nt $py3_out || $root/wit/v0.3/net-gazer-plugin.wit -nt $py3_out ]]; then
  log "componentize-py: lazy-py"
  componentize-py -d "$root/wit/v0.3" -w sensor-plugin componentize -p "$py3_src" app -o "$py3_out.tmp" >&2
  mv "$py3_out.tmp" "$py3_out"
fi

ls -1 "$out"/*.wasm "$out"/testing/*.wasm >&2
echo "$out"
