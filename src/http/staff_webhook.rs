//! Webhooks of the staff events: each grid enter/leave event is POSTed as JSON to every
//! configured URL (`[staff] webhooks = ["http://…"]`), in order, with retries.
//!
//! - Plain `http://` only (an intranet receiver; no TLS stack is linked): hyper's own HTTP/1
//!   client over a tokio TCP connection, one connection per delivery.
//! - Each URL has a bounded queue (`webhook_queue`, default 1000 events). The position intake
//!   only ever tries to enqueue: when a receiver is down long enough for its queue to fill, newer
//!   events for it are dropped and counted ([`WebhookStats::dropped`]), never waited for.
//! - A delivery succeeds on any 2xx answer. Otherwise (refused connection, timeout, another
//!   status) it is retried up to `webhook_retries` times (default 5), waiting 0.5 s, 1 s, 2 s …
//!   (at most 30 s) in between; then the event is given up and counted as failed.
//! - Headers: `Content-Type: application/json`, `X-Citygrid-Event: grid_change`,
//!   `X-Citygrid-Seq: <seq>`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::http::{Request, Uri, header};

use crate::staff::{StaffEvent, StaffHub};

/// Default queue of each webhook, events.
pub const DEFAULT_QUEUE: usize = 1000;
/// Default retries of a delivery.
pub const DEFAULT_RETRIES: u32 = 5;

/// Where and how to deliver.
#[derive(Clone, Debug, PartialEq)]
pub struct WebhookConfig {
    pub urls: Vec<String>,
    pub queue: usize,
    pub retries: u32,
    /// Connect + answer time allowed per attempt.
    pub timeout: Duration,
    /// First wait between attempts (doubled each time, at most 30 s).
    pub backoff: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig { urls: Vec::new(), queue: DEFAULT_QUEUE, retries: DEFAULT_RETRIES, timeout: Duration::from_secs(5), backoff: Duration::from_millis(500) }
    }
}

/// Counts of all webhooks.
#[derive(Debug, Default)]
pub struct WebhookStats {
    pub delivered: AtomicU64,
    /// Given up after every retry.
    pub failed: AtomicU64,
    /// Not queued: the queue was full.
    pub dropped: AtomicU64,
    /// Attempts that did not succeed (each retry counts).
    pub attempts_failed: AtomicU64,
}

/// Checks a webhook URL: `http://host[:port]/path`. `Err`: why not.
pub fn check_url(url: &str) -> Result<Uri, String> {
    let uri: Uri = url.parse().map_err(|e| format!("{url:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("{url:?}: webhooks are plain http:// (an intranet receiver); https is not supported"));
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(format!("{url:?} has no host"));
    }
    Ok(uri)
}

/// Starts one delivery task per URL (call inside a tokio runtime) and subscribes them to
/// `hub`'s events. `Err`: a URL that is not `http://…` (nothing started).
pub fn start(hub: &StaffHub, config: &WebhookConfig) -> Result<Arc<WebhookStats>, String> {
    let uris = config.urls.iter().map(|u| check_url(u)).collect::<Result<Vec<_>, _>>()?;
    let stats = Arc::new(WebhookStats::default());
    for uri in uris {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<StaffEvent>>(config.queue.max(1));
        let dropped = stats.clone();
        hub.add_sink(Arc::new(move |event: &Arc<StaffEvent>| {
            if tx.try_send(event.clone()).is_err() {
                dropped.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }));
        let (stats, config) = (stats.clone(), config.clone());
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                let mut wait = config.backoff;
                let mut attempt = 0;
                loop {
                    match deliver(&uri, &event, config.timeout).await {
                        Ok(()) => {
                            stats.delivered.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        Err(e) => {
                            stats.attempts_failed.fetch_add(1, Ordering::Relaxed);
                            if attempt >= config.retries {
                                stats.failed.fetch_add(1, Ordering::Relaxed);
                                tracing::warn!(url = %uri, seq = event.seq, error = %e, "staff event webhook: given up");
                                break;
                            }
                            attempt += 1;
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_secs(30));
                        }
                    }
                }
            }
        });
    }
    Ok(stats)
}

/// One attempt: POST the event, a 2xx answer within `timeout`.
async fn deliver(uri: &Uri, event: &StaffEvent, timeout: Duration) -> Result<(), String> {
    let attempt = async {
        let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
        let port = uri.port_u16().unwrap_or(80);
        let stream = tokio::net::TcpStream::connect((host, port)).await.map_err(|e| format!("connect: {e}"))?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| format!("handshake: {e}"))?;
        tokio::spawn(connection);
        let path = uri.path_and_query().map_or("/", |p| p.as_str());
        let request = Request::post(path)
            .header(header::HOST, uri.authority().map_or(host, |a| a.as_str()))
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-citygrid-event", event.kind)
            .header("x-citygrid-seq", event.seq)
            .body(axum::body::Body::from(event.json.clone()))
            .map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| format!("request: {e}"))?;
        if response.status().is_success() { Ok(()) } else { Err(format!("answered {}", response.status())) }
    };
    tokio::time::timeout(timeout, attempt).await.map_err(|_| format!("no answer within {timeout:?}"))?
}
