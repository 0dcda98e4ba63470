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
    state: Mutex<(u64, u64)>,
    changed: Condvar,
}

impl Settled {
    /// Counts one more batch handed over; returns its number.
    pub(crate) fn handed(&self) -> u64 {
        let mut s = lock(&self.state);
        s.0 += 1;
        s.0
    }

    /// Records that every batch up to `batch` is done.
    pub(crate) fn done(&self, batch: u64) {
        let mut s = lock(&self.state);
        s.1 = s.1.max(batch);
        drop(s);
        self.changed.notify_all();
    }

    /// Waits until every batch handed over so far is done, at most `bound`.
    /// Returns false if it gave up.
    pub(crate) fn wait(&self, bound: Duration) -> bool {
        let give_up = Instant::now() + bound;
        let mut s = lock(&self.state);
        let target = s.0;
        while s.1 < target {
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
}
