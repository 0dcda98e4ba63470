//! Closing work, the store's half: the queue of closes the tick decided
//! (`window_closes`), sealing journal points into runs, writing a closed
//! window's summary, and purging the journal behind the sealed windows.
//!
//! What to compute (statistics, anomalies, change scores) is not decided
//! here: the closer (`recorder/closer.rs`) reads a window through
//! [`WindowPoints`], computes with the pure functions of `summary`, `anomaly`
//! and `change`, and hands the result to [`finish`]. Everything here runs inside the caller's transaction, so a
//! window's status, summary and sealed runs appear together.

use rusqlite::{Connection, OptionalExtension, params};

use super::CloserConn;
use super::ids::{MetricId, PointId, WindowRow};
use super::points::{MultiInsert, insert_rows};
use super::series::{Known, Whereabouts, WindowPoints};
use crate::error::Result;
use crate::model::{MetricChange, WindowStatus};
use crate::summary::MetricStats;

/// A close the tick decided (see `recorder/window.rs`): the window takes no
/// more points, and the closer seals it with this status and end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Closing {
    /// The window.
    pub(crate) window: WindowRow,
    /// Final status (not `Recording`).
    pub(crate) status: WindowStatus,
    /// Start time, ms, as `recorder/window.rs` decided it.
    pub(crate) start_ms: i64,
    /// End time, ms.
    pub(crate) end_ms: i64,
}

/// One anomalous sample of a closing window, described.
#[derive(Debug)]
pub(crate) struct AnomalyRow {
    pub(crate) metric: MetricId,
    pub(crate) ts_ms: i64,
    pub(crate) value: f64,
    pub(crate) score: f64,
    pub(crate) description: String,
}

/// What closing a window writes besides its status: computed by the closer
/// from the window's points.
#[derive(Debug, Default)]
pub(crate) struct Summary {
    /// Points in the window.
    pub(crate) points: i64,
    /// Times of its first and last point, if it has any.
    pub(crate) span: Option<(i64, i64)>,
    /// Per-metric statistics.
    pub(crate) stats: Vec<(MetricId, MetricStats)>,
    /// Anomalies, in time order.
    pub(crate) anomalies: Vec<AnomalyRow>,
    /// Change scores and ranks ([`crate::change::rank`]); a metric with
    /// statistics and none here is stored unscored (scored on read).
    pub(crate) changes: Vec<(MetricId, MetricChange)>,
}

/// Computes what closing a window writes, from all its points (in
/// time order), its trigger time and the names of its metrics.
pub(crate) type CloseSummary<'a> =
    dyn FnMut(&WindowPoints, i64, &[(MetricId, String)]) -> Summary + 'a;

/// The closer's work inside one of its transactions: any number of seals
/// and closes, committed together (fewer, larger transactions write fewer
/// pages: each commit rewrites the partly filled pages it touched). The
/// journal's purge has transactions of its own ([`CloserConn::purge`]).
pub(crate) struct CloseWork<'a> {
    tx: &'a Connection,
    gate: &'a super::WriteGate,
}

impl CloseWork<'_> {
    /// True if a tick waits for this transaction to end: the closer then
    /// commits what it has done so far.
    pub(crate) fn tick_waiting(&self) -> bool {
        self.gate.urgent_waiting()
    }

    /// Seals the journal points of recording `window` with ids before
    /// `upto` (the end of the journal if `None`), read through `known` if it
    /// covers them; the window's journal part then starts at `upto`.
    /// Returns false if the window is closed already or gone.
    pub(crate) fn seal_window(
        &self,
        window: WindowRow,
        known: Option<&Known>,
        upto: Option<PointId>,
    ) -> Result<bool> {
        let tx = self.tx;
        let Some(at) = whereabouts(tx, window)? else {
            return Ok(false);
        };
        let Some(from) = at.recent_from else {
            return Ok(true);
        };
        let upto = match upto {
            Some(upto) => upto,
            None => super::points::next_point_id(tx)?,
        };
        if upto <= from {
            return Ok(true);
        }
        let mut journal = WindowPoints::default();
        journal.read_journal(tx, window, from..upto, known)?;
        journal.finish();
        seal(tx, at, &journal, Some(upto))?;
        Ok(true)
    }

    /// Closes `c`: seals what is left of it in the journal (read through
    /// `known` if it covers it), computes its summary with `close_summary` from
    /// all its points, and writes that with its final status. Returns false
    /// if it was closed already or is gone.
    pub(crate) fn close_window(
        &self,
        c: &Closing,
        known: Option<&Known>,
        close_summary: &mut CloseSummary<'_>,
    ) -> Result<bool> {
        let tx = self.tx;
        let Some(at) = whereabouts(tx, c.window)? else {
            tx.prepare_cached("DELETE FROM window_closes WHERE window_id = ?1")?
                .execute([c.window])?;
            return Ok(false);
        };
        let mut all = WindowPoints::default();
        all.read_sealed(tx, at)?;
        let mut journal = WindowPoints::default();
        if let Some(from) = at.recent_from {
            journal.read_journal(tx, c.window, from..PointId::END, known)?;
            journal.finish();
        }
        seal(tx, at, &journal, None)?;
        all.append(journal);
        all.finish();
        let mut names: Vec<(MetricId, String)> = Vec::new();
        for run in all.values.chunk_by(|a, b| a.0 == b.0) {
            names.push((run[0].0, metric_name(tx, run[0].0)?));
        }
        let summary = close_summary(&all, at.opened_ms, &names);
        finish(tx, c, &summary)?;
        Ok(true)
    }
}

impl CloserConn {
    /// Runs `f` on closing work in one transaction, after any waiting tick.
    pub(crate) fn work<T>(&mut self, f: impl FnOnce(&CloseWork<'_>) -> Result<T>) -> Result<T> {
        let gate = self.gate.clone();
        self.transaction(|tx| f(&CloseWork { tx, gate: &gate }))
    }

    /// [`CloseWork::seal_window`] in a transaction of its own.
    pub(crate) fn seal_window(
        &mut self,
        window: WindowRow,
        known: Option<&Known>,
        upto: Option<PointId>,
    ) -> Result<bool> {
        self.work(|w| w.seal_window(window, known, upto))
    }

    /// [`CloseWork::close_window`] in a transaction of its own.
    #[cfg(test)]
    pub(crate) fn close_window(
        &mut self,
        c: &Closing,
        known: Option<&Known>,
        close_summary: &mut CloseSummary<'_>,
    ) -> Result<bool> {
        self.work(|w| w.close_window(c, known, close_summary))
    }

    /// The closes queued and not done, oldest window first.
    pub(crate) fn pending_closes(&mut self) -> Result<Vec<Closing>> {
        pending_closes(&self.conn)
    }

    /// Deletes up to `limit` journal points behind the horizon (see
    /// [`purge`]), in one transaction.
    pub(crate) fn purge(&mut self, limit: i64) -> Result<usize> {
        self.transaction(|tx| purge(tx, limit))
    }

    /// How many journal ids lie behind the horizon, waiting to be purged
    /// (an upper bound on the points: ids of trimmed windows count too).
    pub(crate) fn purgeable(&mut self) -> Result<i64> {
        Ok(purgeable(&self.conn)?.map_or(0, |(lowest, horizon)| (horizon - lowest).max(0)))
    }

    /// Windows holding the journal's horizon back by more than `lag`
    /// points (see [`laggards`]), given how many windows have journal
    /// points: `lag` at least, or `per_window` points for each of them.
    pub(crate) fn laggards(
        &mut self,
        lag: i64,
        per_window: i64,
        limit: i64,
    ) -> Result<Vec<WindowRow>> {
        let in_journal: i64 = self
            .conn
            .prepare_cached("SELECT count(*) FROM windows WHERE recent_from IS NOT NULL")?
            .query_row([], |r| r.get(0))?;
        laggards(
            &self.conn,
            lag.max(per_window.saturating_mul(in_journal)),
            limit,
        )
    }
}

/// Queues closes decided by the tick, in the tick's transaction.
pub(super) fn record_closes(tx: &Connection, closings: &[Closing]) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO window_closes (window_id, status, end_ms) VALUES (?1, ?2, ?3)
         ON CONFLICT (window_id) DO NOTHING",
    )?;
    for c in closings {
        stmt.execute(params![c.window, c.status.as_str(), c.end_ms])?;
    }
    Ok(())
}

/// The closes queued and not done (left by a recorder that stopped or
/// crashed before its closer got to them), oldest window first.
fn pending_closes(conn: &Connection) -> Result<Vec<Closing>> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.window_id, c.status, c.end_ms, w.start_ms FROM window_closes c
         JOIN windows w ON w.id = c.window_id
         WHERE w.status = 'recording'
         ORDER BY c.window_id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, WindowRow>(0)?,
            r.get::<_, String>(1)?,
            r.get(2)?,
            r.get(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (window, status, end_ms, start_ms) = row?;
        out.push(Closing {
            window,
            status: status.parse()?,
            start_ms,
            end_ms,
        });
    }
    Ok(out)
}

/// Where `window` is, if it is still recording (not closed yet).
fn whereabouts(tx: &Connection, window: WindowRow) -> Result<Option<Whereabouts>> {
    Ok(tx
        .prepare_cached(
            "SELECT opened_ms, recent_from FROM windows WHERE id = ?1 AND status = 'recording'",
        )?
        .query_row([window], |r| {
            Ok(Whereabouts {
                window,
                opened_ms: r.get(0)?,
                recent_from: r.get(1)?,
            })
        })
        .optional()?)
}

static SERIES_VALUES: MultiInsert =
    MultiInsert::new("INSERT INTO series_values (id, offset_ms, value)", 3);

/// Seals the journal points read into `points` (its journal part: values
/// and metadata read by [`WindowPoints::read_journal`], nothing sealed):
/// one run per metric, appended after every existing run, and their
/// metadata. The window's journal part then starts at `next_from`, or is
/// none (`None`: it closes). Journal rows stay until [`purge`] reaches them.
pub(super) fn seal(
    tx: &Connection,
    at: Whereabouts,
    points: &WindowPoints,
    next_from: Option<PointId>,
) -> Result<()> {
    let mut next: i64 = tx
        .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM series_values")?
        .query_row([], |r| r.get(0))?;
    let mut rows: Vec<(i64, i64, f64)> = Vec::with_capacity(points.values.len());
    let mut runs: Vec<(MetricId, i64, i64)> = Vec::new();
    for run in points.values.chunk_by(|a, b| a.0 == b.0) {
        let first = next;
        for &(_, ts, value) in run {
            rows.push((next, ts - at.opened_ms, value));
            next += 1;
        }
        runs.push((run[0].0, first, next - 1));
    }
    insert_rows(
        tx,
        &SERIES_VALUES,
        &rows,
        |stmt, i, &(id, offset, value)| {
            stmt.raw_bind_parameter(i, id)?;
            stmt.raw_bind_parameter(i + 1, offset)?;
            stmt.raw_bind_parameter(i + 2, value)
        },
    )?;
    let mut run = tx.prepare_cached(
        "INSERT INTO window_series (window_id, metric_id, first_value_id, last_value_id)
         VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (metric, first, last) in runs {
        run.execute(params![at.window, metric, first, last])?;
    }
    let mut meta = tx.prepare_cached(
        "INSERT INTO point_metadata (window_id, offset_ms, metadata) VALUES (?1, ?2, ?3)",
    )?;
    for (ts, m) in &points.metadata {
        meta.execute(params![at.window, ts - at.opened_ms, m])?;
    }
    tx.prepare_cached("UPDATE windows SET recent_from = ?2 WHERE id = ?1")?
        .execute(params![at.window, next_from])?;
    Ok(())
}

/// Closes a sealed window: its summary, anomalies and final status, and the
/// close taken off the queue. A window already closed is left alone.
pub(super) fn finish(tx: &Connection, c: &Closing, s: &Summary) -> Result<()> {
    let changed = tx
        .prepare_cached(
            "UPDATE windows SET status = ?2, end_ms = ?3, summary_points = ?4, duration_ms = ?5,
                                start_ms = ?6,
                                recent_from = NULL
             WHERE id = ?1 AND status = 'recording'",
        )?
        .execute(params![
            c.window,
            c.status.as_str(),
            c.end_ms,
            s.span.map(|_| s.points),
            s.span.map(|(first, last)| last - first),
            c.start_ms,
        ])?;
    tx.prepare_cached("DELETE FROM window_closes WHERE window_id = ?1")?
        .execute([c.window])?;
    if changed == 0 {
        return Ok(());
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO window_metric_stats
            (window_id, metric_id, samples, peak, low, average, change, p50, p95, p99,
             change_score, change_rank, change_unscored)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    let changes: std::collections::BTreeMap<MetricId, &MetricChange> =
        s.changes.iter().map(|(m, c)| (*m, c)).collect();
    for (metric, st) in &s.stats {
        let change = changes.get(metric);
        insert.execute(params![
            c.window,
            metric,
            st.samples as i64,
            st.peak,
            st.low,
            st.average,
            st.change,
            st.p50,
            st.p95,
            st.p99,
            change.and_then(|c| c.score),
            change.map(|c| c.rank),
            change.and_then(|c| c.unscored.as_deref()),
        ])?;
    }
    let mut anomaly = tx.prepare_cached(
        "INSERT INTO window_anomalies (window_id, metric_id, ts_ms, value, score, description)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    for a in &s.anomalies {
        anomaly.execute(params![
            c.window,
            a.metric,
            a.ts_ms,
            a.value,
            a.score,
            a.description
        ])?;
    }
    Ok(())
}

/// The name of a metric row (for describing anomalies).
fn metric_name(tx: &Connection, metric: MetricId) -> Result<String> {
    Ok(tx
        .prepare_cached("SELECT name FROM metrics WHERE id = ?1")?
        .query_row([metric], |r| r.get(0))?)
}

/// Deletes up to `limit` journal points (with their values) below the
/// journal's horizon: the smallest `recent_from` of any window, or
/// everything if no window has journal points. Those points are sealed (or
/// belong to windows trimmed since). Returns how many it deleted.
fn purge(tx: &Connection, limit: i64) -> Result<usize> {
    let Some((lowest, horizon)) = purgeable(tx)? else {
        return Ok(0);
    };
    let upto = horizon.min(lowest.saturating_add(limit));
    if upto <= lowest {
        return Ok(0);
    }
    tx.prepare_cached("DELETE FROM recent_values WHERE point_id < ?1")?
        .execute([upto])?;
    Ok(tx
        .prepare_cached("DELETE FROM recent_points WHERE id < ?1")?
        .execute([upto])?)
}

/// The journal's lowest id and its horizon (the smallest `recent_from`, or
/// past the head if no window has journal points): ids from the first up
/// to the second can be purged. `None` if the journal is empty.
fn purgeable(tx: &Connection) -> Result<Option<(i64, i64)>> {
    let (lowest, horizon): (Option<i64>, i64) = tx
        .prepare_cached(
            "SELECT (SELECT min(id) FROM recent_points),
                    coalesce((SELECT min(recent_from) FROM windows WHERE recent_from IS NOT NULL),
                             (SELECT coalesce(max(id), 0) + 1 FROM recent_points))",
        )?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(lowest.map(|l| (l, horizon)))
}

/// How far the journal's horizon lags its head, in points, and the windows
/// holding it back the most: those with journal points more than `lag`
/// ids behind the head, oldest first (at most `limit`).
fn laggards(tx: &Connection, lag: i64, limit: i64) -> Result<Vec<WindowRow>> {
    let head: i64 = tx
        .prepare_cached("SELECT coalesce(max(id), 0) FROM recent_points")?
        .query_row([], |r| r.get(0))?;
    let rows = tx
        .prepare_cached(
            "SELECT id FROM windows WHERE recent_from IS NOT NULL AND recent_from < ?1
             ORDER BY recent_from LIMIT ?2",
        )?
        .query_map(params![head - lag, limit], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<WindowRow>>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Resource, Trigger};
    use crate::names::MetricNames;
    use crate::store::{NewWindow, PointBatch, Samples, Store};

    /// Windows recorded together (their journal points interleave) close
    /// with exactly their own points: `a` sealed part way while recording,
    /// `b` whose seal never happened (the recorder stopped first: its list
    /// no longer covers its journal part, which is scanned instead), `c`
    /// without a list (as after a restart). The journal is purged behind.
    #[test]
    fn closing_seals_each_window_s_own_points_with_or_without_id_lists() {
        let store = Store::open_in_memory().unwrap();
        let mut writer = store.writer().unwrap();
        let (mut closer, _) = store.closer().unwrap();
        let mut names = MetricNames::default();
        let cpu = names.intern("cpu").unwrap();
        let trigger = Trigger::manual();
        let mut open = |resource| {
            let new = NewWindow {
                resource: Resource::from(resource),
                trigger: &trigger,
                fired_ms: 0,
                trigger_ms: 0,
                start_ms: 0,
                deadline_ms: 1_000_000,
            };
            match writer.open_window(&names, &new, &Samples::default()) {
                Ok((row, _)) => row,
                other => panic!("{other:?}"),
            }
        };
        let windows = [open("a"), open("b"), open("c")];
        let mut seals = Vec::new();
        for i in 0..200 {
            let mut batch = PointBatch::default();
            for (n, &w) in windows.iter().enumerate() {
                batch.push(w, i * 1000, [(cpu, 1000.0 * n as f64 + i as f64)], None);
            }
            seals.extend(writer.commit(&names, &batch, &[]).unwrap().seals);
        }
        assert_eq!(seals.len(), 3, "each window was due for sealing once");
        // Only `a`'s seal happens.
        let (a, known, upto) = seals.iter().find(|(w, _, _)| *w == windows[0]).unwrap();
        assert!(closer.seal_window(*a, Some(known), Some(*upto)).unwrap());
        writer.points.remove(&windows[2]); // `c` is found by its range
        let closings = windows.map(|window| Closing {
            window,
            status: WindowStatus::Complete,
            start_ms: 0,
            end_ms: 200_000,
        });
        let handoff = writer
            .commit(&names, &PointBatch::default(), &closings)
            .unwrap();
        for (c, ids) in &handoff.closes {
            let closed = closer
                .close_window(c, ids.as_ref(), &mut |points, _, _| Summary {
                    points: points.times().len() as i64,
                    span: Some((points.times()[0], *points.times().last().unwrap())),
                    ..Summary::default()
                })
                .unwrap();
            assert!(closed);
        }
        while closer.purge(50).unwrap() > 0 {}
        let conn = store.conn().unwrap();
        for (n, &w) in windows.iter().enumerate() {
            let at = Whereabouts {
                window: w,
                opened_ms: 0,
                recent_from: None,
            };
            let points = WindowPoints::read(&conn, at, None).unwrap();
            let values: Vec<f64> = points.values.iter().map(|&(_, _, v)| v).collect();
            let expected: Vec<f64> = (0..200).map(|i| 1000.0 * n as f64 + f64::from(i)).collect();
            assert_eq!(values, expected, "window {n}");
            let (status, points, from): (String, i64, Option<i64>) = conn
                .query_row(
                    "SELECT status, summary_points, recent_from FROM windows WHERE id = ?1",
                    [w],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .unwrap();
            assert_eq!((status.as_str(), points, from), ("complete", 200, None));
        }
        let journal: i64 = conn
            .query_row("SELECT count(*) FROM recent_points", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, 0, "the journal is purged behind sealed windows");
        let runs: i64 = conn
            .query_row(
                "SELECT count(*) FROM window_series WHERE window_id = ?1",
                [windows[0]],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(runs, 2, "a: one run sealed while recording, one at close");
    }
}
