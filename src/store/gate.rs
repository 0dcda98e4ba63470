//! In-process coordination of a store's writers and readers.
//!
//! SQLite lets one connection write at a time. Inside one process the
//! recorder's tick and its closer would otherwise meet in SQLite's busy
//! handler, which sleeps and retries in steps of up to 100 ms, and could
//! make a tick wait behind a run of closing transactions. [`WriteGate`]
//! orders them: the tick goes first whenever it is waiting. Other processes
//! still meet the recorder in SQLite's lock (bounded by `busy_timeout`).
//!

use std::sync::{Condvar, Mutex, MutexGuard};

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
}
