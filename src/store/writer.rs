//! The recorder's write connection: a tick's commit, opening and extending
//! windows, resolves, and what a restart finds recording.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction; on any error it rolls
//! back whole and the caller keeps its pending data to retry, so a failed
//! commit (a full disk, a locked file) loses nothing and leaves no partial rows.
//! The tick's transactions take the store's [`WriteGate`](super::WriteGate)
//! ahead of the closer's, so closing work never delays a tick by more than
//! one of its (short) transactions.

use std::sync::Arc;

use rusqlite::{Connection, TransactionBehavior, params};

use super::close::{Closing, record_closes};
use super::ids::{MetricId, PointId, ResourceRow, WindowRow};
use super::points::{
    MetricIds, Owners, PointBatch, Samples, insert_batch, insert_points, next_point_id,
};
use super::series::{Journal, Whereabouts, WindowPoints};
use super::{Conn, WriteGate};
use crate::error::{Error, Result};
use crate::model::{Resource, Timestamp, Trigger, WindowId};
use crate::names::MetricNames;

/// A window found `recording` when the database was opened.
#[derive(Debug)]
pub(crate) struct RecoveredWindow {
    pub(crate) row: WindowRow,
    pub(crate) public_id: WindowId,
    pub(crate) resource: String,
    pub(crate) opened_ms: i64,
    /// Its start (see [`Writer::move_starts`]).
    pub(crate) start_ms: i64,
    pub(crate) deadline_ms: i64,
    pub(crate) points: usize,
    pub(crate) last_ts: Option<i64>,
    /// Unresolved `alert` triggers: (trigger id, fired time), oldest first.
    pub(crate) unresolved_alerts: Vec<(String, i64)>,
}

/// The description of a window to create.
pub(crate) struct NewWindow<'a> {
    pub(crate) resource: Resource<'a>,
    pub(crate) trigger: &'a Trigger,
    /// When the window opens (`opened_ms`, its id's time).
    pub(crate) fired_ms: i64,
    /// The opening trigger's own time (`window_triggers.fired_ms`): the
    /// same, except for an alert the recorder took at another time than
    /// its start (`IncidentRecorder::record_alert`).
    pub(crate) trigger_ms: i64,
    pub(crate) start_ms: i64,
    pub(crate) deadline_ms: i64,
}

/// Closing work a commit hands to the closer: the closes it queued (the
/// closer reads them back from `window_closes`; this wakes it).
#[derive(Debug, Default)]
pub(crate) struct Handoff {
    /// Closes queued by the commit.
    pub(crate) closes: Vec<Closing>,
}

impl Handoff {
    /// True if there is nothing to hand over.
    pub(crate) fn is_empty(&self) -> bool {
        self.closes.is_empty()
    }
}

/// Page cache of the writer, in KiB (SQLite's default is 2,000).
///
/// A tick touches only the tails of the journal's two tables, so the cache
/// mostly holds the journal itself, which the closer reads back as it seals
/// (with 1,000 windows recording, about 32 points each, ~6 MB). The bundled
/// SQLite is built with `SQLITE_ENABLE_MEMORY_MANAGEMENT`, so all connections
/// of the process share one LRU and a connection at its own limit takes the
/// least recently used page of any other: the margin above the hot set is
/// what keeps the writer's pages when readers are busy.
///
/// The writer also keeps temporary storage in memory (`temp_store`): every
/// multi-row insert needs a statement journal (the foreign keys could abort
/// it half way), a copy of each page it changes, and past 64 KiB SQLite
/// spilled that to a temporary file, about a hundred files written per tick
/// with 1,000 open windows (a fifth of such a tick).
pub(super) const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// The recorder's write connection, with the id caches of the hot path.
pub(crate) struct Writer {
    pub(super) conn: Conn,
    pub(super) gate: Arc<WriteGate>,
    pub(super) metric_ids: MetricIds,
    /// Rows for `recent_values`, reused between commits.
    scratch: Vec<(i64, MetricId, f64)>,
    /// Windows read back to recognise replayed samples (see `replay.rs`).
    pub(super) replay: super::replay::ReplayCache,
    /// This database's random tag (`store_info`), in every new window id.
    tag: String,
    /// The database file (`None` in memory), whose file system's free space
    /// bounds the WAL (see [`Writer::bound_wal`]).
    path: Option<std::path::PathBuf>,
    /// Commits since the WAL bound was last set.
    commits: u32,
}

impl Writer {
    /// Forgets the metric ids of reclaimed name keys
    /// ([`MetricNames::reclaim`]): a later name may get one of those keys.
    pub(crate) fn forget_metric_keys(&mut self, keys: &[crate::names::MetricKey]) {
        self.metric_ids.forget(keys);
    }

    pub(crate) fn new(
        conn: Conn,
        gate: Arc<WriteGate>,
        pins: Arc<super::points::MetricPins>,
        path: Option<&std::path::Path>,
    ) -> Result<Writer> {
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let tag: String =
            conn.query_row("SELECT tag FROM store_info WHERE id = 1", [], |r| r.get(0))?;
        let mut writer = Writer {
            tag,
            path: path.map(std::path::Path::to_path_buf),
            commits: 0,
            conn,
            gate,
            metric_ids: MetricIds::new(pins),
            scratch: Vec::new(),
            replay: Default::default(),
        };
        writer.bound_wal()?;
        Ok(writer)
    }

    /// How long a write waits for another connection's lock (an `import`, a
    /// `sqlite3` shell in a transaction) before giving up: short for the
    /// recorder, whose ticks must keep their schedule; what could not be
    /// written stays queued and goes with the next commit.
    pub(crate) fn set_busy_timeout(&mut self, d: std::time::Duration) -> Result<()> {
        Ok(self.conn.busy_timeout(d)?)
    }

    /// Bounds the WAL in bytes by the free space of the database's file
    /// system: checkpoints every [`super::WAL_AUTOCHECKPOINT`] pages at most,
    /// fewer when an eighth of the free space is less (at least 64 pages),
    /// and the WAL truncated to that size after each checkpoint. On a
    /// nearly full disk the WAL then stays within the last megabytes instead
    /// of growing to 40 MB first. Set at open and every 256 commits.
    fn bound_wal(&mut self) -> Result<()> {
        self.commits = 0;
        super::bound_wal(&self.conn, self.path.as_deref())
    }

    /// After a commit failed for want of space: checkpoints and truncates the
    /// WAL (its pages go into the database file, where deleted windows left
    /// room), so the next commit has the space the WAL held.
    fn relieve_full_disk(&mut self) {
        let done = self
            .conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                r.get::<_, i64>(0)
            });
        match done {
            Ok(0) => tracing::info!("checkpointed and truncated the WAL after a full disk"),
            Ok(_) => tracing::debug!("WAL checkpoint after a full disk could not finish (readers)"),
            Err(e) => tracing::debug!(error = %e, "WAL checkpoint after a full disk failed"),
        }
        let _ = self.bound_wal();
    }

    /// Runs `f` in one immediate transaction, ahead of the closer; on error
    /// rolls back and forgets cached metric ids.
    pub(super) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&Connection, &mut MetricIds, &mut Vec<(i64, MetricId, f64)>) -> Result<T>,
    ) -> Result<T> {
        let Writer {
            conn,
            gate,
            metric_ids,
            scratch,
            ..
        } = self;
        let _turn = gate.urgent();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        match f(&tx, metric_ids, scratch).and_then(|v| tx.commit().map(|()| v).map_err(Error::from))
        {
            Ok(v) => Ok(v),
            Err(e) => {
                metric_ids.clear();
                Err(e)
            }
        }
    }

    /// Writes queued points and the closes decided since the last commit, in
    /// one transaction. Returns the closing work for the closer.
    pub(crate) fn commit(
        &mut self,
        names: &MetricNames,
        batch: &PointBatch,
        closings: &[Closing],
    ) -> Result<Handoff> {
        self.commits += 1;
        if self.commits >= 256 {
            self.bound_wal()?;
        }
        let committed = self.transaction(|tx, metric_ids, scratch| {
            insert_batch(tx, names, metric_ids, scratch, batch)?;
            record_closes(tx, closings)
        });
        if let Err(e) = &committed
            && e.is_disk_full()
        {
            self.relieve_full_disk();
        }
        committed?;
        let handoff = Handoff {
            closes: closings.to_vec(),
        };
        if !closings.is_empty() {
            self.replay.clear();
        }
        Ok(handoff)
    }

    /// How many windows `resource` opened after `since_ms` (`opened_ms`):
    /// what the daily limit counts (`recorder/window.rs` decides).
    pub(crate) fn opened_since(&mut self, resource: &str, since_ms: i64) -> Result<usize> {
        let n: i64 = self
            .conn
            .prepare_cached(
                "SELECT count(*) FROM windows
                 WHERE resource_id = (SELECT id FROM resources WHERE external_id = ?1)
                   AND opened_ms > ?2",
            )?
            .query_row(params![resource, since_ms], |r| r.get(0))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    /// Records `trigger` of `resource`, fired at `trigger_ms`, as suppressed
    /// by the daily limit: it opens nothing.
    pub(crate) fn suppress_trigger(
        &mut self,
        resource: Resource<'_>,
        trigger: &Trigger,
        trigger_ms: i64,
    ) -> Result<()> {
        self.transaction(|tx, _, _| {
            let resource_id = upsert_resource(tx, resource)?;
            tx.prepare_cached(
                "INSERT INTO window_triggers (window_id, resource_id, trigger_type, trigger_id,
                                              fired_ms, opened_window, suppressed)
                 VALUES (NULL, ?1, ?2, ?3, ?4, 0, 1)",
            )?
            .execute(params![
                resource_id,
                trigger.kind.as_str(),
                trigger.id,
                trigger_ms
            ])?;
            Ok(())
        })
    }

    /// Creates a window with its first trigger and its buffered points;
    /// returns its row id and public id. The daily limit is the caller's
    /// (see [`opened_since`](Self::opened_since)).
    pub(crate) fn open_window(
        &mut self,
        names: &MetricNames,
        w: &NewWindow<'_>,
        pre: &Samples,
    ) -> Result<(WindowRow, WindowId)> {
        let tag = self.tag.clone();
        let opened = self.transaction(|tx, metric_ids, scratch| {
            let resource_id = upsert_resource(tx, w.resource)?;
            let row = WindowRow(tx.query_row(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'windows'), 0),
                            coalesce((SELECT max(id) FROM windows), 0)) + 1",
                [],
                |r| r.get(0),
            )?);
            let public_id = free_public_id(tx, w.fired_ms, &tag, row)?;
            tx.prepare_cached(
                "INSERT INTO windows (id, public_id, resource_id, trigger_type, trigger_id,
                                      start_ms, deadline_ms, status, opened_ms, recent_from)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'recording', ?8, ?9)",
            )?
            .execute(params![
                row,
                public_id.as_str(),
                resource_id,
                w.trigger.kind.as_str(),
                w.trigger.id,
                w.start_ms,
                w.deadline_ms,
                w.fired_ms,
                next_point_id(tx)?
            ])?;
            insert_trigger(tx, row, w.trigger, w.trigger_ms, None, true)?;
            insert_points(tx, names, metric_ids, scratch, pre, Owners::One(row))?;
            Ok((row, public_id))
        })?;
        // Its resource's cached spans end where it starts now.
        self.replay.clear();
        Ok(opened)
    }

    /// Moves the start of recording windows back (window, new start): a
    /// point older than its start was taken (see `recorder/window.rs`).
    /// Written before the commit of that point, so a window never starts
    /// after its first point, and a window resumed after a restart starts
    /// where it did.
    pub(crate) fn move_starts(&mut self, starts: &[(WindowRow, i64)]) -> Result<()> {
        self.transaction(|tx, _, _| {
            let mut stmt = tx.prepare_cached(
                "UPDATE windows SET start_ms = ?2 WHERE id = ?1 AND status = 'recording'",
            )?;
            for (window, start_ms) in starts {
                stmt.execute(params![window, start_ms])?;
            }
            Ok(())
        })
    }

    /// Records a trigger that extends an open window to `deadline_ms`.
    pub(crate) fn extend_window(
        &mut self,
        window: WindowRow,
        trigger: &Trigger,
        fired_ms: i64,
        deadline_ms: i64,
    ) -> Result<()> {
        self.transaction(|tx, _, _| {
            tx.prepare_cached("UPDATE windows SET deadline_ms = ?2 WHERE id = ?1")?
                .execute(params![window, deadline_ms])?;
            insert_trigger(tx, window, trigger, fired_ms, None, false)
        })
    }

    /// Marks every unresolved trigger named `trigger_id` on the windows of
    /// `resource` that fired at or before `now_ms` as resolved at `now_ms`,
    /// and moves one window's deadline if asked. Returns how many triggers
    /// were resolved.
    pub(crate) fn resolve_trigger(
        &mut self,
        resource: &str,
        trigger_id: &str,
        now_ms: i64,
        new_deadline: Option<(WindowRow, i64)>,
    ) -> Result<usize> {
        self.transaction(|tx, _, _| {
            let n = tx
                .prepare_cached(
                    "UPDATE window_triggers SET resolved_ms = ?3
                     WHERE resolved_ms IS NULL AND trigger_id = ?2 AND fired_ms <= ?3
                       AND window_id IN (SELECT w.id FROM windows w
                                         JOIN resources r ON r.id = w.resource_id
                                         WHERE r.external_id = ?1)",
                )?
                .execute(params![resource, trigger_id, now_ms])?;
            if let Some((window, deadline)) = new_deadline {
                tx.prepare_cached("UPDATE windows SET deadline_ms = ?2 WHERE id = ?1")?
                    .execute(params![window, deadline])?;
            }
            super::replay::insert_control(tx, resource, Some(trigger_id), now_ms, n > 0)?;
            Ok(n)
        })
    }

    /// The windows still marked `recording` whose close is not queued (those
    /// are the closer's), oldest first, with their points counted (sealed
    /// and in the journal, read in one pass).
    pub(crate) fn recording_windows(&mut self) -> Result<Vec<RecoveredWindow>> {
        let conn: &Connection = &self.conn;
        let found: Vec<(RecoveredWindow, Option<PointId>)> = conn
            .prepare(
                "SELECT w.id, w.public_id, r.external_id, w.opened_ms, w.deadline_ms,
                        w.recent_from, w.start_ms
                 FROM windows w JOIN resources r ON r.id = w.resource_id
                 WHERE w.status = 'recording'
                   AND NOT EXISTS (SELECT 1 FROM window_closes c WHERE c.window_id = w.id)
                 ORDER BY w.id",
            )?
            .query_map([], |r| {
                let w = RecoveredWindow {
                    row: r.get(0)?,
                    public_id: WindowId::new(r.get::<_, String>(1)?),
                    resource: r.get(2)?,
                    opened_ms: r.get(3)?,
                    start_ms: r.get(6)?,
                    deadline_ms: r.get(4)?,
                    points: 0,
                    last_ts: None,
                    unresolved_alerts: Vec::new(),
                };
                Ok((w, r.get(5)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut journal = if found.is_empty() {
            Journal::default()
        } else {
            Journal::read(conn)?
        };
        let mut alerts = conn.prepare(
            "SELECT trigger_id, fired_ms FROM window_triggers
             WHERE window_id = ?1 AND trigger_type = 'alert'
               AND trigger_id IS NOT NULL AND resolved_ms IS NULL
             ORDER BY id",
        )?;
        let mut windows = Vec::with_capacity(found.len());
        for (mut w, recent_from) in found {
            w.unresolved_alerts = alerts
                .query_map([w.row], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(String, i64)>>>()?;
            let at = Whereabouts {
                window: w.row,
                opened_ms: w.opened_ms,
                recent_from,
            };
            let times = WindowPoints::read(conn, at, Some(&mut journal))?.times();
            w.points = times.len();
            w.last_ts = times.last().copied();
            windows.push(w);
        }
        Ok(windows)
    }
}

/// [`new_public_id`], or, in the unlikely case that an imported window
/// already has that id, the same with `-2`, `-3`... appended.
fn free_public_id(tx: &Connection, fired_ms: i64, tag: &str, row: WindowRow) -> Result<WindowId> {
    let base = new_public_id(fired_ms, tag, row);
    let mut exists = tx.prepare_cached("SELECT 1 FROM windows WHERE public_id = ?1")?;
    let mut candidate = base.clone();
    for n in 2.. {
        if !exists.exists([candidate.as_str()])? {
            break;
        }
        candidate = WindowId::new(format!("{base}-{n}"));
    }
    Ok(candidate)
}

/// `iw-<UTC yyyymmddhhmmss of the trigger>-<database tag>-<row id>`:
/// unique among the database's generated ids because the row id is, across
/// databases because of the random tag (`migrations/V6`), and readable
/// because of the time.
fn new_public_id(fired_ms: i64, tag: &str, row: WindowRow) -> WindowId {
    let t = Timestamp::from_unix_ms(fired_ms).to_datetime();
    WindowId::new(format!(
        "iw-{:04}{:02}{:02}{:02}{:02}{:02}-{tag}-{}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        row.0
    ))
}

/// The `resources` row of `resource`, created if new; a name or type given
/// here replaces the stored one, an absent one keeps it.
pub(super) fn upsert_resource(tx: &Connection, resource: Resource<'_>) -> Result<ResourceRow> {
    Ok(tx
        .prepare_cached(
            "INSERT INTO resources (external_id, name, type) VALUES (?1, ?2, ?3)
             ON CONFLICT (external_id) DO UPDATE
                SET name = coalesce(excluded.name, resources.name),
                    type = coalesce(excluded.type, resources.type)
             RETURNING id",
        )?
        .query_row(params![resource.id, resource.name, resource.kind], |r| {
            r.get(0)
        })?)
}

/// Records a trigger of `window` (the one that opened it if `opened`).
pub(super) fn insert_trigger(
    tx: &Connection,
    window: WindowRow,
    trigger: &Trigger,
    fired_ms: i64,
    resolved_ms: Option<i64>,
    opened: bool,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO window_triggers
            (window_id, resource_id, trigger_type, trigger_id, fired_ms, resolved_ms, opened_window)
         VALUES (?1, (SELECT resource_id FROM windows WHERE id = ?1), ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        window,
        trigger.kind.as_str(),
        trigger.id,
        fired_ms,
        resolved_ms,
        opened
    ])?;
    Ok(())
}
