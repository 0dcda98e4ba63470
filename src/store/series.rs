//! Reading a window's stored points: its sealed series and its journal part.
//!
//! A window's points are in two places (see migrations/V11): sealed, as
//! `series` rows (one metric over one stretch of time) with their `samples`,
//! and `point_metadata` for the points that carry some; and, until the next
//! seal (seconds: see `close.rs`), in the journal (`recent_points` /
//! `recent_values`), from the window's `recent_from` on, interleaved with
//! the points of every window recording at the same time. A point is a
//! time: its values are in the series, its metadata beside them.
//!
//! Every reader of points (queries, replays, the closer) goes through
//! [`WindowPoints`], so the two halves are always read the same way.

use std::collections::HashMap;

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

/// A window's place in the store, as its row says.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Whereabouts {
    pub(crate) window: WindowRow,
    /// The trigger time, which `point_metadata` offsets are relative to.
    pub(crate) opened_ms: i64,
    /// The first journal id it may have points at; `None` once closed.
    pub(crate) recent_from: Option<PointId>,
}

/// The whole journal, read in one pass, by window. The journal holds the
/// last seconds of every recording window (the closer seals it as a whole:
/// see `close.rs`), so one pass is bounded; it serves the seal and readers
/// of many windows, for whom a scan per window would read the journal once
/// per window.
#[derive(Debug, Default)]
pub(crate) struct Journal {
    pub(crate) by_window: HashMap<WindowRow, WindowPoints>,
    /// The highest journal id read (live or not), if any.
    pub(crate) last: Option<PointId>,
}

impl Journal {
    /// Reads every live journal point: from its window's `recent_from` on
    /// (rows below it are sealed already, waiting for the end of the seal).
    pub(crate) fn read(conn: &Connection) -> Result<Journal> {
        let mut stmt = conn.prepare_cached(
            "SELECT p.window_id, p.id, p.ts_ms, p.metadata, v.metric_id, v.value,
                    p.id >= w.recent_from
             FROM recent_points p
             LEFT JOIN windows w ON w.id = p.window_id
             LEFT JOIN recent_values v ON v.point_id = p.id
             ORDER BY p.id",
        )?;
        let mut rows = stmt.query([])?;
        let mut by_window: HashMap<WindowRow, WindowPoints> = HashMap::new();
        let mut last = None;
        while let Some(r) = rows.next()? {
            last = Some(r.get::<_, PointId>(1)?);
            if r.get::<_, Option<bool>>(6)? == Some(true) {
                by_window.entry(r.get(0)?).or_default().take_row(r, 1)?;
            }
        }
        for points in by_window.values_mut() {
            points.finish();
        }
        Ok(Journal { by_window, last })
    }

    /// The journal part of `window` (empty if none), taken out.
    pub(crate) fn take(&mut self, window: WindowRow) -> WindowPoints {
        self.by_window.remove(&window).unwrap_or_default()
    }
}

impl WindowPoints {
    /// Everything `at` holds: sealed series, then its journal part, from
    /// `journal` if given, else read from `recent_from` on.
    pub(crate) fn read(
        conn: &Connection,
        at: Whereabouts,
        journal: Option<&mut Journal>,
    ) -> Result<WindowPoints> {
        let mut out = WindowPoints::default();
        out.read_sealed(conn, at)?;
        if let Some(from) = at.recent_from {
            match journal {
                Some(j) => out.append(j.take(at.window)),
                None => out.read_journal(conn, at.window, from)?,
            }
        }
        out.finish();
        Ok(out)
    }

    /// Adds `other`'s points.
    pub(crate) fn append(&mut self, other: WindowPoints) {
        self.values.extend_from_slice(&other.values);
        self.metadata.extend(other.metadata);
        self.journal_ids.extend_from_slice(&other.journal_ids);
    }

    /// Adds a journal row `(id, ts_ms, metadata, metric_id, value)` whose
    /// columns start at `first` (a point's rows come together, one per
    /// value, or one with NULLs if it has none).
    fn take_row(&mut self, r: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<()> {
        let (id, ts): (PointId, i64) = (r.get(first)?, r.get(first + 1)?);
        if self.journal_ids.last() != Some(&id) {
            self.journal_ids.push(id);
            if let Some(meta) = r.get::<_, Option<String>>(first + 2)? {
                self.metadata.push((ts, meta));
            }
        }
        if let (Some(metric), Some(value)) = (r.get(first + 3)?, r.get(first + 4)?) {
            self.values.push((metric, ts, value));
        }
        Ok(())
    }

    /// Adds the sealed series and metadata of `at`.
    pub(crate) fn read_sealed(&mut self, conn: &Connection, at: Whereabouts) -> Result<()> {
        // In the order of series_by_window, then of each series' key.
        let mut stmt = conn.prepare_cached(
            "SELECT s.metric_id, s.from_ms + v.offset_ms, v.value
             FROM series s JOIN samples v ON v.series_id = s.id
             WHERE s.window_id = ?1
             ORDER BY s.metric_id, s.from_ms, s.id, v.offset_ms",
        )?;
        let mut rows = stmt.query([at.window])?;
        while let Some(r) = rows.next()? {
            self.values.push((r.get(0)?, r.get(1)?, r.get(2)?));
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

    /// Adds the journal points of `window`, from id `from` on: a range of
    /// the journal's key, filtered by window (the journal has no index by
    /// window: see migrations/V11).
    pub(crate) fn read_journal(
        &mut self,
        conn: &Connection,
        window: WindowRow,
        from: PointId,
    ) -> Result<()> {
        let mut stmt = conn.prepare_cached(
            "SELECT p.id, p.ts_ms, p.metadata, v.metric_id, v.value
             FROM recent_points p LEFT JOIN recent_values v ON v.point_id = p.id
             WHERE p.id >= ?2 AND p.window_id = ?1
             ORDER BY p.id",
        )?;
        let mut rows = stmt.query((window, from))?;
        while let Some(r) = rows.next()? {
            self.take_row(r, 0)?;
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
