//! What the `host` interface of every contract version does: logging,
//! counters and gauges, HTTP to allowed hosts ([`super::http`]); each
//! version module implements its bindings' `Host` trait with these.

use super::http::Request;
use super::store::State;

/// Longest log line a plugin may write (longer ones are cut).
const MAX_LOG: usize = 4096;

impl State {
    pub(super) fn log_enabled(level: tracing::Level) -> bool {
        match level {
            tracing::Level::TRACE => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
            tracing::Level::DEBUG => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
            tracing::Level::INFO => tracing::enabled!(target: "plugin", tracing::Level::INFO),
            tracing::Level::WARN => tracing::enabled!(target: "plugin", tracing::Level::WARN),
            tracing::Level::ERROR => tracing::enabled!(target: "plugin", tracing::Level::ERROR),
        }
    }

    pub(super) fn log(&self, level: tracing::Level, mut message: String) {
        if message.len() > MAX_LOG {
            let mut cut = MAX_LOG;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        let plugin = &*self.name;
        match level {
            tracing::Level::TRACE => tracing::trace!(target: "plugin", plugin, "{message}"),
            tracing::Level::DEBUG => tracing::debug!(target: "plugin", plugin, "{message}"),
            tracing::Level::INFO => tracing::info!(target: "plugin", plugin, "{message}"),
            tracing::Level::WARN => tracing::warn!(target: "plugin", plugin, "{message}"),
            tracing::Level::ERROR => tracing::error!(target: "plugin", plugin, "{message}"),
        }
    }

    pub(super) fn http_send(&mut self, request: Request) -> Result<super::http::Response, String> {
        let started = std::time::Instant::now();
        let result = self.http.request(request).map_err(|e| e.to_string());
        // Whole milliseconds (the epoch's tick): a request that fails at
        // once buys the plugin no time.
        self.host_ticks += started.elapsed().as_millis() as u64;
        result
    }
}
