//! Which metrics a picture shows first: the ones that moved most.
//!
//! One function, [`metric_order`]: by the window's change ranks
//! ([`crate::change`]: the shift after the trigger in MADs of the
//! pre-incident baseline, stored with the window's statistics, or scored on
//! read for a window still recording), so `/w/ID`, `/`'s sparkline and
//! `chart.svg?top=N` agree with `show` and `context`. A window without
//! ranks (an import's, a window without a summary) falls back to the
//! relative range: (max − min) over the larger of |mean| and the range
//! itself, so a metric that went from 0 to anything scores 1 and one that
//! wandered 2 % around its mean scores 0.02, whatever its unit. That order
//! also places, after the ranked ones, any metric the ranks lack.

use std::collections::BTreeMap;

use crate::model::IncidentWindow;

/// The window's metrics (those its points carry), the one that moved most
/// first: by change rank where the summary has one, then by relative range
/// (ties by name).
pub fn metric_order(w: &IncidentWindow) -> Vec<String> {
    let mut order = by_relative_range(w);
    if let Some(s) = w.summary.as_ref().filter(|s| !s.change_scores.is_empty()) {
        // Stable: the metrics without a rank keep their range order.
        order.sort_by_key(|m| s.change_scores.get(m).map_or(u32::MAX, |c| c.rank));
    }
    order
}

/// The fallback: the relative range, largest first (ties by name).
fn by_relative_range(w: &IncidentWindow) -> Vec<String> {
    let mut stats: BTreeMap<&str, (f64, f64, f64, u64)> = BTreeMap::new();
    for p in &w.data_points {
        for (name, &v) in &p.metrics {
            let s =
                stats
                    .entry(name.as_str())
                    .or_insert((f64::INFINITY, f64::NEG_INFINITY, 0.0, 0));
            s.0 = s.0.min(v);
            s.1 = s.1.max(v);
            s.2 += v;
            s.3 += 1;
        }
    }
    let mut scored: Vec<(f64, &str)> = stats
        .into_iter()
        .map(|(name, (lo, hi, sum, n))| {
            let range = hi - lo;
            let mean = (sum / n as f64).abs();
            let scale = mean.max(range);
            let score = if scale > 0.0 && scale.is_finite() {
                range / scale
            } else {
                0.0
            };
            (score, name)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().map(|(_, n)| n.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{DataPoint, Timestamp, TriggerType, WindowId, WindowStatus};

    fn window(points: &[&[(&str, f64)]]) -> IncidentWindow {
        IncidentWindow {
            id: WindowId::new("iw-1"),
            resource_id: "web-1".into(),
            resource_name: None,
            resource_type: None,
            trigger_type: TriggerType::Manual,
            trigger_id: None,
            trigger_time: None,
            start_time: Timestamp::from_unix_ms(0),
            end_time: None,
            deadline: None,
            status: WindowStatus::Recording,
            triggers: Vec::new(),
            notes: Vec::new(),
            data_points: points
                .iter()
                .enumerate()
                .map(|(i, m)| DataPoint {
                    timestamp: Timestamp::from_unix_ms(i as i64 * 1000),
                    metrics: m.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect(),
                    metadata: None,
                })
                .collect(),
            summary: None,
        }
    }

    #[test]
    fn the_metric_that_moved_most_comes_first_whatever_its_unit() {
        let w = window(&[
            &[("bytes", 1.0e9), ("cpu", 5.0), ("flat", 3.0)],
            &[("bytes", 1.01e9), ("cpu", 95.0), ("flat", 3.0)],
            &[
                ("bytes", 1.0e9),
                ("cpu", 50.0),
                ("flat", 3.0),
                ("late", 0.0),
            ],
        ]);
        assert_eq!(metric_order(&w), ["cpu", "bytes", "flat", "late"]);
    }

    #[test]
    fn the_change_rank_orders_the_metrics_not_their_range() {
        // `noisy` swings 0..100 throughout (relative range 1); `step` goes
        // from 100 to 110 at the trigger (relative range 0.095). The
        // range puts noisy first; what moved after the trigger is step.
        let points: Vec<Vec<(&str, f64)>> = (0..20)
            .map(|i| {
                let noisy = if i % 2 == 0 { 0.0 } else { 100.0 };
                let step = if i < 10 { 100.0 } else { 110.0 };
                vec![("noisy", noisy), ("step", step)]
            })
            .collect();
        let refs: Vec<&[(&str, f64)]> = points.iter().map(Vec::as_slice).collect();
        let mut w = window(&refs);
        assert_eq!(metric_order(&w), ["noisy", "step"], "no ranks: the range");
        let mut s = crate::summary::summarize(&w.data_points).unwrap();
        s.change_scores = crate::change::score_points(&w.data_points, 10_000);
        assert_eq!(s.change_scores["step"].rank, 1);
        w.summary = Some(s.clone());
        assert_eq!(metric_order(&w), ["step", "noisy"]);
        // A metric the ranks lack (added after they were stored) follows
        // the ranked ones.
        s.change_scores.remove("noisy");
        w.summary = Some(s);
        assert_eq!(metric_order(&w), ["step", "noisy"]);
        w.summary.as_mut().unwrap().change_scores.remove("step");
        assert_eq!(metric_order(&w), ["noisy", "step"], "no ranks left");
    }
}
