//! Delivery to a NATS JetStream stream (`[output.nats]`): each spooled
//! batch is one message on `<subject_prefix>.<sensor id>`, its gzip body
//! as spooled (`Content-Encoding: gzip`), with `Nats-Msg-Id` made of the
//! sensor id and the batch's first sequence number and size, so that
//! JetStream drops a re-sent batch within its duplicate window (and the
//! store by (sensor, `seq`) after it). A batch counts as delivered when
//! JetStream acknowledged it: stored (and replicated) in the stream.
//!
//! | JetStream | answer |
//! |---|---|
//! | acknowledged (new or duplicate) | stored |
//! | larger than the servers' `max_payload` | too large |
//! | no stream takes the subject | later (a collector with `[source.nats]` creates it) |
//! | no connection, no acknowledgement within `timeout` | later |
//!
//! A subject the sensor may not publish to is refused by the server
//! asynchronously (logged as a server error, "Permissions Violation"); the
//! batch is then not acknowledged and is retried later.

use std::io;
use std::time::Duration;

use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::message::PublishMessage;

use super::send::{Answer, Transport};
use crate::config::NatsSection;

pub(super) struct Nats {
    /// One worker thread drives the connection (pings, reconnects) between
    /// publications too.
    runtime: tokio::runtime::Runtime,
    connection: net_gazer_common::nats::Connection,
    context: Option<async_nats::jetstream::Context>,
    name: String,
    sensor: String,
    subject: String,
    timeout: Duration,
    target: String,
}

impl Nats {
    pub(super) fn new(section: &NatsSection, sensor: &str) -> io::Result<Nats> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ng-nats")
            .enable_all()
            .build()?;
        let subject = section.subject(sensor);
        Ok(Nats {
            runtime,
            connection: section.connection.clone(),
            context: None,
            name: format!("net-gazer {sensor}"),
            sensor: sensor.to_string(),
            target: format!("NATS {subject}"),
            subject,
            timeout: section.timeout,
        })
    }

    /// The JetStream context, connecting first when there is none.
    fn context(&mut self) -> Result<async_nats::jetstream::Context, String> {
        if let Some(c) = &self.context {
            return Ok(c.clone());
        }
        let client = self.runtime.block_on(self.connection.connect(&self.name))?;
        // The context starts a task of its own: inside the runtime.
        let _inside = self.runtime.enter();
        let context = async_nats::jetstream::context::ContextBuilder::new()
            .timeout(self.timeout)
            .build(client);
        tracing::info!(subject = %self.subject, "delivering to NATS JetStream");
        self.context = Some(context.clone());
        Ok(context)
    }
}

impl Transport for Nats {
    fn target(&self) -> &str {
        &self.target
    }

    fn kind(&self) -> &'static str {
        "NATS"
    }

    fn settings_hint(&self) -> &'static str {
        "[output.nats] servers and credentials, and the subject permissions of this sensor's NATS user"
    }

    fn send(&mut self, name: &str, body: Vec<u8>) -> Answer {
        let context = match self.context() {
            Ok(c) => c,
            Err(e) => return Answer::Later(format!("connecting: {e}")),
        };
        let id = format!("{}-{}", self.sensor, name.trim_end_matches(".json.gz"));
        let publish = PublishMessage::build()
            .payload(body.into())
            .message_id(id)
            .header("Content-Encoding", "gzip");
        let subject = self.subject.clone();
        let acked = self.runtime.block_on(async {
            tokio::time::timeout(self.timeout, async {
                context.send_publish(subject, publish).await?.await
            })
            .await
        });
        match acked {
            Err(_) => Answer::Later(format!(
                "no acknowledgement within {}",
                net_gazer_common::duration::format_duration(self.timeout)
            )),
            Ok(Ok(ack)) => {
                if ack.duplicate {
                    tracing::debug!(batch = %name, "JetStream had this batch already");
                }
                Answer::Stored(Vec::new())
            }
            Ok(Err(e)) => match e.kind() {
                PublishErrorKind::MaxPayloadExceeded => Answer::TooLarge(e.to_string()),
                PublishErrorKind::StreamNotFound => Answer::Later(format!(
                    "no JetStream stream takes subject {} (a collector with [source.nats] creates it)",
                    self.subject
                )),
                _ => Answer::Later(e.to_string()),
            },
        }
    }
}
