//! Calling the provider without letting it stall the recorder.
//!
//! A provider is host code: it may return an error, panic, or hang (a stuck
//! API call, an NFS mount that stopped answering). Errors and panics cost one
//! resource one tick. A hang must not cost the loop: every provider call runs
//! on a worker thread, and the tick waits for it with a deadline.
//!
//! - The listing and the batch call may each take `provider_timeout` (by
//!   default the sample interval, at least 1 s). A batch that overruns is
//!   abandoned (its worker is left to finish on its own) and the tick goes on
//!   without samples; for the next [`BATCH_BACKOFF_TICKS`] ticks resources
//!   are asked one by one instead.
//! - One by one, a call that overruns a quarter of the timeout marks that
//!   resource as hanging: it is skipped for a number of ticks that doubles
//!   with each hang (capped at [`MAX_QUARANTINE_TICKS`]), and the remaining
//!   resources continue on a fresh worker in the same tick.
//! - A resource (or the batch call) is never asked again while an earlier
//!   call for it has not returned, so a call that never returns holds one
//!   thread, not one per retry. As a last guard, while [`MAX_STUCK_WORKERS`]
//!   workers are stuck no new call is made at all.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::error::{ProviderError, clip};
use crate::model::Metrics;
use crate::provider::MetricsProvider;

/// Ticks without the batch call after it hung once.
pub(super) const BATCH_BACKOFF_TICKS: u64 = 60;
/// Longest a hanging resource is skipped, in ticks.
pub(super) const MAX_QUARANTINE_TICKS: u64 = 720;
/// Workers that may be stuck in provider calls before calls stop.
pub(super) const MAX_STUCK_WORKERS: usize = 16;

/// What the workers are inside right now: shared so the tick can skip
/// resources whose last call has not returned.
#[derive(Default)]
struct InFlight {
    batch: bool,
    ids: std::collections::HashSet<String>,
}

/// One resource's answer.
pub(super) type Answer = (String, Result<Metrics, ProviderError>);

/// The batch call's reply: the ids asked, then the answers (`Err` if it panicked).
type BatchReply = (Vec<String>, Result<Vec<Answer>, ()>);

enum Job {
    List(Sender<Result<Vec<String>, ()>>),
    /// The ids come back with the answers (no copy of them per tick).
    Batch(Vec<String>, Sender<BatchReply>),
    /// Answers go back one at a time; `Err(())` for a call that panicked.
    Each(Vec<String>, Sender<(usize, Result<Answer, ()>)>),
}

/// What one round of provider calls produced.
#[derive(Default)]
pub(super) struct Fetched {
    /// The answers, at most one per id asked.
    pub(super) answers: Vec<Answer>,
    /// Calls that panicked.
    pub(super) panics: u64,
    /// Calls abandoned because they overran their deadline.
    pub(super) hangs: u64,
    /// Resources skipped because they hung recently.
    pub(super) skipped: u64,
}

/// A provider thread: its job queue and whether the tick gave up on it.
struct Worker {
    jobs: Sender<Job>,
    abandoned: Arc<std::sync::atomic::AtomicBool>,
}

/// The worker threads and what they learned about the provider.
pub(super) struct Fetcher {
    worker: Option<Worker>,
    stuck: Arc<AtomicUsize>,
    in_flight: Arc<std::sync::Mutex<InFlight>>,
    batch_off_until: u64,
    quarantine: HashMap<String, (u64, u32)>,
}

impl Fetcher {
    pub(super) fn new() -> Fetcher {
        Fetcher {
            worker: None,
            stuck: Arc::new(AtomicUsize::new(0)),
            in_flight: Arc::default(),
            batch_off_until: 0,
            quarantine: HashMap::new(),
        }
    }

    /// Number of workers still stuck inside a provider call.
    pub(super) fn stuck_workers(&self) -> usize {
        self.stuck.load(Ordering::Relaxed)
    }

    /// The provider's resource list, or `None` if it panicked, overran
    /// `budget`, or too many workers are stuck.
    pub(super) fn list(
        &mut self,
        p: &Arc<dyn MetricsProvider>,
        budget: Duration,
        out: &mut Fetched,
    ) -> Option<Vec<String>> {
        let (tx, rx) = mpsc::channel();
        self.submit(p, Job::List(tx))?;
        match self.wait(&rx, Instant::now() + budget) {
            Some(Ok(ids)) => Some(ids),
            Some(Err(())) => {
                out.panics += 1;
                tracing::error!("provider panicked listing resources");
                None
            }
            None => {
                out.hangs += 1;
                tracing::error!(
                    ?budget,
                    "provider hung listing resources; tick goes on without samples"
                );
                None
            }
        }
    }

    /// The metrics of `ids`, asked by `tick`, within `budget`.
    pub(super) fn fetch(
        &mut self,
        p: &Arc<dyn MetricsProvider>,
        mut ids: Vec<String>,
        tick: u64,
        budget: Duration,
        out: &mut Fetched,
    ) {
        let deadline = Instant::now() + budget;
        let (batch_busy, stuck_ids) = {
            let f = lock(&self.in_flight);
            (f.batch, f.ids.clone())
        };
        if !self.quarantine.is_empty() || !stuck_ids.is_empty() {
            let before = ids.len();
            self.quarantine
                .retain(|id, (until, _)| *until > tick || stuck_ids.contains(id));
            ids.retain(|id| !self.quarantine.contains_key(id));
            out.skipped += (before - ids.len()) as u64;
        }
        if tick >= self.batch_off_until && !batch_busy && !ids.is_empty() {
            let (tx, rx) = mpsc::channel();
            if self.submit(p, Job::Batch(ids, tx)).is_none() {
                return;
            }
            match self.wait(&rx, deadline) {
                Some((asked, Ok(answers))) => {
                    out.answers = answers;
                    ids = missing(&asked, &mut out.answers);
                }
                Some((asked, Err(()))) => {
                    ids = asked;
                    out.panics += 1;
                    tracing::error!(
                        "provider panicked in current_metrics_batch; asking per resource"
                    );
                }
                None => {
                    out.hangs += 1;
                    self.batch_off_until = tick + BATCH_BACKOFF_TICKS;
                    tracing::error!(
                        "provider hung in current_metrics_batch; asking per resource for the next {BATCH_BACKOFF_TICKS} ticks"
                    );
                    return;
                }
            }
        }
        self.each(p, ids, tick, budget, Instant::now() + budget, out);
    }

    /// Asks `ids` one by one, moving past calls that hang.
    fn each(
        &mut self,
        p: &Arc<dyn MetricsProvider>,
        mut ids: Vec<String>,
        tick: u64,
        budget: Duration,
        deadline: Instant,
        out: &mut Fetched,
    ) {
        while !ids.is_empty() {
            let (tx, rx) = mpsc::channel();
            if self.submit(p, Job::Each(ids.clone(), tx)).is_none() {
                return;
            }
            let mut next = 0; // index of the call in flight
            loop {
                let call_deadline = (Instant::now() + budget / 4).min(deadline);
                match rx.recv_timeout(call_deadline.saturating_duration_since(Instant::now())) {
                    Ok((i, answer)) => {
                        match answer {
                            Ok(a) => out.answers.push(a),
                            Err(()) => {
                                out.panics += 1;
                                tracing::error!(resource = %clip(&ids[i]), "provider panicked; resource skipped this tick");
                            }
                        }
                        next = i + 1;
                        if next == ids.len() {
                            return;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        self.abandon();
                        out.hangs += 1;
                        let id = &ids[next];
                        let strikes = self.quarantine.get(id).map_or(0, |q| q.1) + 1;
                        let ticks = (1u64 << strikes.min(16)).min(MAX_QUARANTINE_TICKS);
                        tracing::error!(resource = %clip(id), skipped_ticks = ticks, "provider hung; skipping this resource for a while");
                        self.quarantine.insert(id.clone(), (tick + ticks, strikes));
                        if Instant::now() >= deadline {
                            return;
                        }
                        ids.drain(..=next);
                        break;
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        self.worker = None;
                        return;
                    }
                }
            }
        }
    }

    /// Waits for one reply until `deadline`; on timeout abandons the worker.
    fn wait<T>(&mut self, rx: &Receiver<T>, deadline: Instant) -> Option<T> {
        match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(v) => Some(v),
            Err(_) => {
                self.abandon();
                None
            }
        }
    }

    /// Leaves the current worker to finish its call on its own; it gives its
    /// slot in the stuck count back when it exits.
    fn abandon(&mut self) {
        if let Some(w) = self.worker.take() {
            self.stuck.fetch_add(1, Ordering::Relaxed);
            w.abandoned.store(true, Ordering::Relaxed);
        }
    }

    /// Sends a job to the worker, starting one if needed. `None` when too
    /// many workers are stuck (or a thread cannot be started).
    fn submit(&mut self, p: &Arc<dyn MetricsProvider>, job: Job) -> Option<()> {
        if self.worker.is_none() {
            let stuck = self.stuck.load(Ordering::Relaxed);
            if stuck >= MAX_STUCK_WORKERS {
                tracing::error!(
                    stuck,
                    "provider calls are stuck; no new call until some return"
                );
                return None;
            }
            self.worker = Some(spawn_worker(
                Arc::clone(p),
                Arc::clone(&self.stuck),
                Arc::clone(&self.in_flight),
            )?);
        }
        let worker = self.worker.as_ref()?;
        if worker.jobs.send(job).is_err() {
            self.worker = None;
            return None;
        }
        Some(())
    }
}

/// Ids of `asked` with no answer, after dropping answers to ids not asked
/// and duplicates. Cheap when the answers come back in order.
fn missing(asked: &[String], answers: &mut Vec<Answer>) -> Vec<String> {
    let in_order =
        answers.len() == asked.len() && answers.iter().zip(asked).all(|(a, id)| &a.0 == id);
    if in_order {
        return Vec::new();
    }
    let wanted: std::collections::HashSet<&str> = asked.iter().map(String::as_str).collect();
    let mut got = std::collections::HashSet::with_capacity(answers.len());
    answers.retain(|(id, _)| wanted.contains(id.as_str()) && got.insert(id.clone()));
    asked
        .iter()
        .filter(|id| !got.contains(*id))
        .cloned()
        .collect()
}

/// A thread running provider calls until its queue closes. If it was
/// abandoned mid-call, it releases its slot in `stuck` when that call returns.
fn spawn_worker(
    p: Arc<dyn MetricsProvider>,
    stuck: Arc<AtomicUsize>,
    in_flight: Arc<std::sync::Mutex<InFlight>>,
) -> Option<Worker> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let abandoned = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = Arc::clone(&abandoned);
    let spawned = std::thread::Builder::new()
        .name("incident-recorder-provider".into())
        .spawn(move || {
            for job in queue {
                // A failed send means the tick stopped waiting: nothing to do.
                match job {
                    Job::List(reply) => {
                        let _ = reply.send(guard(|| p.monitored_resource_ids()));
                    }
                    Job::Batch(ids, reply) => {
                        lock(&in_flight).batch = true;
                        let answer = guard(|| p.current_metrics_batch(&ids));
                        lock(&in_flight).batch = false;
                        let _ = reply.send((ids, answer));
                    }
                    Job::Each(ids, reply) => {
                        for (i, id) in ids.into_iter().enumerate() {
                            lock(&in_flight).ids.insert(id.clone());
                            let answer = guard(|| p.current_metrics(&id));
                            lock(&in_flight).ids.remove(&id);
                            if reply.send((i, answer.map(|r| (id, r)))).is_err() {
                                break;
                            }
                        }
                    }
                }
            }
            if flag.load(Ordering::Relaxed) {
                stuck.fetch_sub(1, Ordering::Relaxed);
            }
        });
    match spawned {
        Ok(_) => Some(Worker { jobs, abandoned }),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the provider thread");
            None
        }
    }
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn guard<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| ())
}
