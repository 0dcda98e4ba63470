//! Which metrics a picture shows first: the ones that moved most.
//!
//! One function, [`metric_order`], so a better score (the change scores
//! against the pre-incident baseline another change adds) replaces it in
//! one place. Today's score is the relative range: (max − min) over the
//! larger of |mean| and the range itself, so a metric that went from 0 to
//! anything scores 1 and one that wandered 2 % around its mean scores
//! 0.02, whatever its unit.

use std::collections::BTreeMap;

use crate::model::IncidentWindow;

/// The window's metrics, the ones that moved most first (ties by name).
pub fn metric_order(w: &IncidentWindow) -> Vec<String> {
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
}
