//! `[source.nats]`: batches from a JetStream stream, through a durable pull
//! consumer that every collector naming it shares (JetStream hands each
//! message to one of them).
//!
//! A message is one batch as a sensor spooled it (`{"sensor", "events"}`,
//! gzip when `Content-Encoding: gzip` says so), on a subject whose last
//! token is the sensor (NATS permissions decide who may publish there; the
//! batch must name the same sensor). It goes through the same checks and
//! store as an HTTP batch ([`AppState::intake`]) and is acknowledged only
//! after the store committed it: a collector that dies before has it
//! delivered again (to any collector) after `ack_wait`, and the store's
//! uniqueness on (sensor, `seq`) stores it once.
//!
//! | outcome | what happens |
//! |---|---|
//! | stored | acknowledged; events refused one by one go to the dead-letter stream, with the reasons |
//! | the batch as a whole is invalid (does not decode, names another sensor) | to the dead-letter stream, then acknowledged |
//! | the store does not take writes (down, full, busy) | not acknowledged (`nak` with a delay); this collector pauses, backing off from 0.5 to 30 s: nothing is dead-lettered for an outage |
//! | the store fails on this batch | `nak` with a delay; at the `max_deliver`th delivery, to the dead-letter stream |
//!
//! Dead letters go to `<dead_letter_prefix>.<sensor>` in their own stream,
//! with the reason in `Net-Gazer-Error` and the origin in
//! `Net-Gazer-Subject` / `Net-Gazer-Stream-Sequence`; they are counted in
//! `/metrics`, as are the consumer's pending messages (the lag).

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, PullConsumer};
use async_nats::jetstream::{self, stream, AckKind};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::value::RawValue;

use crate::config::{NatsSource, Retention};
use crate::ingest::Refused;
use crate::server::{AppState, NatsStats as Stats, Refusal};

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How often the consumer's lag is read.
const LAG_EVERY: Duration = Duration::from_secs(5);
/// How long an acknowledgement (or a dead letter's publication) may take.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest reason kept in a dead letter's header.
const MAX_REASON: usize = 1000;

/// Consumes until the process ends: connects, makes sure of the streams
/// and the consumer, and handles messages; starts over, backing off, when
/// any of it fails.
pub async fn run(config: NatsSource, state: Arc<AppState>) {
    let stats = state.nats_stats();
    let mut backoff = BACKOFF_MIN;
    loop {
        let started = Instant::now();
        let e = session(&config, &state, &stats).await;
        stats.connected.store(0, Relaxed);
        if started.elapsed() > BACKOFF_MAX {
            backoff = BACKOFF_MIN;
        }
        tracing::error!(error = %e, retry_in = ?backoff, stream = %config.stream, "NATS source stopped; starting over");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

fn stream_config(config: &NatsSource) -> stream::Config {
    let retention = match config.retention {
        Retention::WorkQueue => stream::RetentionPolicy::WorkQueue,
        Retention::Limits => stream::RetentionPolicy::Limits,
    };
    let about = "net-gazer: batches of events from the sensors";
    stream_of(config, &config.stream, config.subjects.clone(), retention, about)
}

fn dead_letter_config(config: &NatsSource) -> stream::Config {
    let subjects = vec![format!("{}.>", config.dead_letter_prefix)];
    let about = "net-gazer: what the collectors could not store, with the reason";
    stream_of(
        config,
        &config.dead_letter_stream,
        subjects,
        stream::RetentionPolicy::Limits,
        about,
    )
}

/// A stream on file storage with the limits and replicas of `config`.
fn stream_of(
    config: &NatsSource,
    name: &str,
    subjects: Vec<String>,
    retention: stream::RetentionPolicy,
    about: &str,
) -> stream::Config {
    stream::Config {
        name: name.to_string(),
        subjects,
        retention,
        max_age: config.max_age,
        max_bytes: max_bytes(config.max_mb),
        duplicate_window: config.duplicate_window,
        num_replicas: config.replicas as usize,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        description: Some(about.into()),
        ..Default::default()
    }
}

fn max_bytes(mb: u64) -> i64 {
    if mb == 0 {
        -1
    } else {
        i64::try_from(mb.saturating_mul(1024 * 1024)).unwrap_or(i64::MAX)
    }
}

fn consumer_config(config: &NatsSource) -> pull::Config {
    pull::Config {
        durable_name: Some(config.consumer.clone()),
        description: Some("net-gazer collectors".into()),
        ack_policy: jetstream::consumer::AckPolicy::Explicit,
        ack_wait: config.ack_wait,
        // Unbounded here: whether a failing message goes to the
        // dead-letter stream is decided by `handle` (an outage of the
        // store must not send anything there).
        max_deliver: -1,
        max_ack_pending: i64::from(config.fetch).saturating_mul(16).max(1000),
        ..Default::default()
    }
}

/// One connection's life; returns why it ended.
async fn session(config: &NatsSource, state: &Arc<AppState>, stats: &Arc<Stats>) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let client = match config
        .connection
        .connect(&format!("net-gazer-collector {}", host.trim()))
        .await
    {
        Ok(c) => c,
        Err(e) => return format!("connecting: {e}"),
    };
    let js = jetstream::new(client);
    let stream = if config.create {
        if let Err(e) = js.create_or_update_stream(dead_letter_config(config)).await {
            return format!("creating the dead-letter stream {}: {e}", config.dead_letter_stream);
        }
        match js.create_or_update_stream(stream_config(config)).await {
            Ok(_) => js.get_stream(&config.stream).await,
            Err(e) => return format!("creating the stream {}: {e}", config.stream),
        }
    } else {
        js.get_stream(&config.stream).await
    };
    let stream = match stream {
        Ok(s) => s,
        Err(e) => return format!("the stream {}: {e}", config.stream),
    };
    let consumer: Result<PullConsumer, String> = if config.create {
        stream
            .create_consumer(consumer_config(config))
            .await
            .map_err(|e| e.to_string())
    } else {
        stream.get_consumer(&config.consumer).await.map_err(|e| e.to_string())
    };
    let consumer = match consumer {
        Ok(c) => c,
        Err(e) => return format!("the consumer {}: {e}", config.consumer),
    };
    let lag = LagWatch(tokio::spawn(watch_lag(consumer.clone(), Arc::clone(stats))));
    let mut messages = match consumer
        .stream()
        .max_messages_per_batch(config.fetch as usize)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
    {
        Ok(m) => m,
        Err(e) => return format!("pulling from {}: {e}", config.consumer),
    };
    stats.connected.store(1, Relaxed);
    tracing::info!(stream = %config.stream, consumer = %config.consumer, "consuming batches from NATS");
    let mut backoff = BACKOFF_MIN;
    while let Some(next) = messages.next().await {
        let message = match next {
            Ok(m) => m,
            // Pulls go on after a missed heartbeat; after any other error
            // (no responders while the consumer's leader moves, the
            // consumer deleted) they may not: start over.
            Err(e) if e.kind() == pull::MessagesErrorKind::MissingHeartbeat => {
                tracing::warn!(error = %e, "NATS: pulling messages");
                continue;
            }
            Err(e) => return format!("pulling messages: {e}"),
        };
        match handle(&message, config, state, stats, &js).await {
            Handled::Done => backoff = BACKOFF_MIN,
            Handled::Pause => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
    drop(lag);
    "the consumer's messages ended".into()
}

/// Stops the lag task with its session.
struct LagWatch(tokio::task::JoinHandle<()>);

impl Drop for LagWatch {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn watch_lag(mut consumer: PullConsumer, stats: Arc<Stats>) {
    loop {
        match consumer.info().await {
            Ok(info) => {
                stats.pending.store(info.num_pending, Relaxed);
                stats.ack_pending.store(info.num_ack_pending as u64, Relaxed);
            }
            Err(e) => tracing::debug!(error = %e, "NATS: reading the consumer's lag"),
        }
        tokio::time::sleep(LAG_EVERY).await;
    }
}

enum Handled {
    Done,
    /// The store does not take writes: wait before the next message.
    Pause,
}

/// Stores one message's batch and acknowledges it, or says why not.
async fn handle(
    message: &jetstream::Message,
    config: &NatsSource,
    state: &Arc<AppState>,
    stats: &Stats,
    js: &jetstream::Context,
) -> Handled {
    let started = Instant::now();
    let (delivered, stream_seq) = message
        .info()
        .map(|i| (i.delivered.max(1) as u64, i.stream_sequence))
        .unwrap_or((1, 0));
    let subject = message.subject.as_str();
    let sensor = subject.rsplit('.').next().unwrap_or_default().to_string();
    let gzip = message
        .headers
        .as_ref()
        .and_then(|h| h.get("Content-Encoding"))
        .is_some_and(|v| v.as_str().eq_ignore_ascii_case("gzip"));
    let letter = DeadLetter {
        js,
        config,
        sensor: &sensor,
        subject,
        stream_seq,
        body_limit: state.config().body_limit_mb.saturating_mul(1024 * 1024),
    };
    match state.intake(&sensor, message.payload.clone(), gzip, started).await {
        Ok(intake) => {
            if !intake.batch.refused.is_empty() {
                let body = refused_events(
                    &message.payload,
                    gzip,
                    letter.body_limit,
                    &sensor,
                    &intake.batch.refused,
                );
                let n = intake.batch.refused.len() as u64;
                let reason = format!("{n} events refused; the first: {}", intake.batch.refused[0].error);
                if let Err(e) = letter.send(body, false, &reason, "refused").await {
                    tracing::error!(error = %e, "NATS: the refused events cannot be dead-lettered; the message will come again");
                    return retry(message, stats, BACKOFF_MAX).await;
                }
                stats.dead_letter_events.fetch_add(n, Relaxed);
            }
            acknowledge(message, stats).await;
            stats.stored.fetch_add(1, Relaxed);
            Handled::Done
        }
        Err(Refusal::Invalid { message: why, .. }) => whole_to_dead_letter(message, &letter, gzip, &why, stats).await,
        Err(Refusal::Unavailable(why)) => {
            tracing::warn!(reason = %why, "NATS: the store does not take writes; pausing");
            retry(message, stats, BACKOFF_MIN).await;
            Handled::Pause
        }
        Err(Refusal::Failed(why)) => failed(message, &letter, gzip, &why, delivered, stats).await,
        Err(Refusal::Panicked(_)) => failed(message, &letter, gzip, "storing it panicked", delivered, stats).await,
    }
}

/// The store failed on this batch: delivered again, until `max_deliver`.
async fn failed(
    message: &jetstream::Message,
    letter: &DeadLetter<'_>,
    gzip: bool,
    why: &str,
    delivered: u64,
    stats: &Stats,
) -> Handled {
    if delivered >= u64::from(letter.config.max_deliver) {
        let why = format!("failed {delivered} times: {why}");
        return whole_to_dead_letter(message, letter, gzip, &why, stats).await;
    }
    let delay = (BACKOFF_MIN * 2u32.saturating_pow(delivered.min(6) as u32)).min(BACKOFF_MAX);
    tracing::warn!(reason = %why, delivered, retry_in = ?delay, "NATS: storing a batch failed");
    retry(message, stats, delay).await
}

async fn whole_to_dead_letter(
    message: &jetstream::Message,
    letter: &DeadLetter<'_>,
    gzip: bool,
    why: &str,
    stats: &Stats,
) -> Handled {
    match letter.send(message.payload.clone(), gzip, why, "invalid").await {
        Ok(()) => {
            tracing::warn!(subject = %letter.subject, reason = %why, "NATS: a batch went to the dead-letter stream");
            stats.dead_letters.fetch_add(1, Relaxed);
            stats
                .dead_letter_events
                .fetch_add(events_in(&message.payload, gzip, letter.body_limit), Relaxed);
            acknowledge(message, stats).await;
            Handled::Done
        }
        Err(e) => {
            tracing::error!(error = %e, reason = %why, "NATS: a batch cannot be dead-lettered; it will come again");
            retry(message, stats, BACKOFF_MAX).await
        }
    }
}

/// Asks for the message again after `delay`.
async fn retry(message: &jetstream::Message, stats: &Stats, delay: Duration) -> Handled {
    stats.retried.fetch_add(1, Relaxed);
    if let Err(e) = message.ack_with(AckKind::Nak(Some(delay))).await {
        tracing::debug!(error = %e, "NATS: nak not sent (the message comes again after ack_wait)");
    }
    Handled::Done
}

/// Acknowledges and waits for the server to confirm; a lost
/// acknowledgement only means the batch comes again and is found stored.
async fn acknowledge(message: &jetstream::Message, stats: &Stats) {
    match tokio::time::timeout(ACK_TIMEOUT, message.double_ack()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            stats.retried.fetch_add(1, Relaxed);
            tracing::warn!(error = %e, "NATS: acknowledgement not confirmed; the batch may come again (stored once)")
        }
        Err(_) => {
            stats.retried.fetch_add(1, Relaxed);
            tracing::warn!("NATS: acknowledgement not confirmed in time; the batch may come again (stored once)")
        }
    }
}

/// Where a message's dead letters go.
struct DeadLetter<'a> {
    js: &'a jetstream::Context,
    config: &'a NatsSource,
    sensor: &'a str,
    subject: &'a str,
    stream_seq: u64,
    /// The collector's `body_limit_mb`, in bytes.
    body_limit: u64,
}

impl DeadLetter<'_> {
    /// Publishes `body` with the reason and origin, and waits for the
    /// dead-letter stream to have it. `what` tells the letters of one
    /// message apart (its id makes a redelivered message's letter a
    /// duplicate).
    async fn send(&self, body: Bytes, gzip: bool, why: &str, what: &str) -> Result<(), String> {
        let token = if net_gazer_common::nats::is_subject_token(self.sensor) {
            self.sensor
        } else {
            "_unknown"
        };
        let subject = format!("{}.{token}", self.config.dead_letter_prefix);
        let mut publish = jetstream::message::PublishMessage::build()
            .payload(body)
            .message_id(format!("{}-{}-{what}", self.config.stream, self.stream_seq))
            .header("Net-Gazer-Error", header_value(why).as_str())
            .header("Net-Gazer-Subject", header_value(self.subject).as_str())
            .header("Net-Gazer-Stream-Sequence", self.stream_seq.to_string().as_str());
        if gzip {
            publish = publish.header("Content-Encoding", "gzip");
        }
        let acked = tokio::time::timeout(ACK_TIMEOUT, async {
            self.js.send_publish(subject, publish).await?.await
        })
        .await;
        match acked {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no acknowledgement from the dead-letter stream in time".into()),
        }
    }
}

/// Text fit for a header: one line, bounded.
fn header_value(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_REASON)
        .collect()
}

/// A payload as JSON text (decompressed when `gzip`); empty when it does
/// not decode or is larger than `limit` decompressed (a payload refused
/// as too large is not inflated again here).
fn decoded(payload: &[u8], gzip: bool, limit: u64) -> Vec<u8> {
    if !gzip {
        return payload.to_vec();
    }
    let mut out = Vec::new();
    let d = flate2::read::GzDecoder::new(payload);
    match std::io::Read::read_to_end(&mut std::io::Read::take(d, limit.saturating_add(1)), &mut out) {
        Ok(_) if out.len() as u64 <= limit => out,
        _ => Vec::new(),
    }
}

/// The events of a batch's JSON text, each as it came (none when the text
/// is not a batch).
fn raw_events(text: &[u8]) -> Vec<&RawValue> {
    #[derive(serde::Deserialize)]
    struct Events<'a> {
        #[serde(borrow)]
        events: Vec<&'a RawValue>,
    }
    serde_json::from_slice::<Events>(text)
        .map(|e| e.events)
        .unwrap_or_default()
}

/// The events of a payload, when they can be counted.
fn events_in(payload: &[u8], gzip: bool, limit: u64) -> u64 {
    raw_events(&decoded(payload, gzip, limit)).len() as u64
}

/// The dead letter of the events of a batch refused one by one:
/// `{"sensor", "refused": [{"index", "seq", "error", "event"}]}`.
fn refused_events(payload: &[u8], gzip: bool, limit: u64, sensor: &str, refused: &[Refused]) -> Bytes {
    let text = decoded(payload, gzip, limit);
    let events = raw_events(&text);
    let list: Vec<serde_json::Value> = refused
        .iter()
        .map(|r| {
            let event = events
                .get(r.index)
                .and_then(|raw| serde_json::from_str::<serde_json::Value>(raw.get()).ok());
            serde_json::json!({"index": r.index, "seq": r.seq, "error": r.error, "event": event})
        })
        .collect();
    Bytes::from(serde_json::to_vec(&serde_json::json!({"sensor": sensor, "refused": list})).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_values_are_one_bounded_line() {
        assert_eq!(header_value("a\r\nb"), "a  b");
        assert_eq!(header_value(&"x".repeat(5000)).len(), MAX_REASON);
    }

    #[test]
    fn refused_events_carry_the_event_and_the_reason() {
        let body = br#"{"sensor":"gw1","events":[{"seq":1,"kind":"stats"},{"seq":2,"kind":"bogus"}]}"#;
        let refused = [Refused {
            index: 1,
            seq: Some(2),
            error: "events[1]: unknown kind".into(),
        }];
        let letter: serde_json::Value =
            serde_json::from_slice(&refused_events(body, false, 1 << 20, "gw1", &refused)).unwrap();
        assert_eq!(letter["refused"][0]["event"]["kind"], "bogus");
        assert_eq!(letter["refused"][0]["error"], "events[1]: unknown kind");
        assert_eq!(events_in(body, false, 1 << 20), 2);
        // A gzip bomb is not inflated past the limit.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        std::io::Write::write_all(&mut gz, &vec![b' '; 1 << 22]).unwrap();
        let bomb = gz.finish().unwrap();
        assert!(decoded(&bomb, true, 1 << 20).is_empty());
        assert_eq!(decoded(&bomb, true, 1 << 23).len(), 1 << 22);
    }
}
