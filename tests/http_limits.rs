//! The bounds of the serve loop over real sockets (`citygrid::http::server::serve` on
//! 127.0.0.1:0): header and idle timeouts, the connection limit shedding with 503, body
//! timeouts, draining a refused upload, per-client rate limits; and the refusals that come in
//! the JSON error format (body limits, batches over the limit, bad query strings, bad CSV rows).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use citygrid::http::server::{Rate, RateLimits, ServeLimits, serve};
use citygrid::http::{AppState, router};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

const TOKEN: &str = "0123456789abcdef-limits";

struct Server {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
    }
}

/// A server on the tiny demo city, on its own runtime thread, with these limits.
fn start(limits: ServeLimits) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path());
    let app = router(AppState::new(world).with_admin_tokens(vec![TOKEN.into()]));
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            addr_tx.send(listener.local_addr().unwrap()).unwrap();
            serve(listener, app, limits, async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        runtime.shutdown_timeout(Duration::from_secs(1));
    });
    Server { addr: addr_rx.recv().unwrap(), stop: Some(stop), _dir: dir }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads one whole answer (the server closes, or Content-Length is reached): status, headers, body.
fn read_response(s: &mut TcpStream) -> (u16, String, Value) {
    let mut data = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        let n = match s.read(&mut buf) {
            Ok(n) => n,
            Err(e) if data.is_empty() => panic!("no answer: {e}"),
            Err(_) => 0,
        };
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head.lines().find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()));
            if len.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
    let text = String::from_utf8_lossy(&data).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("not an HTTP answer: {text:?}"));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = serde_json::from_str(body.trim()).unwrap_or_else(|e| panic!("{e}: {body:?}"));
    (status, head.to_ascii_lowercase(), body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, String, Value) {
    let mut s = connect(addr);
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    read_response(&mut s)
}

/// Whether the server closes `s` (EOF or reset) within `within`, without answering.
fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 1024];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(n) => panic!("answered instead: {:?}", String::from_utf8_lossy(&buf[..n])),
        Err(e) => matches!(e.kind(), std::io::ErrorKind::ConnectionReset),
    }
}

#[test]
fn a_half_sent_request_head_is_closed_after_the_header_timeout() {
    let server = start(ServeLimits { header_timeout: Duration::from_millis(300), idle_timeout: Duration::from_secs(30), ..Default::default() });
    let mut s = connect(server.addr);
    let started = Instant::now();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ").unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(10)), "closed");
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5), "{took:?}");
    // A whole request is still served.
    assert_eq!(get(server.addr, "/health").0, 200);
}

#[test]
fn an_idle_connection_is_closed_after_the_idle_timeout_and_a_busy_one_is_not() {
    let server = start(ServeLimits { header_timeout: Duration::from_secs(30), idle_timeout: Duration::from_millis(400), ..Default::default() });
    let mut idle = connect(server.addr);
    let started = Instant::now();
    assert!(closed_within(&mut idle, Duration::from_secs(10)), "closed");
    assert!(started.elapsed() >= Duration::from_millis(400));
    // Keep-alive: requests closer together than the idle timeout keep the connection.
    let mut s = connect(server.addr);
    for _ in 0..3 {
        write!(s, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(read_response(&mut s).0, 200);
        std::thread::sleep(Duration::from_millis(150));
    }
}

#[test]
fn connections_over_the_limit_get_a_503_and_new_clients_are_served_once_they_close() {
    let server = start(ServeLimits { max_connections: 2, ..Default::default() });
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(server.addr);
            // Proves the connection is being served (and holds its slot).
            write!(s, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
            assert_eq!(read_response(&mut s).0, 200);
            s
        })
        .collect();
    for _ in 0..3 {
        let (status, head, body) = get(server.addr, "/health");
        assert_eq!(status, 503, "{body}");
        assert!(head.contains("retry-after: 1") && head.contains("content-type: application/json"), "{head}");
        assert_eq!(body["error"]["code"], "overloaded");
        assert_eq!(body["error"]["details"]["max_connections"], 2);
    }
    drop(held);
    // The slots free as the server sees the two connections close.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, body) = get(server.addr, "/health");
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "never served again");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_stalled_body_is_answered_408_in_the_error_format() {
    let server = start(ServeLimits { body_timeout: Duration::from_millis(300), ..Default::default() });
    let mut s = connect(server.addr);
    write!(s, "POST /v1/cases/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"lon\":").unwrap();
    let (status, head, body) = read_response(&mut s);
    assert_eq!(status, 408, "{body}");
    assert_eq!(body["error"]["code"], "request_timeout");
    assert!(head.contains("connection: close"), "{head}");
}

/// Sends `head` and then `body_len` bytes of `fill` from another thread, and reads the answer.
/// The last item: whether the whole body could be sent (the server did not close on it).
fn send_big(addr: SocketAddr, head: &str, body_len: usize, fill: u8) -> (u16, String, Value, bool) {
    let mut s = connect(addr);
    let mut writer = s.try_clone().unwrap();
    let head = head.to_owned();
    let sender = std::thread::spawn(move || {
        writer.write_all(head.as_bytes())?;
        let chunk = vec![fill; 1 << 16];
        let mut left = body_len;
        while left > 0 {
            let n = left.min(chunk.len());
            writer.write_all(&chunk[..n])?;
            left -= n;
        }
        Ok::<(), std::io::Error>(())
    });
    let answer = read_response(&mut s);
    let sent = sender.join().unwrap();
    (answer.0, answer.1, answer.2, sent.is_ok())
}

#[test]
fn a_refused_large_upload_reaches_the_client_as_its_401_or_403_not_a_broken_pipe() {
    let server = start(ServeLimits::default());
    let len = 20 << 20;
    let (status, _, body, sent) =
        send_big(server.addr, &format!("PUT /v1/rules HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: {len}\r\n\r\n"), len, b'a');
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("unauthorized")), "{body}");
    assert!(sent, "the client could send its whole body (a client like curl reports a broken pipe otherwise)");
    let (status, _, body, sent) = send_big(
        server.addr,
        &format!(
            "PUT /v1/rules HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer wrong-token-0123456789\r\nContent-Type: text/csv\r\nContent-Length: {len}\r\n\r\n"
        ),
        len,
        b'a',
    );
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")), "{body}");
    assert!(sent, "the whole body could be sent");
}

#[test]
fn more_than_2_mib_to_the_one_case_endpoint_is_a_413_in_the_error_format() {
    let server = start(ServeLimits::default());
    let len = 3 << 20;
    let (status, head, body, _) = send_big(
        server.addr,
        &format!("POST /v1/cases/route HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"),
        len,
        b' ',
    );
    assert_eq!(status, 413, "{body}");
    assert!(head.contains("content-type: application/json"), "{head}");
    assert_eq!(body["error"]["code"], "payload_too_large");
    assert!(body["error"]["message"].as_str().unwrap().contains("route:batch"), "{body}");
}

#[test]
fn a_batch_over_the_case_limit_is_refused_before_its_body_ends() {
    let server = start(ServeLimits::default());
    let mut s = connect(server.addr);
    // Declares 60 MB but sends only the first 100,001 cases, then waits for the answer.
    let cases = format!("[{}", vec!["{}"; citygrid::routing::batch::MAX_BATCH + 1].join(","));
    write!(s, "POST /v1/cases/route:batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 60000000\r\n\r\n").unwrap();
    s.write_all(cases.as_bytes()).unwrap();
    s.write_all(b",{}").unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "batch_too_large");
    assert_eq!(body["error"]["details"]["max"], citygrid::routing::batch::MAX_BATCH);
    // And over the byte limit, by its declared length alone.
    let mut s = connect(server.addr);
    write!(s, "POST /v1/cases/route:batch HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 900000000\r\n\r\nlon,lat\n").unwrap();
    let (status, _, body) = read_response(&mut s);
    assert_eq!((status, body["error"]["code"].as_str()), (413, Some("batch_too_large")), "{body}");
}

#[test]
fn expensive_requests_are_rate_limited_per_client_after_the_burst() {
    let rates = RateLimits { batch: Rate { per_minute: 1, burst: 2 }, ..Default::default() };
    let server = start(ServeLimits { rates, ..Default::default() });
    let batch = |s: &mut TcpStream| {
        let body = "[{\"component_code\": \"0\"}]";
        write!(
            s,
            "POST /v1/cases/route:batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
    };
    for _ in 0..2 {
        let mut s = connect(server.addr);
        batch(&mut s);
        let mut answer = String::new();
        let _ = s.read_to_string(&mut answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let mut s = connect(server.addr);
    batch(&mut s);
    let (status, head, body) = read_response(&mut s);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    let retry: u64 = head.lines().find_map(|l| l.strip_prefix("retry-after:")).unwrap().trim().parse().unwrap();
    assert!((1..=60).contains(&retry), "{head}");
    // Cheap requests are not limited.
    assert_eq!(get(server.addr, "/health").0, 200);
}

async fn oneshot(app: &axum::Router, method: &str, uri: &str, content_type: &str, body: &str) -> (StatusCode, Vec<u8>) {
    let req = Request::builder().method(method).uri(uri).header("content-type", content_type).body(Body::from(body.to_owned())).unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    let status = response.status();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec())
}

#[tokio::test]
async fn a_csv_row_with_the_wrong_field_count_is_one_error_line_and_the_others_are_routed() {
    let dir = tempfile::tempdir().unwrap();
    let world = common::tiny_world(dir.path());
    let p = {
        let w = world.load();
        w.city.components[0].location
    };
    let app = router(AppState::new(world));
    let csv = format!("id,lon,lat,event_type\nA,{x},{y},0102\nB,{x},{y}\nC,{x},{y},0102,extra\nD,{x},{y},0102\n", x = p.x, y = p.y);
    let (status, body) = oneshot(&app, "POST", "/v1/cases/route:batch", "text/csv", &csv).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let lines: Vec<Value> = body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    let summary: Vec<(Value, bool)> = lines.iter().map(|l| (l["id"].clone(), l["ok"].as_bool().unwrap())).collect();
    assert_eq!(summary, [("A".into(), true), ("B".into(), false), ("C".into(), false), ("D".into(), true)]);
    assert_eq!(lines[1]["error"]["code"], "invalid_csv");
    assert_eq!(lines[1]["error"]["details"]["line"], 3);
    assert_eq!((lines[2]["error"]["details"]["fields"].as_u64(), lines[2]["error"]["details"]["expected"].as_u64()), (Some(5), Some(4)));
    // Newline-delimited JSON: a line that is not JSON is its own error line.
    let ndjson = format!(
        "{{\"id\":\"A\",\"lon\":{x},\"lat\":{y},\"event_type\":\"0102\"}}\n{{oops\n\n{{\"lon\":{x},\"lat\":{y},\"event_type\":\"0102\"}}\n",
        x = p.x,
        y = p.y
    );
    let (status, body) = oneshot(&app, "POST", "/v1/cases/route:batch", "application/x-ndjson", &ndjson).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    let oks: Vec<bool> =
        body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).map(|l| serde_json::from_slice::<Value>(l).unwrap()["ok"].as_bool().unwrap()).collect();
    assert_eq!(oks, [true, false, true]);
}

#[tokio::test]
async fn broken_percent_escapes_and_empty_class_items_are_400_invalid_parameter() {
    let dir = tempfile::tempdir().unwrap();
    let app = router(AppState::new(common::tiny_world(dir.path())));
    for (uri, parameter) in [
        ("/v1/locate?lon=120.6%ZZ&lat=31.3", "lon"),
        ("/v1/components?bbox=120,31,121,32&class=01,,", "class"),
        ("/v1/components?bbox=120,31,121,32&class=0101,%2C", "class"),
        ("/v1/components/nearest?lon=120.6&lat=31.3&class=%G1", "class"),
    ] {
        let (status, body) = oneshot(&app, "GET", uri, "application/json", "").await;
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (status, v["error"]["code"].as_str(), v["error"]["details"]["parameter"].as_str()),
            (StatusCode::BAD_REQUEST, Some("invalid_parameter"), Some(parameter)),
            "{uri}: {v}"
        );
    }
}
