//! Retention and the window limit: deleting closed windows with everything
//! recorded under them.
//!
//! Only sealed windows are deleted (closed windows are sealed: see
//! migrations/V11), and a sealed window's values are whole `series` with
//! their `samples`, so deleting one frees whole pages (mostly) instead of
//! rewriting pages shared with other windows. Trimming runs in the closer, after the windows it closed,
//! never on the tick.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::Store;
use super::ids::WindowRow;
use super::points::MetricPins;
use crate::error::Result;
use crate::model::Timestamp;

/// What to trim.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Trim {
    /// Closed windows that ended at or before this are deleted.
    pub(crate) cutoff_ms: i64,
    /// Keep at most this many closed windows.
    pub(crate) max_windows: usize,
}

/// What a trim deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Windows deleted.
    pub windows: usize,
    /// Data points deleted with them.
    pub points: usize,
    /// Of the windows deleted, those the fleet's central database does not
    /// have (never pushed, or refused): over the bound of unpushed windows
    /// trimming spares (see `store::push::spare_unpushed`).
    pub unpushed: usize,
    /// Series (a window's values of one metric over a stretch) deleted with them: an
    /// upper bound of the metric names they may have left unused.
    pub series: usize,
    /// Metric names (`metrics` rows) no remaining window used, deleted
    /// after the windows (by [`Store::prune`]).
    pub metric_names: usize,
}

/// Deletes the closed windows `trim` selects, with everything recorded under
/// them, in an immediate transaction of its own on `conn`.
///
/// The schema cascades deletes from `windows`, but SQLite runs a cascade as
/// a sub-program per parent row, and its cascade into the journal scans it
/// (no index by window: a closed window has no journal rows). So enforcement is off
/// for this transaction only (the pragma cannot change inside one) and
/// [`delete_window`] deletes every dependent row itself; a unit test fails if
/// a table hanging from `windows` is missing there.
///
/// At most `step` windows go per transaction; the second value is true if
/// more are due (call again).
pub(crate) fn trim(conn: &Connection, trim: Trim, step: usize) -> Result<(PruneReport, bool)> {
    conn.pragma_update(None, "foreign_keys", false)?;
    let report = (|| {
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let report = trim_windows(&tx, trim, step)?;
        tx.commit()?;
        Ok(report)
    })();
    // On every path: the connection goes back with enforcement on.
    conn.pragma_update(None, "foreign_keys", true)?;
    report
}

/// Deletes the `metrics` rows no stored value, summary, anomaly or journal
/// point uses and no writer of this process holds (`pins`), in an immediate
/// transaction of its own; returns how many.
///
/// A source whose names keep changing leaves a row per name; once the
/// windows holding them are trimmed, nothing refers to those rows. The
/// check runs inside the write transaction, so a value written by anyone
/// (an import in another process included) is seen; the writer of this
/// process may write a cached id in a later transaction, hence the pins.
/// The referencing columns have no index (none is needed elsewhere), so
/// this scans those tables once each: the recorder runs it only after
/// [`RECLAIM_NAMES_AFTER`] new names, and `prune` after trimming.
/// Enforcement of foreign keys is off for it (each deleted row would scan
/// every referencing table); the `NOT IN` checks are what keeps them.
pub(crate) fn reclaim_metric_names(conn: &Connection, pins: &MetricPins) -> Result<usize> {
    conn.pragma_update(None, "foreign_keys", false)?;
    let deleted = (|| {
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        tx.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS pinned_metrics (id INTEGER PRIMARY KEY);
             DELETE FROM temp.pinned_metrics;",
        )?;
        {
            let mut pin =
                tx.prepare_cached("INSERT OR IGNORE INTO temp.pinned_metrics VALUES (?1)")?;
            for id in pins.ids() {
                pin.execute([id])?;
            }
        }
        let n = tx.prepare_cached(RECLAIM_SQL)?.execute([])?;
        tx.execute_batch("DELETE FROM temp.pinned_metrics;")?;
        tx.commit()?;
        Ok(n)
    })();
    // On every path: the connection goes back with enforcement on.
    conn.pragma_update(None, "foreign_keys", true)?;
    deleted
}

/// The rows [`reclaim_metric_names`] deletes: every table with a foreign key
/// to `metrics` is checked (a unit test fails if one is missing).
const RECLAIM_SQL: &str = "DELETE FROM metrics
     WHERE id NOT IN (SELECT id FROM temp.pinned_metrics)
       AND id NOT IN (SELECT metric_id FROM series)
       AND id NOT IN (SELECT metric_id FROM recent_values)
       AND id NOT IN (SELECT metric_id FROM window_metric_stats)
       AND id NOT IN (SELECT metric_id FROM window_anomalies WHERE metric_id IS NOT NULL)";

/// The highest `metrics` row id, 0 for none.
pub(crate) fn metric_high(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("SELECT coalesce(max(id), 0) FROM metrics", [], |r| r.get(0))?)
}

/// New `metrics` rows after which the recorder reclaims unused ones.
pub(crate) const RECLAIM_NAMES_AFTER: i64 = 10_000;

/// Windows a trim deletes per transaction in the recorder (the closer's
/// transactions stay short).
pub(crate) const TRIM_STEP: usize = 64;

fn trim_windows(tx: &Connection, trim: Trim, step: usize) -> Result<(PruneReport, bool)> {
    let max = i64::try_from(trim.max_windows).unwrap_or(i64::MAX);
    // Closed windows are exactly those with an end (a CHECK constraint), so
    // both halves run on the partial index `windows_by_end`: the expired
    // ones by range, the oldest beyond the limit by a count and a short
    // ascending walk. This runs after every completion; the former form
    // scanned and sorted the whole table each time.
    let ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT id FROM windows WHERE end_ms <= ?1
             UNION
             SELECT id FROM (SELECT id FROM windows WHERE end_ms IS NOT NULL
                             ORDER BY end_ms, id
                             LIMIT max(0, (SELECT count(*) FROM windows
                                           WHERE end_ms IS NOT NULL) - ?2))",
        )?
        .query_map(params![trim.cutoff_ms, max], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    // Fleet push: windows the central database does not have (not pushed,
    // or refused) are spared, up to the window limit.
    let before = ids.len();
    let (mut ids, unpushed) = super::push::spare_unpushed(tx, ids, trim.max_windows)?;
    let spared = before - ids.len();
    let more = ids.len() > step;
    ids.truncate(step);
    let mut report = PruneReport::default();
    let mut refused = 0;
    for id in ids {
        let (points, series) = delete_window(tx, WindowRow(id))?;
        report.points += points;
        report.series += series;
        report.windows += 1;
        if let Some(&was_refused) = unpushed.get(&id) {
            report.unpushed += 1;
            refused += usize::from(was_refused);
        }
    }
    super::push::count_dropped(tx, report.unpushed, refused, spared)?;
    tx.prepare_cached("DELETE FROM control_events WHERE at_ms <= ?1")?
        .execute([trim.cutoff_ms])?;
    Ok((report, more))
}

/// What [`delete_window`] deletes by window id, children first: every table
/// hanging from `windows` by a foreign key (a unit test checks it).
const DELETES: [&str; 14] = [
    // A closed window has no journal rows (recent_from is NULL: no range).
    "DELETE FROM recent_values WHERE point_id IN (SELECT id FROM recent_points
         WHERE id >= (SELECT recent_from FROM windows WHERE id = ?1) AND window_id = ?1)",
    "DELETE FROM recent_points
         WHERE id >= (SELECT recent_from FROM windows WHERE id = ?1) AND window_id = ?1",
    "DELETE FROM samples WHERE series_id IN (SELECT id FROM series WHERE window_id = ?1)",
    "DELETE FROM series WHERE window_id = ?1",
    "DELETE FROM process_samples WHERE window_id = ?1",
    "DELETE FROM note_pushes WHERE note_id IN (SELECT id FROM window_notes WHERE window_id = ?1)",
    "DELETE FROM window_notes WHERE window_id = ?1",
    "DELETE FROM point_metadata WHERE window_id = ?1",
    "DELETE FROM window_closes WHERE window_id = ?1",
    "DELETE FROM window_pushes WHERE window_id = ?1",
    "DELETE FROM window_anomalies WHERE window_id = ?1",
    "DELETE FROM window_metric_stats WHERE window_id = ?1",
    "DELETE FROM window_triggers WHERE window_id = ?1",
    "DELETE FROM windows WHERE id = ?1",
];

/// Deletes one closed window and everything recorded under it, children
/// first; returns how many points and series it had. A unit test
/// checks that these are all the tables hanging from `windows`.
pub(super) fn delete_window(tx: &Connection, id: WindowRow) -> Result<(usize, usize)> {
    let series: i64 = tx
        .prepare_cached("SELECT count(*) FROM series WHERE window_id = ?1")?
        .query_row([id], |r| r.get(0))?;
    let series = series as usize;
    let points: Option<i64> = tx
        .prepare_cached("SELECT summary_points FROM windows WHERE id = ?1")?
        .query_row([id], |r| r.get(0))?;
    for sql in DELETES {
        tx.prepare_cached(sql)?.execute([id])?;
    }
    Ok((points.unwrap_or(0) as usize, series))
}

/// What [`Store::delete_windows`] deleted.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeleteReport {
    /// The windows deleted, by public id.
    pub windows: Vec<String>,
    /// Data points deleted with them.
    pub points: usize,
    /// Metric names no longer used by anything, deleted after them (as
    /// `prune` does).
    pub metric_names: usize,
}

/// Which windows [`Store::delete_windows`] deletes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteSelection<'a> {
    /// These windows, by public id: all of them or, if one does not exist
    /// (or is recording while a recorder runs), none.
    Ids(&'a [String]),
    /// The closed windows of a resource (any, if `None`) that ended before a
    /// time (any time, if `None`). Recording windows are never selected.
    Closed {
        /// Only this resource's (external id).
        resource: Option<&'a str>,
        /// Only windows that ended before this.
        before: Option<Timestamp>,
    },
}

/// The journal points of a recording window (when no recorder runs),
/// counted before [`delete_window`] deletes them.
fn journal_points(tx: &Connection, id: WindowRow, from: i64) -> Result<usize> {
    let n: i64 = tx
        .prepare_cached("SELECT count(*) FROM recent_points WHERE id >= ?2 AND window_id = ?1")?
        .query_row(params![id, from], |r| r.get(0))?;
    Ok(n as usize)
}

/// A recording window's sealed points (sealed while it recorded).
fn sealed_points(tx: &Connection, id: WindowRow) -> Result<usize> {
    let n: i64 = tx
        .prepare_cached(
            "SELECT count(DISTINCT s.from_ms + v.offset_ms) FROM series s
             JOIN samples v ON v.series_id = s.id
             WHERE s.window_id = ?1",
        )?
        .query_row([id], |r| r.get(0))?;
    Ok(n as usize)
}

/// A window chosen for deletion.
struct Chosen {
    row: WindowRow,
    public_id: String,
    /// Where its journal part starts, while it records.
    recent_from: Option<i64>,
    recording: bool,
}

/// The windows `selection` names, read in the deleting transaction.
fn select(tx: &Connection, selection: DeleteSelection<'_>) -> Result<Vec<Chosen>> {
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<Chosen> {
        let status: String = r.get(3)?;
        Ok(Chosen {
            row: r.get(0)?,
            public_id: r.get(1)?,
            recent_from: r.get(2)?,
            recording: status == "recording",
        })
    };
    match selection {
        DeleteSelection::Ids(ids) => {
            let mut stmt = tx.prepare_cached(
                "SELECT id, public_id, recent_from, status FROM windows WHERE public_id = ?1",
            )?;
            let mut found: Vec<Chosen> = Vec::with_capacity(ids.len());
            for id in ids {
                let w = stmt
                    .query_row([id], row)
                    .optional()?
                    .ok_or_else(|| crate::Error::WindowNotFound(crate::error::clip(id)))?;
                if !found.iter().any(|f| f.row == w.row) {
                    found.push(w);
                }
            }
            Ok(found)
        }
        DeleteSelection::Closed { resource, before } => Ok(tx
            .prepare_cached(
                "SELECT w.id, w.public_id, w.recent_from, w.status FROM windows w
                 JOIN resources r ON r.id = w.resource_id
                 WHERE w.end_ms IS NOT NULL
                   AND (?1 IS NULL OR r.external_id = ?1)
                   AND (?2 IS NULL OR w.end_ms < ?2)
                 ORDER BY w.start_ms, w.id",
            )?
            .query_map(params![resource, before.map(Timestamp::as_unix_ms)], row)?
            .collect::<rusqlite::Result<_>>()?),
    }
}

impl Store {
    /// Deletes the windows `selection` names with everything recorded under
    /// them (values, journal rows, triggers, summary, anomalies, notes, push
    /// marks), in one transaction: the same deletion as retention's.
    ///
    /// A closed window can be deleted while a recorder runs (as `prune`
    /// does). A recording window only when no recorder runs on the
    /// database: this takes the recorder's lock (`<db>.lock`) for the
    /// transaction, and if a recorder holds it refuses with
    /// [`Error::StillRecording`](crate::Error::StillRecording), deleting
    /// nothing (always, on an in-memory store: only the recorder of this
    /// process can have recorded it). A window already pushed to a central
    /// database stays there.
    pub fn delete_windows(&self, selection: DeleteSelection<'_>) -> Result<DeleteReport> {
        if self.read_only {
            return Err(crate::Error::Unavailable("the store was opened read-only"));
        }
        let conn = self.conn()?;
        let turn = self.gate.patient();
        conn.pragma_update(None, "foreign_keys", false)?;
        let report = (|| {
            let tx = rusqlite::Transaction::new_unchecked(&conn, TransactionBehavior::Immediate)?;
            let chosen = select(&tx, selection)?;
            // Held until the transaction ends: no recorder starts on the
            // recording windows meanwhile.
            // An in-memory store has no lock: its recording windows can
            // only be a recorder's, running in this process.
            let _lock = match chosen.iter().find(|w| w.recording) {
                Some(w) => match self.lock_for_recording() {
                    Err(crate::Error::Locked { .. }) | Ok(None) => {
                        return Err(crate::Error::StillRecording {
                            id: crate::error::clip(&w.public_id),
                        });
                    }
                    other => other?,
                },
                None => None,
            };
            let mut report = DeleteReport::default();
            for w in chosen {
                if w.recording {
                    report.points += sealed_points(&tx, w.row)?;
                    if let Some(from) = w.recent_from {
                        report.points += journal_points(&tx, w.row, from)?;
                    }
                }
                report.points += delete_window(&tx, w.row)?.0;
                report.windows.push(w.public_id);
            }
            tx.commit()?;
            Ok(report)
        })();
        conn.pragma_update(None, "foreign_keys", true)?;
        drop(turn);
        let mut report = report?;
        if !report.windows.is_empty() {
            let _turn = self.gate.patient();
            report.metric_names = reclaim_metric_names(&conn, &self.pins)?;
        }
        Ok(report)
    }

    /// Applies retention and the window limit now: deletes closed windows that
    /// ended at or before `now - retention`, then all but the newest
    /// `max_windows` closed windows. Recording windows are never deleted.
    pub fn prune(
        &self,
        now: Timestamp,
        retention: std::time::Duration,
        max_windows: usize,
    ) -> Result<PruneReport> {
        let conn = self.conn()?;
        let t = Trim {
            cutoff_ms: now.saturating_sub(retention).as_unix_ms(),
            max_windows,
        };
        let mut total = PruneReport::default();
        loop {
            let (report, more) = {
                let _turn = self.gate.patient();
                trim(&conn, t, 1024)?
            };
            total.windows += report.windows;
            total.points += report.points;
            total.unpushed += report.unpushed;
            if !more {
                if total.windows > 0 {
                    let _turn = self.gate.patient();
                    total.metric_names = reclaim_metric_names(&conn, &self.pins)?;
                }
                return Ok(total);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn a_recording_window_of_an_in_memory_recorder_is_not_deleted() {
        let recorder = crate::IncidentRecorder::open(crate::RecorderConfig::default()).unwrap();
        let id = recorder
            .start_recording(
                "db-02",
                crate::Trigger::new(crate::TriggerType::Manual, None),
            )
            .unwrap();
        let ids = [id.to_string()];
        let refused = recorder
            .store()
            .delete_windows(DeleteSelection::Ids(&ids))
            .unwrap_err();
        assert!(
            matches!(refused, crate::Error::StillRecording { .. }),
            "{refused}"
        );
        assert!(recorder.window(&id).unwrap().is_some());
    }

    #[test]
    fn delete_window_covers_every_table_hanging_from_windows() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn().unwrap();
        let edges: Vec<(String, String)> = conn
            .prepare(
                "SELECT m.name, f.\"table\" FROM sqlite_master m
                 JOIN pragma_foreign_key_list(m.name) f WHERE m.type = 'table'",
            )
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        let mut under: BTreeSet<&str> = BTreeSet::from(["windows"]);
        loop {
            let before = under.len();
            for (child, parent) in &edges {
                if under.contains(parent.as_str()) {
                    under.insert(child);
                }
            }
            if under.len() == before {
                break;
            }
        }
        let deleted: BTreeSet<&str> = DELETES
            .iter()
            .map(|sql| sql.split_whitespace().nth(2).unwrap())
            .collect();
        assert_eq!(under, deleted);
    }

    #[test]
    fn reclaiming_names_checks_every_table_referencing_metrics() {
        let store = Store::open_in_memory().unwrap();
        let conn = store.conn().unwrap();
        let referencing: BTreeSet<String> = conn
            .prepare(
                "SELECT m.name FROM sqlite_master m
                 JOIN pragma_foreign_key_list(m.name) f
                 WHERE m.type = 'table' AND f.\"table\" = 'metrics'",
            )
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for table in &referencing {
            let checked = ["SELECT metric_id FROM ", table.as_str()].concat();
            assert!(
                RECLAIM_SQL.contains(&checked),
                "{table} refers to metrics: reclaim_metric_names must keep the names it uses"
            );
        }
        assert_eq!(referencing.len(), 4, "{referencing:?}");
        // Unused rows go, used and pinned ones stay.
        conn.execute_batch(
            "INSERT INTO metrics (id, name) VALUES (1, 'used'), (2, 'unused'), (3, 'pinned');",
        )
        .unwrap();
        // A journal value of metric 1 (its point row does not matter here).
        conn.execute_batch(
            "PRAGMA foreign_keys = OFF;
             INSERT INTO recent_values VALUES (9, 1, 1.0);
             PRAGMA foreign_keys = ON;",
        )
        .unwrap();
        let pins = MetricPins::default();
        pins.pin_for_test(3);
        assert_eq!(reclaim_metric_names(&conn, &pins).unwrap(), 1);
        let left: Vec<String> = conn
            .prepare("SELECT name FROM metrics ORDER BY id")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(left, ["used", "pinned"]);
    }
}
