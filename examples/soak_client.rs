//! The load client of the soak and switch benchmark (benches/soak.sh): mixed traffic against a
//! running `citygrid serve` for a while, with an import + switch of a new layer version every
//! so often, then a report of errors by status and latency per request kind, separately for
//! quiet windows and the windows around each switch.
//!
//!   cargo run --release --example soak_client -- ADDR INPUT_DIR [key=value …]
//!
//! `INPUT_DIR` holds `points.txt` (`lon lat` per line: where the traffic looks), `codes.txt`
//! (component codes), `grids.txt` (grid codes) and, for the switches, `upload.fgb` (the layer
//! to PUT to `/v1/layers/components` again and again). Keys: `duration` (s, 600), `rate`
//! (requests/s over all workers, 400), `workers` (16, one keep-alive connection each),
//! `switch_every` (s, 60; the first at half of it; 0 = never), `token` (the admin token),
//! `settle` (s after a switch's answer still counted as "switch", 3), `seed`.
//!
//! Traffic mix (weights): tiles 50 (`grids,zones,components`, z12–z18, the tile under a random
//! point, `Accept-Encoding: gzip, br` as a browser sends), `/v1/locate` 20, lookups 12
//! (`/v1/components/{code}`, `/v1/grids/{code}`), `/v1/cases/route` 6, OGC items pages 12
//! (`/ogc/collections/components/items?bbox=…&limit=100`). Each worker paces itself to its share
//! of `rate` (closed loop: a slow answer delays that worker's next request; latency is from the
//! moment the request is written to the end of its body).
//!
//! Exit status: 0, or 1 if any answer was a 5xx or any connection failed (a refused, reset or
//! truncated answer), or a switch (PUT) did not answer 200.
//!
//! A plain HTTP/1.1 client over `std::net` (no client crate): keep-alive, `Content-Length` and
//! chunked bodies.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    TileZ12,
    TileZ13,
    TileZ14,
    TileZ15,
    TileZ16,
    TileZ17,
    TileZ18,
    Locate,
    Component,
    Grid,
    Route,
    OgcItems,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::TileZ12 => "tile z12",
            Kind::TileZ13 => "tile z13",
            Kind::TileZ14 => "tile z14",
            Kind::TileZ15 => "tile z15",
            Kind::TileZ16 => "tile z16",
            Kind::TileZ17 => "tile z17",
            Kind::TileZ18 => "tile z18",
            Kind::Locate => "locate",
            Kind::Component => "component by code",
            Kind::Grid => "grid by code",
            Kind::Route => "cases/route",
            Kind::OgcItems => "ogc items page",
        }
    }
    fn tile(z: u8) -> Kind {
        [Kind::TileZ12, Kind::TileZ13, Kind::TileZ14, Kind::TileZ15, Kind::TileZ16, Kind::TileZ17, Kind::TileZ18][(z - 12) as usize]
    }
}

/// One request's outcome: when it was sent (s since start), its kind, status (0: connection
/// failed) and latency.
struct Sample {
    at: f64,
    kind: Kind,
    status: u16,
    micros: u32,
}

struct Input {
    points: Vec<(f64, f64)>,
    codes: Vec<String>,
    grids: Vec<String>,
}

fn read_lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::trim).filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

fn tile_of(lon: f64, lat: f64, z: u8) -> (u32, u32) {
    let n = (1u64 << z) as f64;
    let phi = lat.to_radians();
    let x = ((lon + 180.0) / 360.0 * n).floor();
    let y = ((1.0 - (phi.tan() + 1.0 / phi.cos()).ln() / std::f64::consts::PI) / 2.0 * n).floor();
    (x as u32, y as u32)
}

/// The next request: kind, method, path, body.
fn pick(rng: &mut ChaCha8Rng, input: &Input) -> (Kind, &'static str, String, Option<String>) {
    let (lon, lat) = input.points[rng.random_range(0..input.points.len())];
    let w = rng.random_range(0..100);
    if w < 50 {
        let z = rng.random_range(12..=18u8);
        let (x, y) = tile_of(lon, lat, z);
        return (Kind::tile(z), "GET", format!("/tiles/grids,zones,components/{z}/{x}/{y}.mvt"), None);
    }
    if w < 70 {
        return (Kind::Locate, "GET", format!("/v1/locate?lon={lon:.7}&lat={lat:.7}"), None);
    }
    if w < 78 && !input.codes.is_empty() {
        let code = &input.codes[rng.random_range(0..input.codes.len())];
        return (Kind::Component, "GET", format!("/v1/components/{code}"), None);
    }
    if w < 82 && !input.grids.is_empty() {
        let code = &input.grids[rng.random_range(0..input.grids.len())];
        return (Kind::Grid, "GET", format!("/v1/grids/{code}"), None);
    }
    if w < 88 {
        let body = format!("{{\"lon\":{lon:.7},\"lat\":{lat:.7},\"event_type\":\"0101\"}}");
        return (Kind::Route, "POST", "/v1/cases/route".to_owned(), Some(body));
    }
    let d = 0.002;
    let path = format!("/ogc/collections/components/items?bbox={:.6},{:.6},{:.6},{:.6}&limit=100", lon - d, lat - d, lon + d, lat + d);
    (Kind::OgcItems, "GET", path, None)
}

/// A keep-alive HTTP/1.1 connection.
struct Conn {
    addr: String,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    /// Sends one request and reads the whole answer: its status, or an error (connection
    /// refused, reset, closed mid-answer, malformed).
    fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<u16> {
        // A kept connection the server closed meanwhile (idle timeout) fails on first use: retry
        // once on a new one, as a browser does.
        let reused = self.stream.is_some();
        match self.try_request(method, path, headers, body) {
            Err(_) if reused => {
                self.stream = None;
                self.try_request(method, path, headers, body)
            }
            r => r,
        }
    }

    fn try_request(&mut self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<u16> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(120)))?;
            self.stream = Some(BufReader::with_capacity(64 * 1024, s));
        }
        let result = (|| {
            let reader = self.stream.as_mut().expect("connected");
            let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
            for (k, v) in headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            if method != "GET" {
                head.push_str(&format!("Content-Length: {}\r\n", body.len()));
            }
            head.push_str("\r\n");
            let s = reader.get_mut();
            s.write_all(head.as_bytes())?;
            if !body.is_empty() {
                s.write_all(body)?;
            }
            read_answer(reader)
        })();
        match result {
            Ok((status, keep)) => {
                if !keep {
                    self.stream = None;
                }
                Ok(status)
            }
            Err(e) => {
                self.stream = None;
                Err(e)
            }
        }
    }
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_owned())
}

/// Reads one answer: (status, whether the connection stays open).
fn read_answer(r: &mut BufReader<TcpStream>) -> std::io::Result<(u16, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "connection closed before the answer"));
    }
    let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad("no status line"))?;
    let (mut length, mut chunked, mut keep) = (None, false, true);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("connection closed in the headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((k, v)) = l.split_once(':') else { continue };
        let (k, v) = (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase());
        match k.as_str() {
            "content-length" => length = v.parse::<u64>().ok(),
            "transfer-encoding" => chunked = v.contains("chunked"),
            "connection" => keep = !v.contains("close"),
            _ => {}
        }
    }
    let no_body = status == 204 || status == 304 || (100..200).contains(&status);
    if no_body {
        // Nothing to read.
    } else if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16).map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim_end().is_empty() {
                        break;
                    }
                }
                break;
            }
            skip(r, size)?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else if let Some(n) = length {
        skip(r, n)?;
    } else {
        // Until the connection closes.
        std::io::copy(r, &mut std::io::sink())?;
        keep = false;
    }
    Ok((status, keep))
}

fn skip(r: &mut BufReader<TcpStream>, n: u64) -> std::io::Result<()> {
    let copied = std::io::copy(&mut r.by_ref().take(n), &mut std::io::sink())?;
    if copied < n {
        return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "answer shorter than its Content-Length"));
    }
    Ok(())
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize] as f64 / 1000.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: soak_client ADDR INPUT_DIR [duration=600] [rate=400] [workers=16] [switch_every=60] [token=…] [settle=3] [seed=1]");
        std::process::exit(2);
    }
    let addr = args[1].trim_start_matches("http://").trim_end_matches('/').to_owned();
    let dir = std::path::PathBuf::from(&args[2]);
    let opts: BTreeMap<String, String> = args[3..].iter().filter_map(|a| a.split_once('=')).map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    let num = |k: &str, d: f64| opts.get(k).map_or(d, |v| v.parse().unwrap_or_else(|_| panic!("{k}={v}: not a number")));
    let duration = num("duration", 600.0);
    let rate = num("rate", 400.0);
    let workers = num("workers", 16.0) as usize;
    let switch_every = num("switch_every", 60.0);
    let settle = num("settle", 3.0);
    let seed = num("seed", 1.0) as u64;
    let token = opts.get("token").cloned().unwrap_or_default();

    let points: Vec<(f64, f64)> = read_lines(&dir.join("points.txt"))
        .iter()
        .filter_map(|l| {
            let mut it = l.split_whitespace().map(|v| v.parse::<f64>());
            Some((it.next()?.ok()?, it.next()?.ok()?))
        })
        .collect();
    assert!(!points.is_empty(), "{}: no points", dir.join("points.txt").display());
    let input = Arc::new(Input { points, codes: read_lines(&dir.join("codes.txt")), grids: read_lines(&dir.join("grids.txt")) });

    let start = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::new(Mutex::new(Vec::new()));
    // (start, end) of each switch, seconds since start; and its answers.
    let switches: Arc<Mutex<Vec<(f64, f64, u16)>>> = Arc::new(Mutex::new(Vec::new()));

    let mut handles = Vec::new();
    for w in 0..workers {
        let (input, stop, samples, addr) = (input.clone(), stop.clone(), samples.clone(), addr.clone());
        handles.push(std::thread::spawn(move || {
            let mut rng = ChaCha8Rng::seed_from_u64(seed * 1000 + w as u64);
            let mut conn = Conn { addr, stream: None };
            let interval = workers as f64 / rate;
            // Spread the workers' first requests over one interval.
            let mut next = interval * w as f64 / workers as f64;
            let mut mine = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let now = start.elapsed().as_secs_f64();
                if next > now {
                    std::thread::sleep(Duration::from_secs_f64(next - now));
                }
                // Behind schedule (slow answers): do not burst to catch up.
                next = next.max(start.elapsed().as_secs_f64() - interval) + interval;
                let (kind, method, path, body) = pick(&mut rng, &input);
                let body = body.unwrap_or_default();
                let mut headers = vec![("Accept-Encoding", "gzip, br")];
                if method == "POST" {
                    headers.push(("Content-Type", "application/json"));
                }
                let at = start.elapsed().as_secs_f64();
                let t = Instant::now();
                let status = conn.request(method, &path, &headers, body.as_bytes()).unwrap_or(0);
                mine.push(Sample { at, kind, status, micros: t.elapsed().as_micros().min(u32::MAX as u128) as u32 });
            }
            samples.lock().unwrap().extend(mine);
        }));
    }

    // The switcher: PUT the components layer again every `switch_every` seconds.
    let upload = std::fs::read(dir.join("upload.fgb")).ok().filter(|_| switch_every > 0.0);
    let switcher = upload.map(|upload| {
        let (stop, switches, addr) = (stop.clone(), switches.clone(), addr.clone());
        std::thread::spawn(move || {
            let mut next = switch_every / 2.0;
            while next < duration - 1.0 {
                while start.elapsed().as_secs_f64() < next {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                let auth = format!("Bearer {token}");
                let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/flatgeobuf")];
                let mut conn = Conn { addr: addr.clone(), stream: None };
                let s = start.elapsed().as_secs_f64();
                let status = conn.request("PUT", "/v1/layers/components?allow_shrink=true", &headers, &upload).unwrap_or(0);
                let e = start.elapsed().as_secs_f64();
                eprintln!("switch at {s:6.1} s: {status} in {:.2} s", e - s);
                switches.lock().unwrap().push((s, e, status));
                next += switch_every;
            }
        })
    });

    std::thread::sleep(Duration::from_secs_f64(duration));
    stop.store(true, Ordering::Relaxed);
    for h in handles {
        h.join().expect("worker");
    }
    if let Some(h) = switcher {
        h.join().expect("switcher");
    }

    let samples = samples.lock().unwrap();
    let switches = switches.lock().unwrap();
    let in_switch = |s: &Sample| {
        let end = s.at + s.micros as f64 / 1e6;
        switches.iter().any(|&(a, b, _)| end >= a && s.at <= b + settle)
    };
    println!(
        "{} requests in {duration:.0} s ({:.0}/s), {workers} workers; {} switches (import + switch of components), \
         a switch window is from the PUT until {settle} s after its answer",
        samples.len(),
        samples.len() as f64 / duration,
        switches.len()
    );
    for &(a, b, status) in switches.iter() {
        println!("  switch {a:6.1} s → {b:6.1} s ({:.2} s): {status}", b - a);
    }
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for s in samples.iter() {
        *statuses.entry(s.status).or_default() += 1;
    }
    println!(
        "answers by status: {}",
        statuses.iter().map(|(k, v)| if *k == 0 { format!("connection error {v}") } else { format!("{k} {v}") }).collect::<Vec<_>>().join(", ")
    );
    println!("{:<18} | {:>28} | {:>28} | {:>6}", "kind", "quiet: n p50 / p99 / max ms", "switch: n p50 / p99 / max ms", "p99 ×");
    let mut groups: BTreeMap<(Kind, bool), Vec<u32>> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.status != 0) {
        groups.entry((s.kind, in_switch(s))).or_default().push(s.micros);
    }
    let mut all: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
    for v in groups.values_mut() {
        v.sort_unstable();
    }
    let kinds: Vec<Kind> = {
        let mut k: Vec<Kind> = groups.keys().map(|k| k.0).collect();
        k.dedup();
        k
    };
    let cell = |v: Option<&Vec<u32>>| match v {
        Some(v) if !v.is_empty() => {
            format!("{:>6} {:>6.2} / {:>6.2} / {:>6.1}", v.len(), percentile(v, 0.5), percentile(v, 0.99), percentile(v, 1.0))
        }
        _ => format!("{:>28}", "-"),
    };
    for k in kinds {
        let q = groups.get(&(k, false));
        let s = groups.get(&(k, true));
        let ratio = match (q, s) {
            (Some(q), Some(s)) if !q.is_empty() && !s.is_empty() => format!("{:.2}", percentile(s, 0.99) / percentile(q, 0.99)),
            _ => "-".into(),
        };
        println!("{:<18} | {} | {} | {:>6}", k.name(), cell(q), cell(s), ratio);
        for (i, v) in [q, s].into_iter().enumerate() {
            if let Some(v) = v
                && matches!(k, Kind::TileZ12 | Kind::TileZ13 | Kind::TileZ14 | Kind::TileZ15 | Kind::TileZ16 | Kind::TileZ17 | Kind::TileZ18 | Kind::Locate)
            {
                all[i].extend(v);
            }
        }
    }
    for v in &mut all {
        v.sort_unstable();
    }
    let ratio = percentile(&all[1], 0.99) / percentile(&all[0], 0.99);
    println!("{:<18} | {} | {} | {:>6.2}", "tiles + locate", cell(Some(&all[0])), cell(Some(&all[1])), ratio);

    let errors5xx: usize = statuses.iter().filter(|(k, _)| **k >= 500).map(|(_, v)| v).sum();
    let conn_errors = statuses.get(&0).copied().unwrap_or(0);
    let failed_switches = switches.iter().filter(|s| s.2 != 200).count();
    if errors5xx > 0 || conn_errors > 0 || failed_switches > 0 {
        println!("FAILED: {errors5xx} answers 5xx, {conn_errors} connection errors, {failed_switches} switches not 200");
        std::process::exit(1);
    }
    println!("OK: no 5xx, no connection error, every switch 200");
}
