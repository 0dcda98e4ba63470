//! Appending points to the journal (`recent_points`, `recent_values`), and
//! the multi-row inserts every bulk write uses.
//!
//! A tick's points go in as multi-row `INSERT`s through cached statements.
//! Point ids are assigned here from the journal's high mark, stable because the
//! caller holds the write lock, and only grow: the journal is append-only,
//! so a tick dirties only the tails of its two tables (see migrations/V3
//! and V11), and a window's journal points have ids from its `recent_from` on.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, OnceLock};

use rusqlite::{Connection, Statement};

use super::ids::{MetricId, PointId, WindowRow};
use crate::error::Result;
use crate::names::{MetricKey, MetricNames};

/// Samples waiting to be written, not yet tied to a window.
///
/// Values live in one flat vector shared by all samples, so a tick with a
/// thousand open windows allocates nothing once the batch has warmed up.
#[derive(Debug, Default)]
pub(crate) struct Samples {
    points: Vec<Sample>,
    values: Vec<(MetricKey, f64)>,
}

#[derive(Debug)]
struct Sample {
    ts: i64,
    values: Range<usize>,
    metadata: Option<Arc<str>>,
}

impl Samples {
    /// Queues one sample.
    pub(crate) fn push(
        &mut self,
        ts: i64,
        values: impl IntoIterator<Item = (MetricKey, f64)>,
        metadata: Option<Arc<str>>,
    ) {
        let start = self.values.len();
        self.values.extend(values);
        self.points.push(Sample {
            ts,
            values: start..self.values.len(),
            metadata,
        });
    }

    /// Number of queued samples.
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }

    /// True when nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Forgets everything (keeping the allocations).
    pub(crate) fn clear(&mut self) {
        self.points.clear();
        self.values.clear();
    }
}

/// Points waiting to be written, for any number of windows: [`Samples`] and
/// the window of each.
#[derive(Debug, Default)]
pub(crate) struct PointBatch {
    samples: Samples,
    windows: Vec<WindowRow>,
}

impl PointBatch {
    /// Marks in `used` (indexed by key) every metric of the queued points:
    /// their names must outlive a reclaim of the names table.
    pub(crate) fn mark_keys(&self, used: &mut [bool]) {
        for &(k, _) in &self.samples.values {
            if let Some(u) = used.get_mut(k.0 as usize) {
                *u = true;
            }
        }
    }

    /// Queues one point of `window`.
    pub(crate) fn push(
        &mut self,
        window: WindowRow,
        ts: i64,
        values: impl IntoIterator<Item = (MetricKey, f64)>,
        metadata: Option<Arc<str>>,
    ) {
        self.samples.push(ts, values, metadata);
        self.windows.push(window);
    }

    /// Number of queued points.
    pub(crate) fn len(&self) -> usize {
        self.windows.len()
    }

    /// True when nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Forgets everything (keeping the allocations).
    pub(crate) fn clear(&mut self) {
        self.samples.clear();
        self.windows.clear();
    }
}

/// Whose points a batch of samples is.
#[derive(Clone, Copy)]
pub(super) enum Owners<'a> {
    /// Every sample is one window's.
    One(WindowRow),
    /// Sample `i` is `windows[i]`'s.
    Each(&'a [WindowRow]),
}

impl Owners<'_> {
    fn of(self, i: usize) -> WindowRow {
        match self {
            Owners::One(w) => w,
            Owners::Each(ws) => ws[i],
        }
    }
}

/// The database id of each interned metric, by [`MetricKey`], looked up (or
/// created) on first use. Forgotten whenever a transaction rolls back, since
/// it may hold ids that transaction created. Every id held is pinned in
/// [`MetricPins`], so reclaiming unused `metrics` rows never deletes one this
/// writer may still write.
#[derive(Debug, Default)]
pub(crate) struct MetricIds(Vec<Option<MetricId>>, Arc<MetricPins>);

/// The `metrics` row ids a writer of this process holds in its cache: rows
/// no stored value uses yet may still be written with them, so
/// [`retention::reclaim_metric_names`](super::retention::reclaim_metric_names)
/// keeps them. Shared by the store and its writer.
#[derive(Debug, Default)]
pub(crate) struct MetricPins(std::sync::Mutex<HashMap<i64, u32>>);

impl MetricPins {
    fn pin(&self, id: MetricId) {
        *self.lock().entry(id.0).or_insert(0) += 1;
    }

    fn unpin(&self, id: MetricId) {
        let mut pins = self.lock();
        if let Some(n) = pins.get_mut(&id.0) {
            *n -= 1;
            if *n == 0 {
                pins.remove(&id.0);
            }
        }
    }

    /// Pins `id` as a writer's cache would.
    #[cfg(test)]
    pub(crate) fn pin_for_test(&self, id: i64) {
        self.pin(MetricId(id));
    }

    /// The pinned ids.
    pub(crate) fn ids(&self) -> Vec<i64> {
        self.lock().keys().copied().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, u32>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MetricIds {
    /// An empty cache pinning its ids in `pins`.
    pub(crate) fn new(pins: Arc<MetricPins>) -> MetricIds {
        MetricIds(Vec::new(), pins)
    }

    /// The id of `key`, creating its `metrics` row on first use.
    pub(super) fn get(
        &mut self,
        tx: &Connection,
        names: &MetricNames,
        key: MetricKey,
    ) -> Result<MetricId> {
        let i = key.0 as usize;
        if let Some(Some(id)) = self.0.get(i) {
            return Ok(*id);
        }
        let id = metric_row(tx, names.name(key))?;
        if self.0.len() <= i {
            self.0.resize(names.len().max(i + 1), None);
        }
        self.0[i] = Some(id);
        self.1.pin(id);
        Ok(id)
    }

    /// The id of `key` if it was looked up already.
    pub(super) fn known(&self, key: MetricKey) -> Option<MetricId> {
        self.0.get(key.0 as usize).copied().flatten()
    }

    /// Forgets the ids of `keys` (reclaimed: a later name may get the key).
    pub(super) fn forget(&mut self, keys: &[MetricKey]) {
        for k in keys {
            if let Some(id) = self.0.get_mut(k.0 as usize).and_then(Option::take) {
                self.1.unpin(id);
            }
        }
    }

    /// Forgets every id.
    pub(super) fn clear(&mut self) {
        for id in self.0.drain(..).flatten() {
            self.1.unpin(id);
        }
    }
}

/// The `metrics` row of `name`, created if new.
pub(super) fn metric_row(tx: &Connection, name: &str) -> Result<MetricId> {
    tx.prepare_cached("INSERT INTO metrics (name) VALUES (?1) ON CONFLICT (name) DO NOTHING")?
        .execute([name])?;
    Ok(tx
        .prepare_cached("SELECT id FROM metrics WHERE name = ?1")?
        .query_row([name], |r| r.get(0))?)
}

/// The id the next journal point gets: past every id the journal ever had
/// (`AUTOINCREMENT` keeps the high mark in `sqlite_sequence`), so ids are
/// never reused, even after a seal emptied the journal.
pub(super) fn next_point_id(tx: &Connection) -> Result<PointId> {
    Ok(tx
        .prepare_cached(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'recent_points'), 0),
                        coalesce((SELECT max(id) FROM recent_points), 0)) + 1",
        )?
        .query_row([], |r| r.get::<_, i64>(0).map(PointId))?)
}

/// Appends `samples` to the journal as points of `owners`. Returns the ids
/// assigned: consecutive, in the samples' order.
pub(super) fn insert_points(
    tx: &Connection,
    names: &MetricNames,
    metric_ids: &mut MetricIds,
    scratch: &mut Vec<(i64, MetricId, f64)>,
    samples: &Samples,
    owners: Owners<'_>,
) -> Result<Range<i64>> {
    let first = next_point_id(tx)?.0;
    let ids = first..first + samples.len() as i64;
    if samples.is_empty() {
        return Ok(ids);
    }
    scratch.clear();
    for (i, p) in samples.points.iter().enumerate() {
        for &(key, v) in &samples.values[p.values.clone()] {
            scratch.push((first + i as i64, metric_ids.get(tx, names, key)?, v));
        }
    }
    let rows: Vec<(i64, WindowRow, i64, Option<&str>)> = samples
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| (first + i as i64, owners.of(i), p.ts, p.metadata.as_deref()))
        .collect();
    insert_rows(tx, &RECENT_POINTS, &rows, |stmt, at, &(id, w, ts, meta)| {
        stmt.raw_bind_parameter(at, id)?;
        stmt.raw_bind_parameter(at + 1, w)?;
        stmt.raw_bind_parameter(at + 2, ts)?;
        stmt.raw_bind_parameter(at + 3, meta)
    })?;
    insert_rows(tx, &RECENT_VALUES, scratch, |stmt, at, &(p, m, v)| {
        stmt.raw_bind_parameter(at, p)?;
        stmt.raw_bind_parameter(at + 1, m)?;
        stmt.raw_bind_parameter(at + 2, v)
    })?;
    Ok(ids)
}

/// Appends a [`PointBatch`]: [`insert_points`] with each point's window.
pub(super) fn insert_batch(
    tx: &Connection,
    names: &MetricNames,
    metric_ids: &mut MetricIds,
    scratch: &mut Vec<(i64, MetricId, f64)>,
    batch: &PointBatch,
) -> Result<Range<i64>> {
    insert_points(
        tx,
        names,
        metric_ids,
        scratch,
        &batch.samples,
        Owners::Each(&batch.windows),
    )
}

/// An `INSERT ... VALUES (?, ...), (?, ...)` statement family: the same insert
/// for several row counts, so any number of rows goes in a few executions.
pub(super) struct MultiInsert {
    head: &'static str,
    columns: usize,
    sql: OnceLock<Vec<(usize, String)>>,
}

/// Rows per statement, largest first; any count is a sum of these with at most
/// three of each smaller size.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

impl MultiInsert {
    pub(super) const fn new(head: &'static str, columns: usize) -> MultiInsert {
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

static RECENT_POINTS: MultiInsert = MultiInsert::new(
    "INSERT INTO recent_points (id, window_id, ts_ms, metadata)",
    4,
);
static RECENT_VALUES: MultiInsert =
    MultiInsert::new("INSERT INTO recent_values (point_id, metric_id, value)", 3);

/// Inserts `rows` with `table`'s statements, `bind` filling one row's
/// placeholders from parameter index `at` on.
pub(super) fn insert_rows<R>(
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
