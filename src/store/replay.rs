//! What the database already holds, for input that is replayed into it.
//!
//! Re-ingesting a file, or an ingest re-run after it was killed, must add
//! nothing it already added. The recorder asks the store only about samples
//! at or before its resource's newest recorded time (in steady state, never):
//! is there a recorded point of this resource at this time, and with the same
//! values? And is this exact trigger already recorded?
//!
//! # Performance
//!
//! Samples of a replayed resource come in time order, so the window holding
//! them is read once into a [`ReplayCache`] entry (its point times and
//! values, at most `max_data_points_per_window` of them) and the following
//! samples are answered from memory. An entry also knows where the next
//! window of its resource starts, so the samples between two windows (most
//! of a replayed feed) are answered `Outside` from memory too: before that,
//! each of them read the previous window back from the database, which made
//! a replay cost almost four times the first ingest (`BENCHMARKS.md`). The
//! cache holds at most [`CACHED_WINDOWS`] entries and is cleared whenever a
//! window opens or closes or history is trimmed.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, params};

use super::ids::MetricId;
use super::series::{Whereabouts, WindowPoints};
use super::writer::Writer;
use crate::error::Result;
use crate::model::{Trigger, WindowId};
use crate::names::{MetricKey, MetricNames};

/// Windows the replay cache holds at most (about 64 KB each at 500 points
/// of 8 metrics).
pub(crate) const CACHED_WINDOWS: usize = 64;

/// What the store holds at a resource's sample time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Recorded {
    /// A recorded point with the same values: the sample is a duplicate.
    Same,
    /// A recorded point with other values.
    Different,
    /// No point at that time, but a window of the resource spans it: the
    /// sample was not recorded when that window was (it was refused then).
    Missing,
    /// No window of the resource spans that time.
    Outside,
}

/// A trigger found already recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FoundTrigger {
    /// The window it opened or extended; `None` if it was suppressed.
    pub(crate) window: Option<WindowId>,
}

/// Windows read back for replayed samples, by resource.
#[derive(Debug, Default)]
pub(crate) struct ReplayCache {
    windows: HashMap<String, CachedWindow>,
    /// Entries read from the database so far: what a replay costs.
    reads: u64,
}

/// What one resource has recorded over a span of sample times: the window
/// that the lookup by time gives for every time in `from..until`, if any.
#[derive(Debug)]
struct CachedWindow {
    /// The sample times this entry answers for (`until` exclusive): from
    /// the window's start to the next window's start.
    from: i64,
    until: i64,
    /// The span of the window's points (empty, `start_ms > end_ms`, when
    /// there is no window or it has no points).
    start_ms: i64,
    end_ms: i64,
    /// Points in time order: time, then (metric id, value) sorted by id.
    points: Vec<(i64, Vec<(MetricId, f64)>)>,
}

impl ReplayCache {
    pub(crate) fn clear(&mut self) {
        self.windows.clear();
    }
}

impl Writer {
    /// The newest recorded point time of every resource with a closed window
    /// that has points (`start_ms + duration_ms`).
    pub(crate) fn recorded_until(&mut self) -> Result<HashMap<String, i64>> {
        let mut stmt = self.conn.prepare(
            "SELECT r.external_id, max(w.start_ms + w.duration_ms)
             FROM windows w JOIN resources r ON r.id = w.resource_id
             WHERE w.status <> 'recording' AND w.duration_ms IS NOT NULL
             GROUP BY w.resource_id",
        )?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The trigger of `resource` with this type, id and time, if recorded.
    pub(crate) fn find_trigger(
        &mut self,
        resource: &str,
        trigger: &Trigger,
        fired_ms: i64,
    ) -> Result<Option<FoundTrigger>> {
        let found = self
            .conn
            .prepare_cached(
                "SELECT w.public_id FROM window_triggers t
                 JOIN resources r ON r.id = t.resource_id
                 LEFT JOIN windows w ON w.id = t.window_id
                 WHERE r.external_id = ?1 AND t.fired_ms = ?2
                   AND t.trigger_type = ?3 AND t.trigger_id IS ?4
                 ORDER BY t.id LIMIT 1",
            )?
            .query_row(
                params![resource, fired_ms, trigger.kind.as_str(), trigger.id],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()?;
        Ok(found.map(|window| FoundTrigger {
            window: window.map(WindowId::new),
        }))
    }

    /// Whether a resolve (`trigger_id` given) or stop of `resource` at
    /// `at_ms` was already recorded, and if so whether it matched anything.
    pub(crate) fn find_control(
        &mut self,
        resource: &str,
        trigger_id: Option<&str>,
        at_ms: i64,
    ) -> Result<Option<bool>> {
        let kind = if trigger_id.is_some() {
            "resolve"
        } else {
            "stop"
        };
        Ok(self
            .conn
            .prepare_cached(
                "SELECT matched FROM control_events
                 WHERE resource = ?1 AND kind = ?2 AND coalesce(trigger_id, '') = coalesce(?3, '')
                   AND at_ms = ?4",
            )?
            .query_row(params![resource, kind, trigger_id, at_ms], |r| r.get(0))
            .optional()?)
    }

    /// The earliest resolve of `trigger_id` on `resource` at or after
    /// `from_ms` that matched no unresolved trigger when it came (a resolve
    /// that arrived before its firing), if one is still recorded: such
    /// resolves are kept in `control_events` as long as retention keeps
    /// windows.
    pub(crate) fn unmatched_resolve(
        &mut self,
        resource: &str,
        trigger_id: &str,
        from_ms: i64,
    ) -> Result<Option<i64>> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT at_ms FROM control_events
                 WHERE resource = ?1 AND kind = 'resolve' AND coalesce(trigger_id, '') = ?2
                   AND at_ms >= ?3 AND matched = 0
                 ORDER BY at_ms LIMIT 1",
            )?
            .query_row(params![resource, trigger_id, from_ms], |r| r.get(0))
            .optional()?)
    }

    /// Records a resolve (`trigger_id` given) or stop of `resource` at
    /// `at_ms` and whether it matched anything; a repeat changes nothing.
    pub(crate) fn record_control(
        &mut self,
        resource: &str,
        trigger_id: Option<&str>,
        at_ms: i64,
        matched: bool,
    ) -> Result<()> {
        self.transaction(|tx, _, _| insert_control(tx, resource, trigger_id, at_ms, matched))
    }

    /// What is recorded for `resource` at `ts`, compared with `values`.
    /// Only committed points are seen: the caller commits pending ones first.
    pub(crate) fn recorded_sample(
        &mut self,
        names: &MetricNames,
        resource: &str,
        ts: i64,
        values: &[(MetricKey, f64)],
    ) -> Result<Recorded> {
        let cached = self
            .replay
            .windows
            .get(resource)
            .is_some_and(|w| w.from <= ts && ts < w.until);
        if !cached {
            self.replay.reads += 1;
            let window = self.load_window_at(resource, ts)?;
            if self.replay.windows.len() >= CACHED_WINDOWS {
                self.replay.windows.clear();
            }
            self.replay.windows.insert(resource.to_owned(), window);
        }
        let window = &self.replay.windows[resource];
        if ts < window.start_ms || ts > window.end_ms {
            return Ok(Recorded::Outside);
        }
        let mut wanted: Vec<(MetricId, f64)> = Vec::with_capacity(values.len());
        for &(key, value) in values {
            match self.known_metric_id(names, key)? {
                Some(id) => wanted.push((id, value)),
                None => return Ok(self.at(resource, ts, None)),
            }
        }
        wanted.sort_by_key(|&(id, _)| id);
        Ok(self.at(resource, ts, Some(&wanted)))
    }

    /// Compares the cached points of `resource` at `ts` with `wanted`
    /// (`None`: a metric no point has, so nothing can be the same).
    fn at(&self, resource: &str, ts: i64, wanted: Option<&[(MetricId, f64)]>) -> Recorded {
        let points = &self.replay.windows[resource].points;
        let from = points.partition_point(|(t, _)| *t < ts);
        let mut same_time = points[from..]
            .iter()
            .take_while(|(t, _)| *t == ts)
            .peekable();
        if same_time.peek().is_none() {
            return Recorded::Missing;
        }
        let equal = |stored: &[(MetricId, f64)], wanted: &[(MetricId, f64)]| {
            stored.len() == wanted.len()
                && stored
                    .iter()
                    .zip(wanted)
                    .all(|(a, b)| a.0 == b.0 && a.1 == b.1)
        };
        match wanted {
            Some(w) if same_time.any(|(_, stored)| equal(stored, w)) => Recorded::Same,
            _ => Recorded::Different,
        }
    }

    /// The metric's id if the database has it (never creates one).
    fn known_metric_id(&mut self, names: &MetricNames, key: MetricKey) -> Result<Option<MetricId>> {
        if let Some(id) = self.metric_ids.known(key) {
            return Ok(Some(id));
        }
        Ok(self
            .conn
            .prepare_cached("SELECT id FROM metrics WHERE name = ?1")?
            .query_row([names.name(key)], |r| r.get(0))
            .optional()?)
    }

    /// The latest window of `resource` that started at or before `ts`, with
    /// its points, and the sample times it answers for: up to the start of
    /// the resource's next window (a window still recording, which may take
    /// more points, only up to its last point).
    fn load_window_at(&mut self, resource: &str, ts: i64) -> Result<CachedWindow> {
        type Found = (Whereabouts, i64, bool);
        let found: Option<Found> = self
            .conn
            .prepare_cached(
                "SELECT w.id, w.opened_ms, w.recent_from, w.start_ms, w.status = 'recording'
                 FROM windows w JOIN resources r ON r.id = w.resource_id
                 WHERE r.external_id = ?1 AND w.start_ms <= ?2
                 ORDER BY w.start_ms DESC, w.id DESC LIMIT 1",
            )?
            .query_row(params![resource, ts], |r| {
                Ok((
                    Whereabouts {
                        window: r.get(0)?,
                        opened_ms: r.get(1)?,
                        recent_from: r.get(2)?,
                    },
                    r.get(3)?,
                    r.get(4)?,
                ))
            })
            .optional()?;
        // The first window starting after the one found (or after `ts`).
        let after = found.as_ref().map_or(ts, |f| f.1);
        let until: i64 = self
            .conn
            .prepare_cached(
                "SELECT min(w.start_ms) FROM windows w JOIN resources r ON r.id = w.resource_id
                 WHERE r.external_id = ?1 AND w.start_ms > ?2",
            )?
            .query_row(params![resource, after], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(i64::MAX);
        let Some((at, start_ms, recording)) = found else {
            return Ok(CachedWindow {
                from: i64::MIN,
                until,
                start_ms: i64::MAX,
                end_ms: i64::MIN,
                points: Vec::new(),
            });
        };
        let stored = WindowPoints::read(&self.conn, at, None)?;
        let times = stored.times();
        let mut points: Vec<(i64, Vec<(MetricId, f64)>)> =
            times.iter().map(|&ts| (ts, Vec::new())).collect();
        for &(metric, ts, value) in &stored.values {
            let i = times.binary_search(&ts).expect("every time was collected");
            points[i].1.push((metric, value));
        }
        for (_, values) in &mut points {
            values.sort_by_key(|&(m, _)| m);
        }
        let (first, last) = match (points.first(), points.last()) {
            (Some(f), Some(l)) => (f.0, l.0),
            _ => (i64::MAX, i64::MIN),
        };
        // A recording window's later points are not known yet.
        let until = if recording {
            until.min(last.max(ts).saturating_add(1))
        } else {
            until
        };
        Ok(CachedWindow {
            from: start_ms.min(first),
            until,
            start_ms: start_ms.min(first),
            end_ms: last,
            points,
        })
    }
}

/// See [`Writer::record_control`], inside the caller's transaction.
pub(super) fn insert_control(
    tx: &rusqlite::Connection,
    resource: &str,
    trigger_id: Option<&str>,
    at_ms: i64,
    matched: bool,
) -> Result<()> {
    let kind = if trigger_id.is_some() {
        "resolve"
    } else {
        "stop"
    };
    tx.prepare_cached(
        "INSERT INTO control_events (resource, kind, trigger_id, at_ms, matched)
         VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
    )?
    .execute(params![resource, kind, trigger_id, at_ms, matched])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::{IncidentRecorder, ManualClock, Metrics, RecorderConfig, Store, Timestamp};

    const T0: i64 = 1_795_514_400_000;

    /// A replayed feed is answered from one read per window: the samples
    /// between windows (most of a feed) no longer read the window before
    /// them back, one database read each (issue 18, defect 19: a replay
    /// took 40 times as long as the first ingest).
    #[test]
    fn a_replay_reads_each_window_back_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("replay.db");
        let at = |i: i64| Timestamp::from_unix_ms(T0 + i * 5_000);
        let clock = Arc::new(ManualClock::new(at(0)));
        let config = RecorderConfig {
            sample_interval: std::time::Duration::from_secs(5),
            pre_incident_window: std::time::Duration::from_secs(30),
            post_incident_window: std::time::Duration::from_secs(60),
            ..RecorderConfig::with_db_path(&path)
        };
        let recorder = IncidentRecorder::open_with_clock(config, clock.clone()).unwrap();
        // Twenty minutes every 5 s; windows triggered at +5m and +12m.
        let cpu = |i: i64| Metrics::new().with("cpu", i as f64);
        for i in 0..240 {
            clock.set(at(i));
            recorder.push_sample("a", at(i), cpu(i), None).unwrap();
            if i == 60 || i == 144 {
                recorder
                    .start_recording("a", crate::Trigger::manual())
                    .unwrap();
            }
        }
        recorder.stop().unwrap();
        drop(recorder);

        let store = Store::open(&path).unwrap();
        let recorded: i64 = store
            .conn()
            .unwrap()
            .query_row("SELECT count(*) FROM incident_samples", [], |r| r.get(0))
            .unwrap();
        let mut writer = store.writer().unwrap();
        let mut names = MetricNames::default();
        let key = names.intern("cpu").unwrap();
        let (mut same, mut outside) = (0, 0);
        for i in 0..240 {
            let ts = at(i).as_unix_ms();
            match writer.recorded_sample(&names, "a", ts, &[(key, i as f64)]) {
                Ok(Recorded::Same) => same += 1,
                Ok(Recorded::Outside) => outside += 1,
                other => panic!("sample {i}: {other:?}"),
            }
        }
        assert!(recorded > 20, "both windows recorded points: {recorded}");
        assert_eq!((same, outside), (recorded, 240 - recorded));
        // Before the first window, then each window with the gap after it.
        assert_eq!(writer.replay.reads, 3);
    }
}
