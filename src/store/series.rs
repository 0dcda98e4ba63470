//! Reading a window's stored points: its sealed runs and its journal part.
//!
//! A window's points are in two places (see migrations/V8): sealed, as one
//! run of `series_values` per metric (and per seal), with `point_metadata`
//! for the points that carry some; and, until the closer seals them, in the
//! journal (`recent_points` / `recent_values`), from the window's
//! `recent_from` on, interleaved with the points of every window recording at
//! the same time. A point is a time: its values are in the series, its
//! metadata beside them.
//!
//! Every reader of points (queries, replays, the closer) goes through
//! [`WindowPoints`], so the two halves are always read the same way.

use std::ops::Range;

use rusqlite::Connection;

use super::ids::{MetricId, PointId, WindowRow};
use crate::error::Result;

/// The stored points of one window, as values and metadata by time.
#[derive(Debug, Default)]
pub(crate) struct WindowPoints {
    /// `(metric, time, value)`, sorted by metric then time once complete.
    pub(crate) values: Vec<(MetricId, i64, f64)>,
    /// `(time, metadata JSON)`, sorted by time once complete.
    pub(crate) metadata: Vec<(i64, String)>,
    /// Ids of the journal points read, ascending (empty if none were).
    pub(crate) journal_ids: Vec<PointId>,
}

/// The journal ids of a recording window's points that a writer knows: every
/// point of the window with an id from `from` on is in `ids` (ascending).
/// A list that starts later than the window's `recent_from` misses points
/// (its earlier part was handed over to be sealed, and that did not happen:
/// the recorder stopped first); readers then scan instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Known {
    pub(crate) from: PointId,
    pub(crate) ids: Vec<PointId>,
}

/// A window's place in the store, as its row says.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Whereabouts {
    pub(crate) window: WindowRow,
    /// The trigger time, which sealed offsets are relative to.
    pub(crate) opened_ms: i64,
    /// The first journal id it may still have points at; `None` once sealed.
    pub(crate) recent_from: Option<PointId>,
}

impl WindowPoints {
    /// Everything `at` holds: sealed runs, then its journal part (found by
    /// scanning the journal from `recent_from`).
    pub(crate) fn read(conn: &Connection, at: Whereabouts) -> Result<WindowPoints> {
        let mut out = WindowPoints::default();
        out.read_sealed(conn, at)?;
        if let Some(from) = at.recent_from {
            out.read_journal(conn, at.window, from..PointId::END, None)?;
        }
        out.finish();
        Ok(out)
    }

    /// Adds the sealed runs and metadata of `at`.
    pub(crate) fn read_sealed(&mut self, conn: &Connection, at: Whereabouts) -> Result<()> {
        // In the order of the runs: window_series' key, then the run's ids.
        let mut stmt = conn.prepare_cached(
            "SELECT s.metric_id, v.offset_ms, v.value
             FROM window_series s
             JOIN series_values v ON v.id BETWEEN s.first_value_id AND s.last_value_id
             WHERE s.window_id = ?1
             ORDER BY s.metric_id, s.first_value_id, v.id",
        )?;
        let mut rows = stmt.query([at.window])?;
        while let Some(r) = rows.next()? {
            self.values
                .push((r.get(0)?, at.opened_ms + r.get::<_, i64>(1)?, r.get(2)?));
        }
        let mut stmt = conn.prepare_cached(
            "SELECT offset_ms, metadata FROM point_metadata WHERE window_id = ?1 ORDER BY offset_ms",
        )?;
        let mut rows = stmt.query([at.window])?;
        while let Some(r) = rows.next()? {
            self.metadata
                .push((at.opened_ms + r.get::<_, i64>(0)?, r.get(1)?));
        }
        Ok(())
    }

    /// Adds the journal points of `window` with ids in `ids`: those the
    /// writer's list `known` holds, if it covers the range, else every one
    /// found by scanning the journal over the range (see [`Known`]).
    pub(crate) fn read_journal(
        &mut self,
        conn: &Connection,
        window: WindowRow,
        ids: Range<PointId>,
        known: Option<&Known>,
    ) -> Result<()> {
        let mut take = |r: &rusqlite::Row<'_>| -> rusqlite::Result<()> {
            let (id, ts): (PointId, i64) = (r.get(0)?, r.get(1)?);
            if self.journal_ids.last() != Some(&id) {
                self.journal_ids.push(id);
                if let Some(meta) = r.get::<_, Option<String>>(2)? {
                    self.metadata.push((ts, meta));
                }
            }
            if let (Some(metric), Some(value)) = (r.get(3)?, r.get(4)?) {
                self.values.push((metric, ts, value));
            }
            Ok(())
        };
        match known.filter(|k| k.from <= ids.start) {
            Some(known) => {
                let mut stmt = conn.prepare_cached(
                    "SELECT p.id, p.ts_ms, p.metadata, v.metric_id, v.value
                     FROM recent_points p LEFT JOIN recent_values v ON v.point_id = p.id
                     WHERE p.id = ?1 AND p.window_id = ?2",
                )?;
                for &id in known.ids.iter().filter(|id| ids.contains(id)) {
                    let mut rows = stmt.query((id, window))?;
                    while let Some(r) = rows.next()? {
                        take(r)?;
                    }
                }
            }
            None => {
                let mut stmt = conn.prepare_cached(
                    "SELECT p.id, p.ts_ms, p.metadata, v.metric_id, v.value
                     FROM recent_points p LEFT JOIN recent_values v ON v.point_id = p.id
                     WHERE p.id >= ?2 AND p.id < ?3 AND p.window_id = ?1
                     ORDER BY p.id",
                )?;
                let mut rows = stmt.query((window, ids.start, ids.end))?;
                while let Some(r) = rows.next()? {
                    take(r)?;
                }
            }
        }
        Ok(())
    }

    /// Puts values and metadata in their order. A resource's points are
    /// written in time order, so this is a check more than a sort; equal
    /// times keep the order they were read in (stable).
    pub(crate) fn finish(&mut self) {
        if !self.values.is_sorted_by_key(|&(m, ts, _)| (m, ts)) {
            self.values.sort_by_key(|&(m, ts, _)| (m, ts));
        }
        if !self.metadata.is_sorted_by_key(|(ts, _)| *ts) {
            self.metadata.sort_by_key(|(ts, _)| *ts);
        }
    }

    /// The window's points: the distinct times of its values and metadata,
    /// ascending.
    pub(crate) fn times(&self) -> Vec<i64> {
        let mut times: Vec<i64> = self
            .values
            .iter()
            .map(|&(_, ts, _)| ts)
            .chain(self.metadata.iter().map(|(ts, _)| *ts))
            .collect();
        times.sort_unstable();
        times.dedup();
        times
    }

    /// Each metric's `(time, value)` pairs, in time order (after
    /// [`WindowPoints::finish`]).
    pub(crate) fn series(&self) -> impl Iterator<Item = (MetricId, Vec<(i64, f64)>)> + '_ {
        self.values
            .chunk_by(|a, b| a.0 == b.0)
            .map(|run| (run[0].0, run.iter().map(|&(_, ts, v)| (ts, v)).collect()))
    }
}
