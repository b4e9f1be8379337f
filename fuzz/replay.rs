//! Replays a fuzz target's corpus (`fuzz/corpus/<target>`) and every input
//! a fuzzer ever crashed on (`fuzz/regressions/<target>`) through the
//! target's body: included by the tests of the crates the targets fuzz
//! (host/tests/fuzz_corpus.rs, collector/tests/fuzz_corpus.rs), so `cargo
//! test` on stable catches a regression without nightly or libFuzzer.

use std::path::Path;

/// Runs `body` on every input of `target` (panics naming the file that
/// fails); the seed corpus must hold at least `min` inputs.
pub fn replay(target: &str, min: usize, body: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut inputs = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
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
