//! Reclaiming metric names no buffer or pending point holds any more.
//!
//! The recorder interns every metric name (`crate::names`), at most
//! [`MAX_METRIC_NAMES`] at a time. A provider whose names keep changing (a
//! label holding a request id) used to fill that table for good, after which
//! every new name of every resource was refused. Now a tick reclaims the
//! names that nothing in memory holds (buffers, points waiting for their
//! commit): once the table is three quarters full and a sixteenth of it was
//! interned since the last reclaim (so the walk over the buffers is paid
//! for by that many new names), or, while names are being refused, every
//! [`RETRY_TICKS`] ticks. The store forgets the reclaimed keys' metric ids;
//! the `metrics` rows stay for the windows that use them (the store trims
//! rows no window uses, see `store::retention::reclaim_metric_names`).
//!
//! A full table is logged once per episode, with what it means, and its
//! refusals are counted apart (`RecorderStats::names_refused`) from invalid
//! or non-finite values.

use super::{Inner, State};
use crate::names::MAX_METRIC_NAMES;

/// Ticks between reclaims while names are refused and the last reclaim freed
/// too little to reach the usual trigger.
pub(super) const RETRY_TICKS: u64 = 16;

/// What the recorder knows of its name table's fill.
#[derive(Debug, Default)]
pub(super) struct NameTable {
    /// New names refused since the last reclaim (the table was full).
    refused: u64,
    /// Ticks since the last reclaim.
    ticks: u64,
    /// The full table was logged for this episode.
    logged: bool,
}

impl NameTable {
    /// Counts a refused new name; logs the first of an episode.
    pub(super) fn refused(&mut self, resource: &str, metric: &str) {
        self.refused += 1;
        if !self.logged {
            self.logged = true;
            tracing::warn!(
                resource,
                metric,
                limit = MAX_METRIC_NAMES,
                "the metric name table is full: values with new names are refused (counted as names_refused) until names no buffer holds are reclaimed; usually a source whose series names keep changing (a label holding a request id?)"
            );
        }
    }
}

impl Inner {
    /// Reclaims the names nothing in memory holds, when due (see the module
    /// docs). Runs under the state lock, once per tick.
    pub(super) fn reclaim_names(&self, state: &mut State) {
        let State {
            names,
            resources,
            pending,
            writer,
            name_table,
            stats,
            ..
        } = state;
        name_table.ticks += 1;
        let full = names.live() >= MAX_METRIC_NAMES * 3 / 4
            && names.interned_since_reclaim() >= MAX_METRIC_NAMES / 16;
        let retry = name_table.refused > 0 && name_table.ticks >= RETRY_TICKS;
        if !full && !retry {
            return;
        }
        let mut used = vec![false; names.len()];
        for r in resources.values_mut() {
            r.buffer.mark_keys(&mut used);
            if let Some(d) = r.detector.as_deref_mut() {
                d.forget_unused(&used);
            }
        }
        pending.mark_keys(&mut used);
        let freed = names.reclaim(&used);
        writer.forget_metric_keys(&freed);
        stats.names_reclaimed += freed.len() as u64;
        if !freed.is_empty() && name_table.refused > 0 {
            tracing::info!(
                reclaimed = freed.len(),
                refused = name_table.refused,
                held = names.live(),
                "metric names no buffer holds were reclaimed; new names are taken again"
            );
        }
        if !freed.is_empty() {
            name_table.logged = false;
        }
        name_table.refused = 0;
        name_table.ticks = 0;
    }
}
