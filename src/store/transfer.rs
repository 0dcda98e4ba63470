//! Whole windows in and out of a database: the export walk and the import.
//!
//! Exports walk the windows oldest first, one at a time, inside one read
//! transaction, so a file of any size is written with one window in memory
//! and reflects one consistent moment even while a recorder writes.
//!
//! An import stores a window exactly as given (ids, times, triggers, points)
//! in one transaction, sealed at once (it never goes through the journal),
//! with its statistics computed from its points like any other window's. It is
//! keyed on the window's public id: a window already present is skipped, so
//! importing a file twice adds nothing. Imports never trim history.

use std::sync::Arc;

use rusqlite::{OptionalExtension, params};

use super::close::{Closing, Summary, finish, seal};
use super::ids::{MetricId, WindowRow};
use super::points::metric_row;
use super::read::{Order, each_window};
use super::series::{Whereabouts, WindowPoints};
use super::writer::{insert_trigger, upsert_resource};
use super::{Store, WindowFilter};
use crate::error::{Error, Result, clip};
use crate::model::{IncidentWindow, Resource, Timestamp, Trigger, WindowStatus};
use crate::names::{MetricKey, MetricNames};
use crate::validate;

impl Store {
    /// Calls `f` with every window matching `filter` (its `limit` and
    /// `with_points` included), **oldest first** (by start time, then id), one
    /// window at a time, all read from one consistent snapshot of the database.
    /// The first error, from the store or from `f`, stops the walk.
    ///
    /// ```
    /// # use incident_recorder::{Store, WindowFilter};
    /// let store = Store::open_in_memory()?;
    /// let mut ids = Vec::new();
    /// store.for_each_window(&WindowFilter { with_points: true, ..Default::default() }, |w| {
    ///     ids.push(w.id);
    ///     Ok::<_, incident_recorder::Error>(())
    /// })?;
    /// assert!(ids.is_empty());
    /// # Ok::<(), incident_recorder::Error>(())
    /// ```
    pub fn for_each_window<E: From<Error>>(
        &self,
        filter: &WindowFilter,
        f: impl FnMut(IncidentWindow) -> std::result::Result<(), E>,
    ) -> std::result::Result<(), E> {
        let conn = self.conn()?;
        // A read transaction: every window comes from the same snapshot.
        let tx = conn.snapshot()?;
        let conn = tx.as_deref().unwrap_or(&conn);
        each_window(conn, filter, Order::OldestFirst, self.path(), f, None)
    }

    /// [`Store::for_each_window`], handing windows that cannot be read back
    /// ([`Error::DamagedWindow`]) to `damaged` and going on with the rest:
    /// what `export --skip-damaged` saves of a damaged database.
    pub fn for_each_readable_window<E: From<Error>>(
        &self,
        filter: &WindowFilter,
        f: impl FnMut(IncidentWindow) -> std::result::Result<(), E>,
        mut damaged: impl FnMut(Error),
    ) -> std::result::Result<(), E> {
        let conn = self.conn()?;
        let tx = conn.snapshot()?;
        each_window(
            tx.as_deref().unwrap_or(&conn),
            filter,
            Order::OldestFirst,
            self.path(),
            f,
            Some(&mut damaged),
        )
    }

    /// Stores a window read from an export (this crate's, or Pulse's
    /// `incident_windows.json` once converted), with its triggers and points,
    /// and computes its summary from those points. Returns `false`, changing
    /// nothing, if this window (same id, resource, trigger type, start,
    /// trigger time and point count) is already stored; a different window
    /// under the same id is refused with [`Error::IdCollision`].
    ///
    /// What is kept as given: the public id, resource (id, name, type),
    /// trigger, start and end times, triggers (fired and resolved times) and
    /// points with their metadata, the summary's anomaly notes, and the
    /// window's notes (for a window already present, the notes it lacks are
    /// added: notes written on two copies meet). What is
    /// recomputed: the summary's statistics. A window given as `recording`
    /// cannot go on recording here, so it is stored as `interrupted`, ending
    /// at its last point, exactly as if a recorder had crashed while
    /// recording it. A window without triggers gets its opening trigger,
    /// fired at its start time.
    ///
    /// Invalid content (an empty id, a time outside years 1970–9999, a
    /// non-finite value, an invalid metric name, oversized metadata) refuses
    /// the whole window with [`Error::InvalidWindow`] and stores nothing.
    pub fn import_window(&self, w: &IncidentWindow) -> Result<bool> {
        let plan = ImportPlan::check(w)?;
        for n in &w.notes {
            super::notes::validate(n).map_err(|e| Error::InvalidWindow {
                id: clip(w.id.as_str()),
                reason: e.to_string(),
            })?;
        }
        let mut writer = self.writer()?;
        writer.transaction(|tx, _, _| {
            // Keyed on the public id: the same window again is skipped, but
            // another window under that id is refused, never dropped quietly.
            let existing: Option<(String, String, i64, i64, i64, WindowRow)> = tx
                .prepare_cached(
                    "SELECT r.external_id, w.trigger_type, w.start_ms, w.opened_ms,
                            coalesce(w.summary_points, 0), w.id
                     FROM windows w JOIN resources r ON r.id = w.resource_id
                     WHERE w.public_id = ?1",
                )?
                .query_row([w.id.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
                })
                .optional()?;
            if let Some((resource, kind, start, opened, points, row)) = existing {
                let same = resource == w.resource_id
                    && kind == w.trigger_type.as_str()
                    && start == w.start_time.as_unix_ms()
                    && opened == plan.opened_ms
                    && points == w.data_points.len() as i64;
                if same {
                    // Notes are the people's, written on either copy: the
                    // file's that this one lacks are added.
                    super::notes::insert(tx, row, &w.notes)?;
                    return Ok(false);
                }
                return Err(Error::IdCollision {
                    id: clip(w.id.as_str()),
                    detail: format!(
                        "this database has another window under that id ({resource}, {kind}, {points} points, starting {})",
                        Timestamp::from_unix_ms(start)
                    ),
                });
            }
            let resource = upsert_resource(
                tx,
                Resource {
                    id: &w.resource_id,
                    name: w.resource_name.as_deref(),
                    kind: w.resource_type.as_deref(),
                },
            )?;
            let row: WindowRow = tx
                .prepare_cached(
                    "INSERT INTO windows (public_id, resource_id, trigger_type, trigger_id,
                                          start_ms, deadline_ms, status, opened_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'recording', ?7)
                     RETURNING id",
                )?
                .query_row(
                    params![
                        w.id.as_str(),
                        resource,
                        w.trigger_type.as_str(),
                        w.trigger_id,
                        w.start_time.as_unix_ms(),
                        plan.deadline_ms,
                        plan.opened_ms,
                    ],
                    |r| r.get(0),
                )?;
            if w.triggers.is_empty() {
                let opening = Trigger::new(w.trigger_type, w.trigger_id.clone());
                insert_trigger(tx, row, &opening, plan.opened_ms, None, true)?;
            }
            for t in &w.triggers {
                let trigger = Trigger::new(t.trigger_type, t.trigger_id.clone());
                let resolved = t.resolved_at.map(Timestamp::as_unix_ms);
                let fired = t.fired_at.as_unix_ms();
                insert_trigger(tx, row, &trigger, fired, resolved, t.opened_window)?;
                super::words::keep_imported(tx, tx.last_insert_rowid(), t).map_err(|reason| {
                    Error::InvalidWindow {
                        id: clip(w.id.as_str()),
                        reason,
                    }
                })?;
            }
            super::notes::insert(tx, row, &w.notes)?;
            let mut ids: Vec<Option<MetricId>> = vec![None; plan.names.len()];
            let mut points = WindowPoints::default();
            for &(key, ts, value) in &plan.values {
                let id = match ids[key.0 as usize] {
                    Some(id) => id,
                    None => *ids[key.0 as usize].insert(metric_row(tx, plan.names.name(key))?),
                };
                points.values.push((id, ts, value));
            }
            points.metadata = plan.metadata.clone();
            points.finish();
            let at = Whereabouts {
                window: row,
                opened_ms: plan.opened_ms,
                recent_from: None,
            };
            seal(tx, at, &points)?;
            // Statistics and change scores are recomputed; anomalies are kept as the file
            // gives them (they depend on the thresholds of the recorder that
            // found them), so none are scored here.
            let times = points.times();
            let summary = Summary {
                points: times.len() as i64,
                span: times.first().zip(times.last()).map(|(&f, &l)| (f, l)),
                stats: points
                    .series()
                    .filter_map(|(m, series)| {
                        let values: Vec<f64> = series.iter().map(|&(_, v)| v).collect();
                        crate::summary::metric_stats(&values).map(|s| (m, s))
                    })
                    .collect(),
                anomalies: Vec::new(),
                changes: crate::change::rank(
                    points
                        .series()
                        .map(|(m, s)| (m, crate::change::score_series(&s, plan.opened_ms)))
                        .collect(),
                ),
            };
            let closing = Closing {
                window: row,
                status: plan.status,
                start_ms: w.start_time.as_unix_ms(),
                end_ms: plan.end_ms,
            };
            finish(tx, &closing, &summary)?;
            // Anomalies with their sample keep it; notes alone (Pulse) stay notes.
            let summary = w.summary.as_ref();
            let detailed = summary.map_or(&[][..], |s| &s.anomaly_points[..]);
            if detailed.is_empty() {
                for description in summary.iter().flat_map(|s| &s.anomalies) {
                    tx.prepare_cached(
                        "INSERT INTO window_anomalies (window_id, description) VALUES (?1, ?2)",
                    )?
                    .execute(params![row, description])?;
                }
            }
            for a in detailed {
                tx.prepare_cached(
                    "INSERT INTO window_anomalies (window_id, metric_id, ts_ms, value, score, description)
                     VALUES (?1, (SELECT id FROM metrics WHERE name = ?2), ?3, ?4, ?5, ?6)",
                )?
                .execute(params![
                    row,
                    a.metric,
                    a.timestamp.as_unix_ms(),
                    a.value,
                    a.score,
                    a.description
                ])?;
            }
            Ok(true)
        })
    }
}

/// A window checked for import, with its points ready to insert.
struct ImportPlan {
    names: MetricNames,
    /// `(metric, time, value)` of every point, in the points' order.
    values: Vec<(MetricKey, i64, f64)>,
    /// `(time, metadata JSON)` of the points that have some.
    metadata: Vec<(i64, String)>,
    status: WindowStatus,
    end_ms: i64,
    deadline_ms: i64,
    opened_ms: i64,
}

impl ImportPlan {
    fn check(w: &IncidentWindow) -> Result<ImportPlan> {
        let invalid = |reason: String| Error::InvalidWindow {
            id: clip(w.id.as_str()),
            reason,
        };
        let id = w.id.as_str();
        if id.is_empty() || id.len() > 1024 || id.chars().any(char::is_control) {
            return Err(invalid(
                "its id must be 1 to 1024 bytes without control characters".into(),
            ));
        }
        validate::resource(&Resource {
            id: &w.resource_id,
            name: w.resource_name.as_deref(),
            kind: w.resource_type.as_deref(),
        })
        .map_err(|e| invalid(e.to_string()))?;
        let triggers = std::iter::once(Trigger::new(w.trigger_type, w.trigger_id.clone())).chain(
            w.triggers
                .iter()
                .map(|t| Trigger::new(t.trigger_type, t.trigger_id.clone())),
        );
        for t in triggers {
            validate::trigger(&t).map_err(|e| invalid(e.to_string()))?;
        }
        let summary = w.summary.as_ref();
        let notes = summary.into_iter().flat_map(|s| {
            s.anomalies
                .iter()
                .chain(s.anomaly_points.iter().map(|a| &a.description))
        });
        for note in notes {
            if note.len() > 1024 || note.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "anomaly note {:?} must be at most 1024 bytes without control characters",
                    clip(note)
                )));
            }
        }
        for a in summary.iter().flat_map(|s| &s.anomaly_points) {
            if !(validate::value(a.value).is_ok()
                && a.score.is_finite()
                && validate::metric_name(&a.metric))
            {
                return Err(invalid(format!(
                    "anomaly at {} has an invalid metric, value or score",
                    a.timestamp
                )));
            }
        }
        // The window must be what a recorder makes: points in time order
        // within its start and end, a deadline not before its start, and
        // every trigger resolved after it fired.
        let order = w
            .data_points
            .windows(2)
            .position(|p| p[1].timestamp <= p[0].timestamp);
        if let Some(i) = order {
            return Err(invalid(format!(
                "its points are not in time order, one per time ({} after {})",
                w.data_points[i + 1].timestamp,
                w.data_points[i].timestamp
            )));
        }
        let (first, last) = (
            w.data_points.first().map(|p| p.timestamp),
            w.data_points.last().map(|p| p.timestamp),
        );
        if let Some(first) = first.filter(|f| *f < w.start_time) {
            return Err(invalid(format!(
                "its point at {first} is before its start {}",
                w.start_time
            )));
        }
        if let Some(end) = w.end_time {
            if end < w.start_time {
                return Err(invalid(format!(
                    "it ends ({end}) before it starts ({})",
                    w.start_time
                )));
            }
            if let Some(last) = last.filter(|l| *l > end) {
                return Err(invalid(format!(
                    "its point at {last} is after its end {end}"
                )));
            }
        }
        if let Some(d) = w.deadline.filter(|d| *d < w.start_time) {
            return Err(invalid(format!(
                "its deadline {d} is before its start {}",
                w.start_time
            )));
        }
        if let Some(t) = w
            .triggers
            .iter()
            .find(|t| t.resolved_at.is_some_and(|r| r < t.fired_at))
        {
            return Err(invalid(format!(
                "a trigger fired at {} is resolved before that",
                t.fired_at
            )));
        }
        let times = [Some(w.start_time), w.end_time, w.deadline]
            .into_iter()
            .flatten()
            .chain(
                w.triggers
                    .iter()
                    .flat_map(|t| [Some(t.fired_at), t.resolved_at])
                    .flatten(),
            )
            .chain(w.data_points.iter().map(|p| p.timestamp));
        for t in times {
            validate::storable(t).map_err(|e| invalid(e.to_string()))?;
        }
        let mut names = MetricNames::default();
        let mut values = Vec::new();
        let mut metadata = Vec::new();
        for p in &w.data_points {
            let ts = p.timestamp.as_unix_ms();
            for (name, &value) in &p.metrics {
                if !validate::metric_name(name) {
                    return Err(invalid(format!(
                        "point at {}: invalid metric name {:?}",
                        p.timestamp,
                        clip(name)
                    )));
                }
                if validate::value(value).is_err() {
                    return Err(invalid(format!(
                        "point at {}: metric {:?} is not a finite number of at most 1e300",
                        p.timestamp,
                        clip(name)
                    )));
                }
                let key = names.intern(name).ok_or_else(|| {
                    invalid("more distinct metric names than a recorder holds".into())
                })?;
                values.push((key, ts, value));
            }
            let meta: Option<Arc<str>> = validate::metadata(p.metadata.as_ref())
                .map_err(|e| invalid(format!("point at {}: {e}", p.timestamp)))?;
            // A recorder never keeps such a sample, and it would have
            // nothing to be stored by.
            if p.metrics.is_empty() && meta.is_none() {
                return Err(invalid(format!(
                    "its point at {} has neither values nor metadata",
                    p.timestamp
                )));
            }
            if let Some(m) = meta {
                metadata.push((ts, m.to_string()));
            }
        }
        let start_ms = w.start_time.as_unix_ms();
        let last_point = w.data_points.iter().map(|p| p.timestamp.as_unix_ms()).max();
        let (status, end_ms) = crate::window_rules::imported_end(
            w.status,
            start_ms,
            w.end_time.map(Timestamp::as_unix_ms),
            last_point,
        );
        let opened_ms = w
            .trigger_time
            .or_else(|| {
                w.triggers
                    .iter()
                    .find(|t| t.opened_window)
                    .map(|t| t.fired_at)
            })
            .map_or(start_ms, Timestamp::as_unix_ms);
        let deadline_ms = w
            .deadline
            .or(w.end_time)
            .map_or(end_ms, Timestamp::as_unix_ms);
        Ok(ImportPlan {
            names,
            values,
            metadata,
            status,
            end_ms,
            deadline_ms,
            opened_ms,
        })
    }
}
