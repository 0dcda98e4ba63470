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
//! One resource holds at most [`MAX_NAMES_PER_RESOURCE`] names (counted
//! again at each reclaim from what its buffer holds), so one source whose
//! names keep changing cannot starve the others. A full table (or share) is
//! logged once per episode, with what it means, and its refusals are
//! counted apart (`RecorderStats::names_refused`) from invalid or
//! non-finite values.

use super::{Inner, State};
use crate::names::MAX_METRIC_NAMES;

/// Ticks between reclaims while names are refused and the last reclaim freed
/// too little to reach the usual trigger.
pub(super) const RETRY_TICKS: u64 = 16;

/// Distinct names one resource may hold or bring in between two reclaims
/// (a quarter of the table): one resource whose names keep changing cannot
/// take the whole table from the others. Past it, its values with new names
/// are refused (counted in `names_refused`) until a reclaim counts what its
/// buffer still holds.
pub(crate) const MAX_NAMES_PER_RESOURCE: usize = MAX_METRIC_NAMES / 4;

/// What the recorder knows of its name table's fill.
#[derive(Debug, Default)]
pub(super) struct NameTable {
    /// New names refused since the last reclaim.
    refused: u64,
    /// Ticks since the last reclaim.
    ticks: u64,
    /// The reasons logged in this episode (the table full, a resource's
    /// share reached): each once.
    logged: Vec<&'static str>,
}

impl NameTable {
    /// Counts a refused new name; logs the first of an episode for each
    /// reason (the table is full, or the resource has its share).
    pub(super) fn refused(&mut self, resource: &str, metric: &str, reason: &'static str) {
        self.refused += 1;
        if !self.logged.contains(&reason) {
            self.logged.push(reason);
            tracing::warn!(
                resource,
                metric,
                "values with new metric names are refused (counted as names_refused): {reason}; usually a source whose series names keep changing (a label holding a request id?)"
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
            r.names_held = u32::try_from(r.buffer.distinct_keys()).unwrap_or(u32::MAX);
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
            name_table.logged.clear();
        }
        name_table.refused = 0;
        name_table.ticks = 0;
    }
}
