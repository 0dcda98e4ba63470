use super::*;
use crate::model::Timestamp;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn the_median_shift_is_counted_in_scaled_mads_of_the_baseline() {
    // Baseline 1, 2, 3, 4, 100: median 3, deviations 2, 1, 0, 1, 97 so
    // MAD 1 (the outlier does not widen it), sigma 1.4826. Incident median
    // of 8, 9, 10 is 9: shift 6 / 1.4826.
    let s = median_shift(&[1.0, 2.0, 3.0, 4.0, 100.0], &[8.0, 9.0, 10.0]).unwrap();
    assert!(close(s, 6.0 / 1.4826), "{s}");
    // Downwards is negative.
    let s = median_shift(&[1.0, 2.0, 3.0, 4.0, 100.0], &[0.0]).unwrap();
    assert!(close(s, -3.0 / 1.4826), "{s}");
}

#[test]
fn a_flat_baseline_falls_back_then_floors_at_one_percent_of_the_level() {
    // 5 × 10 and one 11: MAD 0, mean absolute deviation (1/6) scaled by
    // 1.2533 = 0.20888, over the floor 1% of 12 = 0.12: shift 2 / 0.20888.
    let s = median_shift(&[10.0, 10.0, 10.0, 10.0, 10.0, 11.0], &[12.0]).unwrap();
    assert!(close(s, 2.0 / (1.2533 / 6.0)), "{s}");
    // All equal: the floor, 1% of the larger level (50): 10 / 0.5.
    assert!(close(median_shift(&[40.0; 5], &[50.0]).unwrap(), 20.0));
    // Zeros then zeros: no move, no division by zero.
    assert_eq!(median_shift(&[0.0; 5], &[0.0, 0.0]).unwrap(), 0.0);
    // Zeros then anything: the bound, however large the new value.
    assert_eq!(median_shift(&[0.0; 5], &[1e300]).unwrap(), 100.0);
    // Opposite signs reach the bound.
    assert_eq!(median_shift(&[-10.0; 5], &[10.0]).unwrap(), MAX_SCORE);
    assert_eq!(median_shift(&[0.0; 5], &[-3.0]).unwrap(), -100.0);
}

#[test]
fn scores_stay_finite_at_the_edges_of_f64() {
    let s = median_shift(&[-f64::MAX; 5], &[f64::MAX]).unwrap();
    assert!(s.is_finite() && s > 0.0, "{s}");
}

#[test]
fn too_short_halves_say_why() {
    assert_eq!(median_shift(&[], &[1.0]), Err(NoScore::NoBaseline));
    assert_eq!(
        median_shift(&[1.0, 2.0], &[1.0]),
        Err(NoScore::ShortBaseline(2))
    );
    assert_eq!(median_shift(&[1.0; 5], &[]), Err(NoScore::NoIncident));
    assert_eq!(
        NoScore::ShortBaseline(2).to_string(),
        "2 values before the trigger (fewer than 5)"
    );
}

#[test]
fn ks_is_the_largest_gap_between_the_distribution_functions() {
    // Before 1..=5, after 3, 4, 6, 7: at x = 2, F_b = 2/5 and F_a = 0;
    // at x = 5, F_b = 1 and F_a = 2/4: the gap 0.5 is the largest.
    let d = ks_statistic(&[1.0, 2.0, 3.0, 4.0, 5.0], &[3.0, 4.0, 6.0, 7.0]).unwrap();
    assert!(close(d, 0.5), "{d}");
    // Identical samples (with ties): 0.
    assert_eq!(
        ks_statistic(&[1.0, 1.0, 2.0, 2.0, 3.0, 3.0], &[1.0, 2.0, 3.0]).unwrap(),
        0.0
    );
    assert_eq!(ks_statistic(&[1.0], &[2.0]), Err(NoScore::ShortBaseline(1)));
}

#[test]
fn ranks_put_the_largest_move_first_and_the_unscored_last() {
    let ranked = rank(vec![
        ("b", Ok(-5.0)),
        ("a", Err(NoScore::NoBaseline)),
        ("c", Ok(2.0)),
        ("d", Ok(5.0)),
    ]);
    let order: Vec<(&str, u32)> = ranked.iter().map(|(k, c)| (*k, c.rank)).collect();
    assert_eq!(order, [("b", 1), ("d", 2), ("c", 3), ("a", 4)]);
    assert_eq!(
        ranked[3].1.unscored.as_deref(),
        Some("no values before the trigger")
    );
    assert_eq!(ranked[0].1.score, Some(-5.0));
}

/// A small deterministic generator (no dependency, the same every run).
struct Lcg(u64);

impl Lcg {
    /// Uniform in [0, 1).
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// A window shaped like a node_exporter scrape: the first `n` series of
/// the recorded scrape (tests/fixtures), 60 samples before the trigger and
/// 60 after, counters (`_total`) growing at their own rate with jitter,
/// gauges holding their level with jitter (counters stay increasing: the
/// jitter is less than a step), and `node_load1` going from
/// about 0.3 to about 3 at the trigger (the burn). Returns the points and
/// the trigger time.
pub(crate) fn node_exporter_window(n: usize) -> (Vec<DataPoint>, i64) {
    let scrape = include_str!("../tests/fixtures/node_exporter-1.5.0.prom");
    let mut names: Vec<String> = scrape
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' ').map(|(name, _)| name.to_owned()))
        .filter(|name| name != "node_load1")
        .take(n - 1)
        .collect();
    names.push("node_load1".into());
    let mut rng = Lcg(7);
    let levels: Vec<f64> = names.iter().map(|_| 1.0 + rng.next() * 1e6).collect();
    let t0 = 1_795_514_400_000;
    let trigger = t0 + 60 * 5_000;
    let points = (0..120)
        .map(|i| {
            let ts = t0 + i * 5_000;
            let metrics = names
                .iter()
                .zip(&levels)
                .map(|(name, &level)| {
                    let jitter = rng.next() - 0.5;
                    let v = if name == "node_load1" {
                        (if ts < trigger { 0.3 } else { 3.0 }) + 0.1 * jitter
                    } else if name.contains("_total") {
                        level + (level / 1e4) * (i as f64 + 0.4 * jitter)
                    } else {
                        level * (1.0 + 0.002 * jitter)
                    };
                    (name.clone(), v)
                })
                .collect();
            DataPoint {
                timestamp: Timestamp::from_unix_ms(ts),
                metrics,
                metadata: None,
            }
        })
        .collect();
    (points, trigger)
}

/// Scores every metric of `points` with `method`, best first.
fn ranked_by(
    points: &[DataPoint],
    trigger: i64,
    method: fn(&[f64], &[f64]) -> Result<f64, NoScore>,
) -> Vec<(String, f64)> {
    let mut series: BTreeMap<&str, (Vec<f64>, Vec<f64>)> = BTreeMap::new();
    for p in points {
        for (name, &v) in &p.metrics {
            let e = series.entry(name).or_default();
            if p.timestamp.as_unix_ms() < trigger {
                e.0.push(v);
            } else {
                e.1.push(v);
            }
        }
    }
    let mut out: Vec<(String, f64)> = series
        .into_iter()
        .filter_map(|(k, (b, a))| method(&b, &a).ok().map(|s| (k.to_owned(), s.abs())))
        .collect();
    out.sort_by(|x, y| y.1.total_cmp(&x.1));
    out
}

#[test]
fn ks_ties_counters_with_the_burn_while_the_shift_ranks_it_first() {
    let (points, trigger) = node_exporter_window(500);
    let shift = ranked_by(&points, trigger, change_score);
    let ks = ranked_by(&points, trigger, ks_statistic);
    assert_eq!(shift.len(), 500);
    assert_eq!(shift[0].0, "node_load1", "{:?}", &shift[..3]);
    // The burn stands far above everything else...
    assert!(shift[0].1 > 30.0 * shift[1].1, "{:?}", &shift[..3]);
    // ...while KS gives every counter the burn's 1.0.
    let counters = shift.iter().filter(|(m, _)| m.contains("_total")).count();
    let ties = ks.iter().filter(|(_, d)| *d == 1.0).count();
    assert!(counters >= 10, "{counters}");
    assert_eq!(ties, counters + 1, "every counter and the burn at D = 1");
    assert!(ks.iter().any(|(m, d)| m == "node_load1" && *d == 1.0));
    // And score_points ranks it the same way.
    let scores = score_points(&points, trigger);
    assert_eq!(scores["node_load1"].rank, 1);
}

#[test]
fn on_the_recorded_ingest_fixture_only_the_90th_percentile_shift_puts_the_burn_first() {
    let fixture = include_str!("../tests/fixtures/ingest.jsonl");
    let mut points = Vec::new();
    let mut trigger = None;
    for line in fixture.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["resource"] != "vm-101" {
            continue;
        }
        let Some(ts) = v["ts"].as_i64() else { continue };
        match v["type"].as_str() {
            Some("trigger") => trigger = trigger.or(Some(ts)),
            Some("sample") => points.push(DataPoint {
                timestamp: Timestamp::from_unix_ms(ts),
                metrics: v["metrics"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, x)| (k.clone(), x.as_f64().unwrap()))
                    .collect(),
                metadata: None,
            }),
            _ => {}
        }
    }
    let trigger = trigger.unwrap();
    // The burn covers 7 of the 25 samples after the trigger: the median
    // after it hardly moved, and the steady memory ramp wins on the median
    // shift and on KS (fully separated: D = 1; cpu 14/25 above: 0.56).
    let median = ranked_by(&points, trigger, median_shift);
    let ks = ranked_by(&points, trigger, ks_statistic);
    assert_eq!(median[0].0, "memory", "{median:?}");
    assert_eq!(ks[0], ("memory".to_owned(), 1.0), "{ks:?}");
    assert!(close(ks[1].1, 0.56), "{ks:?}");
    // Baseline cpu median 21.5, MAD 1.5 (sigma 2.2239); 90th percentile
    // after, 94.6: (94.6 - 21.5) / 2.2239 = 32.87. Memory: median 41.25,
    // MAD 0.75, 90th percentile 53.8: 11.28.
    let shift = ranked_by(&points, trigger, change_score);
    assert_eq!(shift[0].0, "cpu", "{shift:?}");
    assert!((shift[0].1 - 73.1 / 2.2239).abs() < 1e-3, "{shift:?}");
    assert!((shift[1].1 - 12.55 / 1.11195).abs() < 1e-3, "{shift:?}");
}
