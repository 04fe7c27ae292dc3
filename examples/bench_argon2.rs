//! Baseline for scripts/bench.sh: raw Argon2id verifications per second, at the default parameters,
//! on as many threads as the service hashes on, each reusing one work area (the fastest way the
//! argon2 crate can do it; the service adds a pepper, a queue and a database around it).
//!
//!     cargo run --release --example bench_argon2 -- [seconds] [threads]

use argon2::{Algorithm, Argon2, Block, Params, Version};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let threads: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let params = Params::new(19_456, 2, 1, Some(32)).expect("default parameters");
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let (stop, done, params) = (stop.clone(), done.clone(), params.clone());
            std::thread::spawn(move || {
                let ctx = Argon2::new(Algorithm::Argon2id, Version::V0x13, params.clone());
                let mut area = vec![Block::new(); params.block_count()];
                let mut out = [0u8; 32];
                while !stop.load(Ordering::Relaxed) {
                    ctx.hash_password_into_with_memory(
                        b"correct horse battery",
                        b"sixteen byte salt",
                        &mut out,
                        &mut area[..],
                    )
                    .expect("hash");
                    std::hint::black_box(&out);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        let _ = w.join();
    }
    let n = done.load(Ordering::Relaxed) as f64;
    println!(
        "argon2id m=19456,t=2,p=1 threads={threads}: {:.1} verifications/s",
        n / started.elapsed().as_secs_f64()
    );
}
