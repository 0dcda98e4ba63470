//! Time as the recorder sees it.
//!
//! Everything time-dependent (buffer eviction, deadlines, retention) reads an
//! injected [`Clock`], so tests and replays drive time without sleeping. Only the
//! background thread's pacing between ticks uses real time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::model::Timestamp;

/// A source of the current time.
pub trait Clock: Send + Sync {
    /// The current time.
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that only moves when told to. Clones share the same time.
///
/// ```
/// use incident_recorder::{Clock, ManualClock, Timestamp};
/// use std::time::Duration;
///
/// let clock = ManualClock::new(Timestamp::from_unix_ms(1_000));
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now().as_unix_ms(), 6_000);
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    ms: Arc<AtomicI64>,
}

impl ManualClock {
    /// A clock stopped at `t`.
    pub fn new(t: Timestamp) -> ManualClock {
        ManualClock {
            ms: Arc::new(AtomicI64::new(t.as_unix_ms())),
        }
    }

    /// Sets the time (it may go backwards; the recorder copes).
    pub fn set(&self, t: Timestamp) {
        self.ms.store(t.as_unix_ms(), Ordering::SeqCst);
    }

    /// Moves the time forward by `d`.
    pub fn advance(&self, d: Duration) {
        let now = self.now();
        self.set(now.saturating_add(d));
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_unix_ms(self.ms.load(Ordering::SeqCst))
    }
}
