//! The closer: closing and sealing, off the tick.
//!
//! # Design
//!
//! The tick decides that a window closes (`window.rs`) and commits the
//! decision as a queued close (`window_closes`) with its last points; it
//! only ever appends to the journal. The closer thread does the rest, with
//! the store's [`seal_plan`](crate::store::CloserConn::seal_plan) and
//! [`CloseWork::seal`]: it seals the journal as a whole (every window's
//! journal points move into `series` / `samples`), and a window whose close
//! is queued gets its summary (statistics, anomalies, change scores) and final status in the transaction that
//! seals its last points. It seals when closes are queued, when the journal
//! holds `SEAL_POINTS` (`store/close.rs`) points per recording window, and at least every
//! [`SEAL_AFTER`] while it holds any: how far `incident_samples` lags a
//! recording window. Then it trims history, a bounded step at a time.
//!
//! Its transactions take the store's write gate only when no tick waits for
//! it, and end early when one comes to wait, so a tick never waits longer
//! than one window's seal, however many windows close together (a thousand
//! VMs alerting at once). Work it could not do before the recorder stops
//! stays queued in the database and is done by the next one.
//!
//! Work is handed over in batches, counted by [`Settled`], which the
//! recorder's `sync` and stop wait for.
//!
//! Invariant: the closer never takes the recorder's state lock.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::anomaly::AnomalyConfig;
use crate::error::{Error, Result};
use crate::store::{CloseWork, Handoff, PointId, SealItem, Store, Trim};

/// Windows sealed or closed per transaction at most, and the time after
/// which a transaction takes no more. A tick that comes to wait for the
/// write turn meanwhile ends the transaction at the next window: it waits
/// for one window's work at most.
const TX_ITEMS: usize = 64;
const TX_TIME: Duration = Duration::from_millis(10);
/// How often the closer looks at the journal when nothing is handed over.
const IDLE_CHECK: Duration = Duration::from_secs(1);
/// The longest a point stays in the journal only (plus one seal's time),
/// however slowly points come: the bound on `incident_samples`' lag.
pub(crate) const SEAL_AFTER: Duration = Duration::from_secs(30);
/// How long the recorder's reads (`IncidentRecorder::window` ...) wait for
/// closes handed over before them.
const SETTLE_BOUND: Duration = Duration::from_secs(2);

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
    /// `sync` or a stop asks for the journal to be sealed now.
    /// A seal asked for by `sync` or a stop: the number it was handed as.
    tidy: Option<u64>,
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
        Batch {
            number: next.number,
            handoff: self.handoff,
            // The later trim's cutoff includes the earlier's.
            trim: next.trim.or(self.trim),
        }
    }
}

/// Closing work handed to the closer and done by it, counted in batches.
#[derive(Debug, Default)]
pub(super) struct Settled {
    state: Mutex<Counts>,
    changed: Condvar,
}

/// Invariant: `tidied <= done <= handed`.
#[derive(Debug, Default)]
struct Counts {
    /// Batches handed over.
    handed: u64,
    /// Batches whose windows are sealed, summarized and trimmed after.
    done: u64,
    /// Batches done and the journal sealed after them (as `sync` and a
    /// stop ask).
    tidied: u64,
    /// Transactions the closer committed: tells a closer that is slow
    /// from one that is stuck.
    commits: u64,
}

impl Settled {
    /// Counts one more batch handed over; returns its number.
    pub(super) fn handed(&self) -> u64 {
        let mut s = lock(&self.state);
        s.handed += 1;
        s.handed
    }

    /// Records that every batch up to `batch` is done.
    pub(super) fn done(&self, batch: u64) {
        let mut s = lock(&self.state);
        s.done = s.done.max(batch);
        drop(s);
        self.changed.notify_all();
    }

    /// Records that every batch up to `batch` is done and tidied.
    pub(super) fn tidied(&self, batch: u64) {
        let mut s = lock(&self.state);
        s.done = s.done.max(batch);
        s.tidied = s.tidied.max(batch);
        drop(s);
        self.changed.notify_all();
    }

    /// Records that the closer committed one more transaction.
    pub(super) fn progressed(&self) {
        lock(&self.state).commits += 1;
    }

    /// Waits until every batch handed over so far is done (and tidied, if
    /// `tidy`), as long as the closer commits something at least every
    /// `stall`: a long backlog (thousands of windows closed by a bulk
    /// import) is waited for, a database locked by another program is not.
    /// Returns false if it gave up.
    pub(super) fn wait_while_progressing(&self, stall: Duration, tidy: bool) -> bool {
        loop {
            let before = lock(&self.state).commits;
            if self.wait_for(stall, tidy) {
                return true;
            }
            if lock(&self.state).commits == before {
                return false;
            }
        }
    }

    /// Waits until every batch handed over so far is done, at most `bound`.
    /// Returns false if it gave up.
    pub(super) fn wait(&self, bound: Duration) -> bool {
        self.wait_for(bound, false)
    }

    fn wait_for(&self, bound: Duration, tidy: bool) -> bool {
        let give_up = Instant::now() + bound;
        let mut s = lock(&self.state);
        let target = s.handed;
        while if tidy { s.tidied } else { s.done } < target {
            let left = give_up.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self
                .changed
                .wait_timeout(s, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Closer {
    /// Starts the closer of `store`'s recorder; it first takes the closes a
    /// previous recorder left queued.
    pub(super) fn start(store: &Store, anomaly: AnomalyConfig) -> Result<Closer> {
        let mut conn = store.closer()?;
        let settled = Arc::new(Settled::default());
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
            closer.submit(Handoff { closes: pending }, None);
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
                    last_seal: Instant::now(),
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
        // Numbered under the queue's lock: batches queue in their order.
        let mut q = lock(&self.shared.queue);
        let number = self.settled.handed();
        q.batches.push_back(Batch {
            number,
            handoff,
            trim,
        });
        drop(q);
        self.shared.wake.notify_all();
    }

    /// Waits (at most [`SETTLE_BOUND`]) for the closes handed over so far,
    /// so the recorder's own reads show the windows it closed as closed.
    pub(super) fn settle(&self) {
        if !self.settled.wait(SETTLE_BOUND) {
            tracing::debug!("closing work still running; reading without it");
        }
    }

    /// Waits until the work handed over so far is done (and the journal
    /// sealed, if `tidy`), as long as the closer gets something done at
    /// least every `stall` (see [`Settled::wait_while_progressing`]).
    pub(super) fn drain(&self, stall: Duration, tidy: bool) -> bool {
        if tidy {
            // Counted as work handed over, so the wait below covers it.
            let mut q = lock(&self.shared.queue);
            q.tidy = Some(self.settled.handed());
            drop(q);
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
    /// Series trimmed since then: names they may have left unused.
    names_released: i64,
    settled: Arc<Settled>,
    shared: Arc<Shared>,
    anomaly: AnomalyConfig,
    /// When the journal was last sealed (see [`SEAL_AFTER`]).
    last_seal: Instant,
}

impl Worker {
    fn run(mut self) {
        // The last batch done.
        let mut last = 0;
        loop {
            let (next, tidy) = {
                let mut q = lock(&self.shared.queue);
                if q.batches.is_empty() && !q.stop && q.tidy.is_none() {
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
                (next, q.tidy.take())
            };
            if let Some(batch) = next {
                last = last.max(batch.number);
                self.batch(batch);
                self.settled.done(last);
            }
            match tidy {
                Some(number) => {
                    self.seal_if(true);
                    last = last.max(number);
                }
                None => {
                    self.seal_if(false);
                    self.reclaim_names();
                }
            }
            self.settled.tidied(last);
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

    /// Seals the journal (and closes the windows queued) when due: `any`
    /// journal point at all, `SEAL_POINTS` (`store/close.rs`) per recording window, or any
    /// point once [`SEAL_AFTER`] has passed since the last seal.
    fn seal_if(&mut self, any: bool) {
        let any = any || self.last_seal.elapsed() >= SEAL_AFTER;
        if self
            .retry("checking the journal", |w| w.conn.seal_due(any))
            .unwrap_or(false)
        {
            self.seal();
        }
    }

    /// One seal: every window with journal points or a queued close, a few
    /// per transaction (a waiting tick goes first in between).
    fn seal(&mut self) {
        let started = Instant::now();
        let Some(plan) = self.retry("reading the journal", |w| w.conn.seal_plan()) else {
            return;
        };
        let (items, upto) = (&plan.items, plan.upto);
        let anomaly = self.anomaly.clone();
        let mut next = 0;
        let mut whole = true;
        while next < items.len() {
            let from = next;
            let done = self.retry("sealing windows", |w| {
                w.conn
                    .work(|work| seal_some(work, &items[from..], upto, &anomaly))
            });
            self.settled.progressed();
            next = match done {
                Some(n) => from + n,
                // One of them fails for good: alone, so the others go on.
                None => {
                    whole &= self
                        .retry("sealing a window", |w| {
                            w.conn.work(|work| work.seal(&items[from], upto, &anomaly))
                        })
                        .is_some();
                    from + 1
                }
            };
        }
        // A window left unsealed keeps the journal below `upto` for the
        // next seal.
        if whole {
            self.retry("deleting the sealed journal", |w| w.conn.end_seal(upto));
        }
        self.last_seal = Instant::now();
        tracing::trace!(windows = items.len(), elapsed = ?started.elapsed(), "sealed the journal");
    }

    fn batch(&mut self, batch: Batch) {
        let Batch { handoff, trim, .. } = batch;
        if !handoff.is_empty() {
            // The closes are read back from the database (with any left
            // by a previous recorder), with the journal.
            self.seal();
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

    /// Deletes the `metrics` rows nothing uses once
    /// [`RECLAIM_NAMES_AFTER`](crate::store::RECLAIM_NAMES_AFTER) names were
    /// added, or as many series trimmed, since the last time (the check
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

/// Seals the first of `items`, then more while the transaction's budget
/// lasts and no tick waits for the turn; returns how many it sealed.
fn seal_some(
    work: &CloseWork<'_>,
    items: &[SealItem],
    upto: PointId,
    anomaly: &AnomalyConfig,
) -> Result<usize> {
    let started = Instant::now();
    let mut n = 0;
    while n < items.len()
        && (n == 0 || (n < TX_ITEMS && started.elapsed() < TX_TIME && !work.tick_waiting()))
    {
        work.seal(&items[n], upto, anomaly)?;
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settled_waits_for_every_batch_handed_before() {
        let s = Settled::default();
        assert!(s.wait(Duration::ZERO), "nothing handed: settled");
        let b1 = s.handed();
        let b2 = s.handed();
        s.done(b1);
        assert!(!s.wait(Duration::ZERO), "batch 2 is not done");
        s.done(b2);
        assert!(s.wait(Duration::ZERO));
    }

    /// A closer that commits nothing is given up on after the stall bound;
    /// one that finishes is waited for.
    #[test]
    fn waiting_gives_up_only_without_progress() {
        let s = Settled::default();
        let b = s.handed();
        assert!(!s.wait_while_progressing(Duration::from_millis(1), false));
        s.progressed();
        s.done(b);
        assert!(s.wait_while_progressing(Duration::from_millis(1), false));
        assert!(
            !s.wait_while_progressing(Duration::from_millis(1), true),
            "done, not tidied"
        );
        s.tidied(b);
        assert!(s.wait_while_progressing(Duration::from_millis(1), true));
    }
}
