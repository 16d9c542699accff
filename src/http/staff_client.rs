//! `citygrid simulate-staff`: replays a day of patrols ([`crate::staff::simulate`]) against a
//! running server's `POST /v1/staff/positions`, at a fixed rate, in batches, each position's
//! time set to the moment it is sent (so nothing is stale, and the people move on the map
//! now). Optionally asks `GET /v1/staff/nearest` at the same time, and reports throughput and
//! latency (its last line is JSON, for benches/staff_load.sh).
//!
//! HTTP/1.1 keep-alive connections through hyper's client; plain `http://`.

use std::time::{Duration, Instant};

use axum::http::{Request, Uri, header};
use chrono::Utc;
use http_body::Body as _;
use serde_json::json;

use crate::staff::Item;
use crate::staff::input::item_json;

/// What to replay and how fast.
#[derive(Clone, Debug)]
pub struct SimulateOptions {
    /// `http://host:port` of the server (with its base path, if any).
    pub url: String,
    /// Positions per second.
    pub rate: u32,
    /// Positions per request.
    pub batch: usize,
    /// Parallel connections sending positions.
    pub connections: usize,
    /// Stop after this long (`None`: when the day is replayed).
    pub duration: Option<Duration>,
    /// Bearer token for the positions (a positions or admin token).
    pub token: Option<String>,
    /// Nearest-staff queries per second at the same time (0: none), with this token.
    pub queries: u32,
    pub staff_token: Option<String>,
    /// Start over when the day ends (until `duration`).
    pub repeat: bool,
}

/// Counts of a run.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SimulateReport {
    pub sent: u64,
    pub accepted: u64,
    /// Reports not newer than the position held (processed, kept in the track only).
    pub older: u64,
    pub rejected: u64,
    pub events: u64,
    pub requests: u64,
    pub failed_requests: u64,
    pub seconds: f64,
    pub positions_per_s: f64,
    pub batch_ms_median: f64,
    pub batch_ms_p99: f64,
    pub queries: u64,
    pub query_ms_median: f64,
    pub query_ms_p99: f64,
}

struct Client {
    authority: String,
    base: String,
    host: String,
    port: u16,
    sender: Option<hyper::client::conn::http1::SendRequest<axum::body::Body>>,
}

impl Client {
    fn new(url: &str) -> Result<Client, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
        if uri.scheme_str() != Some("http") {
            return Err(format!("{url}: only http:// is supported"));
        }
        let host = uri.host().ok_or_else(|| format!("{url}: no host"))?.to_owned();
        Ok(Client {
            authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            base: uri.path().trim_end_matches('/').to_owned(),
            port: uri.port_u16().unwrap_or(80),
            host,
            sender: None,
        })
    }

    async fn send(&mut self, method: &str, path: &str, token: Option<&str>, body: Vec<u8>) -> Result<(u16, Vec<u8>), String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect((self.host.as_str(), self.port)).await.map_err(|e| format!("connect: {e}"))?;
            stream.set_nodelay(true).ok();
            let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await.map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("connected");
        sender.ready().await.map_err(|e| e.to_string())?;
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base)).header(header::HOST, &self.authority);
        if let Some(t) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request.body(axum::body::Body::from(body)).map_err(|e| e.to_string())?;
        let response = sender.send_request(request).await.map_err(|e| {
            self.sender = None;
            e.to_string()
        })?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
            if let Ok(data) = frame.map_err(|e| e.to_string())?.into_data() {
                bytes.extend_from_slice(&data);
            }
        }
        Ok((status, bytes))
    }
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

/// Replays `day` (a factory, called again with `repeat`) against the server; prints a line a
/// second on stderr.
pub async fn simulate(
    options: SimulateOptions,
    day: impl Fn() -> Box<dyn Iterator<Item = Item> + Send> + Send + Sync + 'static,
) -> Result<SimulateReport, String> {
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let (tx, rx) = tokio::sync::mpsc::channel::<Vec<Item>>(options.connections * 2);
    let rx = std::sync::Arc::new(tokio::sync::Mutex::new(rx));
    let batch = options.batch.max(1);
    let rate = options.rate.max(1) as f64;
    // Query points: along the patrols.
    let centres: Vec<[f64; 2]> = if options.queries > 0 { day().step_by(997).take(200).map(|i| [i.fix.lon, i.fix.lat]).collect() } else { Vec::new() };
    // The producer: batches at the rate, times set at sending.
    let repeat = options.repeat;
    let producer = tokio::spawn(async move {
        let mut sent = 0u64;
        let mut items = day();
        loop {
            let mut chunk = Vec::with_capacity(batch);
            while chunk.len() < batch {
                match items.next() {
                    Some(i) => chunk.push(i),
                    None if repeat => items = day(),
                    None => break,
                }
            }
            if chunk.is_empty() || deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let due = started + Duration::from_secs_f64(sent as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
            sent += chunk.len() as u64;
            if tx.send(chunk).await.is_err() {
                break;
            }
        }
    });
    let mut workers = Vec::new();
    for _ in 0..options.connections.max(1) {
        let (rx, options) = (rx.clone(), options.clone());
        workers.push(tokio::spawn(async move {
            let mut client = Client::new(&options.url)?;
            let mut report = SimulateReport::default();
            let mut times = Vec::new();
            loop {
                let Some(chunk) = rx.lock().await.recv().await else { break };
                // Stamped now, 1 µs apart in the day's order: a person met twice in one batch
                // moves twice (equal times would count the second report as `older`).
                let now = Utc::now();
                let n = chunk.len() as i64;
                let body = json!({"positions": chunk.iter().enumerate().map(|(k, i)| {
                    let time = now - chrono::Duration::microseconds(n - k as i64);
                    item_json(&i.id, &crate::staff::Fix { time, ..i.fix })
                }).collect::<Vec<_>>()});
                let t = Instant::now();
                report.sent += chunk.len() as u64;
                report.requests += 1;
                match client.send("POST", "/v1/staff/positions", options.token.as_deref(), serde_json::to_vec(&body).expect("JSON")).await {
                    Ok((200, bytes)) => {
                        times.push(t.elapsed().as_secs_f64() * 1000.0);
                        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
                        report.accepted += v["accepted"].as_u64().unwrap_or(0);
                        report.older += v["older"].as_u64().unwrap_or(0);
                        report.rejected += v["rejected"].as_array().map_or(0, |r| r.len() as u64);
                        report.events += v["events"].as_u64().unwrap_or(0);
                    }
                    Ok((status, bytes)) => {
                        report.failed_requests += 1;
                        if report.failed_requests <= 3 {
                            tracing::warn!(status, body = %String::from_utf8_lossy(&bytes[..bytes.len().min(300)]), "positions refused");
                        }
                    }
                    Err(e) => {
                        report.failed_requests += 1;
                        tracing::warn!(error = %e, "positions not sent");
                    }
                }
            }
            Ok::<(SimulateReport, Vec<f64>), String>((report, times))
        }));
    }
    // Nearest queries at the same time, around the positions being sent.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let querier = (options.queries > 0).then(|| {
        let options = options.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut client = Client::new(&options.url)?;
            let mut times = Vec::new();
            let mut n = 0u64;
            let t0 = Instant::now();
            while !centres.is_empty() && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                tokio::time::sleep_until((t0 + Duration::from_secs_f64(n as f64 / options.queries as f64)).into()).await;
                let c = centres[n as usize % centres.len()];
                let t = Instant::now();
                let path = format!("/v1/staff/nearest?lon={}&lat={}&k=5&status=any", c[0], c[1]);
                if let Ok((200, _)) = client.send("GET", &path, options.staff_token.as_deref(), Vec::new()).await {
                    times.push(t.elapsed().as_secs_f64() * 1000.0);
                }
                n += 1;
            }
            Ok::<Vec<f64>, String>(times)
        })
    });
    producer.await.map_err(|e| e.to_string())?;
    let mut report = SimulateReport::default();
    let mut batch_times = Vec::new();
    for w in workers {
        let (r, t) = w.await.map_err(|e| e.to_string())??;
        report.sent += r.sent;
        report.accepted += r.accepted;
        report.older += r.older;
        report.rejected += r.rejected;
        report.events += r.events;
        report.requests += r.requests;
        report.failed_requests += r.failed_requests;
        batch_times.extend(t);
    }
    report.seconds = started.elapsed().as_secs_f64();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(q) = querier
        && let Ok(Ok(mut t)) = q.await
    {
        report.queries = t.len() as u64;
        report.query_ms_median = percentile(&mut t, 0.5);
        report.query_ms_p99 = percentile(&mut t, 0.99);
    }
    report.positions_per_s = report.accepted as f64 / report.seconds.max(1e-9);
    report.batch_ms_median = percentile(&mut batch_times, 0.5);
    report.batch_ms_p99 = percentile(&mut batch_times, 0.99);
    Ok(report)
}
