//! Headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`, plain HTTP with JSON: no extra crate), for the web UI
//! tests: load a page, run JavaScript, click where a user would, take
//! screenshots, read the console.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const DRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    driver: Child,
    session: String,
    http: reqwest::blocking::Client,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.http.delete(&self.session).send();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Sends a WebDriver command (JSON in, JSON out).
fn send(req: reqwest::blocking::RequestBuilder, body: Option<Value>) -> Value {
    let req = match body {
        Some(b) => req.header("content-type", "application/json").body(b.to_string()),
        None => req,
    };
    let text = req.send().and_then(|r| r.text()).expect("a WebDriver answer");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("WebDriver answered {text}: {e}"))
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`×`height`.
    /// `None` (with a loud message) when they are not installed, unless
    /// `NG_REQUIRE_BROWSER` is set (scripts/test.sh sets it: setup.sh
    /// installs them).
    pub fn start(width: u32, height: u32) -> Option<Browser> {
        if !Path::new(DRIVER).is_file() || !Path::new(CHROMIUM).is_file() {
            assert!(
                std::env::var_os("NG_REQUIRE_BROWSER").is_none(),
                "{DRIVER} or {CHROMIUM} is missing (apt-get install chromium chromium-driver)"
            );
            eprintln!("==================================================================");
            eprintln!("SKIPPED: no {CHROMIUM} / {DRIVER}; the web UI tests need them");
            eprintln!("(apt-get install chromium chromium-driver, or run scripts/test.sh)");
            eprintln!("==================================================================");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new(DRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while http.get(format!("{base}/status")).send().is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer on port {port}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": CHROMIUM, "args": [
                "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--no-first-run", "--disable-extensions", format!("--window-size={width},{height}")]},
            "goog:loggingPrefs": {"browser": "ALL"}
        }}});
        let r = send(http.post(format!("{base}/session")), Some(caps));
        let id = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {r}"))
            .to_string();
        let mut b = Browser {
            driver,
            session: format!("{base}/session/{id}"),
            http,
        };
        b.resize(width, height);
        Some(b)
    }

    fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let r = send(self.http.request(method, format!("{}{path}", self.session)), body);
        if let Some(e) = r["value"].get("error") {
            panic!("WebDriver {path}: {e}: {}", r["value"]["message"]);
        }
        r["value"].clone()
    }

    /// The window's outer size.
    pub fn resize(&mut self, width: u32, height: u32) {
        self.call(
            reqwest::Method::POST,
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
    }

    pub fn goto(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })));
    }

    /// Runs `body` (a function body: `return …`) in the page.
    pub fn eval(&self, body: &str) -> Value {
        self.call(
            reqwest::Method::POST,
            "/execute/sync",
            Some(json!({"script": body, "args": []})),
        )
    }

    /// Evaluates `expr` until it is truthy (not null, false, 0 or ""), and
    /// returns it; panics with `what` after `secs`.
    pub fn wait_for(&self, expr: &str, secs: u64, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let v = self.eval(&format!("return ({expr});"));
            let truthy = match &v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            assert!(Instant::now() < deadline, "waited {secs} s for {what} ({expr})");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A real pointer click at page coordinates (CSS pixels).
    pub fn click_at(&self, x: f64, y: f64) {
        let actions = json!({"actions": [{"type": "pointer", "id": "mouse",
            "parameters": {"pointerType": "mouse"}, "actions": [
            {"type": "pointerMove", "duration": 0, "x": x.round() as i64, "y": y.round() as i64, "origin": "viewport"},
            // A user's hand rests a moment: pages that find what is under
            // the pointer on their next frame (canvas graphs) see it.
            {"type": "pause", "duration": 300},
            {"type": "pointerDown", "button": 0},
            {"type": "pause", "duration": 50},
            {"type": "pointerUp", "button": 0}]}]});
        self.call(reqwest::Method::POST, "/actions", Some(actions));
    }

    /// Clicks the first element matching `css`.
    pub fn click(&self, css: &str) {
        let e = self.call(
            reqwest::Method::POST,
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        let id = e
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string();
        self.call(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Saves a PNG screenshot of the viewport.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let v = self.call(reqwest::Method::GET, "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap_or_default())
            .expect("base64 PNG");
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap();
        }
        std::fs::write(path, png).unwrap();
    }

    /// Console messages since the last call, as (level, message).
    pub fn console(&self) -> Vec<(String, String)> {
        let v = self.call(reqwest::Method::POST, "/se/log", Some(json!({"type": "browser"})));
        v.as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                (
                    e["level"].as_str().unwrap_or_default().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }
}
