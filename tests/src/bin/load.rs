//! `load`: the load tool of `scripts/bench.sh`.
//!
//! * `load pingpong URL CONNECTIONS SECONDS SIZE` — each connection sends a SIZE-byte text
//!   message, waits for its echo, and repeats; prints round trips per second and the p50/p99
//!   round-trip time, as one JSON line.
//! * `load idle URL CONNECTIONS HOLD_SECONDS` — opens CONNECTIONS connections (a few at a time),
//!   prints `{"open": N}` when all are open, holds them HOLD_SECONDS, then closes them.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

fn usage() -> ! {
    eprintln!("usage: load pingpong URL CONNECTIONS SECONDS SIZE | load idle URL CONNECTIONS HOLD_SECONDS");
    std::process::exit(2)
}

fn arg<T: std::str::FromStr>(args: &[String], i: usize) -> T {
    args.get(i)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| usage())
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("pingpong") => pingpong(&args[2], arg(&args, 3), arg(&args, 4), arg(&args, 5)).await,
        Some("idle") => idle(&args[2], arg(&args, 3), arg(&args, 4)).await,
        _ => usage(),
    }
}

async fn pingpong(url: &str, connections: usize, seconds: f64, size: usize) {
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .expect("connect");
            let payload = "x".repeat(size);
            let mut rtts: Vec<u32> = Vec::with_capacity(1 << 16);
            while Instant::now() < deadline {
                let sent = Instant::now();
                ws.send(Message::text(payload.clone())).await.expect("send");
                loop {
                    match ws.next().await {
                        Some(Ok(Message::Text(_))) => break,
                        Some(Ok(_)) => continue,
                        other => panic!("connection ended: {other:?}"),
                    }
                }
                rtts.push(sent.elapsed().as_nanos().min(u32::MAX as u128) as u32);
            }
            let _ = ws.close(None).await;
            rtts
        }));
    }
    let started = Instant::now();
    let mut all: Vec<u32> = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let elapsed = started.elapsed().as_secs_f64().max(seconds);
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    println!(
        "{{\"roundTrips\": {}, \"perSecond\": {:.0}, \"p50us\": {:.1}, \"p99us\": {:.1}}}",
        all.len(),
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
}

async fn idle(url: &str, connections: usize, hold: f64) {
    let mut open = Vec::with_capacity(connections);
    let mut failed = 0;
    // Open in batches so the listener's backlog is never the bottleneck.
    for batch in (0..connections).collect::<Vec<_>>().chunks(100) {
        let attempts: Vec<_> = batch
            .iter()
            .map(|_| tokio_tungstenite::connect_async(url.to_string()))
            .collect();
        for result in futures_util::future::join_all(attempts).await {
            match result {
                Ok((ws, _)) => open.push(ws),
                Err(_) => failed += 1,
            }
        }
    }
    println!("{{\"open\": {}, \"failed\": {failed}}}", open.len());
    tokio::time::sleep(Duration::from_secs_f64(hold)).await;
    for mut ws in open {
        let _ = ws.close(None).await;
    }
}
