//! One tick of the recorder, and the thread that runs a tick every interval.
//!
//! A tick touches every monitored resource, so its per-resource path is kept
//! lean: ids are validated only when first seen, the provider's default batch
//! is bypassed for direct calls (same results, no id clones; see
//! [`ProviderSlot`]), and samples whose metrics come in the buffer's column
//! order skip interning (see `Inner::accept`).

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use super::{Inner, ResourceState, State, StopSignal, lock, validate_resource_id};
use crate::error::{Error, ProviderError, Result, clip};
use crate::model::{Metrics, Resource, Timestamp, duration_ms};
use crate::provider::{MetricsProvider, ran_default_batch, reset_default_batch_mark};

type Fetched = Vec<(String, std::result::Result<Metrics, ProviderError>)>;

/// Resources fetched between two takes of the state lock on the direct path
/// (see `Inner::fetch_and_accept`).
const FETCH_GROUP: usize = 4;

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
    /// One tick: sample every resource once, close due windows, commit, then
    /// serve trigger requests from other processes.
    pub(super) fn tick(&self) -> Result<()> {
        let now = self.clock.now();
        let now_ms = now.as_unix_ms();
        let provider = self
            .provider
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut panics = 0;
        let mut listed = false;
        let mut fetched = Fetched::new();
        if let Some(p) = provider.as_ref() {
            match catch_unwind(AssertUnwindSafe(|| p.provider.monitored_resource_ids())) {
                Ok(ids) => {
                    let ids = self.mark_listed(ids);
                    if p.batch.load(Ordering::Relaxed) == BATCH_DEFAULT {
                        self.fetch_and_accept(&*p.provider, &ids, now_ms, &mut panics);
                    } else {
                        fetched = fetch(p, ids, &mut panics);
                    }
                    listed = true;
                }
                Err(_) => {
                    panics += 1;
                    tracing::error!(
                        "provider panicked listing resources; keeping buffers as they are"
                    );
                }
            }
        }

        let mut state = self.state();
        state.stats.ticks += 1;
        state.stats.last_tick = Some(now);
        state.stats.provider_panics += panics;
        for (id, result) in fetched {
            self.accept_fetched(&mut state, &id, now_ms, result);
        }
        self.expire(&mut state, now_ms, listed);
        let committed = self.flush(&mut state, now, false);
        let served = self.serve_requests(&mut state, now);
        committed.and(served)
    }

    /// Takes one fetched result: the sample into its resource, or the error
    /// into the counters.
    fn accept_fetched(
        &self,
        state: &mut State,
        id: &str,
        now_ms: i64,
        result: std::result::Result<Metrics, ProviderError>,
    ) {
        match result {
            Ok(metrics) => {
                if let Err(e) = self.accept(state, Resource::from(id), now_ms, &metrics, None) {
                    tracing::debug!(resource = %clip(id), error = %e, "sample skipped");
                }
            }
            Err(e) => {
                state.stats.provider_errors += 1;
                tracing::debug!(resource = %clip(id), error = %crate::error_chain(&e), "provider error; resource skipped this tick");
            }
        }
    }

    /// Asks a provider that keeps the default batch for each id with
    /// `current_metrics` directly, and takes the samples a few at a time.
    ///
    /// Taking them a few at a time (locking the state briefly for each group)
    /// rather than all at once after fetching lets each sample's `Metrics` be
    /// freed before the next ones are allocated: the allocator then recycles
    /// the same few blocks from its thread cache, where holding ten thousand at
    /// once sends every allocation and free through its slow paths (a third of
    /// a 10,000-resource tick, measured with callgrind).
    fn fetch_and_accept(
        &self,
        p: &dyn MetricsProvider,
        ids: &[String],
        now_ms: i64,
        panics: &mut u64,
    ) {
        let mut got = Vec::with_capacity(FETCH_GROUP);
        for group in ids.chunks(FETCH_GROUP) {
            for id in group {
                match catch_unwind(AssertUnwindSafe(|| p.current_metrics(id))) {
                    Ok(r) => got.push((id.as_str(), r)),
                    Err(_) => {
                        *panics += 1;
                        tracing::error!(resource = %clip(id), "provider panicked; resource skipped this tick");
                    }
                }
            }
            let mut state = self.state();
            for (id, result) in got.drain(..) {
                self.accept_fetched(&mut state, id, now_ms, result);
            }
        }
    }

    /// Marks the resources the provider lists this tick and returns the ids
    /// to fetch: each listed id once, plus resources with an open window that
    /// the provider no longer lists (their windows still need samples). The
    /// provider's vector is filtered in place, so a tick allocates no list of
    /// its own.
    fn mark_listed(&self, mut ids: Vec<String>) -> Vec<String> {
        let expected = self.expected_rows();
        let mut guard = self.state();
        let state = &mut *guard;
        state.tick += 1;
        let tick = state.tick;
        let resources = &mut state.resources;
        ids.retain(|id| {
            let r = match resources.get_mut(id.as_str()) {
                Some(r) => r,
                // Only ids never seen need checking: every key was checked once.
                None if validate_resource_id(id).is_err() => {
                    tracing::debug!(resource = %clip(id), "provider listed an invalid resource id; skipped");
                    return false;
                }
                None => resources
                    .entry(id.as_str().into())
                    .or_insert_with(|| ResourceState::new(expected)),
            };
            let first = r.seen_tick != tick;
            r.seen_tick = tick;
            first
        });
        let mut keep = ids;
        keep.extend(
            state
                .resources
                .iter()
                .filter(|(_, r)| r.window.is_some() && r.seen_tick != tick)
                .map(|(id, _)| id.to_string()),
        );
        keep
    }

    /// Evicts old buffered samples, drops resources no longer monitored and
    /// queues windows past their deadline for closing.
    fn expire(&self, state: &mut State, now_ms: i64, listed: bool) {
        let cutoff = now_ms.saturating_sub(duration_ms(self.config.pre_incident_window));
        let hold = self.config.hold_while_alert_active;
        let State {
            resources,
            closings,
            tick,
            ..
        } = state;
        resources.retain(|_, r| {
            r.buffer.evict_through(cutoff);
            if let Some(w) = r
                .window
                .as_mut()
                .filter(|w| !w.closing && w.is_due(now_ms, hold))
            {
                let deadline = w.deadline_ms;
                w.queue_close(closings, crate::WindowStatus::Complete, deadline);
            }
            if r.window.is_some() {
                return true;
            }
            if listed {
                r.seen_tick == *tick
            } else {
                !r.buffer.is_empty()
            }
        });
    }

    /// Opens the windows other processes asked for (`trigger_requests`).
    fn serve_requests(&self, state: &mut State, now: Timestamp) -> Result<()> {
        let requests = state.writer.pending_requests()?;
        for req in requests {
            let outcome = validate_resource_id(&req.resource).and_then(|()| {
                self.start_recording(state, Resource::from(req.resource.as_str()), &req.trigger)
            });
            let outcome = match outcome {
                Ok(id) => Ok(id),
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

/// Asks the provider for every id: one batch call, then single calls for ids
/// the batch left out; or, for a provider known to keep the default batch,
/// single calls directly. A panic is caught and counted; that resource (or,
/// for the batch, the batch) is skipped.
fn fetch(slot: &ProviderSlot, ids: Vec<String>, panics: &mut u64) -> Fetched {
    let p = &*slot.provider;
    if slot.batch.load(Ordering::Relaxed) == BATCH_DEFAULT {
        let mut results = Fetched::with_capacity(ids.len());
        for id in ids {
            match catch_unwind(AssertUnwindSafe(|| p.current_metrics(&id))) {
                Ok(r) => results.push((id, r)),
                Err(_) => {
                    *panics += 1;
                    tracing::error!(resource = %clip(&id), "provider panicked; resource skipped this tick");
                }
            }
        }
        return results;
    }
    reset_default_batch_mark();
    let mut results = match catch_unwind(AssertUnwindSafe(|| p.current_metrics_batch(&ids))) {
        Ok(r) => r,
        Err(_) => {
            *panics += 1;
            tracing::error!("provider panicked in current_metrics_batch; asking per resource");
            Vec::new()
        }
    };
    let learned = if ran_default_batch(p) {
        BATCH_DEFAULT
    } else {
        BATCH_CUSTOM
    };
    let _ =
        slot.batch
            .compare_exchange(BATCH_UNKNOWN, learned, Ordering::Relaxed, Ordering::Relaxed);
    let in_order = results.len() == ids.len() && results.iter().zip(&ids).all(|(r, id)| &r.0 == id);
    if in_order {
        return results;
    }
    let wanted: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let mut got: HashSet<String> = HashSet::with_capacity(results.len());
    results.retain(|(id, _)| wanted.contains(id.as_str()) && got.insert(id.clone()));
    for id in ids {
        if got.contains(&id) {
            continue;
        }
        match catch_unwind(AssertUnwindSafe(|| p.current_metrics(&id))) {
            Ok(r) => results.push((id, r)),
            Err(_) => {
                *panics += 1;
                tracing::error!(resource = %clip(&id), "provider panicked; resource skipped this tick");
            }
        }
    }
    results
}

/// The sampling thread: a tick every `sample_interval` at a fixed rate until
/// stopped. A tick that overruns the interval delays the next one rather than
/// queueing a burst.
pub(super) fn run(inner: &Inner, signal: &StopSignal) {
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
