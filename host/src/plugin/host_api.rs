//! What a plugin's Store holds and the `host` imports it may call: logging,
//! counters, HTTP to allowed hosts. WASI comes with nothing granted but the
//! read-only directories of the plugin's `dirs`.

use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::ResourceLimiter;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxView, WasiView};

use super::metrics::PluginMetrics;
use super::wit::since_v0_1::net_gazer::plugin as v0_1;
use super::wit::since_v0_2::net_gazer::plugin as v0_2;

/// Longest log line a plugin may write (longer ones are cut).
const MAX_LOG: usize = 4096;
/// Longest HTTP response body handed back.
const MAX_HTTP_BODY: u64 = 16 << 20;

/// The data of one plugin's Store.
pub struct State {
    name: Arc<str>,
    wasi: WasiCtx,
    table: ResourceTable,
    memory_limit: usize,
    /// A memory grew past the limit (the trap that follows is an
    /// out-of-memory, not a bug).
    pub out_of_memory: bool,
    /// Epoch ticks spent in host calls (HTTP) since the call's deadline was
    /// set: the deadline is for the plugin's own time, so it moves by this.
    pub host_ticks: u64,
    /// How much more host time one call may be given back (reset before
    /// each call): a plugin that only waits on the host still ends.
    pub host_budget: u64,
    metrics: Arc<PluginMetrics>,
    http: Http,
}

/// The grants of one plugin, checked when its Store is made.
#[derive(Clone, Debug)]
pub struct Grants {
    /// Canonical directories, opened read-only at their own path.
    pub dirs: Vec<std::path::PathBuf>,
    pub http_allow: Vec<String>,
    pub memory_bytes: usize,
    pub http_timeout: Duration,
}

impl State {
    pub fn new(name: Arc<str>, grants: &Grants, metrics: Arc<PluginMetrics>) -> anyhow::Result<State> {
        let mut wasi = WasiCtx::builder();
        // Nothing by default: no environment, arguments, stdio, sockets or
        // name lookups; only the granted directories, read-only.
        for dir in &grants.dirs {
            let guest = dir.to_string_lossy();
            wasi.preopened_dir(dir, guest.as_ref(), FsPerms::ReadOnly)
                .map_err(|e| anyhow::anyhow!("cannot open granted directory {}: {e}", dir.display()))?;
        }
        Ok(State {
            name,
            wasi: wasi.build(),
            table: ResourceTable::new(),
            memory_limit: grants.memory_bytes,
            out_of_memory: false,
            host_ticks: 0,
            host_budget: 0,
            metrics,
            http: Http::new(grants.http_allow.clone(), grants.http_timeout),
        })
    }
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Table elements a plugin may have (function references; generous).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl ResourceLimiter for State {
    fn memory_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.memory_limit || maximum.is_some_and(|m| desired > m) {
            self.out_of_memory = true;
            // A trap, not a failed `memory.grow`: Rust's allocator would
            // abort anyway, and the trap says why.
            wasmtime::bail!(
                "memory limit: growing to {desired} bytes, the limit is {}",
                self.memory_limit
            );
        }
        self.metrics
            .memory_bytes
            .fetch_max(desired as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS && maximum.is_none_or(|m| desired <= m))
    }
}

impl State {
    fn log_enabled(level: tracing::Level) -> bool {
        match level {
            tracing::Level::TRACE => tracing::enabled!(target: "plugin", tracing::Level::TRACE),
            tracing::Level::DEBUG => tracing::enabled!(target: "plugin", tracing::Level::DEBUG),
            tracing::Level::INFO => tracing::enabled!(target: "plugin", tracing::Level::INFO),
            tracing::Level::WARN => tracing::enabled!(target: "plugin", tracing::Level::WARN),
            tracing::Level::ERROR => tracing::enabled!(target: "plugin", tracing::Level::ERROR),
        }
    }

    fn log(&self, level: tracing::Level, mut message: String) {
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

    fn http_send(&mut self, request: Request) -> Result<Response, String> {
        let started = std::time::Instant::now();
        let result = self.http.request(request);
        // Whole milliseconds (the epoch's tick): a request that fails at
        // once buys the plugin no time.
        self.host_ticks += started.elapsed().as_millis() as u64;
        result
    }
}

/// An HTTP request or response as every contract version has it.
struct Request {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// The `host` interface of a contract version (the same functions in
/// every version so far, over each version's own types).
macro_rules! host_interface {
    ($v:ident) => {
        impl $v::types::Host for State {}

        impl From<$v::types::Level> for tracing::Level {
            fn from(level: $v::types::Level) -> tracing::Level {
                match level {
                    $v::types::Level::Trace => tracing::Level::TRACE,
                    $v::types::Level::Debug => tracing::Level::DEBUG,
                    $v::types::Level::Info => tracing::Level::INFO,
                    $v::types::Level::Warn => tracing::Level::WARN,
                    $v::types::Level::Error => tracing::Level::ERROR,
                }
            }
        }

        impl $v::host::Host for State {
            fn log_enabled(&mut self, level: $v::types::Level) -> bool {
                State::log_enabled(level.into())
            }

            fn log(&mut self, level: $v::types::Level, message: String) {
                State::log(self, level.into(), message)
            }

            fn counter_add(&mut self, name: String, delta: u64) {
                self.metrics.counter_add(&name, delta);
            }

            fn gauge_set(&mut self, name: String, value: f64) {
                self.metrics.gauge_set(&name, value);
            }

            fn http_send(&mut self, r: $v::types::HttpRequest) -> Result<$v::types::HttpResponse, String> {
                let request = Request {
                    method: r.method,
                    url: r.url,
                    headers: r.headers,
                    body: r.body,
                };
                State::http_send(self, request).map(|r| $v::types::HttpResponse {
                    status: r.status,
                    headers: r.headers,
                    body: r.body,
                })
            }
        }
    };
}
host_interface!(v0_1);
host_interface!(v0_2);

/// An error with its causes ("timed out", "connection refused", "invalid
/// peer certificate"), which reqwest's own message leaves out.
fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

/// HTTP for one plugin: only to its allow-list, no redirects (they could
/// lead anywhere), bounded time and body.
struct Http {
    allow: Vec<String>,
    timeout: Duration,
    client: Option<reqwest::blocking::Client>,
}

impl Http {
    fn new(allow: Vec<String>, timeout: Duration) -> Http {
        Http {
            allow,
            timeout,
            client: None,
        }
    }

    /// `host:port` of `url` when the allow-list has it (an entry without a
    /// port allows every port of that host).
    fn allowed(&self, url: &reqwest::Url) -> Result<(), String> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!("scheme `{}` is not allowed (http or https only)", url.scheme()));
        }
        let host = url.host_str().ok_or("the URL has no host")?.to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(0);
        let with_port = format!("{host}:{port}");
        let ok = self.allow.iter().any(|a| {
            let a = a.to_ascii_lowercase();
            a == with_port || a == host
        });
        if ok {
            Ok(())
        } else {
            Err(format!("{with_port} is not in this plugin's http_allow"))
        }
    }

    fn request(&mut self, request: Request) -> Result<Response, String> {
        let url = reqwest::Url::parse(&request.url).map_err(|e| format!("bad URL `{}`: {e}", request.url))?;
        self.allowed(&url)?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| format!("bad method `{}`", request.method))?;
        if self.client.is_none() {
            let client = reqwest::blocking::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(self.timeout)
                .no_proxy()
                .build()
                .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
            self.client = Some(client);
        }
        let client = self.client.as_ref().ok_or("no HTTP client")?;
        let mut builder = client.request(method, url).body(request.body);
        for (k, v) in request.headers {
            builder = builder.header(k, v);
        }
        let response = builder.send().map_err(|e| format!("request failed: {}", causes(&e)))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        use std::io::Read;
        response
            .take(MAX_HTTP_BODY)
            .read_to_end(&mut body)
            .map_err(|e| format!("reading the response failed: {e}"))?;
        Ok(Response { status, headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_allow_list_is_exact_host_and_port() {
        let http = Http::new(
            vec!["collector.example:8080".into(), "Any.Example".into()],
            Duration::from_secs(1),
        );
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(http.allowed(&url("http://collector.example:8080/api")).is_ok());
        assert!(
            http.allowed(&url("http://collector.example/api")).is_err(),
            "port 80 is not 8080"
        );
        assert!(http.allowed(&url("http://collector.example:8081/")).is_err());
        assert!(http.allowed(&url("https://any.example:9999/")).is_ok());
        assert!(http.allowed(&url("http://evil.example:8080/")).is_err());
        assert!(http.allowed(&url("http://collector.example.evil:8080/")).is_err());
        assert!(http.allowed(&url("file:///etc/passwd")).is_err());
        let e = http.allowed(&url("http://127.0.0.1:22/")).unwrap_err();
        assert!(e.contains("127.0.0.1:22") && e.contains("http_allow"), "{e}");
    }
}
