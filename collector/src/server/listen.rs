//! The accept loop: every connection bounded in number and in time, so no
//! client can hold the server, whatever it sends or fails to send.
//!
//! - at most `max_connections` at once: the next one is answered 503 and
//!   closed at once (nothing is read from it);
//! - a request's line and headers must arrive within `header_timeout`
//!   (hyper's timer: a request sent a byte at a time is cut off), which is
//!   also how long a kept-alive connection may wait for its next request;
//! - an answer that cannot be written for `idle_timeout` (a client that
//!   stops reading) closes the connection;
//! - a connection the server closes is closed the way nginx's lingering
//!   close does it: the write side first, then what the client still sends
//!   is read and thrown away (at most [`LINGER`] and [`LINGER_BYTES`]), so
//!   a client still sending a body the server refused (401, 413) reads the
//!   answer instead of a reset;
//! - the body's own limits (size, `body_timeout`) are the handler's, which
//!   knows the route ([`super::read_body`]). Reads are not timed here:
//!   while a handler runs, hyper keeps a read pending to notice a client
//!   that goes away, and a long query must not count as idleness.
//!
//! HTTP/1.1 only: sensors and browsers speak it; nothing here needs h2.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::{Instant, Sleep};

/// The bounds on connections (`[…]` keys of the collector's file).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: u32,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
}

/// Connections refused because `max_connections` were open, and closed for
/// a timeout (`/metrics`).
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub refused: AtomicU64,
    pub timed_out: AtomicU64,
    pub open: AtomicU64,
}

/// How long open connections may finish their requests at shutdown.
const GRACE: Duration = Duration::from_secs(10);

/// How long a closing connection goes on reading what the client sends.
const LINGER: Duration = Duration::from_secs(2);
/// How much it reads (and throws away) at most.
const LINGER_BYTES: u64 = 64 * 1024 * 1024;

const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 31\r\nconnection: close\r\n\r\ntoo many connections; try later";

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// connections finish (at most [`GRACE`]).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    stats: Arc<ConnectionStats>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let max = limits.max_connections.max(1);
    let slots = Arc::new(Semaphore::new(max as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut last_busy_log: Option<Instant> = None;
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was taken: the listener itself is fine.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            // Best effort, never waiting: the socket's buffer takes it.
            let _ = stream.try_write(BUSY);
            if last_busy_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
                last_busy_log = Some(Instant::now());
                tracing::warn!(%peer, max_connections = max, "connection refused: max_connections open");
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let stats = Arc::clone(&stats);
        let mut stop = stop_rx.clone();
        tokio::spawn(async move {
            stats.open.fetch_add(1, Ordering::Relaxed);
            let io = TokioIo::new(Idle::new(stream, limits.idle_timeout));
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(64 * 1024);
            let conn = builder.serve_connection(io, TowerToHyperService::new(app));
            let mut conn = std::pin::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                () = stopped(&mut stop) => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                let timeout = e.is_timeout()
                    || std::error::Error::source(&e)
                        .and_then(|s| s.downcast_ref::<io::Error>())
                        .is_some_and(|io| io.kind() == io::ErrorKind::TimedOut);
                if timeout {
                    stats.timed_out.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(%peer, error = %e, "connection ended with an error");
            }
            stats.open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
    let _ = stop_tx.send(true);
    // Every slot back means every connection ended.
    let _ = tokio::time::timeout(GRACE, slots.acquire_many(max)).await;
    Ok(())
}

/// Resolves once the accept loop says stop (or is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// A connection whose writes fail with `TimedOut` once they have waited
/// `limit` without a byte going out, and which lingers when it is shut down.
struct Idle {
    inner: TcpStream,
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
    /// Whether `deadline` counts from the last progress (armed by the first
    /// wait after it).
    armed: bool,
    /// Once the write side is shut: the bytes the client may still send
    /// before the connection closes (`deadline` is then the linger's end).
    lingering: Option<u64>,
}

impl Idle {
    fn new(inner: TcpStream, limit: Duration) -> Idle {
        Idle {
            inner,
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            armed: false,
            lingering: None,
        }
    }

    /// Reads and throws away what the client sends until it closes, the
    /// linger's time or bytes run out, or the connection fails.
    fn linger(&mut self, cx: &mut Context<'_>, left: u64) -> Poll<()> {
        let mut left = left;
        let mut scratch = [0u8; 16 * 1024];
        loop {
            let mut buf = ReadBuf::new(&mut scratch);
            match Pin::new(&mut self.inner).poll_read(cx, &mut buf) {
                Poll::Ready(Ok(())) if !buf.filled().is_empty() => {
                    left = left.saturating_sub(buf.filled().len() as u64);
                    if left == 0 {
                        return Poll::Ready(());
                    }
                }
                Poll::Ready(_) => return Poll::Ready(()),
                Poll::Pending => {
                    self.lingering = Some(left);
                    return self.deadline.as_mut().poll(cx);
                }
            }
        }
    }

    /// Progress: the next wait counts afresh.
    fn moved<T>(&mut self, r: Poll<T>) -> Poll<T> {
        if r.is_ready() {
            self.armed = false;
        }
        r
    }

    /// The inner stream takes nothing now: waits, at most until the deadline.
    fn wait<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.armed {
            self.armed = true;
            let at = Instant::now() + self.limit;
            self.deadline.as_mut().reset(at);
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "nothing sent or received within idle_timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for Idle {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Idle {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_write(cx, data) {
            Poll::Pending => this.wait(cx),
            ready => this.moved(ready),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.wait(cx),
            ready => this.moved(ready),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let left = match this.lingering {
            Some(left) => left,
            None => {
                if let Err(e) = std::task::ready!(Pin::new(&mut this.inner).poll_shutdown(cx)) {
                    return Poll::Ready(Err(e));
                }
                this.deadline.as_mut().reset(Instant::now() + LINGER);
                LINGER_BYTES
            }
        };
        this.linger(cx, left).map(Ok)
    }
}
