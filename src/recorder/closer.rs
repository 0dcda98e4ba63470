//! The closer: closing work, off the tick.
//!
//! # Design
//!
//! The tick decides that a window closes (`window.rs`) and commits the
//! decision as a queued close (`window_closes`); the closer thread does the
//! work. For each window, in one short transaction: it seals the window's
//! journal points into runs, computes its summary and anomalies from all its
//! points with the pure functions of [`crate::summary`] and
//! [`crate::anomaly`], and writes them with the final status. Then it trims
//! history and purges the journal, a bounded step at a time. Its
//! transactions take the store's write gate only when no tick waits for it,
//! so a tick never waits longer than one of them, however many windows close
//! together (a thousand VMs alerting at once).
//!
//! It also seals recording windows every `SEAL_EVERY` journal points (the
//! writer hands them over), and, as a safety valve, windows whose journal
//! points lie far behind everyone else's (a slow resource's window kept open
//! for hours), so the journal stays short and cheap to scan.
//!
//! Work is handed over in batches, counted by the store's [`Settled`], which
//! queries through the recorder's store wait for: a window the recorder
//! closed reads as closed. Work the closer could not do before the recorder
//! stops stays queued in the database and is done by the next one.
//!
//! Invariant: the closer never takes the recorder's state lock.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::anomaly::{AnomalyConfig, window_anomalies};
use crate::error::{Error, Result};
use crate::store::{AnomalyRow, Handoff, MetricId, Settled, Store, Summary, Trim, WindowPoints};
use crate::summary::metric_stats;

/// Journal points a purge deletes per transaction.
const PURGE_STEP: i64 = 20_000;
/// The safety valve: a window is sealed by the closer itself when its
/// journal points lie this many points, or `VALVE_PER_WINDOW` per window in
/// the journal, behind the newest.
const VALVE_LAG: i64 = 200_000;
const VALVE_PER_WINDOW: i64 = 4 * crate::store::SEAL_EVERY as i64;
/// How often the closer looks at the journal when nothing is handed over.
const IDLE_CHECK: Duration = Duration::from_secs(1);

/// The closer thread and its queue.
pub(super) struct Closer {
    shared: Arc<Shared>,
    settled: Arc<Settled>,
    handle: Option<JoinHandle<()>>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    batches: VecDeque<Batch>,
    stop: bool,
}

struct Batch {
    number: u64,
    handoff: Handoff,
    trim: Option<Trim>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Closer {
    /// Starts the closer of `store`'s recorder; it first takes the closes a
    /// previous recorder left queued.
    pub(super) fn start(store: &Store, anomaly: AnomalyConfig) -> Result<Closer> {
        let (mut conn, settled) = store.closer()?;
        let pending = conn.pending_closes()?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let mut closer = Closer {
            shared: shared.clone(),
            settled: settled.clone(),
            handle: None,
        };
        if !pending.is_empty() {
            tracing::info!(
                windows = pending.len(),
                "finishing closes a previous recorder left"
            );
            closer.submit(
                Handoff {
                    closes: pending.into_iter().map(|c| (c, None)).collect(),
                    seals: Vec::new(),
                },
                None,
            );
        }
        let handle = std::thread::Builder::new()
            .name("incident-recorder-closer".into())
            .spawn(move || {
                Worker {
                    conn,
                    settled,
                    shared,
                    anomaly,
                }
                .run()
            })
            .map_err(|source| Error::Io {
                path: "incident-recorder closer thread".into(),
                source,
            })?;
        closer.handle = Some(handle);
        Ok(closer)
    }

    /// Hands over closing work (and a trim to run after it).
    pub(super) fn submit(&self, handoff: Handoff, trim: Option<Trim>) {
        if handoff.is_empty() && trim.is_none() {
            return;
        }
        let number = self.settled.handed();
        lock(&self.shared.queue).batches.push_back(Batch {
            number,
            handoff,
            trim,
        });
        self.shared.wake.notify_all();
    }

    /// Waits until the work handed over so far is done, at most `bound`.
    pub(super) fn drain(&self, bound: Duration) -> bool {
        self.settled.wait(bound)
    }
}

impl Drop for Closer {
    fn drop(&mut self) {
        lock(&self.shared.queue).stop = true;
        self.shared.wake.notify_all();
        if let Some(h) = self.handle.take()
            && h.join().is_err()
        {
            tracing::error!("closer thread panicked");
        }
    }
}

struct Worker {
    conn: crate::store::CloserConn,
    settled: Arc<Settled>,
    shared: Arc<Shared>,
    anomaly: AnomalyConfig,
}

impl Worker {
    fn run(mut self) {
        loop {
            let next = {
                let mut q = lock(&self.shared.queue);
                if q.batches.is_empty() && !q.stop {
                    q = self
                        .shared
                        .wake
                        .wait_timeout(q, IDLE_CHECK)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                if q.stop {
                    return;
                }
                q.batches.pop_front()
            };
            match next {
                Some(batch) => {
                    let number = batch.number;
                    self.batch(batch);
                    self.settled.done(number);
                }
                None => self.maintain(),
            }
        }
    }

    fn stopping(&self) -> bool {
        lock(&self.shared.queue).stop
    }

    /// Runs `f` until it succeeds, retrying while the database is locked or
    /// full (another program's transaction, a full disk: the work stays
    /// queued meanwhile); gives up on other errors, and when stopping.
    fn retry<T>(&mut self, what: &str, mut f: impl FnMut(&mut Self) -> Result<T>) -> Option<T> {
        let mut wait = Duration::from_millis(50);
        let mut failures = 0u32;
        loop {
            match f(self) {
                Ok(v) => return Some(v),
                Err(e) if (e.is_busy() || e.is_disk_full()) && !self.stopping() => {
                    failures += 1;
                    if failures.is_power_of_two() {
                        tracing::warn!(error = %crate::error_chain(&e), what, "closing work waits for the database");
                    }
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_secs(1));
                }
                Err(e) => {
                    tracing::error!(error = %crate::error_chain(&e), what, "closing work failed; it is retried when the database is next opened");
                    return None;
                }
            }
        }
    }

    fn batch(&mut self, batch: Batch) {
        for (window, known, upto) in &batch.handoff.seals {
            self.retry("sealing a recording window", |w| {
                w.conn.seal_window(*window, Some(known), Some(*upto))
            });
        }
        for (closing, known) in &batch.handoff.closes {
            let anomaly = self.anomaly.clone();
            self.retry("closing a window", |w| {
                w.conn
                    .close_window(closing, known.as_ref(), &mut |points, opened_ms, names| {
                        summarize(points, opened_ms, names, &anomaly)
                    })
            });
        }
        if let Some(t) = batch.trim {
            // Bounded steps: a large backlog of expired windows never holds
            // the write lock for long.
            while let Some((report, more)) = self.retry("trimming history", |w| w.conn.trim(t)) {
                if report.windows > 0 {
                    tracing::debug!(
                        windows = report.windows,
                        "deleted windows past retention or the window limit"
                    );
                }
                if !more {
                    break;
                }
            }
        }
        self.purge();
    }

    /// Purges the journal behind the sealed windows, a step at a time,
    /// pausing whenever new work comes in.
    fn purge(&mut self) {
        loop {
            let Some(n) = self.retry("purging the journal", |w| w.conn.purge(PURGE_STEP)) else {
                return;
            };
            if n < PURGE_STEP as usize || !lock(&self.shared.queue).batches.is_empty() {
                return;
            }
        }
    }

    /// With nothing handed over: the safety valve, then a purge.
    fn maintain(&mut self) {
        let started = Instant::now();
        let laggards = self
            .retry("checking the journal", |w| {
                w.conn.laggards(VALVE_LAG, VALVE_PER_WINDOW, 100)
            })
            .unwrap_or_default();
        for window in laggards {
            if !lock(&self.shared.queue).batches.is_empty() {
                break;
            }
            tracing::debug!(?window, "sealing a window far behind in the journal");
            self.retry("sealing a window far behind", |w| {
                w.conn.seal_window(window, None, None)
            });
        }
        self.purge();
        tracing::trace!(elapsed = ?started.elapsed(), "closer maintenance");
    }
}

/// What closing a window writes, from all its points: per-metric statistics
/// and the anomalies against its pre-incident baseline. Pure.
fn summarize(
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
    for ((metric, series), (named, name)) in points.series().zip(names) {
        debug_assert_eq!(metric, *named);
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
    s
}
