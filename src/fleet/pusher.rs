//! The background pusher of `watch --push-to` and `ingest --push-to`.
//!
//! One thread of its own, with its own connections to the local database
//! (through the [`Store`] it is given) and to the central one: it never takes
//! the recorder's lock, and the recorder never waits for it. Every
//! `poll_interval` it counts the local backlog (one cheap query, no network);
//! when there is one it pushes all of it. It connects at once (a push goes
//! to the central database it finds there: see `fleet` on targets), verifies
//! its marks against that database on every new connection, and while it has
//! nothing to send asks every [`PusherOptions::identity_check`] whether the database is
//! still the same one (dropped and created again: it pushes everything the
//! node has to the new one). Refused windows are tried again when due. A failure
//! drops the connection and waits, doubling from 1 s up to `max_backoff`
//! with jitter, so a fleet that lost its central database does not come
//! back in step. Windows wait in the local database meanwhile, which
//! trimming spares up to its bound (`store::push`).

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::error::PushError;
use super::push::{PushSummary, Session};
use super::target::Target;
use crate::model::Timestamp;
use crate::store::Store;

/// How long [`Pusher::stop`] waits for the batch in flight.
const STOP_WAIT: Duration = Duration::from_secs(10);

/// How a [`Pusher`] paces itself.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct PusherOptions {
    /// How often the local backlog is checked (default 2 s): a window is
    /// pushed within about this long after it closes.
    pub poll_interval: Duration,
    /// The longest wait between attempts while the central database fails
    /// (default 60 s).
    pub max_backoff: Duration,
    /// How often a pusher with nothing to send checks that its central
    /// database is still the one it connected to, not one dropped and
    /// created again (one query; default 60 s).
    pub identity_check: Duration,
}

impl Default for PusherOptions {
    fn default() -> PusherOptions {
        PusherOptions {
            poll_interval: Duration::from_secs(2),
            max_backoff: Duration::from_secs(60),
            identity_check: Duration::from_secs(60),
        }
    }
}

/// What a [`Pusher`] has done and where it stands, for status lines and
/// monitoring (`GET /metrics`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PusherStatus {
    /// Closed windows waiting to be pushed (refused ones whose retry is
    /// due included), as of the last check.
    pub backlog: u64,
    /// Windows this pusher pushed.
    pub pushed: u64,
    /// Windows it found already in the central database.
    pub skipped: u64,
    /// Windows the central database refused (each refusal of a window tried
    /// again counts again).
    pub failed: u64,
    /// Windows the central database had lost and this pusher sent again
    /// (found by verifying on connecting).
    pub missing: u64,
    /// Windows trimming deleted before they were pushed (the database's count).
    pub dropped_unpushed: u64,
    /// True while a connection to the central database is open.
    pub connected: bool,
    /// Failed attempts in a row (0 after a success).
    pub failures: u32,
    /// The last failure (the password cut out), cleared by a success.
    pub last_error: Option<String>,
    /// When it last pushed a window.
    pub last_push: Option<Timestamp>,
}

/// Pushes a database's closed windows in the background; see the module
/// documentation. Stop it with [`Pusher::stop`] or [`Pusher::finish`];
/// dropping it stops it without waiting.
pub struct Pusher {
    shared: Arc<Shared>,
    done: Receiver<()>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Pusher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pusher")
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    status: PusherStatus,
    stop: Option<Stop>,
    notified: bool,
}

#[derive(Clone, Copy, Debug)]
enum Stop {
    /// After the batch in flight.
    Now,
    /// After one more pass over the backlog, batches started before this.
    Drain(Instant),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps until `at`, a [`Pusher::notify`] or a stop request.
    fn wait_until(&self, at: Instant) -> Option<Stop> {
        let mut g = self.lock();
        loop {
            if g.stop.is_some() {
                return g.stop;
            }
            if std::mem::take(&mut g.notified) {
                return None;
            }
            let now = Instant::now();
            if now >= at {
                return None;
            }
            g = self
                .wake
                .wait_timeout(g, at - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// False once a batch should not be started any more.
    fn may_continue(&self) -> bool {
        match self.lock().stop {
            None => true,
            Some(Stop::Now) => false,
            Some(Stop::Drain(until)) => Instant::now() < until,
        }
    }
}

impl Pusher {
    /// Starts pushing `store` to `target` on a thread of its own. Marks the
    /// store as one that pushes at once, so trimming spares its unpushed
    /// windows even while the central database is unreachable.
    pub fn start(
        store: Store,
        target: Target,
        options: PusherOptions,
    ) -> Result<Pusher, PushError> {
        store.enable_push(Timestamp::now())?;
        let state = store.push_state()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                status: PusherStatus {
                    backlog: state.backlog,
                    dropped_unpushed: state.dropped_unpushed,
                    ..PusherStatus::default()
                },
                ..State::default()
            }),
            wake: Condvar::new(),
        });
        let (tx, done) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("incident-recorder-push".into())
            .spawn({
                let shared = shared.clone();
                move || run(&shared, &store, &target, &options, tx)
            })
            .map_err(|e| {
                PushError::Local(crate::Error::Io {
                    path: "push thread".into(),
                    source: e,
                })
            })?;
        Ok(Pusher {
            shared,
            done,
            thread: Some(thread),
        })
    }

    /// Where it stands now.
    pub fn status(&self) -> PusherStatus {
        self.shared.lock().status.clone()
    }

    /// Closed windows waiting to be pushed, as of the last check.
    pub fn backlog(&self) -> u64 {
        self.shared.lock().status.backlog
    }

    /// Checks the backlog now rather than at the next poll (a window just
    /// closed). Does not cut a backoff short: that waits for the poll after it.
    pub fn notify(&self) {
        self.shared.lock().notified = true;
        self.shared.wake.notify_all();
    }

    /// Stops after the batch in flight (waiting at most 10 s for it) and
    /// returns the final status. Windows not pushed wait for the next push.
    pub fn stop(self) -> PusherStatus {
        self.end(Stop::Now, STOP_WAIT)
    }

    /// Pushes what waits once more, without retrying a failure, then stops;
    /// gives up (leaving the rest for the next push) after `within`. For
    /// a command that ends, like `ingest`.
    pub fn finish(self, within: Duration) -> PusherStatus {
        self.end(Stop::Drain(Instant::now() + within), within + STOP_WAIT)
    }

    fn end(mut self, how: Stop, wait: Duration) -> PusherStatus {
        self.shared.lock().stop = Some(how);
        self.shared.wake.notify_all();
        match self.done.recv_timeout(wait) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                if let Some(t) = self.thread.take() {
                    let _ = t.join();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!("the pusher is still waiting for the central database; leaving it");
            }
        }
        self.status()
    }
}

impl Drop for Pusher {
    fn drop(&mut self) {
        let mut g = self.shared.lock();
        g.stop.get_or_insert(Stop::Now);
        drop(g);
        self.shared.wake.notify_all();
    }
}

/// The pusher thread.
fn run(shared: &Shared, store: &Store, target: &Target, options: &PusherOptions, done: Sender<()>) {
    let mut session: Option<Session> = None;
    let mut checked = Instant::now();
    let mut next = Instant::now();
    let mut jitter = Jitter::default();
    loop {
        let stop = shared.wait_until(next);
        if matches!(stop, Some(Stop::Now)) {
            break;
        }
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            pass(shared, store, target, options, &mut session, &mut checked)
        }))
        .unwrap_or_else(|_| {
            Err(PushError::Local(crate::Error::Unavailable(
                "the pusher hit an internal error (a bug); retrying",
            )))
        });
        let failures = {
            let mut g = shared.lock();
            let s = &mut g.status;
            match &outcome {
                Ok(()) => {
                    if s.failures > 0 {
                        tracing::info!(
                            central = target.display(),
                            "pushing to the central database again"
                        );
                    }
                    s.failures = 0;
                    s.last_error = None;
                }
                Err(e) => {
                    s.failures = s.failures.saturating_add(1);
                    s.connected = false;
                    let text = crate::error_chain(e);
                    if s.failures == 1 {
                        tracing::warn!(backlog = s.backlog, error = %text, "cannot push to the central database; windows wait locally, retrying with backoff");
                    } else {
                        tracing::debug!(failures = s.failures, error = %text, "push failed again");
                    }
                    s.last_error = Some(text);
                }
            }
            s.failures
        };
        if outcome.is_err() {
            session = None;
        }
        if stop.is_some() {
            break;
        }
        let wait = match failures {
            0 => options.poll_interval,
            n => backoff(n, options.max_backoff, jitter.next()),
        };
        next = Instant::now() + wait;
    }
    shared.lock().status.connected = false;
    let _ = done.send(());
}

/// One check of the backlog, and a push of all of it if there is one;
/// connects first if there is no session (and verifies the marks then).
fn pass(
    shared: &Shared,
    store: &Store,
    target: &Target,
    options: &PusherOptions,
    session: &mut Option<Session>,
    checked: &mut Instant,
) -> Result<(), PushError> {
    let state = store.push_state()?;
    {
        let mut g = shared.lock();
        g.status.dropped_unpushed = state.dropped_unpushed;
        if session.is_none() {
            g.status.backlog = state.backlog;
        }
    }
    let s = match session {
        Some(s) => s,
        None => {
            let mut s = Session::open(target, store)?;
            let missing = s.verify(store)?;
            let mut g = shared.lock();
            g.status.connected = true;
            g.status.missing += missing;
            *checked = Instant::now();
            session.insert(s)
        }
    };
    // Notes written on windows already pushed go on their own.
    s.push_notes(store)?;
    let pending = store.push_pending(s.target(), Timestamp::now())?;
    shared.lock().status.backlog = pending;
    if pending == 0 {
        if checked.elapsed() >= options.identity_check {
            *checked = Instant::now();
            if s.central_changed()? {
                tracing::warn!(
                    central = target.display(),
                    "the central database was created again; pushing every window this node still has"
                );
                *session = None;
                shared.lock().status.connected = false;
                return pass(shared, store, target, options, session, checked);
            }
        }
        return Ok(());
    }
    let mut counted = PushSummary::default();
    let result = s.push_backlog(store, &mut |sum| {
        {
            let mut g = shared.lock();
            let st = &mut g.status;
            st.pushed += sum.pushed - counted.pushed;
            st.skipped += sum.skipped - counted.skipped;
            st.failed += sum.failed - counted.failed;
            if sum.pushed > counted.pushed {
                st.last_push = Some(Timestamp::now());
            }
        }
        counted = sum.clone();
        shared.may_continue()
    });
    // Notes written on windows already pushed go on their own.
    s.push_notes(store)?;
    let pending = store.push_pending(s.target(), Timestamp::now())?;
    let state = store.push_state()?;
    {
        let mut g = shared.lock();
        g.status.backlog = pending;
        g.status.dropped_unpushed = state.dropped_unpushed;
    }
    if let Ok(s) = &result
        && (s.pushed > 0 || s.failed > 0)
    {
        tracing::info!(
            pushed = s.pushed,
            skipped = s.skipped,
            failed = s.failed,
            retried = s.retried,
            central = target.display(),
            "pushed windows"
        );
    }
    result.map(drop)
}

/// The wait after `failures` failures in a row: 1 s, 2 s, 4 s... up to
/// `max`, scaled by a factor between 1/2 and 1 drawn from `jitter`.
pub(crate) fn backoff(failures: u32, max: Duration, jitter: u64) -> Duration {
    let doubling = 1u32 << failures.saturating_sub(1).min(20);
    let full = Duration::from_secs(1).saturating_mul(doubling).min(max);
    let unit = (jitter >> 11) as f64 / (1u64 << 53) as f64;
    full.mul_f64(0.5 + 0.5 * unit)
}

/// Random numbers for the jitter, from the standard library's hasher keys.
#[derive(Default)]
struct Jitter(u64);

impl Jitter {
    fn next(&mut self) -> u64 {
        use std::hash::BuildHasher;
        self.0 += 1;
        std::collections::hash_map::RandomState::new().hash_one(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_between_half_and_all() {
        let max = Duration::from_secs(60);
        let top = u64::MAX; // the largest jitter: the full wait (less a hair)
        let secs = |n| backoff(n, max, top).as_secs_f64();
        for (n, want) in [
            (1, 1.0),
            (2, 2.0),
            (3, 4.0),
            (6, 32.0),
            (7, 60.0),
            (40, 60.0),
        ] {
            assert!((secs(n) - want).abs() < 1e-6, "failure {n}: {}", secs(n));
        }
        assert_eq!(
            backoff(3, max, 0),
            Duration::from_secs(2),
            "no jitter: half"
        );
        let mut j = Jitter::default();
        for _ in 0..1000 {
            let d = backoff(5, max, j.next());
            assert!(
                d >= Duration::from_secs(8) && d <= Duration::from_secs(16),
                "{d:?}"
            );
        }
    }
}
