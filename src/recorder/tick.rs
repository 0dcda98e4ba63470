//! One tick of the recorder, and the thread that runs a tick every interval.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use super::fetch::Fetched;
use super::{Inner, ResourceState, State, StopSignal, lock, validate_resource_id};
use crate::error::{Error, Result, clip};
use crate::model::{Resource, Timestamp, duration_ms};

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
        let mut listed = false;
        let mut fetched = Fetched::default();
        if let Some(p) = &provider {
            // Provider calls run on worker threads, bounded by the timeout;
            // see `fetch`. A listing that fails keeps buffers as they are.
            let timeout = self.config.provider_timeout;
            let mut fetcher = lock(&self.fetcher);
            if let Some(ids) = fetcher.list(p, timeout, &mut fetched) {
                let (ids, tick) = self.mark_listed(ids);
                fetcher.fetch(p, ids, tick, timeout, &mut fetched);
                listed = true;
            }
        }

        let mut state = self.state();
        state.stats.ticks += 1;
        state.stats.last_tick = Some(now);
        state.stats.provider_panics += fetched.panics;
        state.stats.provider_hangs += fetched.hangs;
        state.stats.provider_skipped += fetched.skipped;
        for (id, result) in fetched.answers {
            match result {
                Ok(metrics) => {
                    if let Err(e) = self.accept(
                        &mut state,
                        Resource::from(id.as_str()),
                        now_ms,
                        &metrics,
                        None,
                    ) {
                        tracing::debug!(resource = %clip(&id), error = %e, "sample skipped");
                    }
                }
                Err(e) => {
                    state.stats.provider_errors += 1;
                    tracing::debug!(resource = %clip(&id), error = %crate::error_chain(&e), "provider error; resource skipped this tick");
                }
            }
        }
        self.open_detected(&mut state);
        self.expire(&mut state, now_ms, listed);
        let committed = self.flush(&mut state, now, false);
        let served = self.serve_requests(&mut state, now);
        committed.and(served)
    }

    /// Marks the resources the provider lists this tick and returns the ids
    /// to fetch: each listed id once, plus resources with an open window that
    /// the provider no longer lists (their windows still need samples).
    fn mark_listed(&self, ids: Vec<String>) -> (Vec<String>, u64) {
        let expected = self.expected_rows();
        let mut state = self.state();
        state.tick += 1;
        let tick = state.tick;
        let mut keep = Vec::with_capacity(ids.len());
        for id in ids {
            if validate_resource_id(&id).is_err() {
                tracing::debug!(resource = %clip(&id), "provider listed an invalid resource id; skipped");
                continue;
            }
            let r = match state.resources.get_mut(id.as_str()) {
                Some(r) => r,
                None => state
                    .resources
                    .entry(id.as_str().into())
                    .or_insert_with(|| ResourceState::new(expected)),
            };
            if r.seen_tick != tick {
                r.seen_tick = tick;
                keep.push(id);
            }
        }
        keep.extend(
            state
                .resources
                .iter()
                .filter(|(_, r)| r.window.is_some() && r.seen_tick != tick)
                .map(|(id, _)| id.to_string()),
        );
        (keep, tick)
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
