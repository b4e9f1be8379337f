//! Replays a fuzz target's corpus (`fuzz/corpus/<target>`) and every input
//! a fuzzer ever crashed on (`fuzz/regressions/<target>`), and the seeds
//! it shares with the tests ([`SHARED_SEEDS`]), through the
//! target's body: included by the tests of the crates the targets fuzz
//! (host/tests/fuzz_corpus.rs, collector/tests/fuzz_corpus.rs), so `cargo
//! test` on stable catches a regression without nightly or libFuzzer.

use std::path::Path;

/// Seeds a target shares with the rest of the repository instead of
/// copying them into its corpus (scripts/fuzz.sh passes the same folders).
pub const SHARED_SEEDS: &[(&str, &str)] = &[("capture_file", "testdata/pcaps")];

/// Runs `body` on every input of `target` (panics naming the file that
/// fails); the seed corpus must hold at least `min` inputs.
pub fn replay(target: &str, min: usize, body: fn(&[u8])) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![
        repo.join("fuzz/corpus").join(target),
        repo.join("fuzz/regressions").join(target),
    ];
    dirs.extend(
        SHARED_SEEDS
            .iter()
            .filter(|(t, _)| *t == target)
            .map(|(_, d)| repo.join(d)),
    );
    let mut inputs = 0;
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries.filter_map(Result::ok).map(|e| e.path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let result = std::panic::catch_unwind(|| body(&data));
            assert!(result.is_ok(), "fuzz target {target} fails on {}", file.display());
            inputs += 1;
        }
    }
    assert!(
        inputs >= min,
        "fuzz/corpus/{target} holds {inputs} inputs, fewer than {min}: the seed corpus is part of the repository"
    );
}
