//! The recorder: buffers every resource, opens and closes windows, writes ticks.
//!
//! # Design
//!
//! All mutable state sits in one [`State`] behind one mutex: the pre-incident
//! buffers, the open windows (only their bookkeeping: id, deadline, point
//! count; their points are in SQLite), the points not yet committed and the
//! store's writer. Anything slow that is not ours runs *outside* that lock:
//! provider calls happen before the tick takes it, and queries read the
//! database through the pool. So a slow provider delays only the tick, and a
//! query never waits for a tick.
//!
//! Each tick (`record_sample`) asks the provider once per resource, appends
//! every sample to its buffer and, if the resource has an open window, to the
//! pending batch; then it closes windows that are due and commits everything
//! in one transaction. If the commit fails (a full disk), the pending points
//! stay queued and the next commit retries them; windows stop taking points
//! at their limit, so the queue stays bounded. With a
//! [`RecorderConfig::commit_interval`], ticks and pushes leave the batch
//! queued the same way until the interval has passed since the last commit.
//!
//! Every decision about a window's life (open, extend, resolve, stop, close,
//! status, start and end time, the daily limit) is made in [`window`]; this
//! module applies them, and queues a close only through
//! `Lifecycle::close`.
//!
//! # Time
//!
//! The recorder's time is its clock's, made monotonic: the newest time the
//! clock has shown since it opened. Samples and triggers act at their own
//! timestamps.
//!
//! # Replays
//!
//! A resource has one sample per timestamp. A sample at or before the
//! resource's newest time (its newest sample in memory, or its newest
//! recorded point in the database) is checked against what is already there
//! (see `store/replay.rs`): the same values are a duplicate (skipped and
//! counted), other values a conflict (refused); a sample older than the
//! resource's newest that no window holds is stale (skipped and counted,
//! only a buffer could have held it). A trigger already recorded (same
//! resource, type, id and time) is skipped. So input replayed into the
//! database adds nothing.
//!
//! Invariants:
//! - at most one open window per resource (`ResourceState::window`);
//! - `ActiveWindow::points` counts committed plus pending points and never
//!   exceeds `max_data_points_per_window`;
//! - a window with `closing` set takes no more points and has exactly one
//!   entry in `State::closings` until a commit succeeds;
//! - a resource takes each timestamp at most once, in increasing order.

mod alerts;
mod closer;
mod detect;
mod fetch;
mod processes;
mod reclaim;
mod tick;
mod window;

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;

use crate::buffer::RingBuffer;
use crate::clock::{Clock, SystemClock};
use crate::config::RecorderConfig;
use crate::error::{Error, Result, clip};
use crate::model::{IncidentWindow, Metrics, Resource, Timestamp, Trigger, WindowId, WindowStatus};
use crate::names::{MetricKey, MetricNames};
use crate::provider::MetricsProvider;
use crate::store::{Closing, PointBatch, Recorded, Samples, Store, WindowFilter, Writer};
use tick::ProviderSlot;
use window::{ActiveWindow, CloseReason, Lifecycle, OnRecover, OnSample, OnTrigger};

pub use alerts::{AlertOutcome, AlertResolve};
pub use processes::DEFAULT_EVERY as DEFAULT_PROCESS_EVERY;
pub use window::Adjusted as AlertAdjustment;

pub(crate) use crate::validate::{self, validate_resource_id};

/// Why a value with a new name is refused when its resource has its share.
const RESOURCE_NAME_SHARE: &str = "the resource holds its share of the metric name table (25,000 distinct names): a new name is taken once names leave its buffer";

/// Why a value with a new name is refused when the name table is full.
const NAME_TABLE_FULL: &str = "the metric name table is full (100,000 distinct names held): a new name is taken once names no buffer holds are reclaimed";

/// Records incident windows of the resources a provider (or the host, with
/// [`push_sample`](IncidentRecorder::push_sample)) reports.
///
/// `IncidentRecorder` is `Send + Sync`: share it with an `Arc` and call it from
/// any thread. Dropping it stops the sampling thread and commits what is
/// pending; windows still recording stay so in the database and are resumed
/// (or closed as `interrupted`) by the next `open`.
///
/// ```
/// use incident_recorder::{IncidentRecorder, Metrics, RecorderConfig, Timestamp, Trigger};
///
/// let recorder = IncidentRecorder::open(RecorderConfig::default())?; // in memory
/// let t0 = Timestamp::now();
/// for i in 0..3 {
///     let at = Timestamp::from_unix_ms(t0.as_unix_ms() + i * 5_000);
///     recorder.push_sample("vm-101", at, Metrics::new().with("cpu", 40.0 + i as f64), None)?;
/// }
/// let id = recorder.start_recording("vm-101", Trigger::alert("cpu-high"))?;
/// recorder.stop_recording(&id)?;
/// let window = recorder.window(&id)?.expect("just recorded");
/// assert_eq!(window.data_points.len(), 3);
/// assert_eq!(window.summary.unwrap().peaks["cpu"], 42.0);
/// # Ok::<(), incident_recorder::Error>(())
/// ```
pub struct IncidentRecorder {
    inner: Arc<Inner>,
    worker: Mutex<Option<Worker>>,
    recovery: Recovery,
}

impl std::fmt::Debug for IncidentRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncidentRecorder")
            .field("db_path", &self.inner.config.db_path)
            .field("running", &lock(&self.worker).is_some())
            .finish_non_exhaustive()
    }
}

struct Worker {
    handle: JoinHandle<()>,
    signal: Arc<StopSignal>,
}

#[derive(Default)]
struct StopSignal {
    stopped: Mutex<bool>,
    wake: Condvar,
}

pub(crate) struct Inner {
    config: RecorderConfig,
    /// The window rules of `config`.
    rules: Lifecycle,
    clock: Arc<dyn Clock>,
    store: Store,
    provider: RwLock<Option<ProviderSlot>>,
    /// The process provider, if any (see `processes.rs`).
    processes: RwLock<Option<processes::ProcessSlot>>,
    /// The provider's worker threads; held by one tick at a time.
    fetcher: Mutex<fetch::Fetcher>,
    state: Mutex<State>,
    /// Closing work, off the tick (see `closer.rs`).
    closer: closer::Closer,
    /// The advisory lock making this the only recorder of the database.
    _lock: Option<File>,
}

/// Everything the recorder mutates; see the module docs for the invariants.
struct State {
    writer: Writer,
    names: MetricNames,
    /// Boxed, so the table's slots stay small: a table is sized in powers of
    /// two and is up to half empty, and these slots are most of the memory a
    /// resource costs beyond its ring. Hashed with foldhash (randomly seeded,
    /// minimally DoS-resistant): a tick looks every resource up (twice when the
    /// listing changed), and SipHash was a quarter of a 10,000-resource tick.
    resources: HashMap<Box<str>, Box<ResourceState>, foldhash::fast::RandomState>,
    /// Points of open windows not yet committed.
    pending: PointBatch,
    /// Windows to close at the next commit.
    closings: Vec<Closing>,
    /// Starts of recording windows moved back by a point older than them
    /// (see `window.rs`), written just before the next commit.
    moved_starts: Vec<(crate::store::WindowRow, i64)>,
    stats: RecorderStats,
    /// Tick counter, used to mark which resources the provider still lists.
    tick: u64,
    /// Reused buffer of a sample's validated values.
    scratch: Vec<(MetricKey, f64)>,
    /// Anomalies the detector found, to open windows for once the samples
    /// at hand are taken: (resource, metric, time of the sample).
    detections: Vec<(String, MetricKey, i64)>,
    /// What the last tick learned about the provider's listing.
    listing: tick::ListingMemo,
    /// The recorder's time, ms: the newest its clock has shown. Never goes
    /// back.
    time_ms: i64,
    /// The recorder's time at the last commit that succeeded: with a
    /// `commit_interval`, the next is due that long after it.
    committed_ms: i64,
    /// Commits that failed since the last that succeeded.
    failing: u64,
    /// How full the metric name table is, and its log (see `reclaim.rs`).
    name_table: reclaim::NameTable,
    /// Newest recorded point time of resources not in `resources` (from
    /// the database at open, or kept when a resource's state was dropped);
    /// moved into a resource's state when it is seen.
    recorded_until: RecordedUntil,
    /// Process snapshots by resource (see `processes.rs`).
    procs: processes::Rings,
}

/// One resource: its buffer, its open window, what we know of it.
struct ResourceState {
    buffer: RingBuffer,
    /// Time of the newest sample taken (it may have left the buffer).
    last_ts: Option<i64>,
    /// Time of the newest point of this resource in the database (or about
    /// to be): samples at or before it are checked against the store.
    recorded_until: Option<i64>,
    window: Option<ActiveWindow>,
    /// The last tick whose provider listing included this resource.
    seen_tick: u64,
    name: Option<Box<str>>,
    kind: Option<Box<str>>,
    /// Anomaly detector state, only when detection is on.
    detector: Option<Box<detect::Detector>>,
    /// Names this resource holds or brought into the name table since the
    /// last reclaim counted them: at most [`reclaim::MAX_NAMES_PER_RESOURCE`].
    names_held: u32,
}

/// Counters and gauges of a recorder, for status lines and monitoring.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
#[non_exhaustive]
pub struct RecorderStats {
    /// Ticks run.
    pub ticks: u64,
    /// Seconds spent in ticks, summed (provider calls, buffering, commit):
    /// with `ticks`, the average tick time.
    pub tick_seconds: f64,
    /// Samples accepted (ticks and pushes).
    pub samples: u64,
    /// Points committed to windows.
    pub points_written: u64,
    /// Values rejected: non-finite (NaN, ±inf), too large, or with an
    /// invalid metric name. Values refused because the name table is full
    /// are counted in `names_refused` instead.
    pub rejected_values: u64,
    /// Values with a new metric name refused because the recorder already
    /// held 100,000 distinct names (a source whose names keep changing);
    /// names no buffer holds are reclaimed, and new names taken again.
    pub names_refused: u64,
    /// Metric names reclaimed because no buffer or pending point held them.
    pub names_reclaimed: u64,
    /// Samples refused because a window of their resource spans their time
    /// without holding them (late samples).
    pub out_of_order: u64,
    /// Samples already recorded with the same values (replayed input),
    /// skipped.
    pub duplicates: u64,
    /// Samples older than their resource's newest that no window holds,
    /// skipped: only a pre-incident buffer could have held them.
    pub stale: u64,
    /// Samples refused because a point of their resource at the same time
    /// is recorded with other values.
    pub conflicts: u64,
    /// Windows closed (any status).
    pub windows_closed: u64,
    /// Samples, listings and triggers of new resources refused because the
    /// recorder already held `max_resources` resources.
    pub resources_refused: u64,
    /// Provider calls that returned an error.
    pub provider_errors: u64,
    /// Provider calls that panicked.
    pub provider_panics: u64,
    /// Provider calls abandoned because they took longer than
    /// `provider_timeout`.
    pub provider_hangs: u64,
    /// Samples not asked for because their resource's calls hung recently.
    pub provider_skipped: u64,
    /// Provider threads still stuck in a call the recorder gave up on.
    pub stuck_provider_calls: usize,
    /// Commits that failed (their points stay queued and are retried).
    pub write_errors: u64,
    /// Resources with a buffer.
    pub resources: usize,
    /// Samples held in pre-incident buffers.
    pub buffered_points: usize,
    /// Heap bytes held by the buffers' rings.
    pub buffer_bytes: usize,
    /// Windows recording.
    pub active_windows: usize,
    /// Points waiting for a successful commit.
    pub pending_points: usize,
    /// Time of the last tick.
    pub last_tick: Option<Timestamp>,
    /// The last write error, if the last commit failed.
    pub last_error: Option<String>,
}

/// One sample for [`IncidentRecorder::push_samples`].
#[derive(Clone, Debug)]
pub struct Sample<'a> {
    /// The resource it belongs to.
    pub resource: Resource<'a>,
    /// When it was taken.
    pub timestamp: Timestamp,
    /// Its values.
    pub metrics: Metrics,
    /// JSON metadata to keep with it (at most 64 KiB serialized, 64 levels deep).
    pub metadata: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// What [`IncidentRecorder::push_samples`] did with a batch.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct PushReport {
    /// Samples accepted.
    pub accepted: usize,
    /// Samples already recorded with the same values, skipped.
    pub duplicates: usize,
    /// Samples older than their resource's newest that no window holds,
    /// skipped.
    pub stale: usize,
    /// Samples refused, by position in the batch, with the reason.
    pub rejected: Vec<(usize, Error)>,
    /// Single values dropped from otherwise accepted samples, by position in
    /// the batch: the metric name (cut to 64 characters) and why.
    pub rejected_values: Vec<(usize, RejectedValue)>,
}

/// A value dropped from a sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedValue {
    /// The metric's name, cut to 64 characters.
    pub metric: String,
    /// Why: not a finite number, or an invalid name.
    pub reason: &'static str,
}

/// What a trigger did; see [`IncidentRecorder::record_trigger`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriggerOutcome {
    /// The window it opened or extended.
    pub window: WindowId,
    /// Which of the two, or nothing because it was recorded before.
    pub action: TriggerAction,
}

/// What [`Inner::record_trigger`] did, and the start of a window it opened.
struct TriggerRecorded {
    outcome: TriggerOutcome,
    start_ms: Option<i64>,
}

/// See [`TriggerOutcome`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TriggerAction {
    /// A new window.
    Opened,
    /// The resource's open window, whose deadline moved.
    Extended,
    /// The same trigger (resource, type, id, time) was already recorded:
    /// nothing changed.
    AlreadyRecorded,
}

/// What [`IncidentRecorder::open`] found and did with the windows an earlier
/// recorder left `recording`, and with the buffers it saved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// The last recorder stopped cleanly (it saved its buffers and time).
    pub clean_stop: bool,
    /// Windows that go on recording.
    pub resumed: Vec<WindowId>,
    /// Windows closed because their deadline had passed: `complete` after a
    /// clean stop, `interrupted` after a crash.
    pub closed: Vec<(WindowId, WindowStatus)>,
    /// Resources whose saved pre-incident buffer was restored.
    pub restored_buffers: usize,
}

/// How a sample relates to what its resource already has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Taken {
    /// A new sample: into the buffer and the open window.
    New,
    /// A duplicate newer than the buffer's newest: into the buffer only.
    BufferOnly,
    /// A duplicate, skipped.
    Duplicate,
    /// Older than the resource's newest and in no window, skipped.
    Stale,
    /// No valid value and no metadata: nothing to take.
    Empty,
}

impl IncidentRecorder {
    /// Opens the recorder on `config.db_path` (in memory if `None`) with the
    /// system clock. Windows left `recording` by an earlier process are resumed
    /// if their deadline is ahead, else closed as `interrupted`.
    pub fn open(config: RecorderConfig) -> Result<IncidentRecorder> {
        IncidentRecorder::open_with_clock(config, Arc::new(SystemClock))
    }

    /// Like [`open`](IncidentRecorder::open), with an injected clock.
    pub fn open_with_clock(
        config: RecorderConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<IncidentRecorder> {
        let config = config.normalized();
        let store = match &config.db_path {
            Some(path) => Store::open(path)?,
            None => Store::open_in_memory()?,
        };
        let lock = store.lock_for_recording()?;
        let mut writer = store.writer()?;
        let closer = closer::Closer::start(&store, config.anomaly.clone())?;
        // A tick waits at most a quarter of an interval for the write lock:
        // what it cannot write then waits in memory for the next commit.
        writer.set_busy_timeout((config.sample_interval / 4).clamp(
            std::time::Duration::from_millis(20),
            std::time::Duration::from_secs(1),
        ))?;
        let rules = Lifecycle::new(&config);
        let inner = Inner {
            config,
            rules,
            clock,
            store,
            provider: RwLock::new(None),
            processes: RwLock::new(None),
            fetcher: Mutex::new(fetch::Fetcher::new()),
            state: Mutex::new(State {
                writer,
                names: MetricNames::default(),
                resources: HashMap::default(),
                pending: PointBatch::default(),
                closings: Vec::new(),
                moved_starts: Vec::new(),
                stats: RecorderStats::default(),
                tick: 0,
                scratch: Vec::new(),
                detections: Vec::new(),
                listing: tick::ListingMemo::default(),
                time_ms: i64::MIN,
                committed_ms: i64::MIN,
                failing: 0,
                recorded_until: HashMap::default(),
                name_table: reclaim::NameTable::default(),
                procs: processes::Rings::default(),
            }),
            closer,
            _lock: lock,
        };
        let recovery = inner.recover()?;
        Ok(IncidentRecorder {
            inner: Arc::new(inner),
            worker: Mutex::new(None),
            recovery,
        })
    }

    /// What opening did with the windows and buffers an earlier recorder left.
    pub fn recovery(&self) -> &Recovery {
        &self.recovery
    }

    /// The recorder's time: the newest time its clock has shown since it
    /// opened (it never goes back).
    pub fn now(&self) -> Timestamp {
        Timestamp::from_unix_ms(self.inner.time(&mut self.inner.state()))
    }

    /// The configuration in effect (zeros replaced by defaults).
    pub fn config(&self) -> &RecorderConfig {
        &self.inner.config
    }

    /// The store, for queries beyond the ones here.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Sets (or replaces) the provider polled by [`record_sample`](Self::record_sample).
    pub fn set_metrics_provider(&self, provider: Arc<dyn MetricsProvider>) {
        *self
            .inner
            .provider
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(ProviderSlot::new(provider));
    }

    /// Sets (or replaces) the process provider: each tick takes a snapshot
    /// of its top processes, and the windows of its resource get the
    /// snapshots of their pre-incident minutes and one every `every` samples
    /// while they record (0: [`DEFAULT_PROCESS_EVERY`]). See
    /// [`crate::processes`] for the bounds.
    pub fn set_process_provider(
        &self,
        provider: Arc<dyn crate::provider::process::ProcessProvider>,
        every: u32,
    ) {
        let every = if every == 0 {
            DEFAULT_PROCESS_EVERY
        } else {
            every
        };
        *self
            .inner
            .processes
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(processes::ProcessSlot { provider, every });
    }

    /// Starts the sampling thread: one [`record_sample`](Self::record_sample)
    /// every `sample_interval`. Does nothing if it is already running.
    pub fn start(&self) -> Result<()> {
        let mut worker = lock(&self.worker);
        if worker.is_some() {
            return Ok(());
        }
        let signal = Arc::new(StopSignal::default());
        let inner = Arc::clone(&self.inner);
        let thread_signal = Arc::clone(&signal);
        let handle = std::thread::Builder::new()
            .name("incident-recorder".into())
            .spawn(move || tick::run(&inner, &thread_signal))
            .map_err(|source| Error::Io {
                path: "incident-recorder sampling thread".into(),
                source,
            })?;
        *worker = Some(Worker { handle, signal });
        tracing::info!(interval = ?self.inner.config.sample_interval, "incident recorder started");
        Ok(())
    }

    /// Stops the sampling thread (waiting for its tick in flight), commits
    /// every pending point and saves the pre-incident buffers and the
    /// recorder's time, for the next recorder on this database to restore.
    /// Safe to call any number of times, from any thread.
    pub fn stop(&self) -> Result<()> {
        let worker = lock(&self.worker).take();
        if let Some(Worker { handle, signal }) = worker {
            *lock(&signal.stopped) = true;
            signal.wake.notify_all();
            if handle.thread().id() != std::thread::current().id() && handle.join().is_err() {
                tracing::error!("sampling thread panicked");
            }
            tracing::info!("incident recorder stopped");
        }
        let mut state = self.inner.state();
        let now = self.inner.time(&mut state);
        // What waits in memory gets a last chance: a lock held by another
        // program, or a full disk, may let go within a few seconds.
        let give_up = std::time::Instant::now() + STOP_WAIT;
        loop {
            match self
                .inner
                .flush(&mut state, Timestamp::from_unix_ms(now), false)
            {
                Ok(()) => break,
                Err(e)
                    if (e.is_busy() || e.is_disk_full()) && std::time::Instant::now() < give_up =>
                {
                    drop(state);
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    state = self.inner.state();
                }
                Err(e) => {
                    return Err(Error::Unwritten {
                        points: state.pending.len(),
                        source: Box::new(e),
                    });
                }
            }
        }
        self.inner.save_state(&mut state)?;
        drop(state);
        // Closing work left undone stays queued in the database for the
        // next recorder; most of the time it is done within milliseconds.
        let left = give_up.saturating_duration_since(std::time::Instant::now());
        if !self
            .inner
            .closer
            .drain(left.max(std::time::Duration::from_secs(1)), true)
        {
            tracing::warn!(
                "closing work still waits for the database; the next recorder finishes it"
            );
        }
        Ok(())
    }

    /// Runs one tick now: exactly what the sampling thread does every interval.
    pub fn record_sample(&self) -> Result<()> {
        self.inner.tick()
    }

    /// Adds a sample the host took itself (push mode): it goes into the
    /// resource's buffer and, if a window is open, into the window (committed
    /// before this returns, or with a
    /// [`commit_interval`](RecorderConfig::commit_interval) by the first
    /// push or tick that finds it due). Values that are NaN or infinite are dropped and
    /// counted in [`RecorderStats::rejected_values`]; the rest is kept.
    pub fn push_sample<'a>(
        &self,
        resource: impl Into<Resource<'a>>,
        timestamp: Timestamp,
        metrics: Metrics,
        metadata: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<()> {
        let resource = resource.into();
        validate::resource(&resource)?;
        let mut state = self.inner.state();
        let now = Timestamp::from_unix_ms(self.inner.time(&mut state));
        validate::timestamp(timestamp, now)?;
        let metadata = validate::metadata(metadata)?;
        self.inner.accept(
            &mut state,
            resource,
            timestamp.as_unix_ms(),
            &metrics,
            metadata,
            None,
            None,
        )?;
        self.inner.commit_when_due(&mut state, now)
    }

    /// Adds many samples with one commit (or none, with a
    /// [`commit_interval`](RecorderConfig::commit_interval) not yet due):
    /// the fast path for bulk ingest. Invalid samples are skipped and
    /// reported; the others are kept.
    pub fn push_samples<'a>(
        &self,
        samples: impl IntoIterator<Item = Sample<'a>>,
    ) -> Result<PushReport> {
        let mut report = PushReport::default();
        let mut state = self.inner.state();
        let now = Timestamp::from_unix_ms(self.inner.time(&mut state));
        let mut dropped = Vec::new();
        for (i, s) in samples.into_iter().enumerate() {
            let outcome = validate::resource(&s.resource)
                .and_then(|()| validate::timestamp(s.timestamp, now))
                .and_then(|()| validate::metadata(s.metadata))
                .and_then(|meta| {
                    self.inner.accept(
                        &mut state,
                        s.resource,
                        s.timestamp.as_unix_ms(),
                        &s.metrics,
                        meta,
                        None,
                        Some(&mut dropped),
                    )
                });
            report
                .rejected_values
                .extend(dropped.drain(..).map(|v| (i, v)));
            match outcome {
                Ok(Taken::Duplicate) => report.duplicates += 1,
                Ok(Taken::Stale) => report.stale += 1,
                Ok(_) => report.accepted += 1,
                Err(e) => report.rejected.push((i, e)),
            }
        }
        self.inner.reclaim_names(&mut state);
        self.inner.commit_when_due(&mut state, now)?;
        Ok(report)
    }

    /// Opens a window on `resource` with its buffered samples, or, if one is
    /// already recording, extends its deadline and returns its id. Either way
    /// the trigger is recorded in `window_triggers`. The trigger fires now
    /// (the recorder's time); see [`record_trigger`](Self::record_trigger).
    pub fn start_recording<'a>(
        &self,
        resource: impl Into<Resource<'a>>,
        trigger: Trigger,
    ) -> Result<WindowId> {
        self.record_trigger(resource, trigger, None)
            .map(|o| o.window)
    }

    /// [`start_recording`](Self::start_recording) for a trigger that fired at
    /// `at` (an alert's start time, an input line's `ts`).
    pub fn start_recording_at<'a>(
        &self,
        resource: impl Into<Resource<'a>>,
        trigger: Trigger,
        at: Timestamp,
    ) -> Result<WindowId> {
        self.record_trigger(resource, trigger, Some(at))
            .map(|o| o.window)
    }

    /// Records a trigger of `resource` that fired at `at` (now if `None`),
    /// and says what it did.
    ///
    /// The trigger acts at its own time: it extends the resource's open
    /// window if that window is not over at `at` (its deadline is not past,
    /// or an alert holds it), else it opens a new one with the buffered
    /// samples within the pre-incident window before `at` (and the later
    /// ones, up to its deadline), fired and opened at `at`, with the
    /// deadline `at` + post window. The same trigger (resource, type, id and
    /// time) recorded before changes nothing
    /// ([`TriggerAction::AlreadyRecorded`]), so replayed input is idempotent.
    ///
    /// Refused: a time more than 10 minutes ahead of the recorder's;
    /// ([`Error::NotMonitored`]) a resource the provider does not monitor,
    /// when a provider is set; ([`Error::Suppressed`]) a new window over
    /// `max_windows_per_resource_per_day`.
    pub fn record_trigger<'a>(
        &self,
        resource: impl Into<Resource<'a>>,
        trigger: Trigger,
        at: Option<Timestamp>,
    ) -> Result<TriggerOutcome> {
        let resource = resource.into();
        validate::resource(&resource)?;
        validate::trigger(&trigger)?;
        let mut state = self.inner.state();
        let now = self.inner.time(&mut state);
        let at = at.map_or(now, Timestamp::as_unix_ms);
        validate::timestamp(Timestamp::from_unix_ms(at), Timestamp::from_unix_ms(now))?;
        self.inner
            .record_trigger(&mut state, resource, &trigger, at, at)
            .map(|r| r.outcome)
    }

    /// Closes a recording window now, as `complete`, and returns once it is
    /// closed (sealed, with its summary). Closing a window that is already
    /// closed does nothing; an unknown id is an error.
    pub fn stop_recording(&self, id: &WindowId) -> Result<()> {
        self.stop_recording_at(id, None)
    }

    /// [`stop_recording`](Self::stop_recording) at `at` (now if `None`): the
    /// window ends at that time, or at its last point if that is later. A
    /// stop applies to a window open at its time, as
    /// [`stop_resource_at`](Self::stop_resource_at)'s: `at` before the window
    /// opened is refused ([`Error::InvalidTimestamp`]).
    pub fn stop_recording_at(&self, id: &WindowId, at: Option<Timestamp>) -> Result<()> {
        let mut guard = self.inner.state();
        let now = self.inner.time(&mut guard);
        let at_ms = at.map_or(now, Timestamp::as_unix_ms);
        let rules = self.inner.rules;
        let State {
            resources,
            closings,
            ..
        } = &mut *guard;
        let open = resources
            .values_mut()
            .filter_map(|r| r.window.as_mut())
            .find(|w| &w.id == id);
        match open {
            Some(w) => {
                if !w.closing && !rules.stop(w, at_ms, closings) {
                    return Err(Error::InvalidTimestamp {
                        input: Timestamp::from_unix_ms(at_ms).to_string(),
                        reason: format!(
                            "window {id} opened after it: a stop applies to a window open at its time"
                        ),
                    });
                }
            }
            None => {
                drop(guard);
                return match self.inner.store.window(id.as_str())? {
                    Some(_) => Ok(()),
                    None => Err(Error::WindowNotFound(id.to_string())),
                };
            }
        }
        self.inner
            .flush(&mut guard, Timestamp::from_unix_ms(now), true)?;
        drop(guard);
        self.wait_for_closer(false)
    }

    /// Returns once the closing work of every window closed so far is done
    /// (sealed, with its summary, history trimmed after it) and the journal
    /// is sealed (`incident_samples` then has every committed point). This
    /// recorder's own reads ([`window`](Self::window), ...) wait for the
    /// closes (briefly); [`store`](Self::store)'s queries do not: call this
    /// before reading through them or another connection (your own SQLite
    /// handle on the file). It
    /// waits as long as the work goes on; it fails if the database stays
    /// locked by another program for 10 s (the work is done later). Points
    /// and closes waiting for a [`commit_interval`](RecorderConfig::commit_interval)
    /// are committed first.
    pub fn sync(&self) -> Result<()> {
        let mut state = self.inner.state();
        let now = Timestamp::from_unix_ms(self.inner.time(&mut state));
        self.inner.flush(&mut state, now, false)?;
        drop(state);
        self.wait_for_closer(true)
    }

    fn wait_for_closer(&self, tidy: bool) -> Result<()> {
        if self.inner.closer.drain(STOP_WAIT, tidy) {
            Ok(())
        } else {
            Err(Error::Unavailable(
                "closing work is waiting for the database (locked or full)",
            ))
        }
    }

    /// Stops the window of `resource_id` that was open at `at` (now if
    /// `None`), if there is one, as [`stop_recording_at`](Self::stop_recording_at)
    /// does; returns its id. What an input's stop line does: a window opened
    /// later than `at` is left alone, and every stop is recorded
    /// (`control_events`), so the same stop again (a replayed input) closes
    /// nothing, even a window a later line opened.
    pub fn stop_resource_at(
        &self,
        resource_id: &str,
        at: Option<Timestamp>,
    ) -> Result<Option<WindowId>> {
        let mut guard = self.inner.state();
        let now = self.inner.time(&mut guard);
        let at_ms = at.map_or(now, Timestamp::as_unix_ms);
        if guard
            .writer
            .find_control(resource_id, None, at_ms)?
            .is_some()
        {
            return Ok(None); // this very stop was recorded before: a replay
        }
        let rules = self.inner.rules;
        let State {
            resources,
            closings,
            ..
        } = &mut *guard;
        let stopped = resources
            .get_mut(resource_id)
            .and_then(|r| r.window.as_mut())
            .and_then(|w| rules.stop(w, at_ms, closings).then(|| w.id.clone()));
        if stopped.is_some() {
            self.inner
                .flush(&mut guard, Timestamp::from_unix_ms(now), true)?;
        }
        guard
            .writer
            .record_control(resource_id, None, at_ms, stopped.is_some())?;
        Ok(stopped)
    }

    /// Records that trigger `trigger_id` of `resource_id` cleared now. With
    /// `hold_while_alert_active`, a window whose last alert this was gets the
    /// deadline `now + post_incident_window` (never earlier than before).
    /// Returns whether any unresolved trigger had that id.
    pub fn resolve_trigger(&self, resource_id: &str, trigger_id: &str) -> Result<bool> {
        self.resolve_trigger_at(resource_id, trigger_id, None)
    }

    /// [`resolve_trigger`](Self::resolve_trigger) for a trigger that cleared
    /// at `at` (now if `None`): only triggers that fired by then are
    /// resolved, and a held window's deadline becomes `at` + post window.
    /// Every resolve is recorded (`control_events`), so the same resolve
    /// again (a replayed input) changes nothing and returns `false`.
    pub fn resolve_trigger_at(
        &self,
        resource_id: &str,
        trigger_id: &str,
        at: Option<Timestamp>,
    ) -> Result<bool> {
        let mut state = self.inner.state();
        let now = self.inner.time(&mut state);
        let at_ms = at.map_or(now, Timestamp::as_unix_ms);
        validate::timestamp(Timestamp::from_unix_ms(at_ms), Timestamp::from_unix_ms(now))?;
        // `None`: this very resolve was recorded before, a replay.
        Ok(self
            .inner
            .resolve_once(&mut state, resource_id, trigger_id, at_ms)?
            .unwrap_or(false))
    }

    /// The id of the window recording on `resource_id`, if one is open.
    pub fn recording_window(&self, resource_id: &str) -> Option<WindowId> {
        let state = self.inner.state();
        state
            .resources
            .get(resource_id)
            .and_then(|r| r.window.as_ref())
            .filter(|w| !w.closing)
            .map(|w| w.id.clone())
    }

    /// The window with this id (recording or closed), with points and summary.
    pub fn window(&self, id: &WindowId) -> Result<Option<IncidentWindow>> {
        self.inner.closer.settle();
        self.inner.store.window(id.as_str())
    }

    /// The windows of one resource, most recent first, at most `limit`
    /// (0 = all), recording ones included.
    pub fn windows_for_resource(
        &self,
        resource_id: &str,
        limit: usize,
    ) -> Result<Vec<IncidentWindow>> {
        self.inner.closer.settle();
        self.inner.store.windows(&WindowFilter {
            resource: Some(resource_id.to_owned()),
            limit,
            with_points: true,
            ..WindowFilter::default()
        })
    }

    /// The most recent windows of all resources, at most `limit` (0 = all),
    /// recording ones included.
    pub fn recent_windows(&self, limit: usize) -> Result<Vec<IncidentWindow>> {
        self.inner.closer.settle();
        self.inner.store.windows(&WindowFilter {
            limit,
            with_points: true,
            ..WindowFilter::default()
        })
    }

    /// The text for an AI prompt about a window: the one named `window_id`,
    /// else the most recent of `resource_id`. `None` if there is no such window.
    pub fn format_for_context(
        &self,
        resource_id: Option<&str>,
        window_id: Option<&WindowId>,
    ) -> Result<Option<String>> {
        let window = match (window_id, resource_id) {
            (Some(id), _) => self.window(id)?,
            (None, Some(r)) => self.windows_for_resource(r, 1)?.into_iter().next(),
            (None, None) => None,
        };
        Ok(window.as_ref().map(crate::context::format_window))
    }

    /// Counters and gauges.
    pub fn stats(&self) -> RecorderStats {
        let state = self.inner.state();
        let mut stats = state.stats.clone();
        stats.resources = state.resources.len();
        stats.buffered_points = state.resources.values().map(|r| r.buffer.len()).sum();
        stats.buffer_bytes = state
            .resources
            .values()
            .map(|r| r.buffer.heap_bytes())
            .sum();
        stats.active_windows = state
            .resources
            .values()
            .filter(|r| r.window.is_some())
            .count();
        stats.pending_points = state.pending.len();
        drop(state);
        stats.stuck_provider_calls = lock(&self.inner.fetcher).stuck_workers();
        stats
    }
}

impl Drop for IncidentRecorder {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(error = %crate::error_chain(&e), "could not commit pending points on drop");
        }
    }
}

/// How long `stop()` keeps trying to write what waits in memory.
const STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a bug, but losing the recorder over it
    // would lose the incident; the state stays usable (see State's invariants).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The recorder's time, ms: the clock made monotonic (see the module docs).
    fn time(&self, state: &mut State) -> i64 {
        state.time_ms = state.time_ms.max(self.clock.now().as_unix_ms());
        state.time_ms
    }

    /// Most rows a buffer holds: twice the point limit of a window (a window
    /// never takes more than its limit of the newest ones), however dense the
    /// samples come.
    fn max_rows(&self) -> usize {
        self.config.max_data_points_per_window.saturating_mul(2)
    }

    /// Rows a full buffer holds in the steady state: one per interval over the
    /// pre-incident window and the longer of the allowed lag and the
    /// notification allowance. Rings are sized to exactly this and grow a row
    /// at a time past it (a late tick can leave one more row in), so buffers
    /// cost no more than their samples.
    fn expected_rows(&self) -> usize {
        let c = &self.config;
        let reach = c.max_source_lag.max(c.notification_allowance);
        let span = c.pre_incident_window.as_millis() + reach.as_millis();
        ((span / c.sample_interval.as_millis().max(1)) as usize).max(1)
    }

    /// The state of a resource not seen yet: its recorded history, if any,
    /// is moved out of `recorded_until`.
    fn new_resource(&self, recorded_until: &mut RecordedUntil, id: &str) -> Box<ResourceState> {
        let mut r = ResourceState::new(self.expected_rows(), self.max_rows());
        r.recorded_until = recorded_until.remove(id);
        r
    }

    /// Takes what the last clean stop saved, resumes or closes the windows a
    /// previous process left recording, restores buffers, then applies
    /// retention.
    fn recover(&self) -> Result<Recovery> {
        // Closes a previous recorder queued and did not do come first, so
        // what follows sees those windows closed.
        if !self.closer.drain(STOP_WAIT, false) {
            tracing::warn!("closes left by a previous recorder wait for the database");
        }
        let mut guard = self.state();
        let state = &mut *guard;
        let saved = state.writer.take_saved_state()?;
        let now = self.time(state);
        let mut report = Recovery {
            clean_stop: saved.is_some(),
            ..Recovery::default()
        };
        state.recorded_until = state
            .writer
            .recorded_until()?
            .into_iter()
            .map(|(id, ts)| (id.into_boxed_str(), ts))
            .collect();
        for w in state.writer.recording_windows()? {
            let active = ActiveWindow {
                row: w.row,
                id: w.public_id,
                opened_ms: w.opened_ms,
                start_ms: w.start_ms,
                deadline_ms: w.deadline_ms,
                points: w.points,
                last_ts: w.last_ts,
                unresolved_alerts: w
                    .unresolved_alerts
                    .into_iter()
                    .map(|(id, fired_ms)| window::Alert { id, fired_ms })
                    .collect(),
                closing: false,
            };
            match self.rules.on_recover(&active, now, report.clean_stop) {
                OnRecover::Resume => {
                    tracing::info!(window = %active.id, "resuming window left recording");
                    report.resumed.push(active.id.clone());
                    let fresh = self.new_resource(&mut state.recorded_until, &w.resource);
                    let entry = state
                        .resources
                        .entry(w.resource.into_boxed_str())
                        .or_insert(fresh);
                    entry.last_ts = entry.last_ts.max(active.last_ts);
                    entry.recorded_until = entry.recorded_until.max(active.last_ts);
                    entry.window = Some(active);
                }
                OnRecover::Close(reason) => {
                    let mut active = active;
                    // A recovered window is not closing yet: this queues it.
                    if let Some(status) = self.rules.close(&mut active, reason, &mut state.closings)
                    {
                        tracing::info!(window = %active.id, %status, "closing window left recording past its deadline");
                        report.closed.push((active.id, status));
                    }
                    let until = state
                        .recorded_until
                        .entry(w.resource.into_boxed_str())
                        .or_insert(i64::MIN);
                    *until = (*until).max(active.last_ts.unwrap_or(i64::MIN));
                }
            }
        }
        if let Some(saved) = saved {
            let cutoff = self.rules.buffer_cutoff(now);
            let expected = self.expected_rows();
            for b in saved.buffers {
                let Some(buffer) = RingBuffer::restore(
                    &b.samples,
                    &mut state.names,
                    expected,
                    self.max_rows(),
                    cutoff,
                ) else {
                    tracing::warn!(resource = %clip(&b.resource), "saved buffer unreadable; starting it empty");
                    continue;
                };
                if buffer.is_empty() || validate_resource_id(&b.resource).is_err() {
                    continue;
                }
                let fresh = self.new_resource(&mut state.recorded_until, &b.resource);
                let r = state
                    .resources
                    .entry(b.resource.as_str().into())
                    .or_insert(fresh);
                r.last_ts = r.last_ts.max(buffer.newest_ts());
                r.buffer = buffer;
                r.remember(Resource {
                    id: &b.resource,
                    name: b.name.as_deref(),
                    kind: b.kind.as_deref(),
                });
                report.restored_buffers += 1;
            }
        }
        self.flush(state, Timestamp::from_unix_ms(now), true)?;
        Ok(report)
    }

    /// Saves every resource's buffer and the recorder's time (a clean stop).
    fn save_state(&self, state: &mut State) -> Result<()> {
        let now = self.time(state);
        let State {
            writer,
            names,
            resources,
            ..
        } = state;
        let buffers = resources
            .iter_mut()
            .filter(|(_, r)| !r.buffer.is_empty())
            .map(|(id, r)| {
                let samples = r.buffer.save(names);
                (&**id, r.name.as_deref(), r.kind.as_deref(), samples)
            });
        writer.save_state(Timestamp::now().as_unix_ms(), now, buffers)
    }

    /// Commits what is pending (as [`flush`](Self::flush)) if the commit
    /// interval has passed since the last commit, or at every call without
    /// one; else it stays pending, as after a failed commit.
    fn commit_when_due(&self, state: &mut State, now: Timestamp) -> Result<()> {
        let interval = crate::model::duration_ms(self.config.commit_interval);
        if interval > 0 && now.as_unix_ms() < state.committed_ms.saturating_add(interval) {
            return Ok(());
        }
        self.flush(state, now, false)
    }

    /// Commits pending points and closings (and trims, if windows closed or
    /// `trim` is set). On failure everything stays queued for the next call.
    fn flush(&self, state: &mut State, now: Timestamp, trim: bool) -> Result<()> {
        if state.pending.is_empty() && state.closings.is_empty() && !trim {
            return Ok(());
        }
        let trim = (trim || !state.closings.is_empty()).then(|| crate::store::Trim {
            cutoff_ms: now.saturating_sub(self.config.retention).as_unix_ms(),
            max_windows: self.config.max_windows,
        });
        let State {
            writer,
            names,
            pending,
            closings,
            stats,
            resources,
            failing,
            committed_ms,
            moved_starts,
            ..
        } = state;
        // Before the points that moved them (a window never starts after its
        // first point); again after a failed commit (it is idempotent).
        let moved = if moved_starts.is_empty() {
            Ok(())
        } else {
            writer.move_starts(moved_starts)
        };
        match moved.and_then(|()| writer.commit(names, pending, closings)) {
            Ok(handoff) => {
                moved_starts.clear();
                *committed_ms = now.as_unix_ms();
                self.closer.submit(handoff, trim);
                if *failing > 0 {
                    tracing::info!(
                        points = pending.len(),
                        failed = *failing,
                        "commit succeeded again; the waiting points are written"
                    );
                }
                *failing = 0;
                stats.points_written += pending.len() as u64;
                stats.windows_closed += closings.len() as u64;
                stats.last_error = None;
                pending.clear();
                if !closings.is_empty() {
                    for r in resources.values_mut() {
                        if r.window.as_ref().is_some_and(|w| w.closing) {
                            let w = r.window.take().expect("checked");
                            tracing::info!(window = %w.id, points = w.points, "completed incident window");
                        }
                    }
                    closings.clear();
                }
                Ok(())
            }
            Err(e) => {
                stats.write_errors += 1;
                stats.last_error = Some(crate::error_chain(&e));
                *failing += 1;
                // Once per streak and then at powers of two: a database held
                // by another program fails every tick until it is let go.
                if failing.is_power_of_two() {
                    tracing::warn!(error = %crate::error_chain(&e), pending = pending.len(), failed = *failing, "commit failed; the points wait in memory for the next commit");
                }
                Err(e)
            }
        }
    }

    /// Takes one sample of one resource: buffer, open window, bookkeeping.
    /// With `listed_at`, also marks the resource as listed by the provider in
    /// that tick (see `tick::ListingMemo`), sparing the tick another lookup.
    /// Values dropped from the sample go to `dropped` if given (push mode),
    /// else into a throttled log line.
    #[allow(clippy::too_many_arguments)]
    fn accept(
        &self,
        state: &mut State,
        resource: Resource<'_>,
        ts: i64,
        metrics: &Metrics,
        metadata: Option<Arc<str>>,
        listed_at: Option<u64>,
        mut dropped: Option<&mut Vec<RejectedValue>>,
    ) -> Result<Taken> {
        let State {
            names,
            resources,
            stats,
            scratch,
            recorded_until,
            name_table,
            ..
        } = &mut *state;
        scratch.clear();
        let mut known = resources.get_mut(resource.id);
        if let (Some(r), Some(tick)) = (known.as_deref_mut(), listed_at) {
            r.seen_tick = tick;
        }
        // A provider sends its metrics in the same order every time, so a name
        // is usually the one in the same column of the buffer: then it is
        // already interned and validated, and one string comparison replaces
        // a hash lookup and a validation.
        let layout = known.as_deref().map_or(&[][..], |r| r.buffer.layout());
        // New names this sample brings, within the resource's share.
        let held = known.as_deref().map_or(0, |r| r.names_held);
        let mut brought = 0u32;
        if metrics.len() > validate::MAX_VALUES_PER_SAMPLE {
            return Err(Error::TooManyValues {
                resource: clip(resource.id),
                count: metrics.len(),
                limit: validate::MAX_VALUES_PER_SAMPLE,
            });
        }
        for (i, (name, value)) in metrics.iter().enumerate() {
            let key = validate::value(value).and_then(|()| match layout.get(i) {
                Some(&k) if names.is(k, name) => Ok(k),
                _ if validate::metric_name(name) => match names.get(name) {
                    Some(k) => Ok(k),
                    None if (held + brought) as usize >= reclaim::MAX_NAMES_PER_RESOURCE => {
                        Err(RESOURCE_NAME_SHARE)
                    }
                    None => names
                        .intern(name)
                        .inspect(|_| brought += 1)
                        .ok_or(NAME_TABLE_FULL),
                },
                _ => Err("invalid metric name (1 to 256 bytes, no control characters)"),
            });
            match key {
                Ok(k) => scratch.push((k, value)),
                Err(reason) => {
                    let full = reason == NAME_TABLE_FULL || reason == RESOURCE_NAME_SHARE;
                    if full {
                        stats.names_refused += 1;
                    } else {
                        stats.rejected_values += 1;
                    }
                    if let Some(out) = dropped.as_deref_mut() {
                        out.push(RejectedValue {
                            metric: clip(name),
                            reason,
                        });
                    } else if full {
                        name_table.refused(&clip(resource.id), &clip(name), reason);
                    } else if stats.rejected_values.is_power_of_two() {
                        tracing::warn!(
                            resource = %clip(resource.id), metric = %clip(name), value,
                            total = stats.rejected_values,
                            "value rejected: {reason}"
                        );
                    }
                }
            }
        }
        if let Some(r) = known.as_deref_mut() {
            r.names_held += brought;
        }
        if scratch.is_empty() && metadata.is_none() {
            return Ok(Taken::Empty);
        }
        if known.is_none() {
            if resources.len() >= self.config.max_resources {
                stats.resources_refused += 1;
                return Err(Error::TooManyResources {
                    resource: clip(resource.id),
                    limit: self.config.max_resources,
                });
            }
            let mut fresh = self.new_resource(recorded_until, resource.id);
            fresh.seen_tick = listed_at.unwrap_or(0);
            fresh.names_held = brought;
            resources.insert(resource.id.into(), fresh);
        }
        let taken = self.classify(state, resource.id, ts)?;
        let State {
            names,
            resources,
            pending,
            closings,
            moved_starts,
            stats,
            scratch,
            detections,
            ..
        } = state;
        match taken {
            Taken::Duplicate => {
                stats.duplicates += 1;
                return Ok(taken);
            }
            Taken::Stale => {
                stats.stale += 1;
                return Ok(taken);
            }
            Taken::BufferOnly => stats.duplicates += 1,
            Taken::New | Taken::Empty => stats.samples += 1,
        }
        let r = resources.get_mut(resource.id).expect("inserted above");
        r.remember(resource);
        r.last_ts = Some(ts);
        r.buffer.evict_through(self.rules.buffer_cutoff(ts));
        r.buffer.push(ts, scratch, metadata.clone(), names);
        if taken == Taken::BufferOnly {
            return Ok(taken);
        }
        if self.config.anomaly.detect {
            let detector = r.detector.get_or_insert_with(Default::default);
            let fired = detector.observe(&r.buffer, scratch, names, &self.config.anomaly);
            if let Some(key) = fired.filter(|_| r.window.as_ref().is_none_or(|w| w.closing)) {
                detections.push((resource.id.to_owned(), key, ts));
            }
        }
        if let Some(w) = r.window.as_mut().filter(|w| !w.closing) {
            match self.rules.on_sample(w, ts) {
                OnSample::CloseFirst => {
                    self.rules.close(w, CloseReason::Deadline, closings);
                }
                OnSample::Before => {}
                take => {
                    pending.push(w.row, ts, scratch.iter().copied(), metadata);
                    if let Some(start_ms) = Lifecycle::take_point(w, ts) {
                        moved_starts.push((w.row, start_ms));
                    }
                    r.recorded_until = r.recorded_until.max(Some(ts));
                    if take == OnSample::TakeLast {
                        self.rules.close(w, CloseReason::PointLimit, closings);
                    }
                }
            }
        }
        Ok(Taken::New)
    }

    /// How a sample of `id` at `ts` (its valid values in `state.scratch`)
    /// relates to what the resource already has; see the module docs.
    fn classify(&self, state: &mut State, id: &str, ts: i64) -> Result<Taken> {
        let r = state.resources.get(id).expect("the caller created it");
        let newest = r.last_ts;
        let seen = newest.max(r.recorded_until);
        if seen.is_none_or(|s| ts > s) {
            return Ok(Taken::New);
        }
        if newest == Some(ts) && r.buffer.newest_ts() == Some(ts) {
            let mut held = r.buffer.newest_values();
            let mut given = state.scratch.clone();
            held.sort_by_key(|&(k, _)| k);
            given.sort_by_key(|&(k, _)| k);
            return if held == given {
                Ok(Taken::Duplicate)
            } else {
                state.stats.conflicts += 1;
                Err(Error::ConflictingSample {
                    resource: clip(id),
                    timestamp: Timestamp::from_unix_ms(ts),
                })
            };
        }
        // The store answers for committed points only.
        if !state.pending.is_empty() {
            let now = Timestamp::from_unix_ms(self.time(state));
            self.flush(state, now, false)?;
        }
        let State {
            writer,
            names,
            scratch,
            stats,
            ..
        } = state;
        let newer = newest.is_none_or(|n| ts > n);
        match writer.recorded_sample(names, id, ts, scratch)? {
            Recorded::Same if newer => Ok(Taken::BufferOnly),
            Recorded::Same => Ok(Taken::Duplicate),
            Recorded::Different => {
                stats.conflicts += 1;
                Err(Error::ConflictingSample {
                    resource: clip(id),
                    timestamp: Timestamp::from_unix_ms(ts),
                })
            }
            Recorded::Missing => {
                stats.out_of_order += 1;
                Err(Error::OutOfOrder {
                    resource: clip(id),
                    timestamp: Timestamp::from_unix_ms(ts),
                    last: Timestamp::from_unix_ms(seen.unwrap_or(ts)),
                })
            }
            Recorded::Outside if newer => Ok(Taken::New),
            Recorded::Outside => Ok(Taken::Stale),
        }
    }

    /// Resolves `trigger_id` of `resource_id` at `at_ms` unless this very
    /// resolve was recorded before (a replayed input, a repeated
    /// notification): `None` then, else whether it matched an unresolved
    /// trigger.
    fn resolve_once(
        &self,
        state: &mut State,
        resource_id: &str,
        trigger_id: &str,
        at_ms: i64,
    ) -> Result<Option<bool>> {
        if state
            .writer
            .find_control(resource_id, Some(trigger_id), at_ms)?
            .is_some()
        {
            return Ok(None);
        }
        self.resolve(state, resource_id, trigger_id, at_ms)
            .map(Some)
    }

    /// Resolves `trigger_id` of `resource_id` at `at_ms`, without looking
    /// for the same resolve recorded before (see `resolve_once`); see
    /// [`IncidentRecorder::resolve_trigger_at`].
    fn resolve(
        &self,
        state: &mut State,
        resource_id: &str,
        trigger_id: &str,
        at_ms: i64,
    ) -> Result<bool> {
        let rules = self.rules;
        // Decided on a copy: memory changes only once the database has.
        let change = state
            .resources
            .get(resource_id)
            .and_then(|r| r.window.as_ref())
            .filter(|w| !w.closing)
            .map(|w| {
                let mut alerts = w.unresolved_alerts.clone();
                let deadline =
                    rules.resolve(&mut alerts, w.deadline_ms, w.last_ts, trigger_id, at_ms);
                (w.row, alerts, deadline)
            });
        let new_deadline = change
            .as_ref()
            .and_then(|(row, _, deadline)| deadline.map(|d| (*row, d)));
        let resolved =
            state
                .writer
                .resolve_trigger(resource_id, trigger_id, at_ms, new_deadline)?;
        if let (Some((_, alerts, deadline)), Some(w)) = (
            change,
            state
                .resources
                .get_mut(resource_id)
                .and_then(|r| r.window.as_mut()),
        ) {
            w.unresolved_alerts = alerts;
            if let Some(d) = deadline {
                w.deadline_ms = d;
            }
        }
        Ok(resolved > 0)
    }

    /// Records a trigger of `resource` that acts on windows at `at_ms` and
    /// is recorded as fired at `fired_ms` (the same time, except for an
    /// alert taken at another time than its start: see
    /// [`Lifecycle::alert_time`]); see [`IncidentRecorder::record_trigger`].
    fn record_trigger(
        &self,
        state: &mut State,
        resource: Resource<'_>,
        trigger: &Trigger,
        at_ms: i64,
        fired_ms: i64,
    ) -> Result<TriggerRecorded> {
        if let Some(found) = state.writer.find_trigger(resource.id, trigger, fired_ms)? {
            return match found.window {
                Some(window) => Ok(TriggerRecorded {
                    outcome: TriggerOutcome {
                        window,
                        action: TriggerAction::AlreadyRecorded,
                    },
                    start_ms: None,
                }),
                None => Err(Error::Suppressed {
                    resource: clip(resource.id),
                    limit: self.config.max_windows_per_resource_per_day,
                }),
            };
        }
        // Once the provider has listed its resources (`tick` counts its
        // listings), a resource it did not list is a typo, not a window.
        if !state.resources.contains_key(resource.id) && state.tick > 0 && self.has_provider() {
            let mut monitored: Vec<String> = state.resources.keys().map(|k| clip(k)).collect();
            monitored.sort();
            let more = monitored.len().saturating_sub(10);
            monitored.truncate(10);
            return Err(Error::NotMonitored {
                resource: clip(resource.id),
                monitored,
                more,
            });
        }
        let now = Timestamp::from_unix_ms(self.time(state));
        if !state.resources.contains_key(resource.id)
            && state.resources.len() >= self.config.max_resources
        {
            state.stats.resources_refused += 1;
            return Err(Error::TooManyResources {
                resource: clip(resource.id),
                limit: self.config.max_resources,
            });
        }
        let fresh = (!state.resources.contains_key(resource.id))
            .then(|| self.new_resource(&mut state.recorded_until, resource.id));
        let r = match fresh {
            Some(r) => state.resources.entry(resource.id.into()).or_insert(r),
            None => state.resources.get_mut(resource.id).expect("checked"),
        };
        r.remember(resource);
        match self.rules.on_trigger(r.window.as_ref(), at_ms) {
            OnTrigger::Extend { deadline_ms } => {
                let w = r.window.as_mut().expect("extend needs a window");
                let row = w.row;
                state
                    .writer
                    .extend_window(row, trigger, fired_ms, deadline_ms)?;
                let w = state
                    .resources
                    .get_mut(resource.id)
                    .and_then(|r| r.window.as_mut())
                    .expect("still open");
                w.deadline_ms = deadline_ms;
                Lifecycle::note_trigger(w, trigger.kind, trigger.id.as_deref(), fired_ms);
                tracing::info!(window = %w.id, trigger = %trigger.kind, "extended incident window");
                Ok(TriggerRecorded {
                    outcome: TriggerOutcome {
                        window: w.id.clone(),
                        action: TriggerAction::Extended,
                    },
                    start_ms: None,
                })
            }
            OnTrigger::Open { close_first } => {
                if close_first {
                    let w = r.window.as_mut().expect("close_first needs a window");
                    self.rules
                        .close(w, CloseReason::Deadline, &mut state.closings);
                    // The due window closes before the new one opens.
                    self.flush(state, now, false)?;
                }
                let (window, start_ms) =
                    self.open_window(state, resource.id, trigger, at_ms, fired_ms)?;
                Ok(TriggerRecorded {
                    outcome: TriggerOutcome {
                        window,
                        action: TriggerAction::Opened,
                    },
                    start_ms: Some(start_ms),
                })
            }
        }
    }

    /// Opens a window on `id` for `trigger` at `at_ms` (recorded as fired at
    /// `fired_ms`) with its buffered samples, closing it at once if they
    /// already fill it; returns its id and start.
    fn open_window(
        &self,
        state: &mut State,
        id: &str,
        trigger: &Trigger,
        at_ms: i64,
        fired_ms: i64,
    ) -> Result<(WindowId, i64)> {
        let State {
            writer,
            names,
            resources,
            stats,
            closings,
            procs,
            ..
        } = &mut *state;
        let r = resources.get_mut(id).expect("the caller created it");
        let newest = r.last_ts;
        let rows = r.buffer.rows_after(i64::MIN, usize::MAX);
        let times: Vec<i64> = rows.iter().map(|row| row.ts).collect();
        let held = self.rules.holds(trigger.kind, trigger.id.as_deref());
        let opening = self.rules.opening(at_ms, &times, newest, held);
        let taken = &rows[opening.take.0..opening.take.1];
        let mut pre = Samples::default();
        for row in taken {
            pre.push(row.ts, row.values(), row.metadata.cloned());
        }
        let points = taken.len();
        let last_ts = taken.last().map(|row| row.ts);
        drop(rows);
        let resource = Resource {
            id,
            name: r.name.as_deref(),
            kind: r.kind.as_deref(),
        };
        if let Some(since) = self.rules.daily_limit_since(at_ms)
            && !self
                .rules
                .daily_limit_allows(writer.opened_since(id, since)?)
        {
            let limit = self.config.max_windows_per_resource_per_day;
            writer.suppress_trigger(resource, trigger, fired_ms)?;
            tracing::info!(resource = %clip(id), trigger = %trigger.kind, limit, "trigger suppressed by the daily window limit");
            return Err(Error::Suppressed {
                resource: clip(id),
                limit,
            });
        }
        let (row, public_id) = writer.open_window(
            names,
            &crate::store::NewWindow {
                resource,
                trigger,
                fired_ms: at_ms,
                trigger_ms: fired_ms,
                start_ms: opening.start_ms,
                deadline_ms: opening.deadline_ms,
            },
            &pre,
        )?;
        stats.points_written += points as u64;
        Inner::processes_opened(procs, id, row, opening.start_ms);
        r.recorded_until = r.recorded_until.max(last_ts);
        tracing::info!(window = %public_id, trigger = %trigger.kind, buffered = points, "started incident recording");
        let mut w = ActiveWindow {
            row,
            id: public_id.clone(),
            opened_ms: at_ms,
            start_ms: opening.start_ms,
            deadline_ms: opening.deadline_ms,
            points,
            last_ts,
            unresolved_alerts: Vec::new(),
            closing: false,
        };
        Lifecycle::note_trigger(&mut w, trigger.kind, trigger.id.as_deref(), fired_ms);
        if let Some(reason) = opening.close_at_once {
            self.rules.close(&mut w, reason, closings);
        }
        let close_now = w.closing;
        r.window = Some(w);
        // The ring's snapshots of its pre-incident minutes, now.
        self.write_processes(state);
        if close_now {
            let now = Timestamp::from_unix_ms(self.time(state));
            self.flush(state, now, false)?;
        }
        Ok((public_id, opening.start_ms))
    }

    fn has_provider(&self) -> bool {
        self.provider
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
    }

    /// Opens the `anomaly` windows the detector asked for, at the time of
    /// the sample that completed each run.
    fn open_detected(&self, state: &mut State) {
        for (resource, key, at_ms) in std::mem::take(&mut state.detections) {
            let trigger = Trigger::anomaly(state.names.name(key));
            match self.record_trigger(
                state,
                Resource::from(resource.as_str()),
                &trigger,
                at_ms,
                at_ms,
            ) {
                Ok(r) => {
                    tracing::info!(window = %r.outcome.window, metric = ?trigger.id, "anomaly detected")
                }
                Err(e @ Error::Suppressed { .. }) => {
                    tracing::debug!(error = %e, "anomaly window suppressed")
                }
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "could not open an anomaly window")
                }
            }
        }
    }
}

/// Newest recorded point times of resources without a state.
type RecordedUntil = HashMap<Box<str>, i64, foldhash::fast::RandomState>;

impl ResourceState {
    fn new(expected_rows: usize, max_rows: usize) -> Box<ResourceState> {
        Box::new(ResourceState {
            buffer: RingBuffer::new(expected_rows, max_rows),
            last_ts: None,
            recorded_until: None,
            window: None,
            seen_tick: 0,
            name: None,
            kind: None,
            detector: None,
            names_held: 0,
        })
    }

    /// Keeps the display name and type the host gave, if any.
    fn remember(&mut self, resource: Resource<'_>) {
        if let Some(n) = resource.name.filter(|n| self.name.as_deref() != Some(*n)) {
            self.name = Some(n.into());
        }
        if let Some(k) = resource.kind.filter(|k| self.kind.as_deref() != Some(*k)) {
            self.kind = Some(k.into());
        }
    }
}
