//! HTTP for plugins: only to the hosts of their allow-list, no redirects
//! (they could lead anywhere), bounded time and body.

use std::time::Duration;

/// Longest HTTP response body handed back.
const MAX_HTTP_BODY: u64 = 16 << 20;

/// An HTTP request or response as every contract version has it.
pub struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

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

/// The hosts one plugin may reach (its `http_allow`): `host:port`, or
/// `host` for every port of it; compared without case.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowList {
    entries: Vec<String>,
}

impl AllowList {
    pub fn new(entries: &[String]) -> AllowList {
        AllowList {
            entries: entries.iter().map(|e| e.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether a request to `url` may leave.
    pub fn check(&self, url: &reqwest::Url) -> Result<(), HttpError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::Scheme(url.scheme().to_owned()));
        }
        let host = url.host_str().ok_or(HttpError::NoHost)?.to_ascii_lowercase();
        let port = url.port_or_known_default().unwrap_or(0);
        let with_port = format!("{host}:{port}");
        if self.entries.iter().any(|a| *a == with_port || *a == host) {
            Ok(())
        } else {
            Err(HttpError::NotAllowed(with_port))
        }
    }
}

/// Why a plugin's request got no response (the plugin sees the text).
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("scheme `{0}` is not allowed (http or https only)")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error("{0} is not in this plugin's http_allow")]
    NotAllowed(String),
    #[error("bad URL `{url}`: {reason}")]
    BadUrl { url: String, reason: String },
    #[error("bad method `{0}`")]
    BadMethod(String),
    #[error("cannot make an HTTP client: {0}")]
    Client(String),
    #[error("request failed: {0}")]
    Failed(String),
    #[error("reading the response failed: {0}")]
    Read(String),
}

/// HTTP for one plugin: only to its allow-list, no redirects (they could
/// lead anywhere), bounded time and body. The client is made at the first
/// request.
pub struct Http {
    allow: AllowList,
    timeout: Duration,
    client: Option<reqwest::blocking::Client>,
}

impl Http {
    pub fn new(allow: AllowList, timeout: Duration) -> Http {
        Http {
            allow,
            timeout,
            client: None,
        }
    }

    pub fn request(&mut self, request: Request) -> Result<Response, HttpError> {
        let url = reqwest::Url::parse(&request.url).map_err(|e| HttpError::BadUrl {
            url: request.url.clone(),
            reason: e.to_string(),
        })?;
        self.allow.check(&url)?;
        let method = reqwest::Method::from_bytes(request.method.as_bytes())
            .map_err(|_| HttpError::BadMethod(request.method.clone()))?;
        let client = match &mut self.client {
            Some(client) => client,
            none => none.insert(
                reqwest::blocking::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(self.timeout)
                    .no_proxy()
                    .build()
                    .map_err(|e| HttpError::Client(e.to_string()))?,
            ),
        };
        let mut builder = client.request(method, url).body(request.body);
        for (k, v) in request.headers {
            builder = builder.header(k, v);
        }
        let response = builder.send().map_err(|e| HttpError::Failed(causes(&e)))?;
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
            .map_err(|e| HttpError::Read(e.to_string()))?;
        Ok(Response { status, headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_allow_list_is_exact_host_and_port() {
        let allow = AllowList::new(&["collector.example:8080".into(), "Any.Example".into()]);
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        assert!(allow.check(&url("http://collector.example:8080/api")).is_ok());
        assert!(
            allow.check(&url("http://collector.example/api")).is_err(),
            "port 80 is not 8080"
        );
        assert!(allow.check(&url("http://collector.example:8081/")).is_err());
        assert!(allow.check(&url("https://any.example:9999/")).is_ok());
        assert!(allow.check(&url("http://evil.example:8080/")).is_err());
        assert!(allow.check(&url("http://collector.example.evil:8080/")).is_err());
        assert!(matches!(
            allow.check(&url("file:///etc/passwd")),
            Err(HttpError::Scheme(s)) if s == "file"
        ));
        let e = allow.check(&url("http://127.0.0.1:22/")).unwrap_err().to_string();
        assert!(e.contains("127.0.0.1:22") && e.contains("http_allow"), "{e}");
    }

    #[test]
    fn a_refused_request_never_leaves() {
        // Nothing listens on this port; the refusal comes before any
        // connection is tried, so the error is the allow-list's.
        let mut http = Http::new(AllowList::default(), Duration::from_secs(1));
        let request = Request {
            method: "GET".into(),
            url: "http://127.0.0.1:9/".into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        assert!(matches!(http.request(request), Err(HttpError::NotAllowed(p)) if p == "127.0.0.1:9"));
        assert!(http.client.is_none(), "no client was made for a refused request");
    }
}
