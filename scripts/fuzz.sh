#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each with cargo-fuzz
# (libFuzzer) on a nightly toolchain, installing both when missing, and
# prints executions, coverage and crashes per target (docs/reliability.md).
#   ./scripts/fuzz.sh SECONDS [TARGET...]
# Each target starts from its seed corpus (fuzz/corpus/<target>) and every
# earlier crash (fuzz/regressions/<target>); what it learns goes to a work
# corpus outside the repository ($FUZZ_WORK, default /var/tmp/ng-fuzz), so
# the committed seeds stay small. A crash stops that target and is left in
# fuzz/artifacts/<target>/: turn it into a test by copying it into
# fuzz/regressions/<target>/ (cargo test replays those on stable) and fix.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}"
shift
work="${FUZZ_WORK:-/var/tmp/ng-fuzz}"
export CARGO_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/tmp/net-gazer-fuzz-target}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain (cargo-fuzz needs it)" >&2
  rustup toolchain install nightly --profile minimal >&2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked >&2
fi

targets=("$@")
if ((${#targets[@]} == 0)); then
  mapfile -t targets < <(cd fuzz && cargo +nightly fuzz list)
fi
# Release with debug assertions and overflow checks: arithmetic overflow is
# one of the bugs looked for. No sanitizer: the code under test is safe Rust
# (twice the executions per second); ASan: FUZZ_SANITIZER=address.
sanitizer="${FUZZ_SANITIZER:-none}"
(cd fuzz && cargo +nightly fuzz build -O -a -s "$sanitizer" "${targets[@]/#/}" >&2) || \
  (cd fuzz && for t in "${targets[@]}"; do cargo +nightly fuzz build -O -a -s "$sanitizer" "$t" >&2; done)

status=0
printf '%-18s %12s %8s %8s %8s  %s\n' target executions exec/s cov features result
for t in "${targets[@]}"; do
  mkdir -p "$work/$t" "fuzz/regressions/$t"
  # Seeds shared with the tests (fuzz/replay.rs, SHARED_SEEDS).
  shared=()
  [[ $t == capture_file ]] && shared=(../testdata/pcaps)
  log="$work/$t.log"
  set +e
  (cd fuzz && cargo +nightly fuzz run -O -a -s "$sanitizer" "$t" "$work/$t" "corpus/$t" "regressions/$t" "${shared[@]}" -- \
    -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=20 -max_len=262144 -print_final_stats=1) >"$log" 2>&1
  rc=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  if ((rc == 0)); then
    result="0 crashes"
  else
    result="CRASH (exit $rc): $(grep -o 'fuzz/artifacts/[^ ]*' "$log" | head -1), log $log"
    status=1
  fi
  printf '%-18s %12s %8s %8s %8s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$result"
done
exit $status
