//! Closing work, the store's half: the queue of closes the tick decided
//! (`window_closes`) and the seal, which moves the journal's points into
//! `series` / `samples` and closes the windows whose close is queued.
//!
//! One way: the closer (`recorder/closer.rs`) asks for a [`SealPlan`] (the
//! queued closes and the journal, read in one pass) and runs
//! [`CloseWork::seal`] for each window of it, a few per transaction, then
//! [`CloserConn::end_seal`]. For one window, in one transaction, `seal`
//! appends its journal part (from the plan) as new series, moves its
//! `recent_from` past it (readers skip journal rows below it) and, if it closes,
//! reads all its values back, computes its statistics and anomalies with the
//! pure functions of [`crate::summary`], [`crate::anomaly`] and
//! [`crate::change`] ([`summarize`]) and writes them with its final status: a closed window is never seen
//! without its summary, and no reader sees a value twice. `end_seal` then
//! deletes the journal below the plan's mark by key ranges, in one
//! transaction: deleting each window's rows in its own transaction rewrote
//! every journal page once per window (the windows' points interleave).

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};

use super::CloserConn;
use super::ids::{MetricId, PointId, WindowRow};
use super::points::{MultiInsert, insert_rows};
use super::series::{Journal, Whereabouts, WindowPoints};
use crate::anomaly::{AnomalyConfig, window_anomalies};
use crate::error::Result;
use crate::model::{MetricChange, WindowStatus};
use crate::summary::{MetricStats, metric_stats};

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

/// What closing a window writes besides its status, computed from its
/// points ([`summarize`]; an import computes its own).
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

/// Journal points per recording window after which the journal is sealed,
/// and the age after which it is sealed anyway (see `recorder/closer.rs`):
/// the bound on how far the sealed tables (and `incident_samples`) lag the
/// journal. Each seal adds a `series` row per window and metric (~30 bytes
/// with its index entry), so seals of fewer points cost more bytes per point.
pub(crate) const SEAL_POINTS: i64 = 32;

/// One window's part of a seal: its journal points, and its close if one is
/// queued.
#[derive(Debug)]
pub(crate) struct SealItem {
    pub(crate) window: WindowRow,
    pub(crate) part: WindowPoints,
    pub(crate) closing: Option<Closing>,
}

/// What a seal does, window by window (oldest first): every window with
/// journal points or a queued close.
#[derive(Debug)]
pub(crate) struct SealPlan {
    pub(crate) items: Vec<SealItem>,
    /// Past every journal id read: the journal below it is sealed once
    /// every item is ([`CloserConn::end_seal`]).
    pub(crate) upto: PointId,
}

/// The closer's work inside one of its transactions: any number of window
/// seals, committed together (fewer, larger transactions write fewer pages:
/// each commit rewrites the partly filled pages it touched).
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

    /// Seals `item` (of a plan read up to `upto`): appends its journal part
    /// as series and moves the window's `recent_from` past it (its journal
    /// rows are then dead to every reader, and deleted with the rest by
    /// [`CloserConn::end_seal`]) and, if it closes, writes its summary,
    /// anomalies and final status. Returns false if the window is closed
    /// already or gone (its queued close is dropped then).
    pub(crate) fn seal(
        &self,
        item: &SealItem,
        upto: PointId,
        anomaly: &AnomalyConfig,
    ) -> Result<bool> {
        let tx = self.tx;
        let Some(at) = whereabouts(tx, item.window)? else {
            tx.prepare_cached("DELETE FROM window_closes WHERE window_id = ?1")?
                .execute([item.window])?;
            return Ok(false);
        };
        seal(tx, at, &item.part)?;
        tx.prepare_cached("UPDATE windows SET recent_from = ?2 WHERE id = ?1")?
            .execute(params![item.window, upto])?;
        if let Some(c) = &item.closing {
            let mut all = WindowPoints::default();
            all.read_sealed(tx, at)?;
            all.finish();
            let mut names: Vec<(MetricId, String)> = Vec::new();
            for run in all.values.chunk_by(|a, b| a.0 == b.0) {
                names.push((run[0].0, metric_name(tx, run[0].0)?));
            }
            finish(tx, c, &summarize(&all, at.opened_ms, &names, anomaly))?;
        }
        Ok(true)
    }
}

impl CloserConn {
    /// Runs `f` on closing work in one transaction, after any waiting tick.
    pub(crate) fn work<T>(&mut self, f: impl FnOnce(&CloseWork<'_>) -> Result<T>) -> Result<T> {
        let gate = self.gate.clone();
        self.transaction(|tx| f(&CloseWork { tx, gate: &gate }))
    }

    /// The closes queued and not done, oldest window first.
    pub(crate) fn pending_closes(&mut self) -> Result<Vec<Closing>> {
        pending_closes(&self.conn)
    }

    /// What a seal does now: the queued closes, then the journal (read
    /// after them, so it holds every point of the windows closing), by
    /// window.
    pub(crate) fn seal_plan(&mut self) -> Result<SealPlan> {
        // The free space may have changed since the last seal.
        super::bound_wal(&self.conn, self.path.as_deref())?;
        let closes = pending_closes(&self.conn)?;
        let mut journal = Journal::read(&self.conn)?;
        let upto = PointId(journal.last.map_or(0, |id| id.0) + 1);
        let mut by_window: BTreeMap<WindowRow, Option<Closing>> =
            journal.by_window.keys().map(|&w| (w, None)).collect();
        for c in closes {
            by_window.insert(c.window, Some(c));
        }
        let items = by_window
            .into_iter()
            .map(|(window, closing)| SealItem {
                window,
                part: journal.take(window),
                closing,
            })
            .collect();
        Ok(SealPlan { items, upto })
    }

    /// Ends a seal whose every item was sealed: the windows without journal
    /// points have none before `upto` either, and the journal below `upto`
    /// (sealed, or of windows deleted meanwhile) goes, in one transaction,
    /// by ranges of its keys: whole pages freed, not a page per window.
    pub(crate) fn end_seal(&mut self, upto: PointId) -> Result<()> {
        self.transaction(|tx| {
            tx.prepare_cached(
                "UPDATE windows SET recent_from = ?1
                 WHERE recent_from IS NOT NULL AND recent_from < ?1",
            )?
            .execute([upto])?;
            tx.prepare_cached("DELETE FROM recent_values WHERE point_id < ?1")?
                .execute([upto])?;
            tx.prepare_cached("DELETE FROM recent_points WHERE id < ?1")?
                .execute([upto])?;
            Ok(())
        })
    }

    /// True if the journal holds [`SEAL_POINTS`] points per recording
    /// window (counted by the span of its ids: an upper bound), or any
    /// point at all if `any`.
    pub(crate) fn seal_due(&mut self, any: bool) -> Result<bool> {
        let (span, recording): (i64, i64) = self
            .conn
            .prepare_cached(
                "SELECT coalesce((SELECT max(id) - min(id) + 1 FROM recent_points), 0),
                        (SELECT count(*) FROM windows WHERE status = 'recording')",
            )?
            .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(span > 0 && (any || span >= SEAL_POINTS * recording.max(1)))
    }
}

/// What closing a window writes, from all its points (in metric, then time
/// order) and the names of its metrics (in the same order): points,
/// span, per-metric statistics and the anomalies against its pre-incident
/// baseline (before `opened_ms`), and the change scores and ranks
/// ([`crate::change`]). Pure.
pub(crate) fn summarize(
    points: &WindowPoints,
    opened_ms: i64,
    names: &[(MetricId, String)],
    anomaly: &AnomalyConfig,
) -> Summary {
    let times = points.times();
    let mut s = Summary {
        points: times.len() as i64,
        span: times.first().zip(times.last()).map(|(&f, &l)| (f, l)),
        ..Summary::default()
    };
    let mut scores = Vec::with_capacity(names.len());
    for ((metric, series), (named, name)) in points.series().zip(names) {
        debug_assert_eq!(metric, *named);
        scores.push((metric, crate::change::score_series(&series, opened_ms)));
        let values: Vec<f64> = series.iter().map(|&(_, v)| v).collect();
        if let Some(stats) = metric_stats(&values) {
            s.stats.push((metric, stats));
        }
        let threshold = anomaly.threshold_for(name);
        for a in window_anomalies(&series, opened_ms, threshold, anomaly.min_baseline_points) {
            s.anomalies.push(AnomalyRow {
                metric,
                ts_ms: a.ts_ms,
                value: a.value,
                score: a.score,
                description: a.describe(name),
            });
        }
    }
    s.changes = crate::change::rank(scores);
    s
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

/// The closes queued and not done (decided by the tick, or left by a
/// recorder that stopped or crashed first), oldest window first.
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

static SAMPLES: MultiInsert =
    MultiInsert::new("INSERT INTO samples (series_id, offset_ms, value)", 3);

/// Appends `points` (values and metadata, sorted by [`WindowPoints::finish`])
/// to `at`'s sealed points: a new `series` row per metric (and a second one
/// where two values of a metric share a time: a series' times are its key),
/// numbered after every existing one, so its samples go at the end of
/// `samples`; and `point_metadata` rows.
pub(super) fn seal(tx: &Connection, at: Whereabouts, points: &WindowPoints) -> Result<()> {
    let first: i64 = tx
        .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM series")?
        .query_row([], |r| r.get(0))?;
    let mut rows: Vec<(i64, i64, f64)> = Vec::with_capacity(points.values.len());
    let mut series: Vec<(i64, MetricId, i64)> = Vec::new();
    let runs = points.values.chunk_by(|a, b| a.0 == b.0 && a.1 < b.1);
    for (id, run) in (first..).zip(runs) {
        let (metric, from) = (run[0].0, run[0].1);
        series.push((id, metric, from));
        rows.extend(run.iter().map(|&(_, ts, v)| (id, ts - from, v)));
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO series (id, window_id, metric_id, from_ms) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for (id, metric, from) in series {
        insert.execute(params![id, at.window, metric, from])?;
    }
    insert_rows(tx, &SAMPLES, &rows, |stmt, i, &(id, offset, value)| {
        stmt.raw_bind_parameter(i, id)?;
        stmt.raw_bind_parameter(i + 1, offset)?;
        stmt.raw_bind_parameter(i + 2, value)
    })?;
    let mut meta = tx.prepare_cached(
        "INSERT INTO point_metadata (window_id, offset_ms, metadata) VALUES (?1, ?2, ?3)",
    )?;
    for (ts, m) in &points.metadata {
        meta.execute(params![at.window, ts - at.opened_ms, m])?;
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Resource, Trigger};
    use crate::names::MetricNames;
    use crate::store::{NewWindow, PointBatch, Samples, Store};

    fn seal_all(closer: &mut CloserConn) {
        let plan = closer.seal_plan().unwrap();
        let anomaly = AnomalyConfig::default();
        closer
            .work(|w| {
                for item in &plan.items {
                    w.seal(item, plan.upto, &anomaly)?;
                }
                Ok(())
            })
            .unwrap();
        closer.end_seal(plan.upto).unwrap();
    }

    /// Windows recorded together (their journal points interleave) are
    /// sealed while recording and at close with exactly their own points:
    /// the journal is empty after, each closed window has its summary, and
    /// every row's keys hold.
    #[test]
    fn seals_move_each_window_s_own_points_and_close_with_the_summary() {
        let store = Store::open_in_memory().unwrap();
        let mut writer = store.writer().unwrap();
        let mut closer = store.closer().unwrap();
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
        for i in 0..200 {
            let mut batch = PointBatch::default();
            for (n, &w) in windows.iter().enumerate() {
                batch.push(w, i * 1000, [(cpu, 1000.0 * n as f64 + i as f64)], None);
            }
            writer.commit(&names, &batch, &[]).unwrap();
            if i == 120 {
                assert!(closer.seal_due(false).unwrap(), "32 points per window wait");
                seal_all(&mut closer);
                assert!(!closer.seal_due(true).unwrap(), "the journal is empty");
            }
        }
        let closings = windows.map(|window| Closing {
            window,
            status: WindowStatus::Complete,
            start_ms: 0,
            end_ms: 200_000,
        });
        writer
            .commit(&names, &PointBatch::default(), &closings)
            .unwrap();
        seal_all(&mut closer);
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
            let (status, points, from, stats): (String, i64, Option<i64>, i64) = conn
                .query_row(
                    "SELECT status, summary_points, recent_from,
                            (SELECT samples FROM window_metric_stats WHERE window_id = w.id)
                     FROM windows w WHERE id = ?1",
                    [w],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .unwrap();
            assert_eq!(
                (status.as_str(), points, from, stats),
                ("complete", 200, None, 200)
            );
            let series: i64 = conn
                .query_row(
                    "SELECT count(*) FROM series WHERE window_id = ?1",
                    [w],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(series, 2, "one series sealed while recording, one at close");
        }
        let journal: i64 = conn
            .query_row("SELECT count(*) FROM recent_points", [], |r| r.get(0))
            .unwrap();
        assert_eq!(journal, 0, "sealing deletes the journal rows it moved");
        let broken: i64 = conn
            .query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(broken, 0);
    }

    /// Two values of a metric at the same time (a series' key is its time)
    /// go to two series: both kept.
    #[test]
    fn values_at_the_same_time_are_both_kept() {
        let store = Store::open_in_memory().unwrap();
        let mut writer = store.writer().unwrap();
        let mut closer = store.closer().unwrap();
        let mut names = MetricNames::default();
        let cpu = names.intern("cpu").unwrap();
        let trigger = Trigger::manual();
        let new = NewWindow {
            resource: Resource::from("a"),
            trigger: &trigger,
            fired_ms: 0,
            trigger_ms: 0,
            start_ms: 0,
            deadline_ms: 1_000_000,
        };
        let (w, _) = writer
            .open_window(&names, &new, &Samples::default())
            .unwrap();
        let mut batch = PointBatch::default();
        for (ts, v) in [(1000, 1.0), (2000, 2.0), (2000, 3.0), (3000, 4.0)] {
            batch.push(w, ts, [(cpu, v)], None);
        }
        writer.commit(&names, &batch, &[]).unwrap();
        seal_all(&mut closer);
        let conn = store.conn().unwrap();
        let at = Whereabouts {
            window: w,
            opened_ms: 0,
            recent_from: None,
        };
        let points = WindowPoints::read(&conn, at, None).unwrap();
        let got: Vec<(i64, f64)> = points.values.iter().map(|&(_, t, v)| (t, v)).collect();
        assert_eq!(got, [(1000, 1.0), (2000, 2.0), (2000, 3.0), (3000, 4.0)]);
    }
}
