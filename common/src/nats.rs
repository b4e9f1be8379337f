//! How both programs reach NATS (the sensor's `[output.nats]`, the
//! collector's `[source.nats]`): the servers, the authentication (token,
//! user and password, or a credentials file with an nkey and JWT), TLS
//! (a CA file, a client certificate), and the client made from them.
//!
//! Both sections take these keys beside their own; [`Connection::check`]
//! says which key is wrong and why.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::duration::serde as duration;

/// The connection keys of a NATS section.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
pub struct Connection {
    /// `nats://host:4222` (or `tls://…`), one or more: the client picks
    /// one and moves to another when it fails; the cluster tells it of
    /// the rest.
    pub servers: Vec<String>,
    /// A token the servers accept (`authorization { token }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A `.creds` file (a user JWT and its nkey seed), as `nsc` makes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// Refuse a server that does not speak TLS.
    #[serde(default)]
    pub tls_required: bool,
    /// The CA that signed the servers' certificates (PEM), besides the
    /// system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_ca_file: Option<PathBuf>,
    /// A client certificate and its key (PEM), when the servers ask for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cert_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_key_file: Option<PathBuf>,
    /// How long connecting to one server may take.
    #[serde(default = "connect_timeout", with = "duration")]
    pub connect_timeout: Duration,
}

fn connect_timeout() -> Duration {
    Duration::from_secs(5)
}

/// Whether `token` can be one token of a NATS subject: not empty, no `.`,
/// no wildcard, no white space.
pub fn is_subject_token(token: &str) -> bool {
    !token.is_empty() && !token.contains(['.', '*', '>']) && !token.chars().any(|c| c.is_whitespace() || c.is_control())
}

/// Whether `subject` is a subject to publish to (tokens joined by `.`).
pub fn is_subject(subject: &str) -> bool {
    subject.split('.').all(is_subject_token)
}

impl Connection {
    /// Checks the keys; the error is (key under `section`, what is wrong).
    pub fn check(&self, section: &str) -> Result<(), (String, String)> {
        let bad = |key: &str, message: &str| Err((format!("{section}.{key}"), message.to_string()));
        if self.servers.is_empty() {
            return bad("servers", "name at least one server, e.g. [\"nats://127.0.0.1:4222\"]");
        }
        for s in &self.servers {
            let scheme_ok = ["nats://", "tls://", "ws://", "wss://"]
                .iter()
                .any(|p| s.starts_with(p));
            if !scheme_ok || s.parse::<async_nats::ServerAddr>().is_err() {
                return bad(
                    "servers",
                    &format!("`{s}` is not a NATS server address (nats://host:port or tls://host:port)"),
                );
            }
        }
        let ways = [
            self.token.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.credentials_file.is_some(),
        ];
        if ways.iter().filter(|&&w| w).count() > 1 {
            return bad(
                "token",
                "token, user/password and credentials_file are three ways to authenticate: set one",
            );
        }
        if self.user.is_some() != self.password.is_some() {
            return bad("password", "user and password go together");
        }
        if self.tls_cert_file.is_some() != self.tls_key_file.is_some() {
            return bad("tls_key_file", "tls_cert_file and tls_key_file go together");
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(600)).contains(&self.connect_timeout) {
            return bad("connect_timeout", "must be from 100ms to 10m");
        }
        Ok(())
    }

    /// Connects to one of the servers as `name` (seen in the servers'
    /// connection lists). The client reconnects by itself afterwards,
    /// without end, to any server of the cluster.
    pub async fn connect(&self, name: &str) -> Result<async_nats::Client, String> {
        let mut options = async_nats::ConnectOptions::new()
            .name(name)
            .connection_timeout(self.connect_timeout)
            .require_tls(self.tls_required)
            .event_callback(|event| async move {
                match event {
                    async_nats::Event::ServerError(e) => tracing::error!(error = %e, "NATS server error"),
                    async_nats::Event::Disconnected => tracing::warn!("NATS connection lost; reconnecting"),
                    async_nats::Event::Connected => tracing::info!("NATS connected"),
                    async_nats::Event::SlowConsumer(_) => tracing::warn!("NATS: slow consumer"),
                    other => tracing::debug!(event = %other, "NATS"),
                }
            });
        if let Some(t) = &self.token {
            options = options.token(t.clone());
        }
        if let (Some(u), Some(p)) = (&self.user, &self.password) {
            options = options.user_and_password(u.clone(), p.clone());
        }
        if let Some(f) = &self.credentials_file {
            let text = crate::file::read_regular(f, 64 * 1024)
                .map_err(|e| format!("credentials_file {}: {e}", f.display()))?;
            let text =
                String::from_utf8(text).map_err(|_| format!("credentials_file {}: not UTF-8 text", f.display()))?;
            options = options
                .credentials(&text)
                .map_err(|e| format!("credentials_file {}: {e}", f.display()))?;
        }
        if let Some(ca) = &self.tls_ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(c), Some(k)) = (&self.tls_cert_file, &self.tls_key_file) {
            options = options.add_client_certificate(c.clone(), k.clone());
        }
        let addrs: Vec<async_nats::ServerAddr> = self.servers.iter().filter_map(|s| s.parse().ok()).collect();
        options.connect(addrs).await.map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(servers: &[&str]) -> Connection {
        Connection {
            servers: servers.iter().map(|s| s.to_string()).collect(),
            token: None,
            user: None,
            password: None,
            credentials_file: None,
            tls_required: false,
            tls_ca_file: None,
            tls_cert_file: None,
            tls_key_file: None,
            connect_timeout: connect_timeout(),
        }
    }

    #[test]
    fn wrong_keys_are_named() {
        assert!(conn(&["nats://127.0.0.1:4222", "tls://n2:4222"]).check("s").is_ok());
        assert_eq!(conn(&[]).check("s").unwrap_err().0, "s.servers");
        assert_eq!(conn(&["http://x:1"]).check("s").unwrap_err().0, "s.servers");
        let mut c = conn(&["nats://a:1"]);
        c.user = Some("u".into());
        assert_eq!(c.check("s").unwrap_err().0, "s.password");
        c.password = Some("p".into());
        c.token = Some("t".into());
        assert_eq!(c.check("s").unwrap_err().0, "s.token");
    }

    #[test]
    fn subject_tokens() {
        assert!(is_subject_token("gw1") && is_subject_token("gw-1_a"));
        for bad in ["", "gw.1", "a*", ">", "a b", "a\n"] {
            assert!(!is_subject_token(bad), "{bad:?}");
        }
        assert!(is_subject("net-gazer.events") && !is_subject("net-gazer..events"));
    }
}
