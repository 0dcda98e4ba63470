//! [`ScrapeProvider`]: every target on its own schedule, off the tick.
//!
//! Each target has a thread of its own that scrapes it when asked, bounded
//! by [`ScrapeOptions::timeout`] from connecting to the last byte. The
//! recorder calls [`current_metrics_batch`](MetricsProvider::current_metrics_batch)
//! once per tick; that call asks every idle target for a scrape, waits at
//! most [`ScrapeOptions::wait`] for them, and answers each resource from
//! its target's freshest scrape not yet taken. A target still scraping (a
//! hang, a drip) is not asked again and gives an error for its resources
//! for that tick; its scrape, once done, is taken by the next call. So a
//! slow target costs its own samples and nothing else: the tick, the host
//! and the healthy targets keep their interval whatever the number of slow
//! targets (the former design scraped at most 8 targets at once within the
//! tick and waited for the whole batch: 9 hanging targets stretched every
//! tick to two timeouts).
//!
//! A target that is down, slow or serves something that is not the text
//! format is logged when its state changes, so a dead target does not
//! flood the log. Redirects are not followed: a target answering 3xx is
//! refused with the address it points to (following it would record
//! another host's answer as this target's).
//!
//! [`monitored_resource_ids`](MetricsProvider::monitored_resource_ids) never
//! touches the network: it lists each target's resources from its last
//! successful scrape (its own resource before the first), so a target that
//! is briefly down keeps its resources, and their pre-incident buffers.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use regex::Regex;

use super::parse::parse_with_limits;
use super::series::{self, Converted, Selection, TargetMemory};
use super::{ScrapeOptions, ScrapeTarget};
use crate::error::{Error, ProviderError, clip};
use crate::model::Metrics;
use crate::provider::MetricsProvider;

/// One target's metrics per resource, or why its scrape failed.
type Outcome = Result<Vec<(String, Metrics)>, String>;

/// What the provider asks for: the text format 0.0.4 (not OpenMetrics or
/// protobuf, which some client libraries serve when asked).
const ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

/// Scrapes Prometheus exporters; see the [module docs](self).
pub struct ScrapeProvider {
    core: Arc<Core>,
}

/// What the provider and its target threads share.
struct Core {
    targets: Vec<Target>,
    agent: ureq::Agent,
    selection: Selection,
    options: ScrapeOptions,
    epoch: Instant,
    /// Batch calls started: a finished scrape is tagged with it.
    calls: AtomicU64,
    /// Scrapes finished, signalled on `finished`.
    done: Mutex<u64>,
    finished: Condvar,
    /// Set when the provider is dropped: the target threads leave.
    stop: AtomicBool,
}

impl std::fmt::Debug for ScrapeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeProvider")
            .field(
                "targets",
                &self
                    .core
                    .targets
                    .iter()
                    .map(|t| &t.spec)
                    .collect::<Vec<_>>(),
            )
            .field("options", &self.core.options)
            .finish_non_exhaustive()
    }
}

struct Target {
    spec: ScrapeTarget,
    /// Held by the target's thread while scraping.
    scrape: Mutex<TargetMemory>,
    /// Held briefly: the schedule, and what listings and status read.
    shared: Mutex<Shared>,
    /// Wakes the target's thread for a scrape (or to leave).
    wake: Condvar,
}

#[derive(Default)]
struct Shared {
    /// Resources of the last successful scrape.
    resources: Vec<String>,
    status: TargetStatus,
    /// A scrape is asked for or running.
    busy: Option<Instant>,
    /// Asked for, not yet started by the thread.
    asked: bool,
    /// The thread is running.
    thread: bool,
    /// The last finished scrape not yet taken: the batch call during which
    /// it finished, and its outcome.
    fresh: Option<(u64, Outcome)>,
}

/// How one target is doing, for status displays and checks.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct TargetStatus {
    /// The target's own resource id.
    pub resource_id: String,
    /// Its URL.
    pub url: String,
    /// Scrapes tried.
    pub scrapes: u64,
    /// Scrapes that failed.
    pub failures: u64,
    /// Why the last scrape failed; `None` if it succeeded.
    pub last_error: Option<String>,
    /// How long the last scrape took (request, parse and conversion).
    pub last_duration: Option<Duration>,
    /// Series kept in the last successful scrape.
    pub series: usize,
    /// Series past the cap in the last successful scrape.
    pub over_cap: usize,
    /// Series with a new name dropped in the last successful scrape because
    /// the target's name budget is spent (see
    /// [`ScrapeOptions::max_names_per_target`]).
    pub over_budget: usize,
    /// Distinct series names the target holds in its budget.
    pub names: usize,
    /// Series dropped because the recorder would refuse their name or resource.
    pub invalid: usize,
    /// Repeated series dropped in the last successful scrape.
    pub duplicates: usize,
    /// NaN or infinite values in the last successful scrape.
    pub non_finite: usize,
    /// The host metrics (`cpu`, `memory`...) its node_exporter series give.
    pub derived: Vec<String>,
    /// Resources of the last successful scrape.
    pub resources: Vec<String>,
    /// Ticks that found the target still scraping (its sample skipped).
    pub still_scraping: u64,
}

impl ScrapeProvider {
    /// A provider for `targets`. Refuses no target, two targets recorded as
    /// the same resource, an invalid resource label or match pattern, and
    /// zero limits.
    pub fn new(
        targets: Vec<ScrapeTarget>,
        options: ScrapeOptions,
    ) -> Result<ScrapeProvider, Error> {
        let bad = |m: String| Err(Error::InvalidConfig(m));
        if targets.is_empty() {
            return bad("no scrape target given".into());
        }
        let mut seen = BTreeSet::new();
        for t in &targets {
            if !seen.insert(t.resource_id()) {
                return bad(format!(
                    "two scrape targets are recorded as resource {:?}; name them apart with NAME=URL",
                    clip(t.resource_id())
                ));
            }
        }
        if let Some(label) = &options.resource_label
            && (label.is_empty()
                || label.starts_with(|c: char| c.is_ascii_digit())
                || !label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        {
            return bad(format!(
                "invalid resource label {:?}: a label name is letters, digits and _, not starting with a digit",
                clip(label)
            ));
        }
        let matcher = match &options.series_match {
            Some(p) => Some(Regex::new(p).map_err(|e| {
                Error::InvalidConfig(format!("invalid series match pattern {:?}: {e}", clip(p)))
            })?),
            None => None,
        };
        if options.max_series_per_target > ScrapeOptions::MAX_SERIES_PER_TARGET {
            return bad(format!(
                "at most {} series per target (a sample carries at most 4,096 values); narrow the series with a match pattern",
                ScrapeOptions::MAX_SERIES_PER_TARGET
            ));
        }
        if options.max_series_per_target == 0
            || options.timeout.is_zero()
            || options.wait.is_zero()
            || options.max_body_bytes == 0
            || options.max_names_per_target == 0
            || options.name_memory.is_zero()
            || options.limits.max_series == 0
            || options.limits.max_line_bytes == 0
        {
            return bad(
                "scrape limits (series, timeout, wait, body size, name budget and memory) must be above zero".into(),
            );
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(options.timeout))
            .http_status_as_error(false)
            // A redirect is refused, not followed: another host's answer
            // must not be recorded as this target's (see `fetch`).
            .max_redirects(0)
            // Like Prometheus: no proxy unless configured (there is no option yet).
            .proxy(None)
            .user_agent(concat!("incident-recorder/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let targets = targets
            .into_iter()
            .map(|spec| {
                let status = TargetStatus {
                    resource_id: spec.resource_id().to_owned(),
                    url: spec.url().to_owned(),
                    ..TargetStatus::default()
                };
                Target {
                    spec,
                    scrape: Mutex::new(TargetMemory::default()),
                    shared: Mutex::new(Shared {
                        status,
                        ..Shared::default()
                    }),
                    wake: Condvar::new(),
                }
            })
            .collect();
        let core = Core {
            targets,
            agent,
            selection: Selection {
                resource_label: options.resource_label.clone(),
                matcher,
                max_series: options.max_series_per_target,
                max_names: options.max_names_per_target,
                name_memory_s: options.name_memory.as_secs_f64(),
            },
            options,
            epoch: Instant::now(),
            calls: AtomicU64::new(0),
            done: Mutex::new(0),
            finished: Condvar::new(),
            stop: AtomicBool::new(false),
        };
        Ok(ScrapeProvider {
            core: Arc::new(core),
        })
    }

    /// The targets, in the order given.
    pub fn targets(&self) -> impl Iterator<Item = &ScrapeTarget> {
        self.core.targets.iter().map(|t| &t.spec)
    }

    /// How each target is doing, in the order given.
    pub fn status(&self) -> Vec<TargetStatus> {
        self.core
            .targets
            .iter()
            .map(|t| lock(&t.shared).status.clone())
            .collect()
    }

    /// Scrapes every target now (each on its thread, as a tick does) and
    /// returns each target's metrics per resource, or why it failed. Waits
    /// for every scrape: at most the timeout (and half a second).
    pub fn scrape_all(&self) -> Vec<Result<Vec<(String, Metrics)>, ProviderError>> {
        let all: Vec<usize> = (0..self.core.targets.len()).collect();
        let call = self.core.calls.fetch_add(1, Ordering::SeqCst) + 1;
        // Every scrape ends within the timeout, one already running too.
        let wait = self.core.options.timeout + Duration::from_millis(500);
        self.core.start_and_wait(&all, wait);
        all.iter()
            .map(|&i| {
                self.core
                    .take(i, call)
                    .unwrap_or_else(Err)
                    .map_err(ProviderError::new)
            })
            .collect()
    }

    /// The resources target `t` is listed with.
    fn listed(&self, t: &Target) -> Vec<String> {
        let shared = lock(&t.shared);
        if shared.resources.is_empty() {
            vec![t.spec.resource_id().to_owned()]
        } else {
            shared.resources.clone()
        }
    }
}

impl Drop for ScrapeProvider {
    fn drop(&mut self) {
        self.core.stop.store(true, Ordering::SeqCst);
        for t in &self.core.targets {
            let _shared = lock(&t.shared);
            t.wake.notify_all();
        }
    }
}

impl Core {
    /// Asks every idle target of `which` for a scrape, then waits until
    /// none of them is scraping, or for `wait`.
    fn start_and_wait(self: &Arc<Self>, which: &[usize], wait: Duration) {
        let deadline = Instant::now() + wait;
        for &i in which {
            self.start(i);
        }
        let mut done = lock(&self.done);
        loop {
            let seen = *done;
            if which
                .iter()
                .all(|&i| lock(&self.targets[i].shared).busy.is_none())
            {
                return;
            }
            while *done == seen {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return;
                }
                done = self
                    .finished
                    .wait_timeout(done, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }

    /// Asks target `i` for a scrape unless one is running; starts its
    /// thread on first use.
    fn start(self: &Arc<Self>, i: usize) {
        let t = &self.targets[i];
        let mut shared = lock(&t.shared);
        if shared.busy.is_some() {
            shared.status.still_scraping += 1;
            return;
        }
        if !shared.thread {
            let core = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("incident-recorder-scrape".into())
                .stack_size(512 * 1024)
                .spawn(move || core.run(i));
            match spawned {
                Ok(_) => shared.thread = true,
                Err(e) => {
                    let call = self.calls.load(Ordering::SeqCst);
                    shared.fresh = Some((call, Err(format!("cannot start its thread: {e}"))));
                    return;
                }
            }
        }
        shared.busy = Some(Instant::now());
        shared.asked = true;
        t.wake.notify_one();
    }

    /// Target `i`'s thread: a scrape each time it is asked, until the
    /// provider is dropped.
    fn run(&self, i: usize) {
        let t = &self.targets[i];
        loop {
            {
                let mut shared = lock(&t.shared);
                while !shared.asked && !self.stop.load(Ordering::SeqCst) {
                    shared = t.wake.wait(shared).unwrap_or_else(|e| e.into_inner());
                }
                if self.stop.load(Ordering::SeqCst) {
                    shared.thread = false;
                    return;
                }
                shared.asked = false;
            }
            let outcome = self.scrape_target(t);
            {
                let mut shared = lock(&t.shared);
                shared.busy = None;
                shared.fresh = Some((self.calls.load(Ordering::SeqCst), outcome));
            }
            *lock(&self.done) += 1;
            self.finished.notify_all();
        }
    }

    /// Takes target `i`'s finished scrape for batch call `call`: the
    /// outcome, or why there is none (`Err` of the outer result).
    fn take(&self, i: usize, call: u64) -> Result<Outcome, String> {
        let mut shared = lock(&self.targets[i].shared);
        match shared.fresh.take() {
            // Finished during this call or the one before: fresh enough.
            Some((at, outcome)) if at + 1 >= call => Ok(outcome),
            _ => Err(match shared.busy {
                Some(since) => format!(
                    "still scraping (for {} ms; the sample is skipped, the tick goes on)",
                    since.elapsed().as_millis()
                ),
                None => "no scrape finished since the last tick".into(),
            }),
        }
    }

    /// One scrape of `t`: fetch, parse, convert, log, remember.
    fn scrape_target(&self, t: &Target) -> Outcome {
        let mut memory = lock(&t.scrape);
        let started = Instant::now();
        let at_s = started.duration_since(self.epoch).as_secs_f64();
        let outcome = self.fetch(&t.spec).and_then(|body| {
            let text = text(&body)?;
            let parsed =
                parse_with_limits(text, &self.options.limits).map_err(|e| e.to_string())?;
            Ok(series::convert(
                &parsed,
                &self.selection,
                &mut memory,
                t.spec.resource_id(),
                at_s,
            ))
        });
        let took = started.elapsed();
        match outcome {
            Ok(converted) => {
                self.succeeded(t, &converted, memory.names(), took);
                Ok(converted.resources)
            }
            Err(e) => {
                self.failed(t, &e, took);
                Err(e)
            }
        }
    }

    fn fetch(&self, t: &ScrapeTarget) -> Result<Vec<u8>, String> {
        let mut response = self
            .agent
            .get(t.url())
            .header("Accept", ACCEPT)
            .header(
                "X-Prometheus-Scrape-Timeout-Seconds",
                format!("{:.3}", self.options.timeout.as_secs_f64()),
            )
            .call()
            .map_err(|e| match e {
                ureq::Error::Timeout(_) => format!(
                    "no complete answer within {} ms",
                    self.options.timeout.as_millis()
                ),
                e => e.to_string(),
            })?;
        let status = response.status();
        if status.is_redirection() {
            let to = response
                .headers()
                .get("location")
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default();
            return Err(format!(
                "the target redirects (HTTP {}) to {:?}; redirects are not followed (another host's answer would be recorded as this target's): scrape the URL it names if that is the exporter meant",
                status.as_u16(),
                clip(&to)
            ));
        }
        if status != 200 {
            return Err(format!(
                "HTTP {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            )
            .trim_end()
            .to_owned());
        }
        if let Some(kind) = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                v.starts_with("application/openmetrics-text")
                    || v.starts_with("application/vnd.google.protobuf")
            })
        {
            return Err(format!(
                "the target answered {}; only the Prometheus text format 0.0.4 is read",
                clip(kind)
            ));
        }
        let limit = self.options.max_body_bytes;
        response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => {
                    format!("the response is larger than the limit of {limit} bytes")
                }
                ureq::Error::Timeout(_) => format!(
                    "no complete answer within {} ms",
                    self.options.timeout.as_millis()
                ),
                e => format!("reading the response: {e}"),
            })
    }

    /// Records a good scrape.
    fn succeeded(&self, t: &Target, c: &Converted, names: usize, took: Duration) {
        let mut shared = lock(&t.shared);
        let s = &mut shared.status;
        if let Some(e) = s.last_error.take() {
            tracing::info!(target = %t.spec, previous_error = %e, "scrape target answers again");
        }
        if c.over_cap > 0 && s.over_cap == 0 {
            tracing::warn!(
                target = %t.spec, kept = self.options.max_series_per_target, dropped = c.over_cap,
                "target has more series than the cap (--scrape-max-series); keeping the first ones, narrow with --scrape-match"
            );
        }
        if c.over_budget > 0 && s.over_budget == 0 {
            tracing::warn!(
                target = %t.spec, budget = self.options.max_names_per_target,
                memory_s = self.options.name_memory.as_secs(), dropped = c.over_budget,
                "target exceeded its name budget: its series names keep changing (a label holding a request id?); series with new names are dropped until names unused for the name memory leave the budget, known series are still recorded; narrow with --scrape-match"
            );
        }
        if c.invalid > 0 && s.invalid != c.invalid {
            tracing::warn!(target = %t.spec, dropped = c.invalid, "series dropped: name over 256 bytes or with control characters, or an invalid resource label value");
        }
        if c.duplicates > 0 && s.duplicates != c.duplicates {
            tracing::warn!(target = %t.spec, dropped = c.duplicates, "the target repeats series; keeping the first of each");
        }
        s.scrapes += 1;
        s.last_duration = Some(took);
        s.series = c.series;
        s.over_cap = c.over_cap;
        s.over_budget = c.over_budget;
        s.names = names;
        s.invalid = c.invalid;
        s.duplicates = c.duplicates;
        s.non_finite = c.non_finite;
        s.derived = c.derivable.iter().map(|n| n.to_string()).collect();
        let same = shared.resources.len() == c.resources.len()
            && shared
                .resources
                .iter()
                .zip(&c.resources)
                .all(|(a, b)| *a == b.0);
        if !same {
            shared.resources = c.resources.iter().map(|r| r.0.clone()).collect();
            shared.status.resources = shared.resources.clone();
        }
    }

    fn failed(&self, t: &Target, error: &str, took: Duration) {
        let mut shared = lock(&t.shared);
        let s = &mut shared.status;
        s.scrapes += 1;
        s.failures += 1;
        s.last_duration = Some(took);
        if s.last_error.as_deref() != Some(error) {
            tracing::warn!(target = %t.spec, error, "scrape failed; the target's resources are skipped until it answers");
        } else {
            tracing::debug!(target = %t.spec, error, "scrape failed again");
        }
        s.last_error = Some(error.to_owned());
    }
}

impl MetricsProvider for ScrapeProvider {
    fn current_metrics(&self, resource_id: &str) -> Result<Metrics, ProviderError> {
        let ids = [resource_id.to_owned()];
        let answer = self.current_metrics_batch(&ids).pop();
        answer.map_or_else(
            || {
                Err(ProviderError::new(format!(
                    "resource {:?} is in no scrape target",
                    clip(resource_id)
                )))
            },
            |a| a.1,
        )
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for t in &self.core.targets {
            for id in self.listed(t) {
                if seen.insert(id.clone()) {
                    ids.push(id);
                }
            }
        }
        ids
    }

    fn current_metrics_batch(
        &self,
        resource_ids: &[String],
    ) -> Vec<(String, Result<Metrics, ProviderError>)> {
        let call = self.core.calls.fetch_add(1, Ordering::SeqCst) + 1;
        // Listed before scraping: a failed target answers for what it listed.
        let asked: std::collections::HashSet<&str> =
            resource_ids.iter().map(String::as_str).collect();
        let mut which = Vec::new();
        let mut listed = Vec::new();
        for (i, t) in self.core.targets.iter().enumerate() {
            let ids = self.listed(t);
            if ids.iter().any(|id| asked.contains(id.as_str())) {
                which.push(i);
                listed.push(ids);
            }
        }
        self.core.start_and_wait(&which, self.core.options.wait);
        let mut metrics: HashMap<String, Metrics> = HashMap::new();
        let mut errors: HashMap<&str, String> = HashMap::new();
        for (&i, listed) in which.iter().zip(&listed) {
            let t = &self.core.targets[i];
            match self.core.take(i, call) {
                Ok(Ok(resources)) => {
                    for (id, m) in resources {
                        match metrics.get_mut(&id) {
                            Some(have) => merge_into(have, m),
                            None => {
                                metrics.insert(id, m);
                            }
                        }
                    }
                }
                Ok(Err(e)) => {
                    for id in listed {
                        errors
                            .entry(id.as_str())
                            .or_insert_with(|| format!("scrape of {} failed: {e}", t.spec));
                    }
                }
                Err(why) => {
                    for id in listed {
                        errors
                            .entry(id.as_str())
                            .or_insert_with(|| format!("scrape of {}: {why}", t.spec));
                    }
                }
            }
        }
        resource_ids
            .iter()
            .map(|id| {
                let answer = match metrics.remove(id) {
                    Some(m) => Ok(m),
                    None => Err(ProviderError::new(match errors.get(id.as_str()) {
                        Some(e) => e.clone(),
                        None => format!("resource {:?} was not in this tick's scrapes", clip(id)),
                    })),
                };
                (id.clone(), answer)
            })
            .collect()
    }
}

/// Adds `m` to `have`, keeping what is already there (a resource reported
/// by two targets: the first target's value of a name wins).
fn merge_into(have: &mut Metrics, m: Metrics) {
    let known: std::collections::HashSet<String> = have.iter().map(|(n, _)| n.to_owned()).collect();
    for (name, v) in m.iter() {
        if !known.contains(name) {
            have.push_distinct(std::borrow::Cow::Owned(name.to_owned()), v);
        }
    }
}

/// The body as text, or where it stops being UTF-8.
fn text(body: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(body).map_err(|e| {
        let at = e.valid_up_to();
        let line = body[..at].iter().filter(|&&b| b == b'\n').count() + 1;
        format!("the response is not UTF-8 text (line {line}, byte {at})")
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}
