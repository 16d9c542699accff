//! The serve loop: every connection bounded in time, their number bounded, shutdown bounded.
//!
//! - A connection that has sent part of a request head is closed after `header_timeout`; one
//!   that sits idle between requests after `idle_timeout`; a request body that sends nothing
//!   for `body_timeout` is answered `408 request_timeout`.
//! - At most `max_connections` are served at once. The server never stops accepting: a
//!   connection over the limit is answered at once with `503 overloaded` (`Retry-After`) and
//!   closed, so clients see why and the server sheds load instead of hanging.
//! - A request body the handler did not read (a refused write, an over-limit upload) is drained,
//!   up to [`DRAIN_MAX_BYTES`], so the client reads its answer instead of a reset connection.
//! - Expensive requests (batch routing, big bbox pages, uploads) are rate-limited per client
//!   ([`RateLimits`]): `429 rate_limited` with `Retry-After`.
//! - On shutdown the listener closes, idle connections close, requests in flight finish; at the
//!   `shutdown_grace` deadline whatever is left is dropped.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use super::error::ApiError;

/// At most this much of a request body nobody read is drained before the connection closes.
pub const DRAIN_MAX_BYTES: u64 = 64 << 20;
/// How long draining an unread body may take.
const DRAIN_TIME: Duration = Duration::from_secs(10);
/// Connections over the limit being answered 503 at once; beyond these they are closed unanswered.
const SHED_MAX: usize = 512;
/// Clients (per endpoint class) whose token buckets are kept; more: the full ones are forgotten.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// Bounds of the serve loop (see the module docs); `[limits]` in the config file.
#[derive(Debug, Clone, PartialEq)]
pub struct ServeLimits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub max_connections: usize,
    pub shutdown_grace: Duration,
    pub rates: RateLimits,
}

impl Default for ServeLimits {
    fn default() -> Self {
        ServeLimits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            shutdown_grace: Duration::from_secs(10),
            rates: RateLimits::default(),
        }
    }
}

/// A token bucket: `per_minute` requests on average, up to `burst` at once. `per_minute = 0`:
/// unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_minute: u32,
    pub burst: u32,
}

/// Per-client rate limits of the expensive endpoint classes. The client is the peer address,
/// or, when the peer is one of `trusted_proxies`, the last address of `X-Forwarded-For` that is
/// not a trusted proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimits {
    /// `POST /v1/cases/route:batch`.
    pub batch: Rate,
    /// `GET /v1/components` and OGC `…/items` pages with `limit` over 1000.
    pub bbox: Rate,
    /// `PUT /v1/layers/{name}`, `PUT /v1/city`, `PUT /v1/rules`.
    pub upload: Rate,
    pub trusted_proxies: Vec<IpAddr>,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            batch: Rate { per_minute: 30, burst: 10 },
            bbox: Rate { per_minute: 600, burst: 60 },
            upload: Rate { per_minute: 10, burst: 5 },
            trusted_proxies: Vec::new(),
        }
    }
}

/// The endpoint classes that are rate-limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Batch,
    Bbox,
    Upload,
}

impl Class {
    fn of<B>(req: &Request<B>) -> Option<Class> {
        let path = req.uri().path();
        let method = req.method();
        if method == "POST" && path.ends_with("/v1/cases/route:batch") {
            return Some(Class::Batch);
        }
        if method == "PUT" && (path.contains("/v1/layers/") || path.ends_with("/v1/city") || path.ends_with("/v1/rules")) {
            return Some(Class::Upload);
        }
        let page = path.ends_with("/v1/components") || (path.contains("/ogc/collections/") && path.ends_with("/items"));
        if method == "GET" && page {
            let query = req.uri().query().unwrap_or("");
            let limit = query.split('&').find_map(|kv| kv.strip_prefix("limit="));
            // A whole collection (`limit=all`, or FlatGeobuf, which has no pages) counts as big.
            let whole = limit == Some("all") || query.split('&').any(|kv| kv == "f=fgb" || kv == "f=flatgeobuf");
            if whole || limit.and_then(|l| l.parse::<u64>().ok()).is_some_and(|l| l > 1000) {
                return Some(Class::Bbox);
            }
        }
        None
    }

    fn name(self) -> &'static str {
        match self {
            Class::Batch => "batch routing",
            Class::Bbox => "large bbox pages",
            Class::Upload => "uploads",
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets per (client, class), bounded in number.
struct Limiter {
    rates: RateLimits,
    buckets: Mutex<HashMap<(IpAddr, Class), Bucket>>,
}

impl Limiter {
    fn rate(&self, class: Class) -> Rate {
        match class {
            Class::Batch => self.rates.batch,
            Class::Bbox => self.rates.bbox,
            Class::Upload => self.rates.upload,
        }
    }

    /// Takes a token, or says how long until one is there.
    fn take(&self, client: IpAddr, class: Class, now: Instant) -> Result<(), Duration> {
        let rate = self.rate(class);
        if rate.per_minute == 0 {
            return Ok(());
        }
        let per_sec = f64::from(rate.per_minute) / 60.0;
        let cap = f64::from(rate.burst.max(1));
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&(client, class)) {
            // Forget the clients whose bucket has refilled: they are as new ones.
            buckets.retain(|(_, c), b| {
                let r = self.rate(*c);
                b.tokens + now.duration_since(b.at).as_secs_f64() * f64::from(r.per_minute) / 60.0 < f64::from(r.burst.max(1))
            });
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                buckets.clear();
            }
        }
        let b = buckets.entry((client, class)).or_insert(Bucket { tokens: cap, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * per_sec).min(cap);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
        }
    }

    /// The client a request is counted against.
    fn client<B>(&self, req: &Request<B>, peer: IpAddr) -> IpAddr {
        if !self.rates.trusted_proxies.contains(&peer) {
            return peer;
        }
        let forwarded: Vec<IpAddr> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        forwarded.into_iter().rev().find(|a| !self.rates.trusted_proxies.contains(a)).unwrap_or(peer)
    }
}

/// What every connection task shares.
struct Shared {
    app: Router,
    limits: ServeLimits,
    limiter: Limiter,
}

/// Serves `app` on `listener` within `limits` until `shutdown` resolves, then shuts down
/// gracefully within `limits.shutdown_grace`.
pub async fn serve(listener: TcpListener, app: Router, limits: ServeLimits, shutdown: impl Future<Output = ()>) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let shedding = Arc::new(Semaphore::new(SHED_MAX));
    let (close_tx, close_rx) = watch::channel(());
    let grace = limits.shutdown_grace;
    let max_connections = limits.max_connections;
    let shared = Arc::new(Shared { app, limiter: Limiter { rates: limits.rates.clone(), buckets: Mutex::default() }, limits });
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            Some(_) = tasks.join_next() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    if let Ok(permit) = permits.clone().try_acquire_owned() {
                        let (shared, close_rx) = (shared.clone(), close_rx.clone());
                        tasks.spawn(async move {
                            connection(stream, peer, shared, close_rx).await;
                            drop(permit);
                        });
                    } else if let Ok(permit) = shedding.clone().try_acquire_owned() {
                        debug!(%peer, "at the connection limit: answering 503");
                        tasks.spawn(async move {
                            shed(stream, max_connections).await;
                            drop(permit);
                        });
                    } else {
                        drop(stream);
                    }
                }
                Err(e) => {
                    // Out of file descriptors or memory: wait a little, never stop accepting.
                    if !matches!(e.kind(), std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::Interrupted) {
                        warn!(error = %e, "accepting a connection failed; retrying");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            },
        }
    }
    drop(listener);
    let _ = close_tx.send(());
    info!(connections = tasks.len(), grace_secs = grace.as_secs_f64(), "no longer accepting; letting requests in flight finish");
    let finished = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} }).await;
    if finished.is_err() {
        warn!(connections = tasks.len(), "shutdown grace period over: closing the remaining connections");
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    }
    Ok(())
}

/// Answers a connection over the limit with `503 overloaded` and closes it.
async fn shed(mut stream: TcpStream, max_connections: usize) {
    let body = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "overloaded",
        format!("the server is serving its maximum of {max_connections} connections; retry in a moment"),
    )
    .with_details(json!({"max_connections": max_connections}))
    .body()
    .to_string();
    let head = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        // Read what the client sent first (its request head), so that closing does not reset
        // the connection before it reads the answer.
        let mut buf = [0u8; 8192];
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body.as_bytes()).await?;
        stream.shutdown().await?;
        while stream.read(&mut buf).await? > 0 {}
        Ok::<(), std::io::Error>(())
    })
    .await;
}

/// Serves one connection until it ends, times out, or shutdown closes it.
async fn connection(stream: TcpStream, peer: SocketAddr, shared: Arc<Shared>, mut close_rx: watch::Receiver<()>) {
    let activity = Arc::new(Activity::new(&shared.limits));
    let io = TokioIo::new(Watched { io: stream, activity: activity.clone() });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: Request<Incoming>| {
            let (shared, activity) = (shared.clone(), activity.clone());
            async move { Ok::<_, std::convert::Infallible>(handle(req, peer, shared, activity).await) }
        })
    };
    let conn = hyper::server::conn::http1::Builder::new().serve_connection(io, service);
    tokio::pin!(conn);
    let (header_ms, idle_ms) = activity.limits;
    let tick = Duration::from_millis((header_ms.min(idle_ms) / 4).clamp(20, 1000));
    let mut ticks = tokio::time::interval(tick);
    let mut closing = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            _ = close_rx.changed(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = ticks.tick() => {
                if let Some(why) = activity.expired() {
                    debug!(%peer, why, "closing the connection");
                    return;
                }
            }
        }
    }
}

/// One request: rate limit, body timeout and drain, then the router.
async fn handle(req: Request<Incoming>, peer: SocketAddr, shared: Arc<Shared>, activity: Arc<Activity>) -> Response {
    let busy = Busy::new(activity);
    let timed_out = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let inbound = Inbound { inner: Some(body), idle: shared.limits.body_timeout, sleep: None, timed_out: timed_out.clone(), busy: busy.clone() };
    let mut req = Request::from_parts(parts, Body::new(inbound));
    req.extensions_mut().insert(ConnectInfo(peer));
    let response = match Class::of(&req) {
        Some(class) => {
            let client = shared.limiter.client(&req, peer.ip());
            match shared.limiter.take(client, class, Instant::now()) {
                Ok(()) => None,
                Err(wait) => Some(rate_limited(class, shared.limiter.rate(class), wait)),
            }
        }
        None => None,
    };
    let response = match response {
        Some(r) => {
            drop(req);
            r
        }
        None => {
            let mut app = shared.app.clone();
            match tower_service::Service::call(&mut app, req).await {
                Ok(r) => r,
                Err(never) => match never {},
            }
        }
    };
    let response = if timed_out.load(Ordering::Relaxed) {
        let mut r = ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "request_timeout",
            format!("the request body stalled: nothing arrived for {} s", shared.limits.body_timeout.as_secs_f64()),
        )
        .into_response();
        r.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        r
    } else {
        response
    };
    response.map(|inner| Body::new(Outbound { inner, _busy: busy }))
}

fn rate_limited(class: Class, rate: Rate, wait: Duration) -> Response {
    let secs = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut r = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests for {} from this client ({} a minute, bursts of {}); retry in {secs} s", class.name(), rate.per_minute, rate.burst),
    )
    .with_details(json!({"class": class.name(), "per_minute": rate.per_minute, "burst": rate.burst, "retry_after": secs}))
    .into_response();
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
    r
}

/// When a connection last moved bytes, whether a request head is half read, and how many
/// requests (with their bodies) are in flight.
struct Activity {
    born: Instant,
    /// header timeout, idle timeout, ms.
    limits: (u64, u64),
    last_ms: AtomicU64,
    head_started_ms: AtomicU64,
    busy: AtomicUsize,
}

const NO_HEAD: u64 = u64::MAX;

impl Activity {
    fn new(limits: &ServeLimits) -> Activity {
        let ms = |d: Duration| d.as_millis().min(u128::from(u64::MAX / 2)) as u64;
        Activity {
            born: Instant::now(),
            limits: (ms(limits.header_timeout), ms(limits.idle_timeout)),
            last_ms: AtomicU64::new(0),
            head_started_ms: AtomicU64::new(NO_HEAD),
            busy: AtomicUsize::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    fn moved(&self, read: bool) {
        let now = self.now_ms();
        self.last_ms.store(now, Ordering::Relaxed);
        if read && self.busy.load(Ordering::Relaxed) == 0 && self.head_started_ms.load(Ordering::Relaxed) == NO_HEAD {
            self.head_started_ms.store(now, Ordering::Relaxed);
        }
    }

    /// Why the connection should close now, if it should.
    fn expired(&self) -> Option<&'static str> {
        if self.busy.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let now = self.now_ms();
        let head = self.head_started_ms.load(Ordering::Relaxed);
        if head != NO_HEAD {
            (now.saturating_sub(head) > self.limits.0).then_some("request head timeout")
        } else {
            (now.saturating_sub(self.last_ms.load(Ordering::Relaxed)) > self.limits.1).then_some("idle timeout")
        }
    }
}

/// Counts a request in flight while alive (the request, its unread body, its answer's body).
struct Busy(Arc<Activity>);

impl Busy {
    fn new(activity: Arc<Activity>) -> Busy {
        activity.busy.fetch_add(1, Ordering::Relaxed);
        activity.head_started_ms.store(NO_HEAD, Ordering::Relaxed);
        Busy(activity)
    }
}

impl Clone for Busy {
    fn clone(&self) -> Busy {
        self.0.busy.fetch_add(1, Ordering::Relaxed);
        Busy(self.0.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let now = self.0.now_ms();
        self.0.last_ms.store(now, Ordering::Relaxed);
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket, noting when bytes move.
struct Watched {
    io: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(result, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.moved(true);
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved(false);
        }
        result
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        let result = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.moved(false);
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// A request body that fails after `idle` without data (then the answer is 408), and that is
/// drained when dropped unread.
struct Inbound {
    inner: Option<Incoming>,
    idle: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    timed_out: Arc<AtomicBool>,
    busy: Busy,
}

impl HttpBody for Inbound {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = self.get_mut();
        let Some(inner) = this.inner.as_mut() else { return Poll::Ready(None) };
        match Pin::new(inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep = None;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => {
                this.inner = None;
                Poll::Ready(None)
            }
            Poll::Pending => {
                let idle = this.idle;
                let sleep = this.sleep.get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                if sleep.as_mut().poll(cx).is_ready() {
                    this.timed_out.store(true, Ordering::Relaxed);
                    this.inner = None;
                    return Poll::Ready(Some(Err(format!("no request body data for {} s", idle.as_secs_f64()).into())));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map(|b| b.size_hint()).unwrap_or_else(|| SizeHint::with_exact(0))
    }
}

impl Drop for Inbound {
    fn drop(&mut self) {
        let Some(mut body) = self.inner.take() else { return };
        if body.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let busy = self.busy.clone();
        runtime.spawn(async move {
            let _busy = busy;
            let mut read = 0u64;
            let _ = tokio::time::timeout(DRAIN_TIME, async {
                while let Some(Ok(frame)) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                    read += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if read > DRAIN_MAX_BYTES {
                        break;
                    }
                }
            })
            .await;
        });
    }
}

/// An answer's body, keeping its request counted in flight until it is sent.
struct Outbound {
    inner: Body,
    _busy: Busy,
}

impl HttpBody for Outbound {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Turns the framework's plain-text refusals (an extractor's 413 over a body limit, a body
/// that failed to arrive, …) into the documented JSON error format.
pub async fn json_rejections(response: Response) -> Response {
    let status = response.status();
    let plain = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|ct| ct.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !plain {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, 64 * 1024).await.unwrap_or_default();
    let text = String::from_utf8_lossy(&text);
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", format!("the request body is larger than this endpoint accepts ({text})")),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", text.into_owned()),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", text.into_owned()),
        s if s.is_server_error() => ("internal", text.into_owned()),
        _ => ("bad_request", text.into_owned()),
    };
    let fresh = ApiError::new(status, code, message).into_response();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let (_, body) = fresh.into_parts();
    Response::from_parts(parts, body)
}

/// The most connections this process can hold: the file limit (raised to its hard limit when
/// allowed) minus `headroom` descriptors for data files, logs and the listener.
pub fn connection_ceiling(headroom: u64) -> Option<usize> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            if limit.rlim_cur < limit.rlim_max {
                let raised = libc::rlimit { rlim_cur: limit.rlim_max.min(1 << 20), rlim_max: limit.rlim_max };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit.rlim_cur = raised.rlim_cur;
                }
            }
        }
        Some(usize::try_from(limit.rlim_cur.saturating_sub(headroom).max(16)).unwrap_or(usize::MAX))
    }
    #[cfg(not(unix))]
    {
        let _ = headroom;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refills_at_its_rate() {
        let limiter = Limiter { rates: RateLimits { batch: Rate { per_minute: 60, burst: 2 }, ..Default::default() }, buckets: Mutex::default() };
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        assert!(limiter.take(ip, Class::Batch, t0).is_ok());
        assert!(limiter.take(ip, Class::Batch, t0).is_ok());
        let wait = limiter.take(ip, Class::Batch, t0).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(limiter.take("10.0.0.2".parse().unwrap(), Class::Batch, t0).is_ok(), "another client has its own bucket");
        assert!(limiter.take(ip, Class::Batch, t0 + Duration::from_millis(1100)).is_ok(), "one token a second");
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_trusted_proxy() {
        let proxy: IpAddr = "10.0.0.9".parse().unwrap();
        let limiter = Limiter { rates: RateLimits { trusted_proxies: vec![proxy], ..Default::default() }, buckets: Mutex::default() };
        let req = Request::builder().header("x-forwarded-for", "1.2.3.4, 10.0.0.9").body(()).unwrap();
        assert_eq!(limiter.client(&req, proxy), "1.2.3.4".parse::<IpAddr>().unwrap());
        let other: IpAddr = "5.6.7.8".parse().unwrap();
        assert_eq!(limiter.client(&req, other), other, "an untrusted peer cannot pick its address");
    }
}
