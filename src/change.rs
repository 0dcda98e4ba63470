//! What changed most: each metric of a window scored by how far its values
//! after the trigger moved from its own values before it, and ranked.
//!
//! # Method: the shift in MADs of the baseline
//!
//! For a metric, the *baseline* is its values before the trigger and the
//! *incident* its values at or after it. The score is how far the
//! incident's level moved from the baseline's median, in units of the
//! baseline's robust spread:
//!
//! ```text
//! score = (level - median(baseline)) / sigma
//! level = 90th percentile of the incident (its 10th, if that one is further: a drop)
//! sigma = max(1.4826 × MAD(baseline)     (1.2533 × mean absolute deviation if the MAD is 0),
//!             0.01 × max(|median(baseline)|, |level|))      -- the floor
//! ```
//!
//! the same robust spread as the anomalies ([`crate::anomaly::Baseline`]),
//! with a floor of 1% of the larger of the two levels. The floor is what
//! makes a flat baseline comparable (a gauge that never moved, a counter of
//! errors at 0): its MAD is 0, and `0 → 5` scores `5 / 0.05 = 100`, not
//! infinity. As `|level − median| ≤ 2 × the larger level`, every score lies
//! in `[-200, 200]` ([`MAX_SCORE`]): finite, and comparable across metrics
//! of any unit. A metric that stayed where it was scores 0. The sign says
//! which way it moved; the rank uses the absolute value.
//!
//! The level is the 90th percentile rather than the median
//! ([`median_shift`], the textbook form) because a window records minutes
//! after the alert resolves: in the recorded fixture (tests/fixtures/
//! ingest.jsonl, vm-101) the CPU burn covers 7 of the 25 samples after the
//! trigger, so the median after it barely moved (cpu scores 1.6) and a
//! steady memory ramp ranks first (7.0). The 90th percentile says "for at
//! least a tenth of the samples after the trigger it was this far out":
//! cpu 32.9, memory 11.3. One spike (under a tenth of the samples) moves
//! it no more than the median; the anomalies list those.
//!
//! # Why not the Kolmogorov-Smirnov statistic
//!
//! Netdata's metric correlations rank by the two-sample KS statistic `D`
//! (the largest gap between the two empirical distribution functions),
//! implemented here as [`ks_statistic`] for comparison. `D` measures only
//! *whether* the samples separate, not how far: it is 1.0 for any complete
//! separation. A counter (`node_cpu_seconds_total`,
//! `node_network_receive_bytes_total`...) grows every sample, so each of
//! its values after the trigger exceeds each before it: `D = 1`, tied with
//! the burn the incident is about. On a 500-series node_exporter-shaped
//! window (the test `ks_ties_counters_with_the_burn_while_the_shift_ranks_it_first`)
//! KS ties every counter with the burn at 1.0; the shift puts the burn
//! first, more than 30 times the next score. On the ingest fixture KS puts
//! the memory ramp first (`D` 1.0 against the burn's 0.56).
//!
//! # Limits
//!
//! A metric needs [`MIN_BASELINE_POINTS`] values before the trigger and one
//! at or after it; the others get no score, are ranked after every scored
//! metric (by name) and say why ([`NoScore`]). A move shorter than a tenth
//! of the samples after the trigger scores like no move. A trend that was
//! already under way (a ramp, a counter) scores by how far it travelled
//! relative to its own jitter before the trigger, so it is not 0. Scores
//! compare metrics of one window, not windows: a long post window dilutes
//! a short burn.

use std::collections::BTreeMap;
use std::fmt;

use crate::model::{DataPoint, MetricChange};

/// Fewest values before the trigger a metric needs to be scored: a median
/// and a spread of fewer say little.
pub const MIN_BASELINE_POINTS: usize = 5;
/// Largest absolute score (see the module doc: the floor bounds it).
pub const MAX_SCORE: f64 = 200.0;

/// Scale making the MAD a consistent estimator of a normal standard deviation.
const MAD_SCALE: f64 = 1.4826;
/// Scale making the mean absolute deviation one (√(π/2)).
const MEAN_AD_SCALE: f64 = 1.2533;
/// The smallest spread, as a fraction of the larger level.
const MIN_RELATIVE_SIGMA: f64 = 0.01;

/// Why a metric has no score.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoScore {
    /// No value before the trigger (a metric that appeared with the incident).
    NoBaseline,
    /// Fewer than [`MIN_BASELINE_POINTS`] values before the trigger.
    ShortBaseline(usize),
    /// No value at or after the trigger (a metric that stopped).
    NoIncident,
}

impl fmt::Display for NoScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoScore::NoBaseline => f.write_str("no values before the trigger"),
            NoScore::ShortBaseline(n) => write!(
                f,
                "{n} values before the trigger (fewer than {MIN_BASELINE_POINTS})"
            ),
            NoScore::NoIncident => f.write_str("no values after the trigger"),
        }
    }
}

/// Checks the two halves of a series are long enough to score.
fn check(before: &[f64], after: &[f64]) -> Result<(), NoScore> {
    match before.len() {
        0 => Err(NoScore::NoBaseline),
        n if n < MIN_BASELINE_POINTS => Err(NoScore::ShortBaseline(n)),
        _ if after.is_empty() => Err(NoScore::NoIncident),
        _ => Ok(()),
    }
}

/// The median shift of `after` from `before` in units of `before`'s robust
/// spread, in `[-200, 200]`: `shift` at the incident's median.
///
/// ```
/// use incident_recorder::change::median_shift;
///
/// // Baseline 10, 11, 12, 13, 14: median 12, MAD 1, sigma 1.4826.
/// let s = median_shift(&[10.0, 11.0, 12.0, 13.0, 14.0], &[15.0, 15.0]).unwrap();
/// assert!((s - 3.0 / 1.4826).abs() < 1e-9);
/// // A flat zero baseline: the floor is 1% of the new level.
/// assert_eq!(median_shift(&[0.0; 5], &[5.0]).unwrap(), 100.0);
/// ```
pub fn median_shift(before: &[f64], after: &[f64]) -> Result<f64, NoScore> {
    check(before, after)?;
    let b = Spread::of(before);
    Ok(b.shift(quantile(after, 0.5)))
}

/// The change score (the module doc's method): the shift of the
/// incident's 90th percentile from the baseline's median in robust
/// spreads, or of its 10th percentile if that one is further (a drop);
/// signed, in `[-200, 200]`.
///
/// ```
/// use incident_recorder::change::change_score;
///
/// // A burn of 2 samples in 10 after a baseline at 20 ± 1: the median
/// // after the trigger has not moved, its 90th percentile has.
/// let before = [19.0, 20.0, 21.0, 20.0, 19.0, 21.0];
/// let after = [20.0, 21.0, 19.0, 20.0, 95.0, 97.0, 20.0, 21.0, 19.0, 20.0];
/// assert!(change_score(&before, &after).unwrap() > 40.0);
/// ```
pub fn change_score(before: &[f64], after: &[f64]) -> Result<f64, NoScore> {
    check(before, after)?;
    let b = Spread::of(before);
    let mut sorted = after.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    let (up, down) = (
        b.shift(crate::summary::percentile(&sorted, 0.9)),
        b.shift(crate::summary::percentile(&sorted, 0.1)),
    );
    Ok(if down.abs() > up.abs() { down } else { up })
}

/// A baseline's median and robust spread (before the floor, which depends
/// on the level it is compared with).
struct Spread {
    median: f64,
    spread: f64,
}

impl Spread {
    fn of(before: &[f64]) -> Spread {
        let mut b = before.to_vec();
        b.sort_unstable_by(f64::total_cmp);
        let median = median_of_sorted(&b);
        let mut dev: Vec<f64> = b.iter().map(|v| (v - median).abs()).collect();
        let mean_ad = dev.iter().map(|d| d / dev.len() as f64).sum::<f64>();
        dev.sort_unstable_by(f64::total_cmp);
        let mad = median_of_sorted(&dev);
        let spread = if mad > 0.0 {
            MAD_SCALE * mad
        } else {
            MEAN_AD_SCALE * mean_ad
        };
        Spread { median, spread }
    }

    /// `level`'s distance from the median in spreads, floored and bounded.
    fn shift(&self, level: f64) -> f64 {
        let mb = self.median;
        if level == mb {
            return 0.0;
        }
        let sigma = self
            .spread
            .max(MIN_RELATIVE_SIGMA * mb.abs().max(level.abs()));
        // Halved before dividing: levels near f64::MAX would overflow the gap.
        let score = (level / 2.0 - mb / 2.0) / (sigma / 2.0);
        if score.is_finite() {
            score.clamp(-MAX_SCORE, MAX_SCORE)
        } else {
            0.0
        }
    }
}

/// The `q`-quantile of `values` (unsorted), as [`crate::summary::percentile`].
fn quantile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_unstable_by(f64::total_cmp);
    crate::summary::percentile(&v, q)
}

/// The two-sample Kolmogorov-Smirnov statistic of `before` and `after`:
/// the largest gap between their empirical distribution functions, in
/// `[0, 1]` (Netdata's metric correlations). Kept for comparison with
/// [`median_shift`]; see the module doc for why it is not the ranking.
///
/// ```
/// use incident_recorder::change::ks_statistic;
///
/// // Separated samples: D = 1, however far apart.
/// assert_eq!(ks_statistic(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0]).unwrap(), 1.0);
/// ```
pub fn ks_statistic(before: &[f64], after: &[f64]) -> Result<f64, NoScore> {
    check(before, after)?;
    let mut b = before.to_vec();
    b.sort_unstable_by(f64::total_cmp);
    let mut a = after.to_vec();
    a.sort_unstable_by(f64::total_cmp);
    let (nb, na) = (b.len() as f64, a.len() as f64);
    let (mut i, mut j, mut d) = (0, 0, 0.0f64);
    while i < b.len() && j < a.len() {
        // Step past every value equal to the smaller head in both samples.
        let x = b[i].min(a[j]);
        while i < b.len() && b[i] <= x {
            i += 1;
        }
        while j < a.len() && a[j] <= x {
            j += 1;
        }
        d = d.max((i as f64 / nb - j as f64 / na).abs());
    }
    Ok(d)
}

/// The change score of a series of `(ts_ms, value)` in time order:
/// values before `trigger_ms` are the baseline, the rest the incident.
pub fn score_series(series: &[(i64, f64)], trigger_ms: i64) -> Result<f64, NoScore> {
    let split = series.partition_point(|&(ts, _)| ts < trigger_ms);
    let before: Vec<f64> = series[..split].iter().map(|&(_, v)| v).collect();
    let after: Vec<f64> = series[split..].iter().map(|&(_, v)| v).collect();
    change_score(&before, &after)
}

/// Ranks scored metrics: rank 1 moved most (highest absolute score; equal
/// scores by key), then the metrics without a score, by key, with why.
pub fn rank<K: Ord + Clone>(scores: Vec<(K, Result<f64, NoScore>)>) -> Vec<(K, MetricChange)> {
    let mut scored: Vec<(K, f64)> = Vec::new();
    let mut unscored: Vec<(K, NoScore)> = Vec::new();
    for (k, s) in scores {
        match s {
            Ok(v) => scored.push((k, v)),
            Err(e) => unscored.push((k, e)),
        }
    }
    scored.sort_by(|x, y| y.1.abs().total_cmp(&x.1.abs()).then_with(|| x.0.cmp(&y.0)));
    unscored.sort_by(|x, y| x.0.cmp(&y.0));
    let mut out = Vec::with_capacity(scored.len() + unscored.len());
    for (k, score) in scored {
        let rank = out.len() as u32 + 1;
        out.push((k, MetricChange::scored(rank, score)));
    }
    for (k, why) in unscored {
        let rank = out.len() as u32 + 1;
        out.push((k, MetricChange::unscored(rank, why.to_string())));
    }
    out
}

/// The ranked scores of every metric of `points` (oldest first) against the
/// trigger at `trigger_ms`: what a recording window, or one closed before
/// the scores were stored, shows on read.
pub fn score_points(points: &[DataPoint], trigger_ms: i64) -> BTreeMap<String, MetricChange> {
    let mut series: BTreeMap<&str, Vec<(i64, f64)>> = BTreeMap::new();
    for p in points {
        for (name, &v) in &p.metrics {
            series
                .entry(name)
                .or_default()
                .push((p.timestamp.as_unix_ms(), v));
        }
    }
    let scores = series
        .into_iter()
        .map(|(name, s)| (name.to_owned(), score_series(&s, trigger_ms)))
        .collect();
    rank(scores).into_iter().collect()
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        sorted[n / 2 - 1] / 2.0 + sorted[n / 2] / 2.0
    }
}

#[cfg(test)]
#[path = "change_tests.rs"]
mod tests;
