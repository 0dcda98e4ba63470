//! Time as the recorder sees it.
//!
//! Everything time-dependent (buffer eviction, deadlines, retention) reads an
//! injected [`Clock`], so tests and replays drive time without sleeping. Only the
//! background thread's pacing between ticks uses real time.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use crate::error::{Error, Result};
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

/// The clock of an input that carries its own timestamps (a file being
/// ingested, a feed): it shows the newest time the input has reached, never
/// goes back, and never goes beyond the wall clock: a time more than
/// [`InputClock::MAX_AHEAD`] ahead of it is refused, so one mistyped year
/// cannot move deadlines and retention (and delete history) with it.
///
/// ```
/// use incident_recorder::{Clock, InputClock, ManualClock, Timestamp};
/// use std::time::Duration;
///
/// let wall = ManualClock::new(Timestamp::from_unix_ms(1_000_000));
/// let input = InputClock::with_wall(Timestamp::from_unix_ms(0), wall);
/// input.advance_to(Timestamp::from_unix_ms(5_000))?;
/// input.advance_to(Timestamp::from_unix_ms(4_000))?; // never back
/// assert_eq!(input.now().as_unix_ms(), 5_000);
/// assert!(input.advance_to(Timestamp::from_unix_ms(1_000_000 + 601_000)).is_err());
/// # Ok::<(), incident_recorder::Error>(())
/// ```
#[derive(Clone)]
pub struct InputClock {
    time: ManualClock,
    wall: Arc<dyn Clock>,
}

impl std::fmt::Debug for InputClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InputClock")
            .field("now", &self.time.now())
            .finish_non_exhaustive()
    }
}

impl InputClock {
    /// How far ahead of the wall clock an input time may be (clocks of
    /// different hosts disagree a little).
    pub const MAX_AHEAD: Duration = Duration::from_secs(10 * 60);

    /// An input clock at `start`, bounded by the system's wall clock.
    pub fn new(start: Timestamp) -> InputClock {
        InputClock::with_wall(start, SystemClock)
    }

    /// An input clock at `start`, bounded by `wall` (tests inject one).
    pub fn with_wall(start: Timestamp, wall: impl Clock + 'static) -> InputClock {
        InputClock {
            time: ManualClock::new(start),
            wall: Arc::new(wall),
        }
    }

    /// Refuses `t` if it is more than [`InputClock::MAX_AHEAD`] ahead of the
    /// wall clock; the clock does not move.
    pub fn check(&self, t: Timestamp) -> Result<()> {
        let wall = self.wall.now();
        if t > wall.saturating_add(Self::MAX_AHEAD) {
            return Err(Error::AheadOfWallClock { timestamp: t, wall });
        }
        Ok(())
    }

    /// Moves the clock to `t` if `t` is later and not refused by
    /// [`InputClock::check`].
    pub fn advance_to(&self, t: Timestamp) -> Result<()> {
        self.check(t)?;
        if t > self.time.now() {
            self.time.set(t);
        }
        Ok(())
    }
}

impl Clock for InputClock {
    fn now(&self) -> Timestamp {
        self.time.now()
    }
}
