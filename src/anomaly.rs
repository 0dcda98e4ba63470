//! Anomalies: samples far from their pre-incident baseline.
//!
//! # Method
//!
//! The baseline of a metric is the median of its values before the trigger;
//! its spread is the median absolute deviation (MAD), scaled by 1.4826 so that
//! for normally distributed data it estimates the standard deviation. A
//! value's score is its distance from the median in those units,
//!
//! ```text
//! score = (value - median) / (1.4826 * MAD)  =  0.6745 * (value - median) / MAD
//! ```
//!
//! the *modified z-score* of Iglewicz and Hoaglin, for which 3.5 is the usual
//! outlier threshold. Median and MAD ignore the spikes they are meant to find,
//! unlike mean and standard deviation.
//!
//! When more than half of the baseline is one value, the MAD is 0. The spread
//! then falls back to the mean absolute deviation scaled by 1.2533 (the same
//! normal-consistency idea). The spread is never taken below 1% of the
//! baseline's magnitude ([`MIN_RELATIVE_SIGMA`]): a metric that barely moves
//! (disk usage creeping from 38.010 to 38.015) would otherwise turn every
//! negligible drift into a towering score. If the spread is still 0 (a
//! baseline of zeros), no score is defined and nothing is flagged. A baseline
//! of fewer than `min_baseline_points` values flags nothing either.
//!
//! The same score serves twice: when a window closes, every sample after its
//! trigger is scored against the samples before it (`window_anomalies`); and,
//! if enabled, a detector scores each new sample against the resource's
//! buffer and opens an `anomaly` window after `consecutive` anomalous samples.

use std::collections::BTreeMap;

/// Scale making the MAD a consistent estimator of a normal standard deviation.
const MAD_SCALE: f64 = 1.4826;
/// Scale making the mean absolute deviation one (√(π/2)).
const MEAN_AD_SCALE: f64 = 1.2533;
/// The smallest spread, as a fraction of the baseline median's magnitude.
pub const MIN_RELATIVE_SIGMA: f64 = 0.01;

/// How anomalies are scored and when the detector fires.
#[derive(Clone, Debug, PartialEq)]
pub struct AnomalyConfig {
    /// Open an `anomaly` window when a resource's samples stay anomalous
    /// (the detector). Default false. Summary anomalies are always computed.
    pub detect: bool,
    /// Score above which a sample is anomalous. Default 3.5; zero = default.
    pub threshold: f64,
    /// Per-metric thresholds overriding `threshold`; `f64::INFINITY` turns a
    /// metric off.
    pub metric_thresholds: BTreeMap<String, f64>,
    /// Fewest baseline values to score against. Default 10; zero = default.
    pub min_baseline_points: usize,
    /// Anomalous samples in a row that make the detector fire. Default 3;
    /// zero = default.
    pub consecutive: usize,
}

impl AnomalyConfig {
    /// The default score threshold (Iglewicz and Hoaglin's).
    pub const DEFAULT_THRESHOLD: f64 = 3.5;
    /// The default minimum baseline size.
    pub const DEFAULT_MIN_BASELINE_POINTS: usize = 10;
    /// The default run length that fires the detector.
    pub const DEFAULT_CONSECUTIVE: usize = 3;

    /// The threshold for `metric`.
    pub fn threshold_for(&self, metric: &str) -> f64 {
        self.metric_thresholds
            .get(metric)
            .copied()
            .unwrap_or(self.threshold)
    }

    /// This config with zeros (and non-positive or NaN thresholds) replaced by
    /// defaults.
    pub fn normalized(mut self) -> AnomalyConfig {
        if self.threshold.is_nan() || self.threshold <= 0.0 {
            self.threshold = Self::DEFAULT_THRESHOLD;
        }
        if self.min_baseline_points == 0 {
            self.min_baseline_points = Self::DEFAULT_MIN_BASELINE_POINTS;
        }
        if self.consecutive == 0 {
            self.consecutive = Self::DEFAULT_CONSECUTIVE;
        }
        self
    }
}

impl Default for AnomalyConfig {
    fn default() -> AnomalyConfig {
        AnomalyConfig {
            detect: false,
            threshold: Self::DEFAULT_THRESHOLD,
            metric_thresholds: BTreeMap::new(),
            min_baseline_points: Self::DEFAULT_MIN_BASELINE_POINTS,
            consecutive: Self::DEFAULT_CONSECUTIVE,
        }
    }
}

/// The centre and spread of a metric's normal behaviour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Baseline {
    /// Median of the baseline values.
    pub median: f64,
    /// Robust standard deviation: 1.4826 × MAD, or 1.2533 × mean absolute
    /// deviation when the MAD is 0, and at least 1% of `|median|`. Always > 0.
    pub sigma: f64,
}

impl Baseline {
    /// The baseline of `values`, or `None` if there are fewer than `min_points`
    /// or they are all zero (no spread to measure against).
    ///
    /// ```
    /// use incident_recorder::anomaly::Baseline;
    ///
    /// let b = Baseline::of(&[30.0, 32.0, 31.0, 29.0, 33.0], 5).unwrap();
    /// assert_eq!(b.median, 31.0);
    /// assert!((b.score(45.826) - 10.0).abs() < 1e-3);
    /// // A flat baseline gets the minimum spread, 1% of its level.
    /// assert_eq!(Baseline::of(&[5.0; 20], 10).unwrap().sigma, 0.05);
    /// assert!(Baseline::of(&[0.0; 20], 10).is_none());
    /// ```
    pub fn of(values: &[f64], min_points: usize) -> Option<Baseline> {
        if values.len() < min_points.max(1) {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_unstable_by(f64::total_cmp);
        let median = median_of_sorted(&sorted);
        let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - median).abs()).collect();
        let mean_ad = deviations.iter().sum::<f64>() / deviations.len() as f64;
        deviations.sort_unstable_by(f64::total_cmp);
        let mad = median_of_sorted(&deviations);
        let sigma = if mad > 0.0 {
            MAD_SCALE * mad
        } else {
            MEAN_AD_SCALE * mean_ad
        }
        .max(MIN_RELATIVE_SIGMA * median.abs());
        (sigma > 0.0 && sigma.is_finite()).then_some(Baseline { median, sigma })
    }

    /// Signed robust score of `value`: positive above the median. Always
    /// finite: a value far enough from a narrow baseline scores ±`f64::MAX`
    /// rather than an infinity, which JSON (an export) could not carry.
    pub fn score(&self, value: f64) -> f64 {
        ((value - self.median) / self.sigma).clamp(-f64::MAX, f64::MAX)
    }
}

fn median_of_sorted(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// One sample that stood out.
#[derive(Clone, Debug, PartialEq)]
pub struct Anomaly {
    /// When (Unix ms).
    pub ts_ms: i64,
    /// The value.
    pub value: f64,
    /// Its signed score.
    pub score: f64,
    /// The baseline it was scored against.
    pub baseline: Baseline,
}

impl Anomaly {
    /// `cpu 97.2 at 10:04:05, 44.7 MADs above baseline 31.0` ("MAD" meaning
    /// the scaled MAD, the baseline's robust standard deviation).
    pub fn describe(&self, metric: &str) -> String {
        let t = crate::Timestamp::from_unix_ms(self.ts_ms).to_datetime();
        format!(
            "{metric} {:.1} at {:02}:{:02}:{:02}, {:.1} MADs {} baseline {:.1}",
            self.value,
            t.hour(),
            t.minute(),
            t.second(),
            self.score.abs(),
            if self.score >= 0.0 { "above" } else { "below" },
            self.baseline.median
        )
    }
}

/// The anomalies of one metric in a window: `series` is `(ts_ms, value)` in
/// time order; samples before `trigger_ms` form the baseline, samples at or
/// after it are scored.
pub fn window_anomalies(
    series: &[(i64, f64)],
    trigger_ms: i64,
    threshold: f64,
    min_baseline_points: usize,
) -> Vec<Anomaly> {
    let split = series.partition_point(|&(ts, _)| ts < trigger_ms);
    let before: Vec<f64> = series[..split].iter().map(|&(_, v)| v).collect();
    let Some(baseline) = Baseline::of(&before, min_baseline_points) else {
        return Vec::new();
    };
    series[split..]
        .iter()
        .filter_map(|&(ts_ms, value)| {
            let score = baseline.score(value);
            (score.abs() > threshold).then_some(Anomaly {
                ts_ms,
                value,
                score,
                baseline,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_mad_falls_back_to_the_mean_absolute_deviation() {
        // 9 × 1 and one 2: MAD 0, mean absolute deviation 0.1 (over the
        // 1% floor, 0.01).
        let mut v = vec![1.0; 9];
        v.push(2.0);
        let b = Baseline::of(&v, 10).unwrap();
        assert_eq!(b.median, 1.0);
        assert!((b.sigma - 0.12533).abs() < 1e-9);
    }

    #[test]
    fn too_few_or_all_zero_baselines_score_nothing() {
        assert!(Baseline::of(&[1.0, 2.0, 3.0], 10).is_none());
        assert!(Baseline::of(&[0.0; 30], 10).is_none());
        assert!(Baseline::of(&[], 0).is_none());
    }

    #[test]
    fn the_spread_never_drops_below_one_percent_of_the_level() {
        // Disk usage creeping by 0.001 per sample: MAD ≈ 0.005, but 1% of 38
        // is 0.38, so a 0.02 drift scores about 0.05, not 4.
        let creep: Vec<f64> = (0..20).map(|i| 38.0 + 0.001 * f64::from(i)).collect();
        let b = Baseline::of(&creep, 10).unwrap();
        assert!((b.sigma - 0.380095).abs() < 1e-9, "{}", b.sigma);
        assert!(b.score(38.03).abs() < 0.1);
    }

    #[test]
    fn only_samples_after_the_trigger_are_scored() {
        let mut s: Vec<(i64, f64)> = (0..10)
            .map(|i| (i, if i % 2 == 0 { 30.0 } else { 32.0 }))
            .collect();
        s.push((10, 90.0));
        s[3].1 = 500.0; // an outlier in the baseline itself is not reported
        let found = window_anomalies(&s, 10, 3.5, 10);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].ts_ms, 10);
    }
}
