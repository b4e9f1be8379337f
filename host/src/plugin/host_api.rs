//! The `host` interface a plugin may call, for every contract version:
//! logging, counters and gauges, HTTP to allowed hosts ([`super::http`]).

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

/// The `host` interface of contract version module `$v` (the same
/// functions in every version so far, over each version's own types); the
/// list of versions in `wit/mod.rs` expands it for each.
macro_rules! host_interface {
    ($v:ident) => {
        const _: () = {
            use $crate::plugin::http::Request;
            use $crate::plugin::store::State;
            use $crate::plugin::wit::$v::net_gazer::plugin as contract;

            impl contract::types::Host for State {}

            impl From<contract::types::Level> for tracing::Level {
                fn from(level: contract::types::Level) -> tracing::Level {
                    match level {
                        contract::types::Level::Trace => tracing::Level::TRACE,
                        contract::types::Level::Debug => tracing::Level::DEBUG,
                        contract::types::Level::Info => tracing::Level::INFO,
                        contract::types::Level::Warn => tracing::Level::WARN,
                        contract::types::Level::Error => tracing::Level::ERROR,
                    }
                }
            }

            impl contract::host::Host for State {
                fn log_enabled(&mut self, level: contract::types::Level) -> bool {
                    State::log_enabled(level.into())
                }

                fn log(&mut self, level: contract::types::Level, message: String) {
                    State::log(self, level.into(), message)
                }

                fn counter_add(&mut self, name: String, delta: u64) {
                    self.metrics.counter_add(&name, delta);
                }

                fn gauge_set(&mut self, name: String, value: f64) {
                    self.metrics.gauge_set(&name, value);
                }

                fn http_send(
                    &mut self,
                    r: contract::types::HttpRequest,
                ) -> Result<contract::types::HttpResponse, String> {
                    let request = Request {
                        method: r.method,
                        url: r.url,
                        headers: r.headers,
                        body: r.body,
                    };
                    State::http_send(self, request).map(|r| contract::types::HttpResponse {
                        status: r.status,
                        headers: r.headers,
                        body: r.body,
                    })
                }
            }
        };
    };
}
pub(super) use host_interface;
