//! The change scores' cost at close: scoring and ranking every metric of a
//! window of 500 points × 2,000 series (250 before the trigger, 250 after),
//! the pure step the closer runs beside the statistics.
//! Beside it, the statistics (`summary::metric_stats`) of the same series,
//! for scale. Best of 20 runs. Prints one JSON line.
//!
//! ```sh
//! cargo run --release --example changebench                # 500 points × 2,000 series
//! cargo run --release --example changebench -- 500 10000   # points and series
//! ```

use std::time::Instant;

use incident_recorder::change::{rank, score_series};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap());
    let points = args.next().unwrap_or(500);
    let series_n = args.next().unwrap_or(2_000);
    let trigger = (points / 2) as i64 * 1_000;
    let mut seed = 1u64;
    let mut next = || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    let series: Vec<Vec<(i64, f64)>> = (0..series_n)
        .map(|k| {
            (0..points)
                .map(|i| (i as i64 * 1_000, k as f64 + next()))
                .collect()
        })
        .collect();
    let runs = 20;
    // The statistics the closer computes beside them, for scale.
    let mut stats = f64::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        for s in &series {
            let values: Vec<f64> = s.iter().map(|&(_, v)| v).collect();
            std::hint::black_box(incident_recorder::summary::metric_stats(&values));
        }
        stats = stats.min(start.elapsed().as_secs_f64() * 1e3);
    }
    let mut best = f64::MAX;
    for _ in 0..runs {
        let start = Instant::now();
        let scores = series
            .iter()
            .enumerate()
            .map(|(k, s)| (k, score_series(s, trigger)))
            .collect();
        let ranked = rank(scores);
        std::hint::black_box(&ranked);
        best = best.min(start.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "{{\"points\":{points},\"series\":{series_n},\"score_and_rank_ms\":{best:.2},\"per_series_us\":{:.2},\"statistics_ms\":{stats:.2},\"runs\":{runs}}}",
        best * 1e3 / series_n as f64
    );
}
