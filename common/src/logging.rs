//! Logs to standard error with `tracing`.

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields};
use tracing_subscriber::fmt::FmtContext;
use tracing_subscriber::registry::LookupSpan;

/// `-v` count → level (warn, info, debug, trace); `RUST_LOG` wins when set.
/// Under systemd, standard error is the journal (`JOURNAL_STREAM`): it
/// stamps each line itself, and colours would show as escape codes, so
/// neither is written there; each line starts with its syslog priority
/// instead (`<4>` for a warning), which journald takes as the line's
/// priority (`journalctl -p warning` shows warnings and errors).
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
        let format = tracing_subscriber::fmt::format().with_target(false).without_time();
        builder.event_format(Priority(format)).try_init()
    } else {
        builder.try_init()
    };
}

/// The syslog priority of a level, as journald reads it at the start of a
/// line (sd-daemon(3)): err, warning, info, debug.
pub fn priority(level: &Level) -> u8 {
    match *level {
        Level::ERROR => 3,
        Level::WARN => 4,
        Level::INFO => 6,
        _ => 7,
    }
}

/// A line format with the event's priority in front (`<4>WARN …`).
struct Priority<F>(F);

impl<S, N, F> FormatEvent<S, N> for Priority<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: format::Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        write!(writer, "<{}>", priority(event.metadata().level()))?;
        self.0.format_event(ctx, writer, event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_map_to_syslog_priorities() {
        let p: Vec<u8> = [Level::ERROR, Level::WARN, Level::INFO, Level::DEBUG, Level::TRACE]
            .iter()
            .map(priority)
            .collect();
        assert_eq!(p, [3, 4, 6, 7, 7]);
    }
}
