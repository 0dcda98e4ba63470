//! Writes: the recorder's [`Writer`] and the store-level maintenance calls.
//!
//! Every write is one `BEGIN IMMEDIATE` transaction; on any error it rolls
//! back whole and the caller keeps its pending data to retry, so a failed
//! commit (a full disk, a locked file) loses nothing and leaves no partial rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use rusqlite::{Connection, OptionalExtension, Statement, TransactionBehavior, params};

use super::{Conn, Store};
use crate::anomaly::{AnomalyConfig, window_anomalies};
use crate::error::{Error, Result};
use crate::model::{Resource, Timestamp, Trigger, TriggerType, WindowId, WindowStatus};
use crate::names::{MetricKey, MetricNames};
use crate::summary::metric_stats;

/// Points waiting to be written, for any number of windows.
///
/// Values live in one flat vector shared by all points, so a tick with a
/// thousand open windows allocates nothing once the batch has warmed up.
#[derive(Debug, Default)]
pub(crate) struct PointBatch {
    points: Vec<PendingPoint>,
    values: Vec<(MetricKey, f64)>,
}

#[derive(Debug)]
struct PendingPoint {
    window: i64,
    ts: i64,
    values: std::ops::Range<usize>,
    metadata: Option<Arc<str>>,
}

impl PointBatch {
    /// Queues one point of `window`.
    pub(crate) fn push(
        &mut self,
        window: i64,
        ts: i64,
        values: impl IntoIterator<Item = (MetricKey, f64)>,
        metadata: Option<Arc<str>>,
    ) {
        let start = self.values.len();
        self.values.extend(values);
        self.points.push(PendingPoint {
            window,
            ts,
            values: start..self.values.len(),
            metadata,
        });
    }

    /// Number of queued points.
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    /// True when nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// The ids of the points of `window`, given the `ids` [`insert_points`]
    /// assigned to the batch.
    fn ids_of(&self, window: i64, ids: std::ops::Range<i64>) -> impl Iterator<Item = i64> + '_ {
        ids.zip(&self.points)
            .filter(move |(_, p)| p.window == window)
            .map(|(id, _)| id)
    }

    /// Forgets everything (keeping the allocations).
    pub(crate) fn clear(&mut self) {
        self.points.clear();
        self.values.clear();
    }
}

/// A window to close in the next commit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Closing {
    /// Window row id.
    pub(crate) window: i64,
    /// Final status (not `Recording`).
    pub(crate) status: WindowStatus,
    /// End time, ms.
    pub(crate) end_ms: i64,
}

/// What to trim after a commit.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Trim {
    /// Closed windows that ended at or before this are deleted.
    pub(crate) cutoff_ms: i64,
    /// Keep at most this many closed windows.
    pub(crate) max_windows: usize,
}

/// A window found `recording` when the database was opened.
#[derive(Debug)]
pub(crate) struct RecoveredWindow {
    pub(crate) row: i64,
    pub(crate) public_id: WindowId,
    pub(crate) resource: String,
    pub(crate) opened_ms: i64,
    pub(crate) deadline_ms: i64,
    pub(crate) points: usize,
    pub(crate) last_ts: Option<i64>,
    /// Unresolved `alert` triggers: (trigger id, fired time), oldest first.
    pub(crate) unresolved_alerts: Vec<(String, i64)>,
}

/// A request from another process to open a window.
#[derive(Debug)]
pub(crate) struct TriggerRequest {
    pub(crate) id: i64,
    pub(crate) resource: String,
    pub(crate) trigger: Trigger,
}

/// The description of a window to create.
pub(crate) struct NewWindow<'a> {
    pub(crate) resource: Resource<'a>,
    pub(crate) trigger: &'a Trigger,
    pub(crate) fired_ms: i64,
    pub(crate) start_ms: i64,
    pub(crate) deadline_ms: i64,
    /// `max_windows_per_resource_per_day` (0 = unlimited).
    pub(crate) daily_limit: usize,
}

/// What [`Writer::open_window`] did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    /// A new window: its row id and public id.
    Window(i64, WindowId),
    /// Over the daily limit: the trigger was recorded as suppressed.
    Suppressed,
}

/// Page cache of the writer, in KiB (SQLite's default is 2,000).
///
/// Before schema version 3, each tick touched the last index page of every
/// open window, with 1,000 open windows about 4.4 MiB, which at the default
/// was re-read every tick; 8 MiB kept it (10% of such a tick). Now a tick
/// touches only the tails of the tables, and the cache holds the recent
/// points that closing windows read back (not all of them: with 1,000
/// windows of 500 points recording together, closing them reads ~100 MB of
/// pages, mostly from the OS cache). The bundled
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
const WRITER_CACHE_KIB: i64 = 8 * 1024;

/// The recorder's write connection, with the id caches of the hot path.
pub(crate) struct Writer {
    pub(super) conn: Conn,
    /// Database id of each interned metric, by `MetricKey` (0 = not looked up).
    /// Cleared whenever a transaction rolls back, since it may hold ids that
    /// transaction created.
    pub(super) metric_ids: Vec<i64>,
    /// Rows for `point_values`, reused between commits.
    scratch: Vec<(i64, i64, f64)>,
    /// How closing windows score their anomalies.
    anomaly: AnomalyConfig,
    /// The ids of the committed points of each recording window this writer
    /// opened or recovered, ascending; a window's entry goes when it closes.
    /// Closing a window reads its points by these ids: its id range also
    /// holds the points of every window recording at the same time (see
    /// migrations/V4). A window without an entry is found by its range.
    pub(super) points: HashMap<i64, Vec<i64>>,
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
    pub(crate) fn new(conn: Conn, path: Option<&std::path::Path>) -> Result<Writer> {
        conn.pragma_update(None, "cache_size", -WRITER_CACHE_KIB)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        let tag: String =
            conn.query_row("SELECT tag FROM store_info WHERE id = 1", [], |r| r.get(0))?;
        let mut writer = Writer {
            tag,
            path: path.map(std::path::Path::to_path_buf),
            commits: 0,
            conn,
            metric_ids: Vec::new(),
            scratch: Vec::new(),
            anomaly: AnomalyConfig::default(),
            points: HashMap::new(),
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
        let page: i64 = self.conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let free = self.path.as_deref().and_then(super::free_bytes);
        let pages = free.map_or(super::WAL_AUTOCHECKPOINT, |free| {
            (free as i64 / 8 / page).clamp(64, super::WAL_AUTOCHECKPOINT)
        });
        self.conn.pragma_update(None, "wal_autocheckpoint", pages)?;
        self.conn
            .pragma_update(None, "journal_size_limit", pages * page)?;
        Ok(())
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

    /// Sets how closing windows score anomalies.
    pub(crate) fn set_anomaly_config(&mut self, config: AnomalyConfig) {
        self.anomaly = config;
    }

    /// Runs `f` in one immediate transaction; on error rolls back and forgets
    /// cached metric ids.
    pub(super) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&Connection, &mut Vec<i64>, &mut Vec<(i64, i64, f64)>) -> Result<T>,
    ) -> Result<T> {
        let Writer {
            conn,
            metric_ids,
            scratch,
            ..
        } = self;
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

    /// Writes queued points and closes windows in one transaction, then trims
    /// history in a second one (see [`trim`]). Returns the number of windows
    /// trimmed.
    ///
    /// Once the first transaction commits the call succeeds: a failed trim is
    /// logged and simply happens at the next completion (or open), since
    /// reporting it as a failed commit would make the caller queue the
    /// committed points again.
    pub(crate) fn commit(
        &mut self,
        names: &MetricNames,
        batch: &PointBatch,
        closings: &[Closing],
        trim: Option<Trim>,
    ) -> Result<usize> {
        let anomaly = self.anomaly.clone();
        let known: Vec<Option<Vec<i64>>> = closings
            .iter()
            .map(|c| self.points.get(&c.window).cloned())
            .collect();
        self.commits += 1;
        if self.commits >= 256 {
            self.bound_wal()?;
        }
        let committed = self.transaction(|tx, metric_ids, scratch| {
            let new_ids = insert_points(tx, names, metric_ids, scratch, batch, None)?;
            for (c, known) in closings.iter().zip(known) {
                let ids = known.map(|mut ids| {
                    ids.extend(batch.ids_of(c.window, new_ids.clone()));
                    ids
                });
                close_window(tx, c, ids, Some(&anomaly))?;
            }
            Ok(new_ids)
        });
        if let Err(e) = &committed
            && e.is_disk_full()
        {
            self.relieve_full_disk();
        }
        let new_ids = committed?;
        // Committed: only now do the lists take the new ids.
        for (id, p) in new_ids.zip(&batch.points) {
            if let Some(ids) = self.points.get_mut(&p.window) {
                ids.push(id);
            }
        }
        for c in closings {
            self.points.remove(&c.window);
        }
        let Some(t) = trim else { return Ok(0) };
        self.replay.clear();
        match self::trim(&self.conn, t) {
            Ok(report) => Ok(report.windows),
            Err(e) => {
                tracing::warn!(error = %crate::error_chain(&e), "trimming history failed; it runs again after the next completion");
                Ok(0)
            }
        }
    }

    /// Creates a window with its first trigger and its buffered points (all
    /// rows of `pre`, whatever window they name).
    ///
    /// With a daily limit, a resource that already opened that many windows in
    /// the 24 hours before `fired_ms` gets no window: the trigger is recorded
    /// as suppressed instead.
    pub(crate) fn open_window(
        &mut self,
        names: &MetricNames,
        w: &NewWindow<'_>,
        pre: &PointBatch,
    ) -> Result<Opened> {
        let tag = self.tag.clone();
        let (opened, ids) = self.transaction(|tx, metric_ids, scratch| {
            let resource_id = upsert_resource(tx, w.resource)?;
            if w.daily_limit > 0 {
                let since = w.fired_ms.saturating_sub(DAY_MS);
                let recent: i64 = tx
                    .prepare_cached(
                        "SELECT count(*) FROM windows WHERE resource_id = ?1 AND opened_ms > ?2",
                    )?
                    .query_row(params![resource_id, since], |r| r.get(0))?;
                if recent >= i64::try_from(w.daily_limit).unwrap_or(i64::MAX) {
                    tx.prepare_cached(
                        "INSERT INTO window_triggers (window_id, resource_id, trigger_type, trigger_id,
                                                      fired_ms, opened_window, suppressed)
                         VALUES (NULL, ?1, ?2, ?3, ?4, 0, 1)",
                    )?
                    .execute(params![
                        resource_id,
                        w.trigger.kind.as_str(),
                        w.trigger.id,
                        w.fired_ms
                    ])?;
                    return Ok((Opened::Suppressed, None));
                }
            }
            let row: i64 = tx.query_row(
                "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'windows'), 0),
                            coalesce((SELECT max(id) FROM windows), 0)) + 1",
                [],
                |r| r.get(0),
            )?;
            let public_id = free_public_id(tx, w.fired_ms, &tag, row)?;
            tx.prepare_cached(
                "INSERT INTO windows (id, public_id, resource_id, trigger_type, trigger_id,
                                      start_ms, deadline_ms, status, opened_ms, first_point_id)
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
            insert_trigger(tx, row, w.trigger, w.fired_ms, None, true)?;
            let ids: Vec<i64> = insert_points(tx, names, metric_ids, scratch, pre, Some(row))?
                .collect();
            Ok((Opened::Window(row, public_id), Some(ids)))
        })?;
        if let (Opened::Window(row, _), Some(ids)) = (&opened, ids) {
            self.points.insert(*row, ids);
        }
        Ok(opened)
    }

    /// Records a trigger that extends an open window to `deadline_ms`.
    pub(crate) fn extend_window(
        &mut self,
        window: i64,
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
        new_deadline: Option<(i64, i64)>,
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

    /// The windows still marked `recording`, oldest first, with their points
    /// counted; their point ids become this writer's lists.
    ///
    /// One scan from the oldest window's first point finds the points of all
    /// of them (a scan per window would read the shared range once each).
    pub(crate) fn recording_windows(&mut self) -> Result<Vec<RecoveredWindow>> {
        let conn: &Connection = &self.conn;
        let found: Vec<(RecoveredWindow, i64)> = conn
            .prepare(
                "SELECT w.id, w.public_id, r.external_id, w.opened_ms, w.deadline_ms,
                        w.first_point_id
                 FROM windows w JOIN resources r ON r.id = w.resource_id
                 WHERE w.status = 'recording'
                 ORDER BY w.id",
            )?
            .query_map([], |r| {
                let w = RecoveredWindow {
                    row: r.get(0)?,
                    public_id: WindowId::new(r.get::<_, String>(1)?),
                    resource: r.get(2)?,
                    opened_ms: r.get(3)?,
                    deadline_ms: r.get(4)?,
                    points: 0,
                    last_ts: None,
                    unresolved_alerts: Vec::new(),
                };
                Ok((w, r.get(5)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let from = found.iter().map(|&(_, first_point)| first_point).min();
        let mut windows: Vec<RecoveredWindow> = found.into_iter().map(|(w, _)| w).collect();
        let mut lists: HashMap<i64, (Vec<i64>, Option<i64>)> = windows
            .iter()
            .map(|w| (w.row, (Vec::new(), None)))
            .collect();
        if let Some(from) = from {
            let mut stmt =
                conn.prepare("SELECT id, window_id, ts_ms FROM data_points WHERE id >= ?1")?;
            let mut rows = stmt.query([from])?;
            while let Some(r) = rows.next()? {
                if let Some((ids, last_ts)) = lists.get_mut(&r.get::<_, i64>(1)?) {
                    ids.push(r.get(0)?);
                    let ts: i64 = r.get(2)?;
                    *last_ts = Some(last_ts.map_or(ts, |t: i64| t.max(ts)));
                }
            }
        }
        let mut alerts = conn.prepare(
            "SELECT trigger_id, fired_ms FROM window_triggers
             WHERE window_id = ?1 AND trigger_type = 'alert'
               AND trigger_id IS NOT NULL AND resolved_ms IS NULL
             ORDER BY id",
        )?;
        for w in &mut windows {
            w.unresolved_alerts = alerts
                .query_map([w.row], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<Vec<(String, i64)>>>()?;
            if let Some((ids, last_ts)) = lists.remove(&w.row) {
                w.points = ids.len();
                w.last_ts = last_ts;
                self.points.insert(w.row, ids);
            }
        }
        Ok(windows)
    }

    /// Requests from other processes not yet handled, oldest first.
    pub(crate) fn pending_requests(&mut self) -> Result<Vec<TriggerRequest>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, resource, trigger_type, trigger_id FROM trigger_requests
             WHERE handled_ms IS NULL ORDER BY id LIMIT 1000",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, resource, kind, trigger_id) = row?;
            // The CHECK constraint guarantees a known name.
            let kind: TriggerType = kind.parse()?;
            out.push(TriggerRequest {
                id,
                resource,
                trigger: Trigger::new(kind, trigger_id),
            });
        }
        Ok(out)
    }

    /// Marks a request handled, with the window it opened or why it failed.
    pub(crate) fn finish_request(
        &mut self,
        id: i64,
        now_ms: i64,
        outcome: std::result::Result<&WindowId, String>,
    ) -> Result<()> {
        let (window, error) = match outcome {
            Ok(w) => (Some(w.as_str().to_owned()), None),
            Err(e) => (None, Some(e)),
        };
        self.conn
            .prepare_cached(
                "UPDATE trigger_requests SET handled_ms = ?2, window_id = ?3, error = ?4 WHERE id = ?1",
            )?
            .execute(params![id, now_ms, window, error])?;
        Ok(())
    }
}

/// [`new_public_id`], or, in the unlikely case that an imported window
/// already has that id, the same with `-2`, `-3`... appended.
fn free_public_id(tx: &Connection, fired_ms: i64, tag: &str, row: i64) -> Result<WindowId> {
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

/// The id the next data point gets: ids only grow (the caller holds the write
/// lock), which is what lets a window find its points by id range.
pub(super) fn next_point_id(tx: &Connection) -> Result<i64> {
    Ok(tx
        .prepare_cached("SELECT coalesce(max(id), 0) + 1 FROM data_points")?
        .query_row([], |r| r.get(0))?)
}

/// `iw-<UTC yyyymmddhhmmss of the trigger>-<database tag>-<row id>`:
/// unique among the database's generated ids because the row id is, across
/// databases because of the random tag (`migrations/V6`), and readable
/// because of the time.
fn new_public_id(fired_ms: i64, tag: &str, row: i64) -> WindowId {
    let t = Timestamp::from_unix_ms(fired_ms).to_datetime();
    WindowId::new(format!(
        "iw-{:04}{:02}{:02}{:02}{:02}{:02}-{tag}-{row}",
        t.year(),
        t.month() as u8,
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

/// The `resources` row of `resource`, created if new; a name or type given
/// here replaces the stored one, an absent one keeps it.
pub(super) fn upsert_resource(tx: &Connection, resource: Resource<'_>) -> Result<i64> {
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
    window: i64,
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

/// The database id of metric `key`, creating the `metrics` row on first use.
fn metric_id(
    tx: &Connection,
    names: &MetricNames,
    ids: &mut Vec<i64>,
    key: MetricKey,
) -> Result<i64> {
    let i = key.0 as usize;
    if let Some(&id) = ids.get(i).filter(|id| **id != 0) {
        return Ok(id);
    }
    let name = names.name(key);
    tx.prepare_cached("INSERT INTO metrics (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")?
        .execute([name])?;
    let id: i64 = tx
        .prepare_cached("SELECT id FROM metrics WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?;
    if ids.len() <= i {
        ids.resize(names.len().max(i + 1), 0);
    }
    ids[i] = id;
    Ok(id)
}

/// Inserts every point of `batch` (into `window_override` if given) with
/// multi-row statements. Point ids are assigned here, after `max(id)`, which is
/// stable because the caller holds the write lock. Returns the ids assigned:
/// consecutive, in the batch's order.
pub(super) fn insert_points(
    tx: &Connection,
    names: &MetricNames,
    metric_ids: &mut Vec<i64>,
    values: &mut Vec<(i64, i64, f64)>,
    batch: &PointBatch,
    window_override: Option<i64>,
) -> Result<std::ops::Range<i64>> {
    let first_id = next_point_id(tx)?;
    let ids = first_id..first_id + batch.len() as i64;
    if batch.is_empty() {
        return Ok(ids);
    }
    values.clear();
    for (i, p) in batch.points.iter().enumerate() {
        let point_id = first_id + i as i64;
        for &(key, v) in &batch.values[p.values.clone()] {
            values.push((point_id, metric_id(tx, names, metric_ids, key)?, v));
        }
    }
    let rows: Vec<(i64, i64, i64, Option<&str>)> = batch
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            (
                first_id + i as i64,
                window_override.unwrap_or(p.window),
                p.ts,
                p.metadata.as_deref(),
            )
        })
        .collect();
    insert_rows(tx, &DATA_POINTS, &rows, |stmt, at, &(id, w, ts, meta)| {
        stmt.raw_bind_parameter(at, id)?;
        stmt.raw_bind_parameter(at + 1, w)?;
        stmt.raw_bind_parameter(at + 2, ts)?;
        stmt.raw_bind_parameter(at + 3, meta)
    })?;
    insert_rows(tx, &POINT_VALUES, values, |stmt, at, &(p, m, v)| {
        stmt.raw_bind_parameter(at, p)?;
        stmt.raw_bind_parameter(at + 1, m)?;
        stmt.raw_bind_parameter(at + 2, v)
    })?;
    Ok(ids)
}

/// An `INSERT ... VALUES (?, ...), (?, ...)` statement family: the same insert
/// for several row counts, so any number of rows goes in a few executions.
struct MultiInsert {
    head: &'static str,
    columns: usize,
    sql: OnceLock<Vec<(usize, String)>>,
}

/// Rows per statement, largest first; any count is a sum of these with at most
/// three of each smaller size.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

impl MultiInsert {
    const fn new(head: &'static str, columns: usize) -> MultiInsert {
        MultiInsert {
            head,
            columns,
            sql: OnceLock::new(),
        }
    }

    /// The statement text for each chunk size. Only placeholders are
    /// generated here; values are always bound.
    fn statements(&self) -> &[(usize, String)] {
        self.sql.get_or_init(|| {
            let row = ["(", &vec!["?"; self.columns].join(","), ")"].concat();
            CHUNKS
                .iter()
                .map(|&n| {
                    (
                        n,
                        [self.head, " VALUES ", &vec![row.as_str(); n].join(",")].concat(),
                    )
                })
                .collect()
        })
    }
}

static DATA_POINTS: MultiInsert = MultiInsert::new(
    "INSERT INTO data_points (id, window_id, ts_ms, metadata)",
    4,
);
static POINT_VALUES: MultiInsert =
    MultiInsert::new("INSERT INTO point_values (point_id, metric_id, value)", 3);
static WINDOW_POINTS: MultiInsert =
    MultiInsert::new("INSERT INTO window_points (window_id, point_id)", 2);

fn insert_rows<R>(
    tx: &Connection,
    table: &MultiInsert,
    rows: &[R],
    bind: impl Fn(&mut Statement<'_>, usize, &R) -> rusqlite::Result<()>,
) -> Result<()> {
    let mut rest = rows;
    for (n, sql) in table.statements() {
        if rest.len() < *n {
            continue;
        }
        let mut stmt = tx.prepare_cached(sql)?;
        while rest.len() >= *n {
            for (i, row) in rest[..*n].iter().enumerate() {
                bind(&mut stmt, i * table.columns + 1, row)?;
            }
            stmt.raw_execute()?;
            rest = &rest[*n..];
        }
    }
    Ok(())
}

/// Closes a window: computes its summary (and, with `anomalies`, its
/// anomalies) from the stored points, writes them, the window's point list
/// and the final status, all inside the caller's transaction. `ids` are the
/// window's point ids if the caller knows them (ascending); without them the
/// window's id range is scanned for them. A window already closed is left
/// alone.
pub(super) fn close_window(
    tx: &Connection,
    c: &Closing,
    ids: Option<Vec<i64>>,
    anomalies: Option<&AnomalyConfig>,
) -> Result<()> {
    let window: Option<(i64, i64)> = tx
        .prepare_cached(
            "SELECT opened_ms, first_point_id FROM windows WHERE id = ?1 AND status = 'recording'",
        )?
        .query_row([c.window], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let Some((opened_ms, first_point)) = window else {
        return Ok(());
    };
    let ids = match ids {
        Some(ids) => ids,
        // Every point of the window has an id at or after `first_point` (see
        // migrations/V3); ids of other windows' points interleave with them.
        None => tx
            .prepare_cached("SELECT id FROM data_points WHERE id >= ?2 AND window_id = ?1")?
            .query_map([c.window, first_point], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<i64>>>()?,
    };
    // Per metric id: (ts, value), then in time order.
    let mut series: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
    let mut found: Vec<i64> = Vec::with_capacity(ids.len());
    let (mut first, mut last) = (None::<i64>, None::<i64>);
    let mut take = |r: &rusqlite::Row<'_>| -> rusqlite::Result<()> {
        let (id, ts): (i64, i64) = (r.get(0)?, r.get(1)?);
        if found.last() != Some(&id) {
            found.push(id);
            first = Some(first.map_or(ts, |f| f.min(ts)));
            last = Some(last.map_or(ts, |l| l.max(ts)));
        }
        if let (Some(metric), Some(value)) = (r.get(2)?, r.get(3)?) {
            series.entry(metric).or_default().push((ts, value));
        }
        Ok(())
    };
    // A window recorded alone fills most of its range: one range scan. One
    // recorded among many is read point by point.
    match (ids.first(), ids.last()) {
        (Some(&lo), Some(&hi)) if hi - lo < 2 * ids.len() as i64 => {
            let mut stmt = tx.prepare_cached(
                "SELECT p.id, p.ts_ms, v.metric_id, v.value
                 FROM data_points p LEFT JOIN point_values v ON v.point_id = p.id
                 WHERE p.id BETWEEN ?2 AND ?3 AND p.window_id = ?1
                 ORDER BY p.id",
            )?;
            let mut rows = stmt.query([c.window, lo, hi])?;
            while let Some(r) = rows.next()? {
                take(r)?;
            }
        }
        _ => {
            let mut stmt = tx.prepare_cached(
                "SELECT p.id, p.ts_ms, v.metric_id, v.value
                 FROM data_points p LEFT JOIN point_values v ON v.point_id = p.id
                 WHERE p.id = ?1 AND p.window_id = ?2",
            )?;
            for &id in &ids {
                let mut rows = stmt.query([id, c.window])?;
                while let Some(r) = rows.next()? {
                    take(r)?;
                }
            }
        }
    }
    // Ids follow insertion order; a stable sort puts equal times in it.
    for points in series.values_mut() {
        points.sort_by_key(|&(ts, _)| ts);
    }
    let points = found.len() as i64;
    let rows: Vec<(i64, i64)> = found.iter().map(|&id| (c.window, id)).collect();
    insert_rows(tx, &WINDOW_POINTS, &rows, |stmt, at, &(w, id)| {
        stmt.raw_bind_parameter(at, w)?;
        stmt.raw_bind_parameter(at + 1, id)
    })?;
    let last_point = found.last().copied();
    let mut insert = tx.prepare_cached(
        "INSERT INTO window_metric_stats
            (window_id, metric_id, samples, peak, low, average, change, p50, p95, p99)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?;
    let mut insert_anomaly = tx.prepare_cached(
        "INSERT INTO window_anomalies (window_id, metric_id, ts_ms, value, score, description)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?;
    let mut name = tx.prepare_cached("SELECT name FROM metrics WHERE id = ?1")?;
    let mut values = Vec::new();
    for (metric, points) in &series {
        values.clear();
        values.extend(points.iter().map(|&(_, v)| v));
        if let Some(s) = metric_stats(&values) {
            insert.execute(params![
                c.window,
                metric,
                s.samples as i64,
                s.peak,
                s.low,
                s.average,
                s.change,
                s.p50,
                s.p95,
                s.p99
            ])?;
        }
        let Some(config) = anomalies else { continue };
        let metric_name: String = name.query_row([metric], |r| r.get(0))?;
        let threshold = config.threshold_for(&metric_name);
        for a in window_anomalies(points, opened_ms, threshold, config.min_baseline_points) {
            insert_anomaly.execute(params![
                c.window,
                metric,
                a.ts_ms,
                a.value,
                a.score,
                a.describe(&metric_name)
            ])?;
        }
    }
    let (summary_points, duration) = match (first, last) {
        (Some(f), Some(l)) if points > 0 => (Some(points), Some(l - f)),
        _ => (None, None),
    };
    tx.prepare_cached(
        "UPDATE windows SET status = ?2, end_ms = ?3, summary_points = ?4, duration_ms = ?5,
                            last_point_id = ?6, start_ms = min(start_ms, coalesce(?7, start_ms))
         WHERE id = ?1",
    )?
    .execute(params![
        c.window,
        c.status.as_str(),
        c.end_ms,
        summary_points,
        duration,
        last_point.unwrap_or(first_point - 1),
        first
    ])?;
    Ok(())
}

/// A day in milliseconds: the span of the per-resource window limit.
const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// What a trim deleted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// Windows deleted.
    pub windows: usize,
    /// Data points deleted with them.
    pub points: usize,
    /// Of the windows deleted, those never pushed to the fleet's central
    /// database: over the bound of unpushed windows trimming spares (see
    /// `store::push::spare_unpushed`).
    pub unpushed: usize,
}

/// Deletes the closed windows `trim` selects, with everything recorded under
/// them, in an immediate transaction of its own on `conn`.
///
/// The schema cascades deletes from `windows`, but a cascade finds a
/// window's points by scanning `data_points` (which has no index by window,
/// see migrations/V3), and SQLite runs a cascade as a sub-program per parent
/// row (callgrind: 80% of a completion that trimmed one 500-point window).
/// So enforcement is off for this transaction only (the pragma cannot change
/// inside one) and [`delete_window`] deletes every dependent row itself,
/// through the window's `window_points` list; a unit test fails if a table hanging from
/// `windows` is missing there.
fn trim(conn: &Connection, trim: Trim) -> Result<PruneReport> {
    conn.pragma_update(None, "foreign_keys", false)?;
    let report = (|| {
        let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
        let report = trim_windows(&tx, trim)?;
        tx.commit()?;
        Ok(report)
    })();
    // On every path: the connection goes back with enforcement on.
    conn.pragma_update(None, "foreign_keys", true)?;
    report
}

fn trim_windows(tx: &Connection, trim: Trim) -> Result<PruneReport> {
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
    // Fleet push: windows not yet pushed are spared, up to the window limit.
    let (ids, unpushed) = super::push::spare_unpushed(tx, ids, trim.max_windows)?;
    let mut report = PruneReport {
        unpushed,
        ..PruneReport::default()
    };
    for id in ids {
        report.points += delete_window(tx, id)?;
        report.windows += 1;
    }
    tx.prepare_cached("DELETE FROM control_events WHERE at_ms <= ?1")?
        .execute([trim.cutoff_ms])?;
    Ok(report)
}

/// The ids of the points of window `?1` (closed): its list.
macro_rules! window_point_ids {
    () => {
        "SELECT point_id FROM window_points WHERE window_id = ?1"
    };
}

/// Deletes one closed window and everything recorded under it, children
/// first; returns how many points it had. A unit test checks that these are
/// all the tables hanging from `windows`.
fn delete_window(tx: &Connection, id: i64) -> Result<usize> {
    tx.prepare_cached(concat!(
        "DELETE FROM point_values WHERE point_id IN (",
        window_point_ids!(),
        ")"
    ))?
    .execute([id])?;
    let points = tx
        .prepare_cached(concat!(
            "DELETE FROM data_points WHERE id IN (",
            window_point_ids!(),
            ")"
        ))?
        .execute([id])?;
    for sql in [
        "DELETE FROM window_points WHERE window_id = ?1",
        "DELETE FROM window_pushes WHERE window_id = ?1",
        "DELETE FROM window_anomalies WHERE window_id = ?1",
        "DELETE FROM window_metric_stats WHERE window_id = ?1",
        "DELETE FROM window_triggers WHERE window_id = ?1",
        "DELETE FROM windows WHERE id = ?1",
    ] {
        tx.prepare_cached(sql)?.execute([id])?;
    }
    Ok(points)
}

impl Store {
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
        trim(
            &conn,
            Trim {
                cutoff_ms: now.saturating_sub(retention).as_unix_ms(),
                max_windows,
            },
        )
    }

    /// Asks the recorder running on this database to open a window on
    /// `resource` at its next tick. Returns the request's id.
    pub fn request_trigger(
        &self,
        resource: &str,
        trigger: &Trigger,
        now: Timestamp,
    ) -> Result<i64> {
        crate::validate::validate_resource_id(resource)?;
        crate::validate::trigger(trigger)?;
        let conn = self.conn()?;
        conn.prepare_cached(
            "INSERT INTO trigger_requests (resource, trigger_type, trigger_id, requested_ms)
             VALUES (?1, ?2, ?3, ?4)",
        )?
        .execute(params![
            resource,
            trigger.kind.as_str(),
            trigger.id,
            now.as_unix_ms()
        ])?;
        Ok(conn.last_insert_rowid())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The tables `delete_window` deletes from.
    const WINDOW_TABLES: [&str; 8] = [
        "point_values",
        "data_points",
        "window_points",
        "window_pushes",
        "window_metric_stats",
        "window_anomalies",
        "window_triggers",
        "windows",
    ];

    /// Three windows recorded together (their points interleave). The writer
    /// knows the point ids of the first two; the third, as a window it did
    /// not record would be, is found by its id range. All three close with
    /// exactly their own points, list and summary.
    #[test]
    fn closing_finds_a_window_s_points_with_or_without_its_id_list() {
        let store = Store::open_in_memory().unwrap();
        let mut writer = store.writer().unwrap();
        let mut names = MetricNames::default();
        let cpu = names.intern("cpu").unwrap();
        let trigger = Trigger::manual();
        let mut open = |resource| {
            let new = NewWindow {
                resource: Resource::from(resource),
                trigger: &trigger,
                fired_ms: 0,
                start_ms: 0,
                deadline_ms: 1_000_000,
                daily_limit: 0,
            };
            match writer.open_window(&names, &new, &PointBatch::default()) {
                Ok(Opened::Window(row, _)) => row,
                other => panic!("{other:?}"),
            }
        };
        let windows = [open("a"), open("b"), open("c")];
        for i in 0..10 {
            let mut batch = PointBatch::default();
            for (n, &w) in windows.iter().enumerate() {
                let value = 100.0 * n as f64 + i as f64;
                batch.push(w, i * 1000, [(cpu, value)], None);
            }
            writer.commit(&names, &batch, &[], None).unwrap();
        }
        assert!(writer.points.remove(&windows[2]).is_some());
        let closings = windows.map(|window| Closing {
            window,
            status: WindowStatus::Complete,
            end_ms: 10_000,
        });
        writer
            .commit(&names, &PointBatch::default(), &closings, None)
            .unwrap();
        assert!(
            writer.points.is_empty(),
            "closed windows' lists are dropped"
        );
        let conn = store.conn().unwrap();
        for (n, &w) in windows.iter().enumerate() {
            let got: (i64, i64, i64, f64, f64) = conn
                .query_row(
                    "SELECT (SELECT count(*) FROM window_points x JOIN data_points p
                             ON p.id = x.point_id AND p.window_id = x.window_id
                             WHERE x.window_id = ?1),
                            w.summary_points, s.samples, s.low, s.peak
                     FROM windows w JOIN window_metric_stats s ON s.window_id = w.id
                     WHERE w.id = ?1",
                    [w],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .unwrap();
            let low = 100.0 * n as f64;
            assert_eq!(got, (10, 10, 10, low, low + 9.0), "window {n}");
        }
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
        assert_eq!(under, WINDOW_TABLES.into_iter().collect::<BTreeSet<_>>());
    }
}
