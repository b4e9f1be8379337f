//! `wasi:http/outgoing-handler` for plugins (wasmtime-wasi-http), the
//! standard HTTP client interface that ordinary libraries target (Rust
//! `wasi`/`wstd`/`waki`, componentize-py's wasi-http, `fetch` in
//! componentize-js), held to what `http-send` is held to:
//!
//! - only the hosts of the plugin's `http_allow` ([`AllowList`]); any
//!   other request fails with `HTTP-request-denied` for the plugin, logged
//!   once per plugin instance;
//! - every timeout (connect, first byte, between bytes) at most the host's
//!   HTTP timeout, whatever the plugin asks for (wasmtime's default is
//!   600 s);
//! - the time waiting for the response is given back to the plugin's
//!   deadline, as for `http-send` (counted in `waited_ms`, taken by the
//!   epoch callback in `supervise`).

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use wasmtime_wasi_http::{default_send_request, Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::http::AllowList;

/// What the host decides about a plugin's outgoing requests.
pub struct Hooks {
    name: Arc<str>,
    allow: AllowList,
    timeout: Duration,
    /// Milliseconds spent waiting for responses, not yet given back.
    pub waited_ms: Arc<AtomicU64>,
    denied_logged: bool,
}

impl Hooks {
    pub fn new(name: Arc<str>, allow: AllowList, timeout: Duration) -> Hooks {
        Hooks {
            name,
            allow,
            timeout,
            waited_ms: Arc::new(AtomicU64::new(0)),
            denied_logged: false,
        }
    }

    /// Why a request to `uri` may not leave, if it may not.
    fn refusal(&self, uri: &http::Uri) -> Option<String> {
        match reqwest::Url::parse(&uri.to_string()) {
            Ok(url) => self.allow.check(&url).err().map(|e| e.to_string()),
            Err(e) => Some(format!("bad URL `{uri}`: {e}")),
        }
    }

    /// The plugin's options with every timeout at most the host's.
    fn bounded(&self, options: Option<RequestOptions>) -> RequestOptions {
        let o = options.unwrap_or_default();
        let at_most = |d: Option<Duration>| Some(d.map_or(self.timeout, |d| d.min(self.timeout)));
        RequestOptions {
            connect_timeout: at_most(o.connect_timeout),
            first_byte_timeout: at_most(o.first_byte_timeout),
            between_bytes_timeout: at_most(o.between_bytes_timeout),
        }
    }
}

type Io = Box<dyn Future<Output = Result<(), Error>> + Send>;
type Sent = Box<dyn Future<Output = Result<(http::Response<WasiBody>, Io), Error>> + Send>;

impl WasiHttpHooks for Hooks {
    fn send_request(&mut self, request: http::Request<WasiBody>, options: Option<RequestOptions>, fut: Io) -> Sent {
        drop(fut);
        if let Some(why) = self.refusal(request.uri()) {
            if !self.denied_logged {
                self.denied_logged = true;
                let plugin = &*self.name;
                tracing::warn!(plugin, "wasi:http request refused: {why} (logged once per instance)");
            }
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        let options = self.bounded(options);
        let waited = Arc::clone(&self.waited_ms);
        Box::new(async move {
            let started = Instant::now();
            let result = default_send_request(request, Some(options)).await;
            let ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            waited.fetch_add(ms, Ordering::Relaxed);
            let (response, io) = result?;
            Ok((response.map(BodyExt::boxed_unsync), Box::new(io) as Io))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_hosts_and_bounded_timeouts() {
        let h = Hooks::new(
            "t".into(),
            AllowList::new(&["127.0.0.1:8080".into()]),
            Duration::from_secs(5),
        );
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        assert_eq!(h.refusal(&uri("http://127.0.0.1:8080/x")), None);
        assert!(h
            .refusal(&uri("http://127.0.0.1:8081/x"))
            .unwrap()
            .contains("http_allow"));
        assert!(h.refusal(&uri("ftp://127.0.0.1:8080/")).is_some());
        let o = h.bounded(Some(RequestOptions {
            connect_timeout: Some(Duration::from_secs(600)),
            first_byte_timeout: Some(Duration::from_millis(10)),
            between_bytes_timeout: None,
        }));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.first_byte_timeout, Some(Duration::from_millis(10)));
        assert_eq!(o.between_bytes_timeout, Some(Duration::from_secs(5)));
    }
}
