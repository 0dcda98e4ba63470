//! The anomaly detector: opens an `anomaly` window when a resource's samples
//! stay far from its buffered baseline (see [`crate::anomaly`] for the score).
//!
//! Per resource and metric it keeps a baseline (median and robust spread of
//! the buffered values) and the length of the current run of anomalous
//! samples; it fires when a run reaches `consecutive`, once per run. Baselines
//! are recomputed every [`REFRESH_EVERY`] samples (sorting the buffer's values
//! on every sample would cost a sort per metric per resource per tick), and on
//! every sample while the buffer is still filling. The newest `consecutive`
//! rows are left out of the baseline, so a run in progress does not hide
//! itself. State exists only for resources of a recorder with detection on.

use crate::anomaly::{AnomalyConfig, Baseline};
use crate::buffer::RingBuffer;
use crate::names::{MetricKey, MetricNames};

/// Samples between two baseline recomputations.
pub(super) const REFRESH_EVERY: u32 = 12;

/// Detector state of one resource.
#[derive(Debug, Default)]
pub(super) struct Detector {
    tracks: Vec<Track>,
    until_refresh: u32,
    scratch: Vec<f64>,
}

#[derive(Debug)]
struct Track {
    key: MetricKey,
    baseline: Option<Baseline>,
    run: usize,
}

impl Detector {
    /// Scores the newest sample (`values`, already pushed into `buffer`) and
    /// returns the metric whose anomalous run just reached `consecutive`.
    pub(super) fn observe(
        &mut self,
        buffer: &RingBuffer,
        values: &[(MetricKey, f64)],
        names: &MetricNames,
        config: &AnomalyConfig,
    ) -> Option<MetricKey> {
        let filling = buffer.len() < 2 * (config.min_baseline_points + config.consecutive);
        let refresh = filling || self.until_refresh == 0;
        self.until_refresh = if refresh {
            REFRESH_EVERY - 1
        } else {
            self.until_refresh - 1
        };
        let mut fired = None;
        for &(key, value) in values {
            let i = match self.tracks.iter().position(|t| t.key == key) {
                Some(i) => i,
                None => {
                    self.tracks.push(Track {
                        key,
                        baseline: None,
                        run: 0,
                    });
                    self.tracks.len() - 1
                }
            };
            let track = &mut self.tracks[i];
            if refresh {
                buffer.column_values(key, config.consecutive, &mut self.scratch);
                track.baseline = Baseline::of(&self.scratch, config.min_baseline_points);
            }
            let threshold = config.threshold_for(names.name(key));
            let anomalous = track
                .baseline
                .is_some_and(|b| b.score(value).abs() > threshold);
            track.run = if anomalous { track.run + 1 } else { 0 };
            if track.run == config.consecutive && fired.is_none() {
                fired = Some(key);
            }
        }
        fired
    }

    /// Drops the tracks of metrics `used` (indexed by key) does not mark:
    /// their names are about to be reclaimed, and their keys reused.
    pub(super) fn forget_unused(&mut self, used: &[bool]) {
        self.tracks
            .retain(|t| used.get(t.key.0 as usize).copied().unwrap_or(false));
    }
}
