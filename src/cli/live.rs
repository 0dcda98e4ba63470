//! What `watch` shows while it runs.
//!
//! On a terminal: one status line (indicatif, on stderr) with the resources,
//! buffered points, recording windows and last tick, and event lines printed
//! above it. Otherwise (a service, a pipe): the same events as plain
//! timestamped lines on stdout, plus a status line every minute.
//!
//! Window events come from the database, not from the code paths that open
//! windows: after each tick the recording windows are listed and compared
//! with the previous list, so windows opened by rules, `--trigger-now` or a
//! `trigger` request, and windows closed by the recorder's thread at their
//! deadline, are all reported the same way.

use std::collections::BTreeSet;
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use incident_recorder::{
    IncidentRecorder, RecorderStats, Timestamp, WindowFilter, WindowId, WindowStatus,
};
use indicatif::{ProgressBar, ProgressStyle};

use super::error::Result;
use super::format;

/// How often a non-terminal run prints its status.
const HEARTBEAT: Duration = Duration::from_secs(60);

pub struct Live<'a> {
    recorder: &'a IncidentRecorder,
    resource: String,
    bar: Option<ProgressBar>,
    ticks: u64,
    recording: BTreeSet<WindowId>,
    last_heartbeat: Instant,
}

impl<'a> Live<'a> {
    /// Starts the display; reports windows resumed from an earlier run.
    pub fn new(recorder: &'a IncidentRecorder, resource: &str) -> Result<Live<'a>> {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
            bar.enable_steady_tick(Duration::from_millis(200));
            // Warnings are printed above the status line, not through it.
            super::logging::attach_bar(&bar);
            bar
        });
        let mut live = Live {
            recorder,
            resource: resource.to_owned(),
            bar,
            ticks: 0,
            recording: BTreeSet::new(),
            last_heartbeat: Instant::now(),
        };
        for w in live.recording_now()? {
            live.say(&format!(
                "resuming window {} on {} (recording since {})",
                w.0,
                w.1,
                format::time(w.2)
            ))?;
            live.recording.insert(w.0);
        }
        Ok(live)
    }

    /// Prints one event line (escaped: it names resources and alerts).
    pub fn say(&self, text: &str) -> Result<()> {
        let line = format!(
            "{} {}",
            format::clock(Timestamp::now()),
            format::terminal_safe(text)
        );
        let print = || writeln!(std::io::stdout().lock(), "{line}");
        match &self.bar {
            Some(bar) => bar.suspend(print)?,
            None => print()?,
        }
        Ok(())
    }

    /// Updates the status line; after a new tick, reports window changes.
    pub fn refresh(&mut self) -> Result<()> {
        // A flood of warnings that stopped is summarised within a minute.
        super::logging::flush_due();
        let stats = self.recorder.stats();
        if stats.ticks != self.ticks {
            self.ticks = stats.ticks;
            self.windows()?;
        }
        let status = self.status(&stats);
        match &self.bar {
            Some(bar) => bar.set_message(format::terminal_safe(&status).into_owned()),
            None if self.last_heartbeat.elapsed() >= HEARTBEAT => {
                self.last_heartbeat = Instant::now();
                self.say(&status)?;
            }
            None => {}
        }
        Ok(())
    }

    /// Removes the status line for good (before the last messages).
    pub fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            super::logging::detach_bar();
            bar.finish_and_clear();
        }
    }

    /// Clears the status line and prints the final summary.
    pub fn finish(mut self, ran: Duration) -> Result<()> {
        self.clear();
        self.windows()?;
        let stats = self.recorder.stats();
        let still = match self.recording.len() {
            0 => String::new(),
            n => format!("; {n} window(s) still recording, resumed by the next start"),
        };
        self.say(&format!(
            "stopped after {}: {} samples, {} points written{still}",
            format::duration_ms(ran.as_secs() as i64 * 1000),
            stats.samples,
            stats.points_written
        ))
    }

    fn status(&self, s: &RecorderStats) -> String {
        let last = s.last_tick.map_or("none yet".into(), format::clock);
        let mut text = format!(
            "{}: {} resource(s), {} buffered points, {} recording window(s), {} points written, last tick {last}",
            self.resource, s.resources, s.buffered_points, s.active_windows, s.points_written
        );
        if let Some(e) = &s.last_error {
            text.push_str(&format!(" - write failing: {e}"));
        }
        text
    }

    /// Reports windows that opened or closed since the last look.
    fn windows(&mut self) -> Result<()> {
        let now: Vec<(WindowId, String, Timestamp, String)> = self.recording_now()?;
        let ids: BTreeSet<WindowId> = now.iter().map(|w| w.0.clone()).collect();
        for (id, resource, _, trigger) in &now {
            if !self.recording.contains(id) {
                self.say(&format!("window {id} opened on {resource} ({trigger})"))?;
            }
        }
        for id in self.recording.difference(&ids) {
            let text = match self.recorder.window(id)? {
                Some(w) if w.status != WindowStatus::Recording => format!(
                    "window {id} closed: {}, {} points",
                    w.status,
                    w.data_points.len()
                ),
                Some(_) => continue,
                None => format!("window {id} closed and already trimmed"),
            };
            self.say(&text)?;
        }
        self.recording = ids;
        Ok(())
    }

    fn recording_now(&self) -> Result<Vec<(WindowId, String, Timestamp, String)>> {
        let windows = self.recorder.store().windows(&WindowFilter {
            status: Some(WindowStatus::Recording),
            ..WindowFilter::default()
        })?;
        Ok(windows
            .into_iter()
            .map(|w| {
                let trigger = match &w.trigger_id {
                    Some(id) => format!("{} {id}", w.trigger_type),
                    None => w.trigger_type.to_string(),
                };
                (w.id, w.resource_id, w.start_time, trigger)
            })
            .collect())
    }
}
