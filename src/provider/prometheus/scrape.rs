//! [`ScrapeProvider`]: every target scraped once per tick, in parallel.
//!
//! The recorder calls [`current_metrics_batch`](MetricsProvider::current_metrics_batch)
//! once per tick; that call scrapes every target at the same time (at most
//! [`ScrapeOptions::max_parallel`] at once), each bounded by
//! [`ScrapeOptions::timeout`] from connecting to the last byte, and answers
//! every resource from those scrapes. A target that is down, slow or serves
//! something that is not the text format gives an error for its resources
//! for that tick (logged when its state changes, so a dead target does not
//! flood the log), and the other targets' resources are recorded.
//!
//! [`monitored_resource_ids`](MetricsProvider::monitored_resource_ids) never
//! touches the network: it lists each target's resources from its last
//! successful scrape (its own resource before the first), so a target that
//! is briefly down keeps its resources, and their pre-incident buffers.
//!
//! If the recorder falls back to per-resource calls (after a batch overran
//! `provider_timeout`), the calls of one target's resources share one scrape
//! when they come within [`REUSE`] of it.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
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

/// How long a scrape answers per-resource calls of its target.
pub const REUSE: Duration = Duration::from_millis(100);

/// What the provider asks for: the text format 0.0.4 (not OpenMetrics or
/// protobuf, which some client libraries serve when asked).
const ACCEPT: &str = "text/plain;version=0.0.4;q=1,*/*;q=0.1";

/// Scrapes Prometheus exporters; see the [module docs](super).
pub struct ScrapeProvider {
    targets: Vec<Target>,
    agent: ureq::Agent,
    selection: Selection,
    options: ScrapeOptions,
    epoch: Instant,
}

impl std::fmt::Debug for ScrapeProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeProvider")
            .field(
                "targets",
                &self.targets.iter().map(|t| &t.spec).collect::<Vec<_>>(),
            )
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

struct Target {
    spec: ScrapeTarget,
    /// Held while scraping (one scrape of a target at a time).
    scrape: Mutex<Scraping>,
    /// Held briefly: what listings and status read.
    shared: Mutex<Shared>,
}

#[derive(Default)]
struct Scraping {
    memory: TargetMemory,
    /// The last scrape's metrics, for per-resource calls within [`REUSE`].
    last: Option<(Instant, Vec<(String, Metrics)>)>,
}

#[derive(Default)]
struct Shared {
    /// Resources of the last successful scrape.
    resources: Vec<String>,
    status: TargetStatus,
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
            || options.max_body_bytes == 0
            || options.max_parallel == 0
            || options.limits.max_series == 0
            || options.limits.max_line_bytes == 0
        {
            return bad(
                "scrape limits (series, timeout, body size, parallelism) must be above zero".into(),
            );
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(options.timeout))
            .http_status_as_error(false)
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
                    scrape: Mutex::new(Scraping::default()),
                    shared: Mutex::new(Shared {
                        resources: Vec::new(),
                        status,
                    }),
                }
            })
            .collect();
        Ok(ScrapeProvider {
            targets,
            agent,
            selection: Selection {
                resource_label: options.resource_label.clone(),
                matcher,
                max_series: options.max_series_per_target,
            },
            options,
            epoch: Instant::now(),
        })
    }

    /// The targets, in the order given.
    pub fn targets(&self) -> impl Iterator<Item = &ScrapeTarget> {
        self.targets.iter().map(|t| &t.spec)
    }

    /// How each target is doing, in the order given.
    pub fn status(&self) -> Vec<TargetStatus> {
        self.targets
            .iter()
            .map(|t| lock(&t.shared).status.clone())
            .collect()
    }

    /// Scrapes every target now (in parallel, as a tick does) and returns
    /// each target's metrics per resource, or why it failed.
    pub fn scrape_all(&self) -> Vec<Result<Vec<(String, Metrics)>, ProviderError>> {
        let n = self.targets.len();
        let workers = self.options.max_parallel.min(n);
        let results: Vec<Mutex<Option<Outcome>>> = (0..n).map(|_| Mutex::new(None)).collect();
        let next = AtomicUsize::new(0);
        let work = || {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let outcome = self.scrape_target(&self.targets[i], false);
                *lock(&results[i]) = Some(outcome);
            }
        };
        std::thread::scope(|s| {
            for _ in 1..workers {
                let spawned = std::thread::Builder::new()
                    .name("incident-recorder-scrape".into())
                    .spawn_scoped(s, work);
                if spawned.is_err() {
                    break; // fewer threads: this one does the rest
                }
            }
            work();
        });
        results
            .into_iter()
            .map(|r| {
                r.into_inner()
                    .unwrap_or_else(|e| e.into_inner())
                    .unwrap_or_else(|| Err("not scraped".into()))
                    .map_err(ProviderError::new)
            })
            .collect()
    }

    /// One scrape of `t`: fetch, parse, convert, log, remember. With
    /// `keep`, the result is also kept for per-resource calls.
    fn scrape_target(&self, t: &Target, keep: bool) -> Outcome {
        let mut scraping = lock(&t.scrape);
        let started = Instant::now();
        let at_s = started.duration_since(self.epoch).as_secs_f64();
        let outcome = self.fetch(&t.spec).and_then(|body| {
            let text = text(&body)?;
            let parsed =
                parse_with_limits(text, &self.options.limits).map_err(|e| e.to_string())?;
            Ok(series::convert(
                &parsed,
                &self.selection,
                &mut scraping.memory,
                t.spec.resource_id(),
                at_s,
            ))
        });
        let took = started.elapsed();
        match outcome {
            Ok(converted) => {
                self.succeeded(t, &converted, took);
                scraping.last = keep.then(|| (started, converted.resources.clone()));
                Ok(converted.resources)
            }
            Err(e) => {
                scraping.last = None;
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
    fn succeeded(&self, t: &Target, c: &Converted, took: Duration) {
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

impl MetricsProvider for ScrapeProvider {
    fn current_metrics(&self, resource_id: &str) -> Result<Metrics, ProviderError> {
        let mut found: Option<Metrics> = None;
        let mut error = None;
        for t in &self.targets {
            if !self.listed(t).iter().any(|r| r == resource_id) {
                continue;
            }
            let reused = {
                let mut scraping = lock(&t.scrape);
                match &mut scraping.last {
                    Some((at, resources)) if at.elapsed() < REUSE => resources
                        .iter()
                        .position(|r| r.0 == resource_id)
                        .map(|i| resources.swap_remove(i).1),
                    _ => None,
                }
            };
            let metrics = match reused {
                Some(m) => Some(m),
                None => match self.scrape_target(t, true) {
                    Ok(resources) => resources
                        .into_iter()
                        .find(|r| r.0 == resource_id)
                        .map(|r| r.1),
                    Err(e) => {
                        error = Some(e);
                        None
                    }
                },
            };
            if let Some(m) = metrics {
                merge(&mut found, m);
            }
        }
        found.ok_or_else(|| {
            ProviderError::new(match error {
                Some(e) => format!("scrape failed: {e}"),
                None => format!(
                    "resource {:?} is not in any scrape target's last scrape",
                    clip(resource_id)
                ),
            })
        })
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for t in &self.targets {
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
        // Listed before scraping: a failed target answers for what it listed.
        let listed: Vec<Vec<String>> = self.targets.iter().map(|t| self.listed(t)).collect();
        let results = self.scrape_all();
        let mut metrics: HashMap<String, Metrics> = HashMap::new();
        let mut errors: HashMap<&str, String> = HashMap::new();
        for ((t, result), listed) in self.targets.iter().zip(results).zip(&listed) {
            match result {
                Ok(resources) => {
                    for (id, m) in resources {
                        match metrics.get_mut(&id) {
                            Some(have) => merge_into(have, m),
                            None => {
                                metrics.insert(id, m);
                            }
                        }
                    }
                }
                Err(e) => {
                    for id in listed {
                        errors
                            .entry(id.as_str())
                            .or_insert_with(|| format!("scrape of {} failed: {e}", t.spec));
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

/// Adds `m` to `into`, keeping what is already there (a resource reported
/// by two targets: the first target's value of a name wins).
fn merge(into: &mut Option<Metrics>, m: Metrics) {
    match into {
        Some(have) => merge_into(have, m),
        None => *into = Some(m),
    }
}

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
