//! The fleet push against a raw `COPY` of the same rows, same run, same
//! server (`benches/push_support`): `fleet::push` of W windows × P points ×
//! 8 metrics (the peer's synthetic history) from a local database into a
//! throwaway PostgreSQL (durable: fsync on), then the same points and values,
//! read out of the local database beforehand, loaded with one binary `COPY`
//! per table, and with text `COPY`, into empty tables of the same layout and
//! indexes. Each round uses a fresh central database. Prints a table for
//! BENCHMARKS.md.
//!
//! ```sh
//! cargo run --release --example pushbench               # 1,000 windows × 500 points, 3 rounds
//! cargo run --release --example pushbench -- 100 500 1  # W, P, rounds
//! ```

#[path = "../tests/pg/mod.rs"]
mod pg;
#[path = "../benches/push_support/mod.rs"]
mod push_support;
#[path = "../benches/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("arguments: WINDOWS POINTS ROUNDS"))
        .collect();
    let windows = args.first().copied().unwrap_or(1_000);
    let points = args.get(1).copied().unwrap_or(500);
    let rounds = args.get(2).copied().unwrap_or(3).max(1);
    let built = Instant::now();
    let Some(mut rig) = push_support::PushRig::new(windows, points) else {
        return;
    };
    let rows = &rig.rows;
    eprintln!(
        "{windows} windows × {points} points built in {:.1?}: {} points, {} values, {:.1} MB as binary COPY, {:.1} MB as text",
        built.elapsed(),
        rows.points,
        rows.values,
        (rows.binary_points.len() + rows.binary_values.len()) as f64 / 1e6,
        (rows.text_points.len() + rows.text_values.len()) as f64 / 1e6
    );
    let values = rows.values;
    let mut results: Vec<[Duration; 3]> = Vec::new();
    for round in 0..rounds {
        let (url, mut client) = rig.fresh_central();
        let (push, _) = rig.timed_push(&url);
        let binary = rig.timed_raw_copy(&mut client, true);
        let text = rig.timed_raw_copy(&mut client, false);
        eprintln!(
            "round {round}: push {push:.2?}, raw binary COPY {binary:.2?}, raw text COPY {text:.2?}"
        );
        results.push([push, binary, text]);
    }
    let best = |i: usize| results.iter().map(|r| r[i]).min().unwrap();
    let (push, binary, text) = (best(0), best(1), best(2));
    let per_s = |d: Duration| values as f64 / d.as_secs_f64() / 1e6;
    println!(
        "| {windows} windows × {points} points × 8 metrics, best of {rounds} | time | M values/s |"
    );
    println!("|---|---|---|");
    println!(
        "| `fleet::push` (all tables, batches, local marks) | {:.2} s | {:.2} |",
        push.as_secs_f64(),
        per_s(push)
    );
    println!(
        "| raw binary `COPY` of the same points and values | {:.2} s | {:.2} |",
        binary.as_secs_f64(),
        per_s(binary)
    );
    println!(
        "| raw text `COPY` of the same points and values | {:.2} s | {:.2} |",
        text.as_secs_f64(),
        per_s(text)
    );
    // The server's speed drifts between rounds (checkpoints, other work on
    // the machine); within a round both ran under the same conditions.
    let mut ratios: Vec<f64> = results
        .iter()
        .map(|r| r[1].as_secs_f64() / r[0].as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);
    println!(
        "\npush speed ÷ raw binary COPY speed, per round: {} (median {:.0}%); best against best: {:.0}%",
        ratios
            .iter()
            .map(|r| format!("{:.0}%", 100.0 * r))
            .collect::<Vec<_>>()
            .join(", "),
        100.0 * ratios[ratios.len() / 2],
        100.0 * binary.as_secs_f64() / push.as_secs_f64()
    );
}
