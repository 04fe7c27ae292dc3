//! Baseline for scripts/bench.sh: the smallest axum service (one handler, no middleware), to
//! compare otpd's cheap rejections (401, 406, 415) against.
//!
//!     cargo run --release --example bench_hello -- 127.0.0.1:18081

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18081".into());
    let app = axum::Router::new().fallback(|| async { "ok" });
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    axum::serve(listener, app).await
}
