//! The baseline of the HTTP load benchmark (benches/load.sh): a trivial axum handler on the
//! same runtime configuration as `citygrid serve`, answering `GET /` with a short constant body.
//! The design's budget: `/v1/locate` ≥ 50% of this server's throughput on the same machine.
//!
//!   cargo run --release --example trivial_server -- 127.0.0.1:0

use axum::Router;
use axum::routing::get;

fn main() -> std::io::Result<()> {
    let bind = std::env::args().nth(1).unwrap_or_else(|| "127.0.0.1:0".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&bind).await?;
        println!("trivial listening on http://{}", listener.local_addr()?);
        let app = Router::new().route("/", get(|| async { "{\"ok\":true}" }));
        axum::serve(listener, app).await
    })
}
