//! Calling the provider without letting it stall the recorder.
//!
//! A provider is host code: it may return an error, panic, or hang (a stuck
//! API call, an NFS mount that stopped answering). Errors and panics cost one
//! resource one tick. A hang must not cost the loop, so every provider call
//! runs on a worker thread and the tick supervises it:
//!
//! - **Per resource** (providers that keep the default batch, and any ids a
//!   batch left out): the worker calls `current_metrics` id after id and takes
//!   the samples into the recorder's state a few at a time (each `Metrics` is
//!   freed before the next ones are allocated, which keeps the allocator on
//!   its fast path). It publishes the index of the call in flight; a call
//!   that makes no progress for a quarter of `provider_timeout` is a hang.
//!   The worker is then *abandoned* (marked so under the state lock, so it can
//!   never take a stale sample later), its resource is skipped for a number
//!   of ticks that doubles with each hang (at most [`MAX_QUARANTINE_TICKS`])
//!   and in any case until that call returns, and the remaining ids go on, in
//!   the same tick, on a fresh worker. A provider that is merely slow keeps
//!   its worker: only a single call that stops making progress is a hang.
//! - **Batch** (providers that override `current_metrics_batch`): one call,
//!   bounded by `provider_timeout`. A batch that overruns is abandoned and the
//!   tick goes on without samples; for [`BATCH_BACKOFF_TICKS`] ticks resources
//!   are then asked one by one, and never while that batch is still out.
//! - **Listing**: bounded by `provider_timeout`, not retried while out.
//!
//! An abandoned worker leaves once its call returns, giving back its slot in
//! the stuck count; while [`MAX_STUCK_WORKERS`] are stuck no call is made at
//! all, so even a provider that hangs on everything holds a bounded number of
//! threads.

use std::collections::{HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use super::Inner;
use crate::error::{ProviderError, clip};
use crate::model::Metrics;
use crate::provider::{MetricsProvider, ran_default_batch, reset_default_batch_mark};

/// Ticks without the batch call after it hung once.
pub(super) const BATCH_BACKOFF_TICKS: u64 = 60;
/// Longest a hanging resource is skipped, in ticks.
pub(super) const MAX_QUARANTINE_TICKS: u64 = 720;
/// Workers that may be stuck in provider calls before calls stop.
pub(super) const MAX_STUCK_WORKERS: usize = 16;
/// Samples a worker takes into the state per lock.
const GROUP: usize = 4;
/// `Shared::progress` when the worker is in no provider call.
const IDLE: usize = usize::MAX;

/// One resource's answer.
pub(super) type Answer = (String, Result<Metrics, ProviderError>);

/// A fetched sample not yet taken: index into the plan's ids, and the answer
/// (`None` if the call panicked).
type PendingSample = (usize, Option<Result<Metrics, ProviderError>>);

/// The batch call's reply: the ids asked, the answers (`Err` if it panicked),
/// and whether the provider's batch was the default one.
type BatchReply = (Vec<String>, Result<Vec<Answer>, ()>, bool);

/// Per-resource sampling handed to a worker.
pub(super) struct SamplePlan {
    /// The ids, listed ones first.
    pub(super) ids: Arc<Vec<String>>,
    /// Start at this index (a fresh worker resumes after a hang).
    pub(super) from: usize,
    /// `ids[..listed]` were listed by the provider this tick.
    pub(super) listed: usize,
    /// False when taking a sample must also mark its resource as listed.
    pub(super) marked: bool,
    /// The tick's number.
    pub(super) tick: u64,
    /// The tick's time.
    pub(super) now_ms: i64,
}

enum Job {
    List(Sender<Result<Vec<String>, ()>>),
    Batch(Vec<String>, Sender<BatchReply>),
    /// Replies with the number of panics once every id is done.
    Sample(SamplePlan, Weak<Inner>, Sender<u64>),
}

/// What one tick's provider calls came to.
#[derive(Default)]
pub(super) struct Fetched {
    /// Calls that panicked.
    pub(super) panics: u64,
    /// Calls abandoned because they hung.
    pub(super) hangs: u64,
    /// Resources not asked because an earlier call of theirs hung.
    pub(super) skipped: u64,
}

/// What abandoned workers are still inside, so it is not asked again.
#[derive(Default)]
struct InFlight {
    list: bool,
    batch: bool,
    ids: HashSet<String>,
}

/// A worker's handle, shared with its thread.
struct Shared {
    /// Index (into the plan's ids) of the call in flight; [`IDLE`] between
    /// calls (taking samples, waiting for the state lock, done).
    progress: AtomicUsize,
    /// Set, under the recorder's state lock, when the tick gave up on it.
    abandoned: AtomicBool,
    /// What it was blamed for, released from `InFlight` when it leaves.
    blamed: Mutex<Blamed>,
    /// Samples fetched but not yet taken into the state (index into the
    /// plan's ids, answer; `None` if the call panicked). Whoever abandons the
    /// worker takes them, so a hang loses no sample already fetched.
    pending: Mutex<Vec<PendingSample>>,
}

#[derive(Default)]
enum Blamed {
    #[default]
    Nothing,
    List,
    Batch,
    Id(String),
}

struct Worker {
    jobs: Sender<Job>,
    shared: Arc<Shared>,
}

/// The provider's worker thread and what the recorder learned about it.
pub(super) struct Fetcher {
    worker: Option<Worker>,
    stuck: Arc<AtomicUsize>,
    in_flight: Arc<Mutex<InFlight>>,
    /// Ticks fetched so far (the clock of the backoffs below).
    ticks: u64,
    batch_off_until: u64,
    /// Resources whose calls hung: skipped until (tick, strikes).
    quarantine: HashMap<String, (u64, u32)>,
}

impl Fetcher {
    pub(super) fn new() -> Fetcher {
        Fetcher {
            worker: None,
            stuck: Arc::new(AtomicUsize::new(0)),
            in_flight: Arc::default(),
            ticks: 0,
            batch_off_until: 0,
            quarantine: HashMap::new(),
        }
    }

    /// Number of workers still stuck inside a provider call.
    pub(super) fn stuck_workers(&self) -> usize {
        self.stuck.load(Ordering::Relaxed)
    }

    /// True while resources must be asked one by one (the batch hung lately)
    /// or some are being skipped: the caller then marks listed resources up
    /// front instead of leaving it to the samples.
    pub(super) fn per_resource_only(&self) -> bool {
        self.ticks < self.batch_off_until || lock(&self.in_flight).batch
    }

    /// True if some resources are quarantined.
    pub(super) fn skipping(&self) -> bool {
        !self.quarantine.is_empty()
    }

    /// The provider's resource list, or `None` if it panicked or hung (or a
    /// listing that hung earlier is still out).
    pub(super) fn list(
        &mut self,
        inner: &Arc<Inner>,
        p: &Arc<dyn MetricsProvider>,
        timeout: Duration,
        out: &mut Fetched,
    ) -> Option<Vec<String>> {
        self.ticks += 1;
        if lock(&self.in_flight).list {
            out.skipped += 1;
            return None;
        }
        let (tx, rx) = mpsc::channel();
        self.submit(p, Job::List(tx))?;
        match rx.recv_timeout(timeout) {
            Ok(Ok(ids)) => Some(ids),
            Ok(Err(())) => {
                out.panics += 1;
                tracing::error!("provider panicked listing resources; keeping buffers as they are");
                None
            }
            Err(_) => {
                out.hangs += 1;
                self.abandon(inner, Blamed::List);
                tracing::error!(
                    ?timeout,
                    "provider hung listing resources; keeping buffers as they are"
                );
                None
            }
        }
    }

    /// One batch call for `ids`: the answers, the ids it left out, and whether
    /// it was the provider's default batch. `None` if it hung (this tick has
    /// no samples) or panicked (then `Some` with every id left out).
    pub(super) fn batch(
        &mut self,
        inner: &Arc<Inner>,
        p: &Arc<dyn MetricsProvider>,
        ids: Vec<String>,
        timeout: Duration,
        out: &mut Fetched,
    ) -> Option<(Vec<Answer>, Vec<String>, bool)> {
        let (tx, rx) = mpsc::channel();
        self.submit(p, Job::Batch(ids, tx))?;
        match rx.recv_timeout(timeout) {
            Ok((asked, Ok(mut answers), default)) => {
                let missing = missing(&asked, &mut answers);
                Some((answers, missing, default))
            }
            Ok((asked, Err(()), default)) => {
                out.panics += 1;
                tracing::error!("provider panicked in current_metrics_batch; asking per resource");
                Some((Vec::new(), asked, default))
            }
            Err(_) => {
                out.hangs += 1;
                self.batch_off_until = self.ticks + BATCH_BACKOFF_TICKS;
                self.abandon(inner, Blamed::Batch);
                tracing::error!(
                    "provider hung in current_metrics_batch; asking per resource for the next {BATCH_BACKOFF_TICKS} ticks"
                );
                None
            }
        }
    }

    /// Asks every id of `plan` one by one on the worker, which takes the
    /// samples into `inner` as they come; moves past calls that hang.
    pub(super) fn sample(
        &mut self,
        inner: &Arc<Inner>,
        p: &Arc<dyn MetricsProvider>,
        mut plan: SamplePlan,
        timeout: Duration,
        out: &mut Fetched,
    ) {
        self.skip_quarantined(&mut plan, out);
        let stall = timeout / 4;
        while plan.from < plan.ids.len() {
            let (tx, rx) = mpsc::channel();
            let resume = SamplePlan {
                ids: Arc::clone(&plan.ids),
                ..plan
            };
            let Some(shared) = self.submit(p, Job::Sample(resume, Arc::downgrade(inner), tx))
            else {
                return;
            };
            let mut seen = usize::MAX;
            loop {
                match rx.recv_timeout(stall) {
                    Ok(panics) => {
                        out.panics += panics;
                        return;
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        let at = shared.progress.load(Ordering::Acquire);
                        if at == IDLE || at != seen {
                            seen = at; // a slow provider or a busy lock, not a hung call
                            continue;
                        }
                        let id = plan.ids[at].clone();
                        out.hangs += 1;
                        let strikes = self.quarantine.get(&id).map_or(0, |q| q.1) + 1;
                        let ticks = (1u64 << strikes.min(16)).min(MAX_QUARANTINE_TICKS);
                        tracing::error!(resource = %clip(&id), skipped_ticks = ticks, "provider hung; skipping this resource while its call is out, then for a while");
                        self.quarantine
                            .insert(id.clone(), (self.ticks + ticks, strikes));
                        self.abandon(inner, Blamed::Id(id));
                        // The samples its group had fetched before the hang.
                        let mut state = inner.state();
                        for (i, answer) in lock(&shared.pending).drain(..) {
                            let mark = (i < plan.listed && !plan.marked).then_some(plan.tick);
                            inner.accept_fetched(
                                &mut state,
                                &plan.ids[i],
                                plan.now_ms,
                                answer,
                                mark,
                            );
                        }
                        drop(state);
                        plan.from = at + 1;
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

    /// Leaves out of `plan` the resources quarantined now (or whose last
    /// call is still out), keeping listed ones first.
    fn skip_quarantined(&mut self, plan: &mut SamplePlan, out: &mut Fetched) {
        let out_now = lock(&self.in_flight).ids.clone();
        let ticks = self.ticks;
        self.quarantine
            .retain(|id, (until, _)| *until > ticks || out_now.contains(id));
        if self.quarantine.is_empty() {
            return;
        }
        let keep = |id: &String| !self.quarantine.contains_key(id);
        let listed = plan.ids[plan.from..plan.listed.max(plan.from)]
            .iter()
            .filter(|id| keep(id))
            .count();
        let ids: Vec<String> = plan.ids[plan.from..]
            .iter()
            .filter(|id| keep(id))
            .cloned()
            .collect();
        out.skipped += (plan.ids.len() - plan.from - ids.len()) as u64;
        plan.ids = Arc::new(ids);
        plan.from = 0;
        plan.listed = listed;
    }

    /// Gives up on the current worker (it leaves once its call returns).
    /// Marked under the state lock, so the worker can take no sample after.
    fn abandon(&mut self, inner: &Inner, blamed: Blamed) {
        let Some(w) = self.worker.take() else { return };
        let _state = inner.state();
        {
            let mut f = lock(&self.in_flight);
            match &blamed {
                Blamed::List => f.list = true,
                Blamed::Batch => f.batch = true,
                Blamed::Id(id) => {
                    f.ids.insert(id.clone());
                }
                Blamed::Nothing => {}
            }
        }
        *lock(&w.shared.blamed) = blamed;
        self.stuck.fetch_add(1, Ordering::Relaxed);
        w.shared.abandoned.store(true, Ordering::Release);
    }

    /// Sends a job to the worker, starting one if needed; `None` when too
    /// many workers are stuck (or no thread can be started).
    fn submit(&mut self, p: &Arc<dyn MetricsProvider>, job: Job) -> Option<Arc<Shared>> {
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
        worker.shared.progress.store(IDLE, Ordering::Release);
        if worker.jobs.send(job).is_err() {
            self.worker = None;
            return None;
        }
        Some(Arc::clone(&worker.shared))
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
    let wanted: HashSet<&str> = asked.iter().map(String::as_str).collect();
    let mut got = HashSet::with_capacity(answers.len());
    answers.retain(|(id, _)| wanted.contains(id.as_str()) && got.insert(id.clone()));
    asked
        .iter()
        .filter(|id| !got.contains(*id))
        .cloned()
        .collect()
}

/// A thread running provider calls until its queue closes or it is
/// abandoned; then it releases what it was blamed for and its stuck slot.
fn spawn_worker(
    p: Arc<dyn MetricsProvider>,
    stuck: Arc<AtomicUsize>,
    in_flight: Arc<Mutex<InFlight>>,
) -> Option<Worker> {
    let (jobs, queue) = mpsc::channel::<Job>();
    let shared = Arc::new(Shared {
        progress: AtomicUsize::new(IDLE),
        abandoned: AtomicBool::new(false),
        blamed: Mutex::new(Blamed::Nothing),
        pending: Mutex::new(Vec::with_capacity(GROUP)),
    });
    let mine = Arc::clone(&shared);
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
                        reset_default_batch_mark();
                        let answer = guard(|| p.current_metrics_batch(&ids));
                        let default = ran_default_batch(&*p);
                        let _ = reply.send((ids, answer, default));
                    }
                    Job::Sample(plan, inner, reply) => {
                        if let Some(panics) = sample(&*p, &plan, &inner, &mine) {
                            let _ = reply.send(panics);
                        }
                    }
                }
                if mine.abandoned.load(Ordering::Acquire) {
                    break;
                }
            }
            if mine.abandoned.load(Ordering::Acquire) {
                let mut f = lock(&in_flight);
                match std::mem::take(&mut *lock(&mine.blamed)) {
                    Blamed::List => f.list = false,
                    Blamed::Batch => f.batch = false,
                    Blamed::Id(id) => {
                        f.ids.remove(&id);
                    }
                    Blamed::Nothing => {}
                }
                stuck.fetch_sub(1, Ordering::Relaxed);
            }
        });
    match spawned {
        Ok(_) => Some(Worker { jobs, shared }),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the provider thread");
            None
        }
    }
}

/// The worker's side of [`Fetcher::sample`]; `None` once abandoned.
fn sample(
    p: &dyn MetricsProvider,
    plan: &SamplePlan,
    inner: &Weak<Inner>,
    me: &Shared,
) -> Option<u64> {
    let mut panics = 0;
    let mut i = plan.from;
    while i < plan.ids.len() {
        let end = (i + GROUP).min(plan.ids.len());
        for at in i..end {
            me.progress.store(at, Ordering::Release);
            let answer = guard(|| p.current_metrics(&plan.ids[at]));
            me.progress.store(IDLE, Ordering::Release);
            if answer.is_err() {
                panics += 1;
                tracing::error!(resource = %clip(&plan.ids[at]), "provider panicked; resource skipped this tick");
            }
            // Checked under the same lock the abandoning tick drains: a
            // sample is either taken over by it or dropped as stale.
            let mut pending = lock(&me.pending);
            if me.abandoned.load(Ordering::Acquire) {
                return None;
            }
            pending.push((at, answer.ok()));
        }
        let inner = inner.upgrade()?;
        let mut state = inner.state();
        let mut pending = lock(&me.pending);
        if me.abandoned.load(Ordering::Acquire) {
            return None; // taken over: the tick has what was pending
        }
        for (at, answer) in pending.drain(..) {
            let mark = (at < plan.listed && !plan.marked).then_some(plan.tick);
            inner.accept_fetched(&mut state, &plan.ids[at], plan.now_ms, answer, mark);
        }
        i = end;
    }
    Some(panics)
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn guard<T>(f: impl FnOnce() -> T) -> Result<T, ()> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| ())
}
