//! Open-loop load for scripts/bench.sh: sends `POST` requests at a fixed rate whatever the answers
//! take (no coordinated omission), then prints the statuses and latency percentiles.
//!
//!     cargo run --release --example bench_load -- URL TOKENS BODY RATE SECONDS
//!
//! TOKENS is a comma-separated list used in turn: load spread over several users, as in real
//! traffic (one user's parallel checks beyond the lock threshold meet the attempt limits).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, tokens, body, rate, seconds] = &args[..] else {
        eprintln!("usage: bench_load URL TOKENS BODY RATE SECONDS");
        std::process::exit(2);
    };
    let rate: f64 = rate.parse().expect("rate");
    let seconds: f64 = seconds.parse().expect("seconds");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let tokens: Vec<String> = tokens.split(',').map(str::to_owned).collect();
    let total = (rate * seconds) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for i in 0..total {
        tokio::time::sleep_until(start + interval * i as u32).await;
        let token = tokens[i as usize % tokens.len()].clone();
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let status = match client
                .post(&url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
            {
                Ok(res) => {
                    let status = res.status().as_u16();
                    let _ = res.bytes().await;
                    status
                }
                Err(_) => 0,
            };
            (status, sent.elapsed())
        }));
    }
    let mut by_status: BTreeMap<u16, Vec<Duration>> = BTreeMap::new();
    let mut all = vec![];
    for t in tasks {
        if let Ok((status, latency)) = t.await {
            by_status.entry(status).or_default().push(latency);
            all.push(latency);
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    println!(
        "offered {rate:.0}/s for {seconds:.0} s: {} requests in {elapsed:.1} s",
        all.len()
    );
    report("all", &mut all);
    for (status, latencies) in &mut by_status {
        report(&format!("{status}"), latencies);
    }
}

fn report(label: &str, latencies: &mut [Duration]) {
    latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((latencies.len() as f64 * p).ceil() as usize).clamp(1, latencies.len()) - 1;
        latencies[i].as_secs_f64() * 1000.0
    };
    if latencies.is_empty() {
        return;
    }
    println!(
        "  {label:>4}: n={:<6} p50={:>7.1} ms  p99={:>7.1} ms  max={:>7.1} ms",
        latencies.len(),
        pct(0.50),
        pct(0.99),
        pct(1.0)
    );
}
