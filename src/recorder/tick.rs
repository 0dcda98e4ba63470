//! One tick of the recorder, and the thread that runs a tick every interval.
//!
//! A tick touches every monitored resource, so its per-resource path is kept
//! lean: ids are validated only when first seen, the provider's default batch
//! is bypassed for direct calls (same results, no id clones; see
//! [`ProviderSlot`]), a listing seen before skips the per-id marking (see
//! [`ListingMemo`]), and samples whose metrics come in the buffer's column
//! order skip interning (see `Inner::accept`). Provider calls themselves run
//! on a worker thread under supervision, see [`super::fetch`].

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use super::fetch::{Fetched, SamplePlan};
use super::{Inner, State, StopSignal, lock, validate_resource_id};
use crate::error::{Error, ProviderError, Result, clip};
use crate::model::{Metrics, Resource, Timestamp};
use crate::provider::MetricsProvider;

/// What a tick learned about the provider's listing, so that the next tick,
/// if the provider lists the very same ids (the usual case), can skip looking
/// every id up before fetching: the samples' own lookups mark them listed.
///
/// It holds only while nothing could make that listing mean something else:
/// the same fingerprint (a keyed hash of the ids in order), a listing that
/// had neither an invalid nor a repeated id, and the same resources as after
/// that tick's expiry (resources are only removed by expiry; any added since,
/// by a push or a trigger, changes the count).
#[derive(Default)]
pub(super) struct ListingMemo {
    /// Fingerprint of the last listing, if it was clean.
    fingerprint: Option<u64>,
    /// `State::resources.len()` after that tick's expiry.
    resources: usize,
    /// Resources with an open window that the listing left out (fetched
    /// anyway: their windows need samples).
    unlisted_windows: Vec<Box<str>>,
    /// The fingerprint's key.
    hasher: foldhash::fast::RandomState,
}

impl ListingMemo {
    fn fingerprint(&self, ids: &[String]) -> u64 {
        use std::hash::BuildHasher;
        self.hasher.hash_one(ids)
    }
}

/// How `mark_listed` prepared a tick's fetch.
struct Listing {
    /// The ids to fetch: the listed ones, then unlisted resources with a window.
    ids: Vec<String>,
    /// How many of `ids` the provider listed.
    listed: usize,
    /// False when the memo let marking be left to the samples' lookups.
    marked: bool,
    /// The tick's number (`State::tick`).
    tick: u64,
    /// The listing's fingerprint, if it was clean.
    fingerprint: Option<u64>,
}

/// The provider, with what the recorder learned about its batch call.
///
/// When the provider keeps the default `current_metrics_batch` (which only
/// calls `current_metrics` for each id), the recorder calls `current_metrics`
/// itself after the first tick: the same calls in the same order, without
/// the batch's clone of every id. A provider that overrides the batch keeps
/// getting one batch call per tick.
#[derive(Clone)]
pub(super) struct ProviderSlot {
    pub(super) provider: Arc<dyn MetricsProvider>,
    batch: Arc<AtomicU8>,
}

const BATCH_UNKNOWN: u8 = 0;
const BATCH_DEFAULT: u8 = 1;
const BATCH_CUSTOM: u8 = 2;

impl ProviderSlot {
    pub(super) fn new(provider: Arc<dyn MetricsProvider>) -> ProviderSlot {
        ProviderSlot {
            provider,
            batch: Arc::new(AtomicU8::new(BATCH_UNKNOWN)),
        }
    }
}

impl Inner {
    /// One tick: sample every resource once, close due windows, commit (if
    /// the commit interval is due), then serve trigger requests from other
    /// processes.
    pub(super) fn tick(self: &Arc<Self>) -> Result<()> {
        let started = Instant::now();
        self.snapshot_processes();
        let now = self.clock.now();
        let now_ms = now.as_unix_ms();
        let provider = self
            .provider
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut listed = false;
        let mut fingerprint = None;
        let mut fetched = Fetched::default();
        let mut answers = Vec::new();
        if let Some(slot) = &provider {
            let timeout = self.config.provider_timeout;
            let p = &slot.provider;
            let mut fetcher = lock(&self.fetcher);
            if let Some(ids) = fetcher.list(self, p, timeout, &mut fetched) {
                let direct = slot.batch.load(Ordering::Relaxed) == BATCH_DEFAULT
                    || fetcher.per_resource_only();
                // The memo leaves marking to the samples; a skipped resource
                // takes no sample, so with skips every id is marked up front.
                let listing = self.mark_listed(ids, direct && !fetcher.skipping());
                fingerprint = listing.fingerprint;
                listed = true;
                let plan = |ids: Vec<String>, listed, marked| SamplePlan {
                    ids: Arc::new(ids),
                    from: 0,
                    listed,
                    marked,
                    tick: listing.tick,
                    now_ms,
                };
                if direct {
                    let sampling = plan(listing.ids, listing.listed, listing.marked);
                    fetcher.sample(self, p, sampling, timeout, &mut fetched);
                } else if let Some((got, missing, default)) =
                    fetcher.batch(self, p, listing.ids, timeout, &mut fetched)
                {
                    let learned = if default { BATCH_DEFAULT } else { BATCH_CUSTOM };
                    let _ = slot.batch.compare_exchange(
                        BATCH_UNKNOWN,
                        learned,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    answers = got;
                    if !missing.is_empty() {
                        // Every id was marked by `mark_listed` on this path.
                        fetcher.sample(self, p, plan(missing, 0, true), timeout, &mut fetched);
                    }
                }
            }
        }

        let mut state = self.state();
        let now = Timestamp::from_unix_ms(self.time(&mut state));
        state.stats.ticks += 1;
        state.stats.last_tick = Some(now);
        state.stats.provider_panics += fetched.panics;
        state.stats.provider_hangs += fetched.hangs;
        state.stats.provider_skipped += fetched.skipped;
        for (id, result) in answers {
            self.accept_fetched(&mut state, &id, now_ms, Some(result), None);
        }
        self.open_detected(&mut state);
        self.expire(&mut state, now.as_unix_ms(), listed.then_some(fingerprint));
        self.reclaim_names(&mut state);
        let committed = self.commit_when_due(&mut state, now);
        self.write_processes(&mut state);
        let served = self.serve_requests(&mut state, now);
        state.stats.tick_seconds += started.elapsed().as_secs_f64();
        committed.and(served)
    }

    /// Takes one fetched result: the sample into its resource, or the error
    /// into the counters (`None`: the provider panicked). With `listed_at`,
    /// the resource is marked listed in that tick whatever the result.
    pub(super) fn accept_fetched(
        &self,
        state: &mut State,
        id: &str,
        now_ms: i64,
        result: Option<std::result::Result<Metrics, ProviderError>>,
        listed_at: Option<u64>,
    ) {
        match result {
            Some(Ok(metrics)) => {
                let r = self.accept(
                    state,
                    Resource::from(id),
                    now_ms,
                    &metrics,
                    None,
                    listed_at,
                    None,
                );
                if let Err(e) = r {
                    tracing::debug!(resource = %clip(id), error = %e, "sample skipped");
                }
                return;
            }
            Some(Err(e)) => {
                state.stats.provider_errors += 1;
                tracing::debug!(resource = %clip(id), error = %crate::error_chain(&e), "provider error; resource skipped this tick");
            }
            None => {}
        }
        if let Some(tick) = listed_at
            && let Some(r) = state.resources.get_mut(id)
        {
            r.seen_tick = tick;
        }
    }

    /// Marks the resources the provider lists this tick and returns the ids
    /// to fetch: each listed id once, plus resources with an open window that
    /// the provider no longer lists (their windows still need samples). The
    /// provider's vector is filtered in place, so a tick allocates no list of
    /// its own.
    ///
    /// On the direct path, a listing the [`ListingMemo`] vouches for skips
    /// the per-id work: the samples' lookups mark the resources instead.
    fn mark_listed(&self, mut ids: Vec<String>, direct: bool) -> Listing {
        let mut guard = self.state();
        let state = &mut *guard;
        let fingerprint = state.listing.fingerprint(&ids);
        state.tick += 1;
        let tick = state.tick;
        let memo = &state.listing;
        if direct
            && memo.fingerprint == Some(fingerprint)
            && memo.resources == state.resources.len()
        {
            let listed = ids.len();
            ids.extend(
                memo.unlisted_windows
                    .iter()
                    .filter(|id| {
                        state
                            .resources
                            .get(&***id)
                            .is_some_and(|r| r.window.is_some())
                    })
                    .map(|id| id.to_string()),
            );
            return Listing {
                ids,
                listed,
                marked: false,
                tick,
                fingerprint: Some(fingerprint),
            };
        }
        let State {
            resources,
            recorded_until,
            stats,
            ..
        } = state;
        let mut clean = true;
        let mut refused = 0u64;
        let mut held = resources.len();
        let max = self.config.max_resources;
        ids.retain(|id| {
            let r = match resources.get_mut(id.as_str()) {
                Some(r) => r,
                // Only ids never seen need checking: every key was checked once.
                None if validate_resource_id(id).is_err() => {
                    tracing::debug!(resource = %clip(id), "provider listed an invalid resource id; skipped");
                    clean = false;
                    return false;
                }
                None if held >= max => {
                    refused += 1;
                    clean = false;
                    return false;
                }
                None => {
                    held += 1;
                    let fresh = self.new_resource(recorded_until, id);
                    resources.entry(id.as_str().into()).or_insert(fresh)
                }
            };
            let first = r.seen_tick != tick;
            r.seen_tick = tick;
            clean &= first;
            first
        });
        if refused > 0 {
            if stats.resources_refused == 0 {
                tracing::warn!(
                    refused,
                    limit = self.config.max_resources,
                    "the provider lists more resources than the recorder holds; the others are not sampled"
                );
            }
            stats.resources_refused += refused;
        }
        let listed = ids.len();
        ids.extend(
            state
                .resources
                .iter()
                .filter(|(_, r)| r.window.is_some() && r.seen_tick != tick)
                .map(|(id, _)| id.to_string()),
        );
        Listing {
            ids,
            listed,
            marked: true,
            tick,
            fingerprint: clean.then_some(fingerprint),
        }
    }

    /// Evicts old buffered samples, drops resources no longer monitored and
    /// queues windows past their deadline for closing. `listing` is `None`
    /// when the provider gave no listing this tick, else the listing's
    /// fingerprint if it was clean, which the memo then records.
    fn expire(&self, state: &mut State, now_ms: i64, listing: Option<Option<u64>>) {
        let rules = self.rules;
        let cutoff = rules.buffer_cutoff(now_ms);
        let listed = listing.is_some();
        let State {
            resources,
            closings,
            tick,
            listing: memo,
            recorded_until,
            ..
        } = state;
        memo.unlisted_windows.clear();
        let unlisted = &mut memo.unlisted_windows;
        resources.retain(|id, r| {
            r.buffer.evict_through(cutoff);
            if let Some(w) = r.window.as_mut().filter(|w| rules.due_at_tick(w, now_ms)) {
                rules.close(w, super::window::CloseReason::Deadline, closings);
            }
            if r.window.is_some() {
                if r.seen_tick != *tick {
                    unlisted.push(id.clone());
                }
                return true;
            }
            let keep = if listed {
                r.seen_tick == *tick
            } else {
                !r.buffer.is_empty()
            };
            if !keep && let Some(until) = r.recorded_until {
                // Its history outlives its state: a replayed sample is still
                // checked against the store.
                recorded_until.insert(id.clone(), until);
            }
            keep
        });
        memo.fingerprint = listing.flatten();
        memo.resources = resources.len();
    }

    /// Opens the windows other processes asked for (`trigger_requests`).
    fn serve_requests(&self, state: &mut State, now: Timestamp) -> Result<()> {
        let requests = state.writer.pending_requests()?;
        for req in requests {
            let outcome = validate_resource_id(&req.resource)
                .and_then(|()| super::validate::trigger(&req.trigger))
                .and_then(|()| {
                    self.record_trigger(
                        state,
                        Resource::from(req.resource.as_str()),
                        &req.trigger,
                        now.as_unix_ms(),
                        now.as_unix_ms(),
                    )
                });
            let outcome = match outcome {
                Ok(o) => Ok(o.outcome.window),
                // A database error is ours, not the request's: retry next tick.
                Err(e @ (Error::Sqlite(_) | Error::Pool(_) | Error::Corrupt { .. })) => {
                    return Err(e);
                }
                Err(e) => Err(crate::error_chain(&e)),
            };
            if let Err(reason) = &outcome {
                tracing::warn!(resource = %clip(&req.resource), %reason, "trigger request refused");
            }
            state.writer.finish_request(
                req.id,
                now.as_unix_ms(),
                outcome.as_ref().map_err(Clone::clone),
            )?;
        }
        Ok(())
    }
}

/// The sampling thread: a tick every `sample_interval` at a fixed rate until
/// stopped. A tick that overruns the interval delays the next one rather than
/// queueing a burst.
pub(super) fn run(inner: &Arc<Inner>, signal: &StopSignal) {
    let interval = inner.config.sample_interval;
    let mut next = Instant::now() + interval;
    loop {
        let mut stopped = lock(&signal.stopped);
        loop {
            if *stopped {
                return;
            }
            let now = Instant::now();
            if now >= next {
                break;
            }
            stopped = signal
                .wake
                .wait_timeout(stopped, next - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        drop(stopped);
        match catch_unwind(AssertUnwindSafe(|| inner.tick())) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %crate::error_chain(&e), "tick failed"),
            Err(_) => tracing::error!("tick panicked; the recorder keeps running"),
        }
        next += interval;
        let now = Instant::now();
        if next <= now {
            tracing::warn!(
                ?interval,
                "tick overran the sample interval; skipping missed ticks"
            );
            next = now + interval;
        }
    }
}
