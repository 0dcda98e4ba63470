//! In-process coordination of a store's writers and readers.
//!
//! SQLite lets one connection write at a time. Inside one process the
//! recorder's tick and its closer would otherwise meet in SQLite's busy
//! handler, which sleeps and retries in steps of up to 100 ms, and could
//! make a tick wait behind a run of closing transactions. [`WriteGate`]
//! orders them: the tick goes first whenever it is waiting. Other processes
//! still meet the recorder in SQLite's lock (bounded by `busy_timeout`).
//!
//! [`Settled`] lets a query through the recorder's store see what the
//! recorder has already decided: a window the tick closed is sealed by the
//! closer a moment later, and a query waits for that (briefly) instead of
//! showing it as still recording.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Who holds the write turn and who waits for it urgently.
#[derive(Debug, Default)]
pub(crate) struct WriteGate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Debug, Default)]
struct GateState {
    held: bool,
    urgent: usize,
}

/// A write turn; released when dropped.
pub(crate) struct Turn<'a> {
    gate: &'a WriteGate,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl WriteGate {
    /// The turn, ahead of every patient writer (the tick's transactions).
    pub(crate) fn urgent(&self) -> Turn<'_> {
        let mut s = lock(&self.state);
        s.urgent += 1;
        while s.held {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.urgent -= 1;
        s.held = true;
        Turn { gate: self }
    }

    /// True if an urgent writer (a tick) waits for the turn: a patient one
    /// holding it should commit and let it in.
    pub(crate) fn urgent_waiting(&self) -> bool {
        lock(&self.state).urgent > 0
    }

    /// The turn once no urgent writer waits (closing work, maintenance).
    pub(crate) fn patient(&self) -> Turn<'_> {
        let mut s = lock(&self.state);
        while s.held || s.urgent > 0 {
            s = self.changed.wait(s).unwrap_or_else(|e| e.into_inner());
        }
        s.held = true;
        Turn { gate: self }
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        lock(&self.gate.state).held = false;
        self.gate.changed.notify_all();
    }
}

/// Closing work handed to the closer and done by it, counted in batches.
#[derive(Debug, Default)]
pub(crate) struct Settled {
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
    /// Batches done and the journal purged behind them (invisible to
    /// readers: housekeeping).
    tidied: u64,
    /// Transactions the closer committed: tells a closer that is slow
    /// from one that is stuck.
    commits: u64,
}

impl Settled {
    /// Counts one more batch handed over; returns its number.
    pub(crate) fn handed(&self) -> u64 {
        let mut s = lock(&self.state);
        s.handed += 1;
        s.handed
    }

    /// Records that every batch up to `batch` is done.
    pub(crate) fn done(&self, batch: u64) {
        let mut s = lock(&self.state);
        s.done = s.done.max(batch);
        drop(s);
        self.changed.notify_all();
    }

    /// Records that every batch up to `batch` is done and tidied.
    pub(crate) fn tidied(&self, batch: u64) {
        let mut s = lock(&self.state);
        s.done = s.done.max(batch);
        s.tidied = s.tidied.max(batch);
        drop(s);
        self.changed.notify_all();
    }

    /// Records that the closer committed one more transaction.
    pub(crate) fn progressed(&self) {
        lock(&self.state).commits += 1;
    }

    /// Waits until every batch handed over so far is done (and tidied, if
    /// `tidy`), as long as the closer commits something at least every
    /// `stall`: a long backlog (thousands of windows closed by a bulk
    /// import) is waited for, a database locked by another program is not.
    /// Returns false if it gave up.
    pub(crate) fn wait_while_progressing(&self, stall: Duration, tidy: bool) -> bool {
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
    pub(crate) fn wait(&self, bound: Duration) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A patient writer waiting for the turn lets an urgent one that came
    /// later go first.
    #[test]
    fn urgent_writers_go_before_patient_ones() {
        let gate = Arc::new(WriteGate::default());
        let first = gate.urgent();
        let patient_done = Arc::new(AtomicBool::new(false));
        let patient = {
            let (gate, done) = (gate.clone(), patient_done.clone());
            std::thread::spawn(move || {
                let _t = gate.patient();
                done.store(true, Ordering::SeqCst);
            })
        };
        // The urgent waiter registers before the turn is released.
        let urgent = {
            let gate = gate.clone();
            let done = patient_done.clone();
            std::thread::spawn(move || {
                let _t = gate.urgent();
                done.load(Ordering::SeqCst)
            })
        };
        while lock(&gate.state).urgent == 0 {
            std::thread::yield_now();
        }
        drop(first);
        assert!(!urgent.join().unwrap(), "the urgent writer went first");
        patient.join().unwrap();
        assert!(patient_done.load(Ordering::SeqCst));
    }

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
