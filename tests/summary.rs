//! Window summaries against hand-computed numbers and a naive reference.

mod common;

use std::collections::BTreeMap;

use common::*;
use incident_recorder::summary::{metric_stats, percentile};
use incident_recorder::{IncidentSummary, Metrics, Trigger};
use proptest::prelude::*;

/// Pushes `points` (one map per sample, 5 s apart) into a new window on "r"
/// and returns the summary of the closed window.
fn summarize(points: &[Vec<(&'static str, f64)>]) -> IncidentSummary {
    let rig = Rig::memory(incident_recorder::RecorderConfig {
        post_incident_window: secs(3600),
        ..small_config()
    });
    let id = rig.start("r", Trigger::manual());
    for (i, p) in points.iter().enumerate() {
        let at = t(5 * i as i64);
        rig.clock.set(at);
        let m: Metrics = p.iter().map(|&(k, v)| (k, v)).collect();
        rig.recorder.push_sample("r", at, m, None).unwrap();
    }
    rig.recorder.stop_recording(&id).unwrap();
    rig.recorder.window(&id).unwrap().unwrap().summary.unwrap()
}

#[test]
fn summary_matches_hand_computed_values() {
    let s = summarize(&[
        vec![("cpu", 10.0), ("mem", 50.0)],
        vec![("cpu", 30.0), ("mem", 50.0)],
        vec![("cpu", 20.0), ("mem", 55.0)],
        vec![("cpu", 40.0), ("mem", 45.0)],
    ]);
    assert_eq!(s.data_points, 4);
    assert_eq!(s.duration_ms, 15_000);
    assert_eq!(s.peaks["cpu"], 40.0);
    assert_eq!(s.lows["cpu"], 10.0);
    assert_eq!(s.averages["cpu"], 25.0);
    assert_eq!(s.changes["cpu"], 30.0);
    // Sorted 10, 20, 30, 40: ranks 1.5, 2.85, 2.97.
    assert_eq!(s.p50["cpu"], 25.0);
    assert!((s.p95["cpu"] - 38.5).abs() < 1e-9);
    assert!((s.p99["cpu"] - 39.7).abs() < 1e-9);
    assert_eq!(s.samples["cpu"], 4);
    assert_eq!(
        (s.peaks["mem"], s.lows["mem"], s.changes["mem"]),
        (55.0, 45.0, -5.0)
    );
    assert_eq!(s.averages["mem"], 50.0);
}

#[test]
fn a_metric_missing_from_the_first_point_gets_its_own_peak_low_and_change() {
    // The seed seeded peaks and lows from the first point only: `temp` would
    // have peaked at 0 and `disk` bottomed at 0.
    let s = summarize(&[
        vec![("cpu", -5.0)],
        vec![("cpu", -3.0), ("temp", -10.0), ("disk", 70.0)],
        vec![("cpu", -4.0), ("temp", -2.0), ("disk", 90.0)],
        vec![("cpu", -1.0), ("temp", -6.0)],
    ]);
    assert_eq!(s.peaks["temp"], -2.0);
    assert_eq!(s.lows["temp"], -10.0);
    assert_eq!(s.changes["temp"], 4.0);
    assert_eq!(s.averages["temp"], -6.0);
    assert_eq!(s.samples["temp"], 3);
    assert_eq!(
        (s.peaks["disk"], s.lows["disk"], s.changes["disk"]),
        (90.0, 70.0, 20.0)
    );
    assert_eq!(
        (s.peaks["cpu"], s.lows["cpu"], s.changes["cpu"]),
        (-1.0, -5.0, 4.0)
    );
    assert_eq!(s.data_points, 4);
}

#[test]
fn a_single_point_has_zero_duration_and_zero_change() {
    let s = summarize(&[vec![("cpu", 7.5)]]);
    assert_eq!(s.duration_ms, 0);
    assert_eq!(s.changes["cpu"], 0.0);
    assert_eq!((s.p50["cpu"], s.p99["cpu"]), (7.5, 7.5));
}

#[test]
fn a_window_without_points_has_no_summary() {
    let rig = Rig::memory(small_config());
    let id = rig.start("r", Trigger::manual());
    rig.recorder.stop_recording(&id).unwrap();
    assert!(rig.recorder.window(&id).unwrap().unwrap().summary.is_none());
}

/// The obvious implementation: the reference the real one must agree with.
fn naive(values: &[f64]) -> (f64, f64, f64, f64, f64, f64, f64) {
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = sorted.len();
    let pct = |q: f64| {
        let rank = q * (n - 1) as f64;
        let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
        sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
    };
    (
        sorted[n - 1],
        sorted[0],
        values.iter().sum::<f64>() / n as f64,
        values[n - 1] - values[0],
        pct(0.5),
        pct(0.95),
        pct(0.99),
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * (1.0 + a.abs().max(b.abs()))
}

proptest! {
    #[test]
    fn metric_stats_agree_with_the_naive_reference(values in prop::collection::vec(-1e6f64..1e6, 1..200)) {
        let s = metric_stats(&values).unwrap();
        let (peak, low, avg, change, p50, p95, p99) = naive(&values);
        prop_assert_eq!(s.samples as usize, values.len());
        prop_assert_eq!((s.peak, s.low, s.change), (peak, low, change));
        prop_assert!(close(s.average, avg));
        prop_assert!(close(s.p50, p50) && close(s.p95, p95) && close(s.p99, p99));
        prop_assert!(s.low <= s.p50 && s.p50 <= s.p95 && s.p95 <= s.p99 && s.p99 <= s.peak);
    }

    #[test]
    fn percentile_is_monotonic_in_q(mut values in prop::collection::vec(-1e3f64..1e3, 1..50), a in 0.0f64..1.0, b in 0.0f64..1.0) {
        values.sort_by(f64::total_cmp);
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        prop_assert!(percentile(&values, lo) <= percentile(&values, hi));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Through the whole recorder and database: sparse metrics (each point
    /// carries a random subset) summarize like the reference per metric.
    #[test]
    fn stored_summaries_agree_with_the_reference(
        points in prop::collection::vec(
            (prop::option::of(-100.0f64..100.0), prop::option::of(-1.0f64..1.0), prop::option::of(0.0f64..1e9)),
            1..40,
        )
    ) {
        let names = ["a", "b", "c"];
        let samples: Vec<Vec<(&'static str, f64)>> = points
            .iter()
            .map(|(a, b, c)| {
                names.iter().zip([a, b, c]).filter_map(|(n, v)| v.map(|v| (*n, v))).collect()
            })
            .collect();
        let kept: Vec<_> = samples.iter().filter(|p| !p.is_empty()).cloned().collect();
        prop_assume!(!kept.is_empty());
        let s = summarize(&kept);
        prop_assert_eq!(s.data_points as usize, kept.len());
        let mut series: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for p in &kept {
            for &(k, v) in p {
                series.entry(k).or_default().push(v);
            }
        }
        prop_assert_eq!(s.peaks.len(), series.len());
        for (k, values) in &series {
            let (peak, low, avg, change, p50, p95, p99) = naive(values);
            prop_assert_eq!(s.samples[*k] as usize, values.len());
            prop_assert_eq!((s.peaks[*k], s.lows[*k]), (peak, low));
            prop_assert!(close(s.changes[*k], change));
            prop_assert!(close(s.averages[*k], avg));
            prop_assert!(close(s.p50[*k], p50) && close(s.p95[*k], p95) && close(s.p99[*k], p99));
        }
    }
}
