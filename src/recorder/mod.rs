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
//! at their limit, so the queue stays bounded.
//!
//! Invariants:
//! - at most one open window per resource (`ResourceState::window`);
//! - `ActiveWindow::points` counts committed plus pending points and never
//!   exceeds `max_data_points_per_window`;
//! - a window with `closing` set takes no more points and has exactly one
//!   entry in `State::closings` until a commit succeeds;
//! - samples of a resource are accepted in non-decreasing time order.

mod detect;
mod fetch;
mod tick;
pub(crate) mod validate;

use std::collections::HashMap;
use std::fs::File;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::thread::JoinHandle;

use crate::buffer::{MetricKey, MetricNames, RingBuffer};
use crate::clock::{Clock, SystemClock};
use crate::config::RecorderConfig;
use crate::error::{Error, Result};
use crate::model::{
    IncidentWindow, Metrics, Resource, Timestamp, Trigger, TriggerType, WindowId, WindowStatus,
    duration_ms,
};
use crate::provider::MetricsProvider;
use crate::store::{Closing, Opened, PointBatch, Store, WindowFilter, Writer};
use tick::ProviderSlot;

pub(crate) use validate::validate_resource_id;

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
    clock: Arc<dyn Clock>,
    store: Store,
    provider: RwLock<Option<ProviderSlot>>,
    /// The provider's worker threads; held by one tick at a time.
    fetcher: Mutex<fetch::Fetcher>,
    state: Mutex<State>,
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
    stats: RecorderStats,
    /// Tick counter, used to mark which resources the provider still lists.
    tick: u64,
    /// Reused buffer of a sample's validated values.
    scratch: Vec<(MetricKey, f64)>,
    /// Anomalies the detector found, to open windows for once the samples
    /// at hand are taken: (resource, metric).
    detections: Vec<(String, MetricKey)>,
    /// What the last tick learned about the provider's listing.
    listing: tick::ListingMemo,
}

/// One resource: its buffer, its open window, what we know of it.
struct ResourceState {
    buffer: RingBuffer,
    last_ts: Option<i64>,
    window: Option<ActiveWindow>,
    /// The last tick whose provider listing included this resource.
    seen_tick: u64,
    name: Option<Box<str>>,
    kind: Option<Box<str>>,
    /// Anomaly detector state, only when detection is on.
    detector: Option<Box<detect::Detector>>,
}

/// Bookkeeping of an open window; its points are in the database.
struct ActiveWindow {
    row: i64,
    id: WindowId,
    deadline_ms: i64,
    points: usize,
    last_ts: Option<i64>,
    unresolved_alerts: Vec<String>,
    closing: bool,
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
    /// Values rejected: non-finite (NaN, ±inf) or with an invalid metric name.
    pub rejected_values: u64,
    /// Samples rejected because they were older than the resource's last one.
    pub out_of_order: u64,
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
pub struct PushReport {
    /// Samples accepted.
    pub accepted: usize,
    /// Samples refused, by position in the batch, with the reason.
    pub rejected: Vec<(usize, Error)>,
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
        writer.set_anomaly_config(config.anomaly.clone());
        let inner = Inner {
            config,
            clock,
            store,
            provider: RwLock::new(None),
            fetcher: Mutex::new(fetch::Fetcher::new()),
            state: Mutex::new(State {
                writer,
                names: MetricNames::default(),
                resources: HashMap::default(),
                pending: PointBatch::default(),
                closings: Vec::new(),
                stats: RecorderStats::default(),
                tick: 0,
                scratch: Vec::new(),
                detections: Vec::new(),
                listing: tick::ListingMemo::default(),
            }),
            _lock: lock,
        };
        inner.recover()?;
        Ok(IncidentRecorder {
            inner: Arc::new(inner),
            worker: Mutex::new(None),
        })
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

    /// Stops the sampling thread (waiting for its tick in flight) and commits
    /// every pending point. Safe to call any number of times, from any thread.
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
        let now = self.inner.clock.now();
        self.inner.flush(&mut self.inner.state(), now, false)
    }

    /// Runs one tick now: exactly what the sampling thread does every interval.
    pub fn record_sample(&self) -> Result<()> {
        self.inner.tick()
    }

    /// Adds a sample the host took itself (push mode): it goes into the
    /// resource's buffer and, if a window is open, into the window (committed
    /// before this returns). Values that are NaN or infinite are dropped and
    /// counted in [`RecorderStats::rejected_values`]; the rest is kept.
    pub fn push_sample<'a>(
        &self,
        resource: impl Into<Resource<'a>>,
        timestamp: Timestamp,
        metrics: Metrics,
        metadata: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<()> {
        let resource = resource.into();
        validate_resource_id(resource.id)?;
        validate::timestamp(timestamp, self.inner.clock.now())?;
        let metadata = validate::metadata(metadata)?;
        let mut state = self.inner.state();
        self.inner.accept(
            &mut state,
            resource,
            timestamp.as_unix_ms(),
            &metrics,
            metadata,
            None,
        )?;
        self.inner.flush(&mut state, self.inner.clock.now(), false)
    }

    /// Adds many samples with one commit: the fast path for bulk ingest.
    /// Invalid samples are skipped and reported; the others are kept.
    pub fn push_samples<'a>(
        &self,
        samples: impl IntoIterator<Item = Sample<'a>>,
    ) -> Result<PushReport> {
        let mut report = PushReport::default();
        let now = self.inner.clock.now();
        let mut state = self.inner.state();
        for (i, s) in samples.into_iter().enumerate() {
            let outcome = validate_resource_id(s.resource.id)
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
                    )
                });
            match outcome {
                Ok(()) => report.accepted += 1,
                Err(e) => report.rejected.push((i, e)),
            }
        }
        self.inner
            .flush(&mut state, self.inner.clock.now(), false)?;
        Ok(report)
    }

    /// Opens a window on `resource` with its buffered samples, or, if one is
    /// already recording, extends its deadline and returns its id. Either way
    /// the trigger is recorded in `window_triggers`.
    pub fn start_recording<'a>(
        &self,
        resource: impl Into<Resource<'a>>,
        trigger: Trigger,
    ) -> Result<WindowId> {
        let resource = resource.into();
        validate_resource_id(resource.id)?;
        let mut state = self.inner.state();
        self.inner.start_recording(&mut state, resource, &trigger)
    }

    /// Closes a recording window now, as `complete`. Closing a window that is
    /// already closed does nothing; an unknown id is an error.
    pub fn stop_recording(&self, id: &WindowId) -> Result<()> {
        let mut guard = self.inner.state();
        let now = self.inner.clock.now().as_unix_ms();
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
            Some(w) if !w.closing => {
                let end_ms = w.last_ts.map_or(now, |t| t.max(now));
                w.queue_close(closings, WindowStatus::Complete, end_ms);
            }
            Some(_) => {}
            None => {
                drop(guard);
                return match self.inner.store.window(id.as_str())? {
                    Some(_) => Ok(()),
                    None => Err(Error::WindowNotFound(id.to_string())),
                };
            }
        }
        self.inner
            .flush(&mut guard, Timestamp::from_unix_ms(now), true)
    }

    /// Records that trigger `trigger_id` of `resource_id` cleared. With
    /// `hold_while_alert_active`, a window whose last alert this was gets the
    /// deadline `now + post_incident_window` (never earlier than before).
    /// Returns whether any unresolved trigger had that id.
    pub fn resolve_trigger(&self, resource_id: &str, trigger_id: &str) -> Result<bool> {
        let mut state = self.inner.state();
        let now = self.inner.clock.now().as_unix_ms();
        let post = duration_ms(self.inner.config.post_incident_window);
        let hold = self.inner.config.hold_while_alert_active;
        let window = state
            .resources
            .get(resource_id)
            .and_then(|r| r.window.as_ref())
            .filter(|w| !w.closing);
        let new_deadline = window.and_then(|w| {
            let was_unresolved = w.unresolved_alerts.iter().any(|a| a == trigger_id);
            let remaining = w
                .unresolved_alerts
                .iter()
                .filter(|a| *a != trigger_id)
                .count();
            (hold && was_unresolved && remaining == 0)
                .then(|| (w.row, w.deadline_ms.max(now.saturating_add(post))))
        });
        let resolved = state
            .writer
            .resolve_trigger(resource_id, trigger_id, now, new_deadline)?;
        if let Some(w) = state
            .resources
            .get_mut(resource_id)
            .and_then(|r| r.window.as_mut())
        {
            w.unresolved_alerts.retain(|a| a != trigger_id);
            if let Some((_, deadline)) = new_deadline {
                w.deadline_ms = deadline;
            }
        }
        Ok(resolved > 0)
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
        self.inner.store.window(id.as_str())
    }

    /// The windows of one resource, most recent first, at most `limit`
    /// (0 = all), recording ones included.
    pub fn windows_for_resource(
        &self,
        resource_id: &str,
        limit: usize,
    ) -> Result<Vec<IncidentWindow>> {
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

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a lock is a bug, but losing the recorder over it
    // would lose the incident; the state stays usable (see State's invariants).
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Rows a full buffer holds in the steady state: one per interval over the
    /// pre-incident window. Rings are sized to exactly this and grow a row at a
    /// time past it (a late tick can leave one more row in), so buffers cost
    /// no more than their samples.
    fn expected_rows(&self) -> usize {
        let c = &self.config;
        ((c.pre_incident_window.as_millis() / c.sample_interval.as_millis().max(1)) as usize).max(1)
    }

    /// Resumes or closes the windows a previous process left recording, then
    /// applies retention.
    fn recover(&self) -> Result<()> {
        let mut state = self.state();
        let now = self.clock.now().as_unix_ms();
        let expected = self.expected_rows();
        for w in state.writer.recording_windows()? {
            if w.deadline_ms > now {
                tracing::info!(window = %w.public_id, "resuming window left recording");
                let entry = state
                    .resources
                    .entry(w.resource.into_boxed_str())
                    .or_insert_with(|| ResourceState::new(expected));
                entry.last_ts = w.last_ts;
                entry.window = Some(ActiveWindow {
                    row: w.row,
                    id: w.public_id,
                    deadline_ms: w.deadline_ms,
                    points: w.points,
                    last_ts: w.last_ts,
                    unresolved_alerts: w.unresolved_alerts,
                    closing: false,
                });
            } else {
                tracing::info!(window = %w.public_id, "closing window interrupted by a restart");
                state.closings.push(Closing {
                    window: w.row,
                    status: WindowStatus::Interrupted,
                    end_ms: w.last_ts.unwrap_or(w.start_ms).max(w.start_ms),
                });
            }
        }
        self.flush(&mut state, Timestamp::from_unix_ms(now), true)
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
            ..
        } = state;
        match writer.commit(names, pending, closings, trim) {
            Ok(trimmed) => {
                if trimmed > 0 {
                    tracing::debug!(
                        trimmed,
                        "deleted windows past retention or the window limit"
                    );
                }
                stats.points_written += pending.len() as u64;
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
                tracing::warn!(error = %crate::error_chain(&e), pending = pending.len(), "commit failed; keeping points for the next attempt");
                Err(e)
            }
        }
    }

    /// Takes one sample of one resource: buffer, open window, bookkeeping.
    /// With `listed_at`, also marks the resource as listed by the provider in
    /// that tick (see `tick::ListingMemo`), sparing the tick another lookup.
    fn accept(
        &self,
        state: &mut State,
        resource: Resource<'_>,
        ts: i64,
        metrics: &Metrics,
        metadata: Option<Arc<str>>,
        listed_at: Option<u64>,
    ) -> Result<()> {
        let State {
            names,
            resources,
            pending,
            closings,
            stats,
            scratch,
            detections,
            ..
        } = state;
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
        for (i, (name, value)) in metrics.iter().enumerate() {
            let key = match layout.get(i) {
                _ if !value.is_finite() => None,
                Some(&k) if names.is(k, name) => Some(k),
                _ if validate::metric_name(name) => Some(names.intern(name)),
                _ => None,
            };
            match key {
                Some(k) => scratch.push((k, value)),
                _ => {
                    stats.rejected_values += 1;
                    if stats.rejected_values.is_power_of_two() {
                        tracing::warn!(
                            resource = %crate::error::clip(resource.id), metric = %crate::error::clip(name), value,
                            total = stats.rejected_values,
                            "rejected a non-finite value or invalid metric name"
                        );
                    }
                }
            }
        }
        if scratch.is_empty() && metadata.is_none() {
            return Ok(());
        }
        let expected = self.expected_rows();
        let r = match known {
            Some(r) => r,
            None => resources.entry(resource.id.into()).or_insert_with(|| {
                let mut r = ResourceState::new(expected);
                r.seen_tick = listed_at.unwrap_or(0);
                r
            }),
        };
        if let Some(last) = r.last_ts.filter(|&last| ts < last) {
            stats.out_of_order += 1;
            return Err(Error::OutOfOrder {
                resource: crate::error::clip(resource.id),
                timestamp: Timestamp::from_unix_ms(ts),
                last: Timestamp::from_unix_ms(last),
            });
        }
        r.remember(resource);
        r.last_ts = Some(ts);
        r.buffer
            .evict_through(ts.saturating_sub(duration_ms(self.config.pre_incident_window)));
        r.buffer.push(ts, scratch, metadata.clone(), names);
        stats.samples += 1;
        if self.config.anomaly.detect {
            let detector = r.detector.get_or_insert_with(Default::default);
            let fired = detector.observe(&r.buffer, scratch, names, &self.config.anomaly);
            if let Some(key) = fired.filter(|_| r.window.as_ref().is_none_or(|w| w.closing)) {
                detections.push((resource.id.to_owned(), key));
            }
        }
        let hold = self.config.hold_while_alert_active;
        if let Some(w) = r.window.as_mut().filter(|w| !w.closing) {
            if w.is_due(ts, hold) {
                let deadline = w.deadline_ms;
                w.queue_close(closings, WindowStatus::Complete, deadline);
            } else {
                pending.push(w.row, ts, scratch.iter().copied(), metadata);
                w.points += 1;
                w.last_ts = Some(ts);
                if w.points >= self.config.max_data_points_per_window {
                    w.queue_close(closings, WindowStatus::Truncated, ts);
                }
            }
        }
        Ok(())
    }

    /// Opens or extends the window of `resource`; see
    /// [`IncidentRecorder::start_recording`].
    fn start_recording(
        &self,
        state: &mut State,
        resource: Resource<'_>,
        trigger: &Trigger,
    ) -> Result<WindowId> {
        let now = self.clock.now();
        let now_ms = now.as_unix_ms();
        // A window past its deadline has ended, even if no tick has closed it
        // yet: a new trigger opens a new window rather than reviving it.
        let hold = self.config.hold_while_alert_active;
        let State {
            resources,
            closings,
            ..
        } = &mut *state;
        if let Some(w) = resources
            .get_mut(resource.id)
            .and_then(|r| r.window.as_mut())
            .filter(|w| !w.closing && w.is_due(now_ms, hold))
        {
            let deadline = w.deadline_ms;
            w.queue_close(closings, WindowStatus::Complete, deadline);
        }
        // Windows that are due to close must be closed before a new one opens.
        self.flush(state, now, false)?;
        let post = duration_ms(self.config.post_incident_window);
        let expected = self.expected_rows();
        let State {
            writer,
            names,
            resources,
            stats,
            ..
        } = state;
        let r = resources
            .entry(resource.id.into())
            .or_insert_with(|| ResourceState::new(expected));
        r.remember(resource);
        if let Some(w) = r.window.as_mut() {
            let deadline = w.deadline_ms.max(now_ms.saturating_add(post));
            writer.extend_window(w.row, trigger, now_ms, deadline)?;
            w.deadline_ms = deadline;
            w.note_trigger(trigger);
            tracing::info!(window = %w.id, trigger = %trigger.kind, "extended incident window");
            return Ok(w.id.clone());
        }
        let max = self.config.max_data_points_per_window;
        let cutoff = now_ms.saturating_sub(duration_ms(self.config.pre_incident_window));
        let mut pre = PointBatch::default();
        let rows = r.buffer.rows_after(cutoff, max);
        let start_ms = rows.first().map_or(now_ms, |row| row.ts);
        let last_ts = rows.last().map(|row| row.ts);
        for row in &rows {
            pre.push(0, row.ts, row.values(), row.metadata.cloned());
        }
        let points = rows.len();
        drop(rows);
        let truncate_at = (points >= max).then(|| last_ts.unwrap_or(now_ms));
        let described = Resource {
            id: resource.id,
            name: r.name.as_deref(),
            kind: r.kind.as_deref(),
        };
        let limit = self.config.max_windows_per_resource_per_day;
        let opened = writer.open_window(
            names,
            &crate::store::NewWindow {
                resource: described,
                trigger,
                fired_ms: now_ms,
                start_ms,
                deadline_ms: now_ms.saturating_add(post),
                daily_limit: limit,
            },
            &pre,
            truncate_at,
        )?;
        let (row, id) = match opened {
            Opened::Window(row, id) => (row, id),
            Opened::Suppressed => {
                tracing::info!(resource = %crate::error::clip(resource.id), trigger = %trigger.kind, limit, "trigger suppressed by the daily window limit");
                return Err(Error::Suppressed {
                    resource: crate::error::clip(resource.id),
                    limit,
                });
            }
        };
        stats.points_written += points as u64;
        tracing::info!(window = %id, trigger = %trigger.kind, buffered = points, "started incident recording");
        if truncate_at.is_none() {
            let mut w = ActiveWindow {
                row,
                id: id.clone(),
                deadline_ms: now_ms.saturating_add(post),
                points,
                last_ts,
                unresolved_alerts: Vec::new(),
                closing: false,
            };
            w.note_trigger(trigger);
            r.window = Some(w);
        }
        Ok(id)
    }
}

impl Inner {
    /// Opens the `anomaly` windows the detector asked for.
    fn open_detected(&self, state: &mut State) {
        for (resource, key) in std::mem::take(&mut state.detections) {
            let trigger = Trigger::anomaly(state.names.name(key));
            match self.start_recording(state, Resource::from(resource.as_str()), &trigger) {
                Ok(id) => tracing::info!(window = %id, metric = ?trigger.id, "anomaly detected"),
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

impl ResourceState {
    fn new(expected_rows: usize) -> Box<ResourceState> {
        Box::new(ResourceState {
            buffer: RingBuffer::new(expected_rows),
            last_ts: None,
            window: None,
            seen_tick: 0,
            name: None,
            kind: None,
            detector: None,
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

impl ActiveWindow {
    /// Tracks alerts that hold the window open until resolved.
    fn note_trigger(&mut self, trigger: &Trigger) {
        if let (TriggerType::Alert, Some(id)) = (trigger.kind, &trigger.id)
            && !self.unresolved_alerts.contains(id)
        {
            self.unresolved_alerts.push(id.clone());
        }
    }

    /// True when `now_ms` is past the deadline and no unresolved alert holds
    /// the window open (with `hold_while_alert_active`).
    fn is_due(&self, now_ms: i64, hold: bool) -> bool {
        let held = hold && !self.unresolved_alerts.is_empty();
        now_ms > self.deadline_ms && !held
    }

    /// Marks the window closing and queues its closing for the next commit.
    fn queue_close(&mut self, closings: &mut Vec<Closing>, status: WindowStatus, end_ms: i64) {
        self.closing = true;
        closings.push(Closing {
            window: self.row,
            status,
            end_ms,
        });
    }
}
