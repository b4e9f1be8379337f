//! Logs to standard error with `tracing`.

/// `-v` count → level (warn, info, debug, trace); `RUST_LOG` wins when set.
/// Under systemd, standard error is the journal (`JOURNAL_STREAM`): it
/// stamps each line itself, and colours would show as escape codes, so
/// neither is written there.
pub fn init(verbose: u8) {
    let level = ["warn", "info", "debug", "trace"][usize::from(verbose.min(3))];
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(!journal && std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = if journal {
        builder.without_time().try_init()
    } else {
        builder.try_init()
    };
}
