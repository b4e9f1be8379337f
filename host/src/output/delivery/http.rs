//! Delivery to a `net-gazer-collector` over HTTP (`[output.collector]`):
//! `POST /api/v1/events`, the gzip body as spooled, with the sensor's
//! bearer token. Its answers, as [`Answer`]s:
//!
//! | HTTP | answer |
//! |---|---|
//! | 2xx | stored (with the events it refused one by one) |
//! | 400 | invalid |
//! | 413 | too large (the collector's `body_limit_mb`) |
//! | 401, 403, other 4xx | misconfigured |
//! | 500 | failed |
//! | no answer, timeout, 408, 429, other 5xx | later |

use std::io::{self, Read};

use super::send::{Answer, Transport};
use crate::config::CollectorSection;

/// An answer's body is read at most this far.
const MAX_ANSWER: u64 = 4 << 20;

pub(super) struct Http {
    client: reqwest::blocking::Client,
    url: String,
    token: String,
    target: String,
}

impl Http {
    pub(super) fn new(section: &CollectorSection) -> io::Result<Http> {
        let client = reqwest::blocking::Client::builder()
            .timeout(section.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| io::Error::other(format!("no HTTP client: {e}")))?;
        Ok(Http {
            client,
            url: format!("{}/api/v1/events", section.url.trim_end_matches('/')),
            token: section.token.clone(),
            target: format!("collector {}", section.url),
        })
    }
}

impl Transport for Http {
    fn target(&self) -> &str {
        &self.target
    }

    fn kind(&self) -> &'static str {
        "collector"
    }

    fn settings_hint(&self) -> &'static str {
        "[output.collector] url and token, and [sensor] id"
    }

    fn send(&mut self, _name: &str, body: Vec<u8>) -> Answer {
        let resp = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .header("content-encoding", "gzip")
            .body(body)
            .send();
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Answer::Later(e.to_string()),
        };
        let status = resp.status();
        let mut text = String::new();
        let read = resp.take(MAX_ANSWER).read_to_string(&mut text);
        let said = || format!("HTTP {status}: {}", text.trim());
        match status.as_u16() {
            200..=299 => match read.ok().and_then(|_| refused_in(&text)) {
                Some(refused) => Answer::Stored(refused),
                None => {
                    tracing::warn!(answer = %text.chars().take(200).collect::<String>(), "collector stored a batch with an answer that does not parse");
                    Answer::Stored(Vec::new())
                }
            },
            400 => Answer::Invalid(said()),
            413 => Answer::TooLarge(said()),
            408 | 429 => Answer::Later(said()),
            401..=499 => Answer::Misconfigured(said()),
            500 => Answer::Failed(said()),
            _ => Answer::Later(said()),
        }
    }
}
/// The events a 2xx answer names as refused (an older collector's answer,
/// without the list, refuses none).
fn refused_in(text: &str) -> Option<Vec<(usize, String)>> {
    #[derive(serde::Deserialize)]
    struct Refused {
        index: usize,
        error: String,
    }
    #[derive(serde::Deserialize)]
    struct Stored {
        #[serde(default)]
        refused: Vec<Refused>,
    }
    let s: Stored = serde_json::from_str(text).ok()?;
    Some(s.refused.into_iter().map(|r| (r.index, r.error)).collect())
}
