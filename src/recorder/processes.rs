//! What was running: the ring of process snapshots and when they are written.
//!
//! With a [`ProcessProvider`] set, each tick takes one snapshot (outside the
//! recorder's lock) and keeps it in a ring beside the metric buffers. The
//! rules:
//!
//! - The ring holds the snapshots of the pre-incident window: at most
//!   `pre_incident_window / sample_interval` (rounded up), between 1 and
//!   [`MAX_RING`] = 64. Older ones are dropped.
//! - When a window of the provider's resource opens, the ring's snapshots
//!   taken at or after the window's start are written with it (the minutes
//!   before the trigger).
//! - While that window records, every `every`-th snapshot is written
//!   ([`DEFAULT_EVERY`] = 5: one every 5 samples).
//! - Writes wait in [`ProcessRing::pending`] until the tick's end, in one
//!   transaction of their own; a failed write is logged and dropped (the
//!   metrics are what a window must keep).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crate::processes::ProcessSnapshot;
use crate::provider::process::ProcessProvider;
use crate::store::WindowRow;

/// Most snapshots the ring keeps.
pub const MAX_RING: usize = 64;
/// Default: one snapshot written every this many samples while a window records.
pub const DEFAULT_EVERY: u32 = 5;

/// The provider and how often its snapshots are written while recording.
#[derive(Clone)]
pub(super) struct ProcessSlot {
    pub(super) provider: Arc<dyn ProcessProvider>,
    pub(super) every: u32,
}

/// The ring and the snapshots due for writing.
#[derive(Default)]
pub(super) struct ProcessRing {
    snaps: VecDeque<Arc<ProcessSnapshot>>,
    cap: usize,
    /// Write every this many snapshots while a window records.
    every: u32,
    /// The recording window last seen, and snapshots taken in it since the
    /// last one written.
    window: Option<(WindowRow, u32)>,
    pending: Vec<(WindowRow, Arc<ProcessSnapshot>)>,
}

/// Ring size for a pre-incident window sampled every `interval`.
pub(super) fn ring_size(pre: Duration, interval: Duration) -> usize {
    let interval = interval.as_millis().max(1);
    let n = pre.as_millis().div_ceil(interval);
    usize::try_from(n).unwrap_or(MAX_RING).clamp(1, MAX_RING)
}

impl ProcessRing {
    /// An empty ring of `cap` snapshots, writing every `every`-th while a
    /// window records.
    pub(super) fn new(cap: usize, every: u32) -> ProcessRing {
        ProcessRing {
            cap: cap.clamp(1, MAX_RING),
            every: every.max(1),
            ..ProcessRing::default()
        }
    }

    /// Takes a tick's snapshot; `recording` is the provider's resource's
    /// window, if one records. Every `every`-th snapshot of a window is due.
    pub(super) fn push(&mut self, snap: ProcessSnapshot, recording: Option<WindowRow>) {
        let snap = Arc::new(snap);
        if self.snaps.len() >= self.cap {
            self.snaps.pop_front();
        }
        self.snaps.push_back(Arc::clone(&snap));
        let Some(row) = recording else {
            self.window = None;
            return;
        };
        let taken = match self.window {
            Some((w, n)) if w == row => n + 1,
            _ => 1,
        };
        if taken >= self.every {
            self.pending.push((row, snap));
            self.window = Some((row, 0));
        } else {
            self.window = Some((row, taken));
        }
    }

    /// A window of the provider's resource opened at `start_ms`: the ring's
    /// snapshots from then on are due with it. If the ring has none (the
    /// recorder just started), the next snapshot is due instead.
    pub(super) fn opened(&mut self, row: WindowRow, start_ms: i64) {
        let before = self.pending.len();
        for s in &self.snaps {
            if s.at.as_unix_ms() >= start_ms {
                self.pending.push((row, Arc::clone(s)));
            }
        }
        let taken = if self.pending.len() == before {
            self.every - 1
        } else {
            0
        };
        self.window = Some((row, taken));
    }

    /// The snapshots due for writing, taken out.
    pub(super) fn take_pending(&mut self) -> Vec<(WindowRow, Arc<ProcessSnapshot>)> {
        std::mem::take(&mut self.pending)
    }

    /// How many snapshots the ring holds.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.snaps.len()
    }
}

impl super::Inner {
    /// The process provider, if one is set.
    fn process_slot(&self) -> Option<ProcessSlot> {
        self.processes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Takes this tick's process snapshot into the ring (before the tick's
    /// samples, so a window they open gets it). An error or a panic of the
    /// provider skips the snapshot.
    pub(super) fn snapshot_processes(&self) {
        let Some(slot) = self.process_slot() else {
            return;
        };
        let at = self.clock.now();
        let taken = catch_unwind(AssertUnwindSafe(|| slot.provider.snapshot()));
        let processes = match taken {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                tracing::debug!(error = %crate::error_chain(&e), "process snapshot failed; skipped");
                return;
            }
            Err(_) => {
                tracing::warn!("process provider panicked; snapshot skipped");
                return;
            }
        };
        let mut state = self.state();
        let resource = slot.provider.resource_id();
        self.keep_snapshot(
            &mut state,
            resource,
            ProcessSnapshot { at, processes },
            slot.every,
        );
    }

    /// Puts `snap` in `resource`'s ring (made on first use, at most
    /// `max_resources` rings), due for writing as the ring's rules say.
    fn keep_snapshot(
        &self,
        state: &mut super::State,
        resource: &str,
        snap: ProcessSnapshot,
        every: u32,
    ) -> bool {
        let recording = state
            .resources
            .get(resource)
            .and_then(|r| r.window.as_ref())
            .filter(|w| !w.closing)
            .map(|w| w.row);
        if !state.procs.contains_key(resource) {
            if state.procs.len() >= self.max_rows_of_rings() {
                return false;
            }
            state
                .procs
                .insert(resource.into(), ProcessRing::new(self.ring_size(), every));
        }
        let ring = state.procs.get_mut(resource).expect("just made");
        ring.push(snap, recording);
        true
    }

    /// Most resources with a ring: the recorder's resource limit.
    fn max_rows_of_rings(&self) -> usize {
        self.config.max_resources.max(1)
    }

    fn ring_size(&self) -> usize {
        ring_size(self.config.pre_incident_window, self.config.sample_interval)
    }

    /// A window opened for `resource` at `start_ms`: its ring's snapshots
    /// (if it has one) are due with it.
    pub(super) fn processes_opened(
        rings: &mut Rings,
        resource: &str,
        row: WindowRow,
        start_ms: i64,
    ) {
        if let Some(ring) = rings.get_mut(resource) {
            ring.opened(row, start_ms);
        }
    }

    /// Writes the snapshots due, in a transaction of their own.
    pub(super) fn write_processes(&self, state: &mut super::State) {
        let due: Vec<_> = state
            .procs
            .values_mut()
            .flat_map(ProcessRing::take_pending)
            .collect();
        if due.is_empty() {
            return;
        }
        if let Err(e) = state.writer.write_processes(&due) {
            tracing::warn!(error = %crate::error_chain(&e), "could not write process snapshots; dropped");
        }
    }
}

/// Process rings by resource.
pub(super) type Rings = std::collections::HashMap<Box<str>, ProcessRing>;

impl super::IncidentRecorder {
    /// Takes a snapshot of `resource`'s top processes from elsewhere (an
    /// `ingest` `processes` line, a monitor of containers): kept in the
    /// resource's ring like a provider's, and written to its recording
    /// window at once (a pushed snapshot is never thinned: the sender picks
    /// its rate). The processes are cut to the bounds of
    /// [`crate::processes`] and to the top [`crate::processes::MAX_TOP`] by
    /// CPU and by memory. Returns false if the recorder already holds
    /// rings for `max_resources` resources (the snapshot is dropped).
    pub fn push_processes(
        &self,
        resource: &str,
        at: crate::model::Timestamp,
        processes: Vec<crate::ProcessSample>,
    ) -> crate::Result<bool> {
        super::validate_resource_id(resource)?;
        crate::validate::storable(at)?;
        let processes = crate::processes::top_processes(
            processes
                .into_iter()
                .map(crate::ProcessSample::bounded)
                .collect(),
            crate::processes::MAX_TOP,
        );
        let inner = &self.inner;
        let mut state = inner.state();
        let kept = inner.keep_snapshot(&mut state, resource, ProcessSnapshot { at, processes }, 1);
        inner.write_processes(&mut state);
        Ok(kept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Timestamp;

    fn snap(ms: i64) -> ProcessSnapshot {
        ProcessSnapshot {
            at: Timestamp::from_unix_ms(ms),
            processes: Vec::new(),
        }
    }

    fn times(due: &[(WindowRow, Arc<ProcessSnapshot>)]) -> Vec<(i64, i64)> {
        due.iter().map(|(w, s)| (w.0, s.at.as_unix_ms())).collect()
    }

    #[test]
    fn the_ring_keeps_only_the_pre_incident_minutes() {
        assert_eq!(
            ring_size(Duration::from_secs(300), Duration::from_secs(5)),
            60
        );
        assert_eq!(
            ring_size(Duration::from_secs(3600), Duration::from_secs(1)),
            MAX_RING
        );
        assert_eq!(ring_size(Duration::ZERO, Duration::from_secs(5)), 1);
        let mut ring = ProcessRing::new(3, 5);
        for t in 0..10 {
            ring.push(snap(t * 1000), None);
        }
        assert_eq!(ring.len(), 3);
        assert!(
            ring.take_pending().is_empty(),
            "nothing is due without a window"
        );
    }

    #[test]
    fn an_opening_window_gets_the_ring_from_its_start_then_every_nth() {
        let mut ring = ProcessRing::new(10, 3);
        for t in 0..6 {
            ring.push(snap(t * 1000), None);
        }
        let w = WindowRow(7);
        ring.opened(w, 3000);
        assert_eq!(
            times(&ring.take_pending()),
            vec![(7, 3000), (7, 4000), (7, 5000)]
        );
        for t in 6..13 {
            ring.push(snap(t * 1000), Some(w));
        }
        assert_eq!(times(&ring.take_pending()), vec![(7, 8000), (7, 11000)]);
        // Closed: no more writes.
        ring.push(snap(13_000), None);
        assert!(ring.take_pending().is_empty());
    }

    #[test]
    fn a_new_window_starts_its_own_count() {
        let mut ring = ProcessRing::new(10, 2);
        ring.push(snap(0), Some(WindowRow(1)));
        ring.push(snap(1000), Some(WindowRow(2)));
        ring.push(snap(2000), Some(WindowRow(2)));
        assert_eq!(times(&ring.take_pending()), vec![(2, 2000)]);
    }

    #[test]
    fn a_window_opened_on_an_empty_ring_gets_the_next_snapshot() {
        let mut ring = ProcessRing::new(10, 5);
        ring.opened(WindowRow(3), 0);
        assert!(ring.take_pending().is_empty());
        ring.push(snap(1000), Some(WindowRow(3)));
        assert_eq!(times(&ring.take_pending()), vec![(3, 1000)]);
    }

    struct FakeHost {
        clock: Arc<crate::ManualClock>,
    }

    impl crate::MetricsProvider for FakeHost {
        fn current_metrics(
            &self,
            _: &str,
        ) -> std::result::Result<crate::Metrics, crate::ProviderError> {
            Ok(crate::Metrics::new().with("cpu", 50.0))
        }
        fn monitored_resource_ids(&self) -> Vec<String> {
            vec!["host".into()]
        }
    }

    impl ProcessProvider for FakeHost {
        fn resource_id(&self) -> &str {
            "host"
        }
        fn snapshot(&self) -> std::result::Result<Vec<crate::ProcessSample>, crate::ProviderError> {
            // The pid tells the snapshot's time, in seconds.
            Ok(vec![crate::ProcessSample {
                pid: (crate::Clock::now(&*self.clock).as_unix_ms() / 1000) as u32,
                name: "burn".into(),
                cmdline: Some("burn --hard".into()),
                user: Some("irtest".into()),
                cpu: 99.0,
                rss: 1 << 20,
                read_bps: Some(0.0),
                write_bps: None,
            }])
        }
    }

    #[test]
    fn a_window_is_written_with_its_pre_incident_snapshots_then_every_nth() {
        use crate::{IncidentRecorder, ManualClock, RecorderConfig, Trigger};
        let clock = Arc::new(ManualClock::new(Timestamp::from_unix_ms(1_000_000)));
        let config = RecorderConfig {
            sample_interval: Duration::from_secs(1),
            pre_incident_window: Duration::from_secs(3),
            post_incident_window: Duration::from_secs(60),
            ..RecorderConfig::default()
        };
        let recorder = IncidentRecorder::open_with_clock(config, clock.clone()).unwrap();
        let host = Arc::new(FakeHost {
            clock: clock.clone(),
        });
        recorder.set_metrics_provider(host.clone());
        recorder.set_process_provider(host, 2);
        for _ in 0..5 {
            recorder.record_sample().unwrap();
            clock.advance(Duration::from_secs(1));
        }
        // Ticks at 1000..=1004 s; the ring holds 3: 1002, 1003, 1004.
        let id = recorder.start_recording("host", Trigger::manual()).unwrap();
        for _ in 0..4 {
            recorder.record_sample().unwrap();
            clock.advance(Duration::from_secs(1));
        }
        recorder.stop_recording(&id).unwrap();
        let snaps = recorder.store().window_processes(id.as_str()).unwrap();
        let pids: Vec<u32> = snaps.iter().map(|s| s.processes[0].pid).collect();
        // The window starts at its oldest buffered point within 3 s of the
        // trigger at 1005 s (1003 s): the ring's 1003 and 1004 from then
        // on, then every 2nd of 1005..=1008 while it records.
        let window = recorder.window(&id).unwrap().unwrap();
        assert_eq!(window.start_time.as_unix_ms(), 1_003_000);
        assert_eq!(pids, vec![1003, 1004, 1006, 1008]);
        assert_eq!(
            snaps[0].processes[0].cmdline.as_deref(),
            Some("burn --hard")
        );
    }
}
