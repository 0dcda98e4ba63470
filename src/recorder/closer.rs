//! The closer: closing work, off the tick.
//!
//! # Design
//!
//! The tick decides that a window closes (`window.rs`) and commits the
//! decision as a queued close (`window_closes`); the closer thread does the
//! work. For each window, in one short transaction: it seals the window's
//! journal points into runs, computes its summary, anomalies and change
//! scores from all its points with the pure functions of [`crate::summary`],
//! [`crate::anomaly`] and [`crate::change`], and writes them with the final
//! status. Then it trims
//! history, a bounded step at a time. It purges the journal behind sealed
//! windows when idle (or once `PURGE_BACKLOG` points wait, or when `sync` asks):
//! readers never see those rows, so no close waits behind them. Work queued
//! while it was busy is merged into one batch. Its
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
/// Windows sealed or closed per transaction at most, and the time after
/// which a transaction takes no more. A tick that comes to wait for the
/// write turn meanwhile ends the transaction at the next item: it waits for
/// one window's work at most.
const TX_ITEMS: usize = 64;
const TX_TIME: Duration = Duration::from_millis(10);
/// How often the closer looks at the journal when nothing is handed over.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// Journal points behind the horizon past which the journal is purged
/// right after a batch; below, it is purged when the closer is idle (the
/// purge is invisible to readers, and a window closing next should not wait
/// behind it). Bounds the dead rows in the file (~100 B a point).
const PURGE_BACKLOG: i64 = 8_192;

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
    /// `sync` asks for the journal to be purged now.
    tidy: bool,
    stop: bool,
}

struct Batch {
    number: u64,
    handoff: Handoff,
    trim: Option<Trim>,
}

impl Batch {
    /// `self` and the later `next` as one batch: work queued while the
    /// closer was busy goes in the same transactions.
    fn merge(mut self, next: Batch) -> Batch {
        self.handoff.closes.extend(next.handoff.closes);
        self.handoff.seals.extend(next.handoff.seals);
        Batch {
            number: next.number,
            handoff: self.handoff,
            // The later trim's cutoff includes the earlier's.
            trim: next.trim.or(self.trim),
        }
    }
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
                    names_high: 0,
                    names_released: 0,
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

    /// Waits until the work handed over so far is done (and the journal
    /// purged behind it, if `tidy`), as long as the closer gets something
    /// done at least every `stall` (see [`Settled::wait_while_progressing`]).
    pub(super) fn drain(&self, stall: Duration, tidy: bool) -> bool {
        if tidy {
            lock(&self.shared.queue).tidy = true;
            self.shared.wake.notify_all();
        }
        self.settled.wait_while_progressing(stall, tidy)
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
    /// The highest `metrics` id after the last reclaim of unused names.
    names_high: i64,
    /// Series runs trimmed since then: names they may have left unused.
    names_released: i64,
    settled: Arc<Settled>,
    shared: Arc<Shared>,
    anomaly: AnomalyConfig,
}

impl Worker {
    fn run(mut self) {
        // The last batch done.
        let mut last = 0;
        loop {
            let (next, tidy) = {
                let mut q = lock(&self.shared.queue);
                if q.batches.is_empty() && !q.stop && !q.tidy {
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
                let next = q.batches.drain(..).reduce(Batch::merge);
                (next, std::mem::take(&mut q.tidy))
            };
            match next {
                Some(batch) => {
                    last = batch.number;
                    self.batch(batch);
                    self.settled.done(last);
                    if tidy || self.purge_due() {
                        self.purge();
                        self.settled.tidied(last);
                    }
                }
                None => {
                    self.maintain();
                    self.settled.tidied(last);
                }
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
        let Batch { handoff, trim, .. } = batch;
        let items: Vec<Item<'_>> = handoff
            .seals
            .iter()
            .map(|(w, k, upto)| Item::Seal(*w, k, *upto))
            .chain(
                handoff
                    .closes
                    .iter()
                    .map(|(c, k)| Item::Close(c, k.as_ref())),
            )
            .collect();
        let mut next = 0;
        while next < items.len() {
            // As many as fit in one transaction's budget, then the next
            // transaction: a waiting tick goes first in between.
            let from = next;
            let anomaly = self.anomaly.clone();
            let done = self.retry("closing windows", |w| {
                w.conn.work(|work| {
                    let started = Instant::now();
                    let mut i = from;
                    // At least one; then more while the budget lasts and
                    // no tick waits for the turn.
                    while i < items.len()
                        && (i == from
                            || (i - from < TX_ITEMS
                                && started.elapsed() < TX_TIME
                                && !work.tick_waiting()))
                    {
                        items[i].run(work, &anomaly)?;
                        i += 1;
                    }
                    Ok(i)
                })
            });
            self.settled.progressed();
            next = match done {
                Some(i) => i,
                // One of them fails for good: alone, so the others go on.
                None => {
                    self.retry("closing a window", |w| {
                        w.conn.work(|work| items[from].run(work, &anomaly))
                    });
                    from + 1
                }
            };
        }
        if let Some(t) = trim {
            // Bounded steps: a large backlog of expired windows never holds
            // the write lock for long.
            while let Some((report, more)) = self.retry("trimming history", |w| w.conn.trim(t)) {
                self.names_released += report.series as i64;
                if report.windows > 0 {
                    tracing::debug!(
                        windows = report.windows,
                        "deleted windows past retention or the window limit"
                    );
                }
                self.settled.progressed();
                if !more {
                    break;
                }
            }
        }
    }

    /// True if more than [`PURGE_BACKLOG`] journal points wait to be purged.
    fn purge_due(&mut self) -> bool {
        self.retry("checking the journal", |w| w.conn.purgeable())
            .is_some_and(|n| n > PURGE_BACKLOG)
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
        self.reclaim_names();
        tracing::trace!(elapsed = ?started.elapsed(), "closer maintenance");
    }

    /// Deletes the `metrics` rows nothing uses once
    /// [`RECLAIM_NAMES_AFTER`](crate::store::RECLAIM_NAMES_AFTER) names were
    /// added, or as many series runs trimmed, since the last time (the check
    /// scans the tables using them: so its cost is spread over that many).
    fn reclaim_names(&mut self) {
        let Some(high) = self.retry("counting metric names", |w| w.conn.metric_high()) else {
            return;
        };
        let after = crate::store::RECLAIM_NAMES_AFTER;
        if high < self.names_high + after && self.names_released < after {
            self.names_high = self.names_high.min(high);
            return;
        }
        if !lock(&self.shared.queue).batches.is_empty() {
            return; // closing work first
        }
        if let Some(n) = self.retry("reclaiming metric names", |w| w.conn.reclaim_metric_names()) {
            if n > 0 {
                tracing::info!(deleted = n, "deleted metric names no window uses");
            }
            self.names_high = self
                .retry("counting metric names", |w| w.conn.metric_high())
                .unwrap_or(high);
            self.names_released = 0;
        }
    }
}

/// One piece of handed-over work.
enum Item<'a> {
    Seal(
        crate::store::WindowRow,
        &'a crate::store::Known,
        crate::store::PointId,
    ),
    Close(&'a crate::store::Closing, Option<&'a crate::store::Known>),
}

impl Item<'_> {
    fn run(&self, work: &crate::store::CloseWork<'_>, anomaly: &AnomalyConfig) -> Result<bool> {
        match self {
            Item::Seal(window, known, upto) => work.seal_window(*window, Some(known), Some(*upto)),
            Item::Close(c, known) => {
                work.close_window(c, *known, &mut |points, opened_ms, names| {
                    close_summary(points, opened_ms, names, anomaly)
                })
            }
        }
    }
}

/// What closing a window writes, from all its points: per-metric statistics,
/// the anomalies against its pre-incident baseline, and the change scores
/// and ranks ([`crate::change`]). Pure.
fn close_summary(
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
