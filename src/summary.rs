//! Statistics of a window's series: peak, low, average, change, percentiles.
//!
//! One pass over a metric's values in time order gives the count, extremes,
//! sum and first/last value; the percentiles come from one sort of a copy.
//! The seed seeded peaks and lows from the *first point only*, so a metric
//! absent from it started at 0 (wrong for negative or late metrics); here every
//! statistic starts from the metric's own first value.
//!
//! [`summarize`] is the one function of that name: a window's statistics
//! from its points, as a live read shows them. Closing a window computes the
//! same statistics with [`metric_stats`] and adds its anomalies
//! (`close_summary` in `recorder/closer.rs`).

use std::collections::BTreeMap;

use crate::model::{DataPoint, IncidentSummary, MetricAnomalies, WindowAnomaly};

/// The statistics of a window with these points (oldest first), per metric:
/// what a recording window shows so far. `None` without points.
pub fn summarize(points: &[DataPoint]) -> Option<IncidentSummary> {
    let (first, last) = (points.first()?, points.last()?);
    let mut series: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for p in points {
        for (name, &v) in &p.metrics {
            series.entry(name).or_default().push(v);
        }
    }
    let mut s = IncidentSummary {
        duration_ms: last.timestamp.as_unix_ms() - first.timestamp.as_unix_ms(),
        data_points: points.len() as u64,
        ..IncidentSummary::default()
    };
    for (name, values) in series {
        let Some(m) = metric_stats(&values) else {
            continue;
        };
        let name = name.to_owned();
        s.samples.insert(name.clone(), m.samples);
        s.lows.insert(name.clone(), m.low);
        s.averages.insert(name.clone(), m.average);
        s.p50.insert(name.clone(), m.p50);
        s.p95.insert(name.clone(), m.p95);
        s.p99.insert(name.clone(), m.p99);
        s.peaks.insert(name.clone(), m.peak);
        s.changes.insert(name, m.change);
    }
    Some(s)
}

/// The anomalies of a window per metric: how many samples, and the note of
/// the strongest (highest absolute score; the first of equals).
pub fn anomalies_by_metric(anomalies: &[WindowAnomaly]) -> BTreeMap<String, MetricAnomalies> {
    let mut out: BTreeMap<String, (MetricAnomalies, f64)> = BTreeMap::new();
    for a in anomalies {
        let (entry, best) = out
            .entry(a.metric.clone())
            .or_insert_with(|| (MetricAnomalies::default(), f64::NEG_INFINITY));
        entry.samples += 1;
        if a.score.abs() > *best {
            *best = a.score.abs();
            entry.strongest = a.description.clone();
        }
    }
    out.into_iter().map(|(k, (v, _))| (k, v)).collect()
}

/// The statistics of one metric over one window.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricStats {
    /// Number of values.
    pub samples: u64,
    /// Highest value.
    pub peak: f64,
    /// Lowest value.
    pub low: f64,
    /// Arithmetic mean.
    pub average: f64,
    /// Last value minus first value, in time order.
    pub change: f64,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

/// Statistics of `values`, given in time order; `None` if there are none.
///
/// Percentiles interpolate linearly between the closest ranks (the "type 7"
/// definition used by NumPy and spreadsheets): for `n` sorted values the
/// q-quantile sits at rank `q * (n - 1)`.
///
/// ```
/// use incident_recorder::summary::metric_stats;
///
/// let s = metric_stats(&[10.0, 30.0, 20.0, 40.0]).unwrap();
/// assert_eq!((s.peak, s.low, s.average, s.change), (40.0, 10.0, 25.0, 30.0));
/// assert_eq!(s.p50, 25.0);
/// ```
pub fn metric_stats(values: &[f64]) -> Option<MetricStats> {
    let (&first, &last) = (values.first()?, values.last()?);
    let mut peak = first;
    let mut low = first;
    let mut sum = 0.0;
    for &v in values {
        peak = peak.max(v);
        low = low.min(v);
        sum += v;
    }
    let n = values.len() as f64;
    // Values near f64::MAX (the recorder refuses beyond 1e300, an import may
    // not) overflow the plain sum: then the mean is summed pre-divided.
    let average = if sum.is_finite() {
        sum / n
    } else {
        values.iter().map(|v| v / n).sum()
    };
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f64::total_cmp);
    Some(MetricStats {
        samples: values.len() as u64,
        peak,
        low,
        average,
        change: last - first,
        p50: percentile(&sorted, 0.50),
        p95: percentile(&sorted, 0.95),
        p99: percentile(&sorted, 0.99),
    })
}

/// The `q`-quantile (0 ≤ q ≤ 1) of values sorted ascending, by linear
/// interpolation between closest ranks. NaN for an empty slice.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let rank = q.clamp(0.0, 1.0) * (n - 1) as f64;
            let lo = rank.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            let frac = rank - lo as f64;
            sorted[lo] + (sorted[hi] - sorted[lo]) * frac
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_between_ranks() {
        let sorted: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&sorted, 0.5), 5.5);
        assert!((percentile(&sorted, 0.95) - 9.55).abs() < 1e-12);
        assert_eq!(percentile(&sorted, 0.0), 1.0);
        assert_eq!(percentile(&sorted, 1.0), 10.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn negative_series_keep_their_sign() {
        let s = metric_stats(&[-0.5, -2.0, -1.0]).unwrap();
        assert_eq!((s.peak, s.low, s.change), (-0.5, -2.0, -0.5));
    }
}
