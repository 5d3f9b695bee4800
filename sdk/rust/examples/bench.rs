//! `cargo run --offline --release --example bench`: receipts/s on one thread, verifying the shared vectors'
//! 'valid chain' case again and again for about 3 s.

use one_sdk::*;
use std::time::{Duration, Instant};

fn main() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../vectors/receipts.json");
    let data: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let receipts: Vec<Receipt> = data["cases"][0]["receipts"].as_array().unwrap().iter().map(|r| r.as_object().unwrap().clone()).collect();
    let (start, mut n) = (Instant::now(), 0usize);
    while start.elapsed() < Duration::from_secs(3) {
        assert!(verify_chain(&receipts, None).iter().all(Verdict::ok));
        n += receipts.len();
    }
    println!("{:.0} receipts/s", n as f64 / start.elapsed().as_secs_f64());
}
