//! Queries: windows, their points and summaries, and database statistics.
//!
//! Reads run on pooled connections, outside the recorder's lock, and in WAL
//! mode they see the last committed tick without waiting for the writer.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::Store;
use super::ids::{MetricId, WindowRow};
use super::series::{Journal, Whereabouts, WindowPoints};
use crate::error::Result;
use crate::model::{
    DataPoint, IncidentSummary, IncidentWindow, Timestamp, WindowId, WindowStatus, WindowTrigger,
};

/// Which windows [`Store::windows`] returns. The default is every window,
/// most recent first, without points.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WindowFilter {
    /// Only windows of this resource id.
    pub resource: Option<String>,
    /// Only windows with this status.
    pub status: Option<WindowStatus>,
    /// Only windows recording at some point from this time on: those that
    /// ended at or after it, and those still recording.
    pub since: Option<Timestamp>,
    /// At most this many windows (0 = no limit).
    pub limit: usize,
    /// Load each window's data points too.
    pub with_points: bool,
}

/// A window's place in the listing's order (most recent first), from
/// [`Store::listing_cursor`] or [`Store::windows_after`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListingCursor(i64, i64);

/// Counts and sizes of a database, for `incident-recorder stats`.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct StoreStats {
    /// Number of windows per status name.
    pub windows_by_status: BTreeMap<String, u64>,
    /// Data points stored.
    pub points: u64,
    /// Metric values stored.
    pub values: u64,
    /// Distinct resources with stored windows.
    pub resources: u64,
    /// Distinct metric names.
    pub metrics: u64,
    /// Anomalies found in closed windows.
    pub anomalies: u64,
    /// Triggers suppressed by the daily window limit.
    pub suppressed_triggers: u64,
    /// Size of the database file in bytes (pages in use and free).
    pub database_bytes: u64,
    /// Start of the oldest window.
    pub oldest: Option<Timestamp>,
    /// Start of the newest window.
    pub newest: Option<Timestamp>,
}

const WINDOW_COLUMNS: &str = "SELECT w.id, w.public_id, r.external_id, r.name, r.type,
        w.trigger_type, w.trigger_id, w.start_ms, w.end_ms, w.deadline_ms, w.status,
        w.summary_points, w.duration_ms, w.opened_ms, w.recent_from
 FROM windows w JOIN resources r ON r.id = w.resource_id";

impl Store {
    /// The window with public id `id`, with its points and summary.
    pub fn window(&self, id: &str) -> Result<Option<IncidentWindow>> {
        let conn = self.conn()?;
        let sql = [WINDOW_COLUMNS, " WHERE w.public_id = ?1"].concat();
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query([id])?;
        let Some(row) = rows.next()? else {
            return Ok(None);
        };
        read_window(&conn, row, true, self.path.as_deref(), &mut Journals::One).map(Some)
    }

    /// Windows matching `filter`, most recent first: by start time descending,
    /// then by id descending, so the order is stable for equal start times.
    /// Recording windows are included and count toward the limit.
    pub fn windows(&self, filter: &WindowFilter) -> Result<Vec<IncidentWindow>> {
        let conn = self.conn()?;
        let mut out = Vec::new();
        each_window(
            &conn,
            filter,
            Order::NewestFirst,
            self.path.as_deref(),
            |w| {
                out.push(w);
                Ok::<_, crate::Error>(())
            },
            None,
        )?;
        Ok(out)
    }

    /// Where the window `id` is in the listing's order, to list the
    /// windows after it with [`Store::windows_after`]; `None` if there is
    /// no such window.
    pub fn listing_cursor(&self, id: &str) -> Result<Option<ListingCursor>> {
        let conn = self.conn()?;
        let at = conn
            .prepare_cached("SELECT start_ms, id FROM windows WHERE public_id = ?1")?
            .query_row([id], |r| Ok(ListingCursor(r.get(0)?, r.get(1)?)))
            .optional()?;
        Ok(at)
    }

    /// [`Store::windows`] from a position on, one window at a time: the
    /// windows matching `filter` (its `limit` and `with_points` included)
    /// that come after `after` in the listing's order (most recent first),
    /// or from the first, each handed to `f` with its own cursor, before
    /// the next is read. A cursor stays valid when windows are added or
    /// deleted, so a listing paged by cursors returns every window once.
    /// The first error, from the store or from `f`, stops the walk.
    pub fn windows_after<E: From<crate::Error>>(
        &self,
        filter: &WindowFilter,
        after: Option<ListingCursor>,
        mut f: impl FnMut(ListingCursor, IncidentWindow) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let conn = self.conn()?;
        let order = match after {
            None => Order::NewestFirst,
            Some(ListingCursor(start_ms, row)) => Order::NewestBefore(start_ms, row),
        };
        let at = std::cell::Cell::new(ListingCursor(0, 0));
        let mut last = |c: (i64, i64)| at.set(ListingCursor(c.0, c.1));
        let mut keyed = |w| f(at.get(), w);
        each_window_keyed(
            &conn,
            filter,
            order,
            self.path.as_deref(),
            &mut last,
            &mut keyed,
        )
    }

    /// [`Store::windows`], skipping windows that cannot be read back (a
    /// damaged row, [`Error::DamagedWindow`](crate::Error::DamagedWindow)):
    /// the readable ones, and the errors of the others.
    pub fn readable_windows(
        &self,
        filter: &WindowFilter,
    ) -> Result<(Vec<IncidentWindow>, Vec<crate::Error>)> {
        let conn = self.conn()?;
        let mut out = Vec::new();
        let mut damaged = Vec::new();
        each_window(
            &conn,
            filter,
            Order::NewestFirst,
            self.path.as_deref(),
            |w| {
                out.push(w);
                Ok::<_, crate::Error>(())
            },
            Some(&mut |e| damaged.push(e)),
        )?;
        Ok((out, damaged))
    }

    /// The latest time this database knows of: the last clean stop's time,
    /// or the latest trigger, resolution or window end; `None` when empty.
    /// An input without any time of its own happens then, so it moves
    /// nothing.
    pub fn latest_time(&self) -> Result<Option<Timestamp>> {
        let conn = self.conn()?;
        let ms: Option<i64> = conn
            .prepare_cached(
                "SELECT max(coalesce((SELECT max(time_ms) FROM recorder_stops), 0),
                            coalesce((SELECT max(fired_ms) FROM window_triggers), 0),
                            coalesce((SELECT max(resolved_ms) FROM window_triggers), 0),
                            coalesce((SELECT max(end_ms) FROM windows), 0))",
            )?
            .query_row([], |r| r.get(0))?;
        Ok(ms.filter(|&ms| ms > 0).map(Timestamp::from_unix_ms))
    }

    /// Counts and sizes of the whole database.
    pub fn stats(&self) -> Result<StoreStats> {
        let conn = self.conn()?;
        let mut stats = StoreStats::default();
        let mut stmt =
            conn.prepare_cached("SELECT status, count(*) FROM windows GROUP BY status")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (status, n) = row?;
            stats.windows_by_status.insert(status, n as u64);
        }
        let count = |sql: &str| -> Result<u64> {
            Ok(conn.query_row(sql, [], |r| r.get::<_, i64>(0))? as u64)
        };
        // Closed windows count theirs; recording ones are counted point by
        // point (sealed series and journal), which is short: they are few.
        stats.points = count(
            "SELECT coalesce(sum(summary_points), 0) FROM windows WHERE status <> 'recording'",
        )?;
        // Closed windows' values are counted by their statistics (a metric
        // without values has none); recording windows' as they are read.
        stats.values = count(
            "SELECT coalesce(sum(s.samples), 0) FROM window_metric_stats s
             JOIN windows w ON w.id = s.window_id WHERE w.status <> 'recording'",
        )?;
        let mut recording = conn.prepare_cached(
            "SELECT id, opened_ms, recent_from FROM windows WHERE status = 'recording'",
        )?;
        let open: Vec<Whereabouts> = recording
            .query_map([], |r| {
                Ok(Whereabouts {
                    window: r.get(0)?,
                    opened_ms: r.get(1)?,
                    recent_from: r.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut journal = Journal::read(&conn)?;
        for at in open {
            let points = WindowPoints::read(&conn, at, Some(&mut journal))?;
            stats.points += points.times().len() as u64;
            stats.values += points.values.len() as u64;
        }
        stats.resources = count("SELECT count(DISTINCT resource_id) FROM windows")?;
        stats.metrics = count("SELECT count(*) FROM metrics")?;
        stats.anomalies = count("SELECT count(*) FROM window_anomalies")?;
        stats.suppressed_triggers =
            count("SELECT count(*) FROM window_triggers WHERE suppressed = 1")?;
        let pages = count("SELECT page_count FROM pragma_page_count()")?;
        let page_size = count("SELECT page_size FROM pragma_page_size()")?;
        stats.database_bytes = pages * page_size;
        let (oldest, newest): (Option<i64>, Option<i64>) = conn.query_row(
            "SELECT min(start_ms), max(start_ms) FROM windows",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        stats.oldest = oldest.map(Timestamp::from_unix_ms);
        stats.newest = newest.map(Timestamp::from_unix_ms);
        Ok(stats)
    }
}

/// The order [`each_window`] visits windows in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Order {
    /// By start time descending, then id descending (listings).
    NewestFirst,
    /// By start time, then id (exports).
    OldestFirst,
    /// As `NewestFirst`, after the window starting at this time with this
    /// row id (a page of a listing).
    NewestBefore(i64, i64),
}

const WINDOW_FILTER: &str = " WHERE (?1 IS NULL OR r.external_id = ?1)
                AND (?2 IS NULL OR w.status = ?2)
                AND (?3 IS NULL OR w.end_ms IS NULL OR w.end_ms >= ?3)";
const NEWEST_FIRST: &str = " ORDER BY w.start_ms DESC, w.id DESC LIMIT ?4";
const OLDEST_FIRST: &str = " ORDER BY w.start_ms, w.id LIMIT ?4";
const NEWEST_BEFORE: &str =
    " AND (w.start_ms, w.id) < (?5, ?6) ORDER BY w.start_ms DESC, w.id DESC LIMIT ?4";

/// Calls `f` with each window matching `filter`, in `order`, completing one
/// window (triggers, summary, points if asked) before reading the next row,
/// so only one window is in memory at a time. A window that cannot be read
/// back goes to `damaged` if given (and the walk goes on), else stops it.
pub(super) fn each_window<E: From<crate::Error>>(
    conn: &Connection,
    filter: &WindowFilter,
    order: Order,
    path: Option<&std::path::Path>,
    f: impl FnMut(IncidentWindow) -> std::result::Result<(), E>,
    damaged: Option<&mut dyn FnMut(crate::Error)>,
) -> std::result::Result<(), E> {
    walk(conn, filter, order, path, &mut |_| {}, f, damaged)
}

/// [`each_window`] telling `key` each window's (start, row id) before `f`
/// gets the window.
fn each_window_keyed<E: From<crate::Error>>(
    conn: &Connection,
    filter: &WindowFilter,
    order: Order,
    path: Option<&std::path::Path>,
    key: &mut dyn FnMut((i64, i64)),
    f: &mut dyn FnMut(IncidentWindow) -> std::result::Result<(), E>,
) -> std::result::Result<(), E> {
    walk(conn, filter, order, path, key, f, None)
}

fn walk<E: From<crate::Error>>(
    conn: &Connection,
    filter: &WindowFilter,
    order: Order,
    path: Option<&std::path::Path>,
    key: &mut dyn FnMut((i64, i64)),
    mut f: impl FnMut(IncidentWindow) -> std::result::Result<(), E>,
    mut damaged: Option<&mut dyn FnMut(crate::Error)>,
) -> std::result::Result<(), E> {
    let tail = match order {
        Order::NewestFirst => NEWEST_FIRST,
        Order::OldestFirst => OLDEST_FIRST,
        Order::NewestBefore(..) => NEWEST_BEFORE,
    };
    let sql = [WINDOW_COLUMNS, WINDOW_FILTER, tail].concat();
    let limit = match filter.limit {
        0 => -1,
        n => i64::try_from(n).unwrap_or(i64::MAX),
    };
    let mut stmt = conn.prepare_cached(&sql).map_err(crate::Error::from)?;
    let mut journals = Journals::Many(None);
    let (resource, status, since) = (
        &filter.resource,
        filter.status.map(WindowStatus::as_str),
        filter.since.map(Timestamp::as_unix_ms),
    );
    let mut rows = match order {
        Order::NewestBefore(start_ms, row) => {
            stmt.query(params![resource, status, since, limit, start_ms, row])
        }
        _ => stmt.query(params![resource, status, since, limit]),
    }
    .map_err(crate::Error::from)?;
    while let Some(row) = rows.next().map_err(crate::Error::from)? {
        key((
            row.get(7).map_err(crate::Error::from)?,
            row.get(0).map_err(crate::Error::from)?,
        ));
        match read_window(conn, row, filter.with_points, path, &mut journals) {
            Ok(w) => f(w)?,
            Err(e @ crate::Error::DamagedWindow { .. }) if damaged.is_some() => {
                (damaged.as_mut().expect("checked"))(e)
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Where a reader finds recording windows' journal parts.
enum Journals {
    /// Reading one window: its own scan of the journal.
    One,
    /// Reading many: the whole journal in one pass, read at the first
    /// recording window.
    Many(Option<Journal>),
}

impl Journals {
    fn get(&mut self, conn: &Connection) -> Result<Option<&mut Journal>> {
        match self {
            Journals::One => Ok(None),
            Journals::Many(j) => {
                if j.is_none() {
                    *j = Some(Journal::read(conn)?);
                }
                Ok(j.as_mut())
            }
        }
    }
}

/// The window of a `WINDOW_COLUMNS` row, completed; any failure to read it
/// is an [`Error::DamagedWindow`](crate::Error::DamagedWindow) naming it.
fn read_window(
    conn: &Connection,
    row: &Row<'_>,
    with_points: bool,
    path: Option<&std::path::Path>,
    journals: &mut Journals,
) -> Result<IncidentWindow> {
    let read =
        header_from_row(row)
            .map_err(crate::Error::from)
            .and_then(|(at, w, summary_points)| {
                complete(conn, at, w, summary_points, with_points, journals)
            });
    read.map_err(|e| {
        // A database error that is not about this row is not this row's.
        if matches!(&e, crate::Error::Pool(_)) {
            return e;
        }
        let id = match row.get_ref(1) {
            Ok(rusqlite::types::ValueRef::Text(t)) => String::from_utf8_lossy(t).into_owned(),
            _ => format!("#{}", row.get::<_, i64>(0).unwrap_or(0)),
        };
        crate::Error::DamagedWindow {
            path: path.map_or_else(|| "(in memory)".into(), |p| p.to_path_buf()),
            id: crate::error::clip(&id),
            detail: crate::error_chain(&e),
        }
    })
}

/// A window row: where its points are, the window without its details, and
/// its stored point count.
type Header = (Whereabouts, IncidentWindow, Option<i64>);

fn header_from_row(r: &Row<'_>) -> rusqlite::Result<Header> {
    let parse_err = |i: usize, e: crate::Error| {
        rusqlite::Error::FromSqlConversionFailure(i, rusqlite::types::Type::Text, Box::new(e))
    };
    let status: String = r.get(10)?;
    let trigger_type: String = r.get(5)?;
    let end: Option<i64> = r.get(8)?;
    let status: WindowStatus = status.parse().map_err(|e| parse_err(10, e))?;
    let opened_ms: i64 = r.get(13)?;
    Ok((
        Whereabouts {
            window: r.get(0)?,
            opened_ms,
            recent_from: r.get(14)?,
        },
        IncidentWindow {
            id: WindowId::new(r.get::<_, String>(1)?),
            resource_id: r.get(2)?,
            resource_name: r.get(3)?,
            resource_type: r.get(4)?,
            trigger_type: trigger_type.parse().map_err(|e| parse_err(5, e))?,
            trigger_id: r.get(6)?,
            trigger_time: Some(Timestamp::from_unix_ms(opened_ms)),
            start_time: Timestamp::from_unix_ms(r.get(7)?),
            end_time: end.map(Timestamp::from_unix_ms),
            deadline: Some(Timestamp::from_unix_ms(r.get(9)?)),
            status,
            triggers: Vec::new(),
            notes: Vec::new(),
            data_points: Vec::new(),
            summary: None,
        },
        r.get(11)?,
    ))
}

/// Fills in a window's triggers, summary and (optionally) points.
fn complete(
    conn: &Connection,
    at: Whereabouts,
    mut w: IncidentWindow,
    summary_points: Option<i64>,
    with_points: bool,
    journals: &mut Journals,
) -> Result<IncidentWindow> {
    w.triggers = triggers(conn, at.window)?;
    w.notes = super::notes::notes(conn, at.window)?;
    if let Some(points) = summary_points {
        w.summary = Some(summary(conn, at.window, points)?);
    }
    let recording = w.status == WindowStatus::Recording;
    // Closed before store version 12 (no stored scores): scored on read.
    let unscored = w
        .summary
        .as_ref()
        .is_some_and(|s| s.change_scores.len() < s.samples.len());
    if with_points || recording || unscored {
        let journal = match at.recent_from {
            Some(_) => journals.get(conn)?,
            None => None,
        };
        w.data_points = points(conn, at, journal)?;
    }
    if recording {
        // Not stored until it closes: the statistics of its points so far.
        w.summary = crate::summary::summarize(&w.data_points);
    }
    if recording || unscored {
        let trigger_ms = w.trigger_time.unwrap_or(w.start_time).as_unix_ms();
        if let Some(s) = &mut w.summary {
            s.change_scores = crate::change::score_points(&w.data_points, trigger_ms);
        }
        if !with_points {
            w.data_points = Vec::new();
        }
    }
    Ok(w)
}

fn triggers(conn: &Connection, window: WindowRow) -> Result<Vec<WindowTrigger>> {
    let mut stmt = conn.prepare_cached(
        "SELECT trigger_type, trigger_id, fired_ms, resolved_ms, opened_window,
                labels, annotations, rule, ends_ms
         FROM window_triggers WHERE window_id = ?1 ORDER BY fired_ms, id",
    )?;
    let mut rows = stmt.query([window])?;
    let mut out = Vec::new();
    // Stored by the recorder as JSON objects of strings; a value some other
    // program wrote that is not one reads as none.
    let words = |text: Option<String>| -> BTreeMap<String, String> {
        text.and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    };
    while let Some(r) = rows.next()? {
        let kind: String = r.get(0)?;
        out.push(WindowTrigger {
            trigger_type: kind.parse()?,
            trigger_id: r.get(1)?,
            fired_at: Timestamp::from_unix_ms(r.get(2)?),
            resolved_at: r.get::<_, Option<i64>>(3)?.map(Timestamp::from_unix_ms),
            opened_window: r.get(4)?,
            labels: words(r.get(5)?),
            annotations: words(r.get(6)?),
            rule: r.get(7)?,
            ends_at: r.get::<_, Option<i64>>(8)?.map(Timestamp::from_unix_ms),
        });
    }
    Ok(out)
}

fn summary(conn: &Connection, window: WindowRow, points: i64) -> Result<IncidentSummary> {
    let duration_ms: Option<i64> = conn
        .prepare_cached("SELECT duration_ms FROM windows WHERE id = ?1")?
        .query_row([window], |r| r.get(0))?;
    let mut s = IncidentSummary {
        duration_ms: duration_ms.unwrap_or(0),
        data_points: points as u64,
        ..IncidentSummary::default()
    };
    let mut stmt = conn.prepare_cached(
        "SELECT m.name, s.samples, s.peak, s.low, s.average, s.change, s.p50, s.p95, s.p99,
                s.change_rank, s.change_score, s.change_unscored
         FROM window_metric_stats s JOIN metrics m ON m.id = s.metric_id
         WHERE s.window_id = ?1",
    )?;
    let mut rows = stmt.query([window])?;
    while let Some(r) = rows.next()? {
        let name: String = r.get(0)?;
        s.samples.insert(name.clone(), r.get::<_, i64>(1)? as u64);
        s.peaks.insert(name.clone(), r.get(2)?);
        s.lows.insert(name.clone(), r.get(3)?);
        s.averages.insert(name.clone(), r.get(4)?);
        s.changes.insert(name.clone(), r.get(5)?);
        s.p50.insert(name.clone(), r.get(6)?);
        s.p95.insert(name.clone(), r.get(7)?);
        s.p99.insert(name.clone(), r.get(8)?);
        // NULL for a window closed before store version 12: `complete`
        // scores it from its points.
        if let Some(rank) = r.get::<_, Option<u32>>(9)? {
            let change = crate::model::MetricChange {
                rank,
                score: r.get(10)?,
                unscored: r.get(11)?,
            };
            s.change_scores.insert(name, change);
        }
    }
    let mut stmt = conn.prepare_cached(
        "SELECT m.name, a.ts_ms, a.value, a.score, a.description
         FROM window_anomalies a LEFT JOIN metrics m ON m.id = a.metric_id
         WHERE a.window_id = ?1 ORDER BY a.ts_ms, a.id",
    )?;
    let mut rows = stmt.query([window])?;
    while let Some(r) = rows.next()? {
        let description: String = r.get(4)?;
        // Imported notes without their sample have only a description.
        if let (Some(metric), Some(ts), Some(value), Some(score)) = (
            r.get::<_, Option<String>>(0)?,
            r.get::<_, Option<i64>>(1)?,
            r.get::<_, Option<f64>>(2)?,
            r.get::<_, Option<f64>>(3)?,
        ) {
            s.anomaly_points.push(crate::model::WindowAnomaly {
                metric,
                timestamp: Timestamp::from_unix_ms(ts),
                value,
                score,
                description: description.clone(),
            });
        }
        s.anomalies.push(description);
    }
    s.anomalies_by_metric = crate::summary::anomalies_by_metric(&s.anomaly_points);
    Ok(s)
}

/// The points of a window, from its sealed series and its journal part, in
/// time order, each with its metrics in name order.
fn points(
    conn: &Connection,
    at: Whereabouts,
    journal: Option<&mut Journal>,
) -> Result<Vec<DataPoint>> {
    let stored = WindowPoints::read(conn, at, journal)?;
    let times = stored.times();
    let mut out: Vec<DataPoint> = times
        .iter()
        .map(|&ts| DataPoint {
            timestamp: Timestamp::from_unix_ms(ts),
            metrics: BTreeMap::new(),
            metadata: None,
        })
        .collect();
    let at_time = |ts: i64| times.binary_search(&ts).expect("every time was collected");
    let mut name = conn.prepare_cached("SELECT name FROM metrics WHERE id = ?1")?;
    // Metric by metric in name order, so each point's pairs come sorted and
    // its map is built in one pass.
    type Run<'a> = &'a [(MetricId, i64, f64)];
    let mut series: Vec<(String, Run<'_>)> = Vec::new();
    for run in stored.values.chunk_by(|a, b| a.0 == b.0) {
        series.push((name.query_row([run[0].0], |r| r.get(0))?, run));
    }
    series.sort_by(|a, b| a.0.cmp(&b.0));
    let mut pairs: Vec<Vec<(String, f64)>> = vec![Vec::new(); times.len()];
    for (metric, run) in &series {
        for &(_, ts, value) in *run {
            pairs[at_time(ts)].push((metric.clone(), value));
        }
    }
    for (point, pairs) in out.iter_mut().zip(pairs) {
        point.metrics = pairs.into_iter().collect();
    }
    for (ts, metadata) in &stored.metadata {
        out[at_time(*ts)].metadata = serde_json::from_str(metadata).ok();
    }
    Ok(out)
}
