//! `ingest`: record samples and triggers from JSON lines (see `ingest_line`).
//!
//! The recorder runs on the lines' clock, not the wall clock: an
//! [`InputClock`] starts at the first line's time (so recovery and retention
//! at open already follow the input) and moves to each line's time, never
//! backwards and never more than 10 minutes past the wall clock (such a line
//! is refused: one mistyped year must not move retention forward and delete
//! history). Each line acts at its own time: a trigger, resolve or stop line
//! with `ts` acts at `ts` even when other resources' lines are already later;
//! one without `ts` acts at the latest time of this input (lines before its
//! first timed line, at that line's time), so a replay gives it the same
//! time again. (Split a file before such a line and it acts at the next
//! chunk's first time instead: give triggers a `ts` if files are split.)
//!
//! Samples are pushed in batches (`push_samples`, one commit per batch); a
//! trigger, resolve or stop line first flushes the batch, so it acts on
//! exactly the samples before it. After each batch a maintenance tick
//! (`record_sample` without a provider) closes the windows whose deadline
//! has passed. Alert windows are held until their `resolve` line, as `watch`
//! holds them while its rules fire.
//!
//! Replays are idempotent: samples and triggers the database already holds
//! are skipped and counted, and the recorder saves its buffers when it stops,
//! so the next ingest goes on exactly where this one ended: any split of a
//! file into chunks gives the same windows as one ingest.
//!
//! A bad line is reported as `line N: <why>` on stderr and skipped; the rest
//! is recorded, and the exit code is then 3 ([`super::EXIT_PARTIAL`]).
//! Those reports are warnings with the binary's budget (`logging`): ten a
//! minute of each kind, then one line counting the rest.
//! Windows still recording at the end stay recording unless `--finish`
//! closes them (only those of resources this input has lines for).

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use incident_recorder::{
    Clock, IncidentRecorder, InputClock, Resource, Sample, Timestamp, Trigger, TriggerAction,
    WindowFilter, WindowId, WindowStatus,
};
use serde::Serialize;

use super::args::IngestArgs;
use super::error::{Context, Result};
use super::ingest_line::{self, Line, SampleLine};
use super::input::Input;

/// Samples pushed per commit.
const BATCH: usize = 1000;

/// What an ingest did, printed at the end.
#[derive(Debug, Default, Serialize)]
struct Report {
    /// Lines read (blank ones included).
    lines: u64,
    /// Samples recorded.
    samples: u64,
    /// Samples skipped: already recorded with the same values.
    duplicate_samples: u64,
    /// Samples skipped: older than their resource's newest and in no window.
    stale_samples: u64,
    /// Trigger lines that opened a window.
    triggers_opened: u64,
    /// Trigger lines that extended an open window.
    triggers_extended: u64,
    /// Trigger lines already recorded, skipped.
    duplicate_triggers: u64,
    /// Resolve lines that cleared an alert.
    resolves: u64,
    /// Resolve lines that matched no unresolved alert.
    resolves_unmatched: u64,
    /// Stop lines that closed a window.
    stops: u64,
    /// Stop lines for a resource with no recording window.
    stops_unmatched: u64,
    /// Windows this ingest opened.
    windows_opened: u64,
    /// Windows left recording by an earlier run that this one went on with.
    windows_resumed: u64,
    /// Windows closed during this ingest: opened by it or resumed.
    windows_closed: u64,
    /// Windows recording at the end (for the next ingest, or `--finish`).
    windows_recording: u64,
    /// Lines refused (each reported on stderr).
    rejected_lines: u64,
    /// Values dropped from accepted samples (each reported on stderr).
    rejected_values: u64,
    /// What `--push-to` pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<incident_recorder::fleet::PusherStatus>,
}

struct Ingest<'a> {
    recorder: &'a IncidentRecorder,
    clock: InputClock,
    /// Samples waiting to be pushed, with their line numbers.
    batch: Vec<(u64, SampleLine)>,
    /// Windows this ingest opened or resumed.
    touched: HashSet<WindowId>,
    /// Resources this input has lines for (what `--finish` closes).
    seen: HashSet<String>,
    report: Report,
    progress: Option<indicatif::ProgressBar>,
}

pub fn run(db: &Path, a: IngestArgs) -> Result<ExitCode> {
    let push_target = super::push::target(&a.push)?;
    let input = super::input::open(a.input.as_deref())?;
    if input.name == "-" && std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        eprintln!("reading JSON lines from standard input (Ctrl-D ends)");
    }
    let mut lines = Lines {
        reader: input.reader,
        number: 0,
        name: input.name.clone(),
        max: a.max_line_bytes as usize,
        bytes: Vec::new(),
    };
    // The clock starts at the first line with a usable time; lines before
    // it (triggers without ts, bad lines) wait in `early`.
    let wall = InputClock::new(Timestamp::now());
    let mut early = Vec::new();
    let start = loop {
        match lines.next()? {
            Some((n, parsed)) => {
                let time = parsed.as_ref().ok().and_then(Line::time);
                early.push((n, parsed));
                if let Some(t) = time.filter(|t| wall.check(*t).is_ok()) {
                    break t;
                }
            }
            // An input without any time: nothing moves, it happens at the
            // latest time the database knows (now, on an empty one).
            None => match incident_recorder::Store::open(db)?.latest_time()? {
                Some(t) => break t,
                None => break Timestamp::now(),
            },
        }
    };
    let clock = InputClock::new(start);
    let mut config = a.window.config(db, None);
    config.hold_while_alert_active = true;
    config.max_source_lag = a.max_lag;
    let recorder = IncidentRecorder::open_with_clock(config, Arc::new(clock.clone()))?;
    let recovery = recorder.recovery();
    let pusher = super::push::start(db, push_target)?;
    let mut ingest = Ingest {
        recorder: &recorder,
        clock,
        batch: Vec::with_capacity(BATCH),
        touched: recovery.resumed.iter().cloned().collect(),
        seen: HashSet::new(),
        report: Report {
            windows_resumed: recovery.resumed.len() as u64,
            windows_closed: recovery.closed.len() as u64,
            ..Report::default()
        },
        progress: input.progress.clone(),
    };
    if let Some(bar) = &input.progress {
        super::logging::attach_bar(bar);
    }
    for (id, status) in &recovery.closed {
        Input::note(
            ingest.progress.as_ref(),
            &format!(
                "closed window {id} left recording by an earlier run: its deadline had passed ({status})"
            ),
        );
    }
    for (n, parsed) in early {
        ingest.line(n, parsed)?;
    }
    while let Some((n, parsed)) = lines.next()? {
        ingest.line(n, parsed)?;
    }
    ingest.flush()?;
    if a.finish {
        ingest.finish()?;
    }
    recorder.stop()?;
    if let Some(bar) = &input.progress {
        super::logging::detach_bar();
        bar.finish_and_clear();
    }
    let mut report = ingest.summarize()?;
    report.lines = lines.number;
    report.push = pusher.map(|p| p.finish(super::push::FINISH_WITHIN));
    if a.output.json {
        super::print_json(&report)?;
    } else {
        print_report(&report, db)?;
    }
    Ok(super::partial_if(
        report.rejected_lines > 0 || report.rejected_values > 0,
    ))
}

impl Ingest<'_> {
    fn line(&mut self, n: u64, parsed: std::result::Result<Line, String>) -> Result<()> {
        let line = match parsed {
            Ok(line) => line,
            Err(e) => {
                self.reject(n, &e);
                return Ok(());
            }
        };
        if let Some(t) = line.time()
            && let Err(e) = self.clock.advance_to(t)
        {
            self.reject(n, &e.to_string());
            return Ok(());
        }
        // A line without `ts` acts at the latest time of this input (lines
        // before its first timed line, at that line's time): the same time
        // however often the input is replayed.
        let line_time = line.time();
        let at = Some(line_time.unwrap_or_else(|| self.clock.now()));
        match line {
            Line::Sample(sample) => {
                self.seen(&sample.resource);
                self.batch.push((n, sample));
                if self.batch.len() >= BATCH {
                    self.flush()?;
                }
            }
            Line::Trigger {
                resource,
                name,
                kind,
                trigger,
                trigger_id,
                ..
            } => {
                self.flush()?;
                self.seen(&resource);
                let res = Resource {
                    id: &resource,
                    name: name.as_deref(),
                    kind: kind.as_deref(),
                };
                match self
                    .recorder
                    .record_trigger(res, Trigger::new(trigger, trigger_id), at)
                {
                    Ok(o) => match o.action {
                        TriggerAction::Opened => {
                            self.report.triggers_opened += 1;
                            self.report.windows_opened += 1;
                            self.touched.insert(o.window);
                        }
                        TriggerAction::Extended => self.report.triggers_extended += 1,
                        TriggerAction::AlreadyRecorded => self.report.duplicate_triggers += 1,
                    },
                    Err(e) => self.reject(n, &incident_recorder::error_chain(&e)),
                }
            }
            Line::Resolve {
                resource,
                trigger_id,
                ..
            } => {
                self.flush()?;
                self.seen(&resource);
                match self.recorder.resolve_trigger_at(&resource, &trigger_id, at) {
                    Ok(true) => self.report.resolves += 1,
                    Ok(false) => self.report.resolves_unmatched += 1,
                    Err(e) => self.reject(n, &incident_recorder::error_chain(&e)),
                }
            }
            Line::Processes {
                resource,
                processes,
                ..
            } => {
                self.flush()?;
                self.seen(&resource);
                let at = line_time.unwrap_or_else(|| self.clock.now());
                match self.recorder.push_processes(&resource, at, processes) {
                    Ok(true) => {}
                    Ok(false) => self.reject(n, "too many resources with process snapshots"),
                    Err(e) => self.reject(n, &incident_recorder::error_chain(&e)),
                }
            }
            Line::Stop { resource, .. } => {
                self.flush()?;
                self.seen(&resource);
                match self.recorder.stop_resource_at(&resource, at)? {
                    Some(_) => self.report.stops += 1,
                    None => self.report.stops_unmatched += 1,
                }
            }
        }
        Ok(())
    }

    fn seen(&mut self, resource: &str) {
        if !self.seen.contains(resource) {
            self.seen.insert(resource.to_owned());
        }
    }

    /// Pushes the batch in one commit, then runs a maintenance tick so
    /// windows past their deadline close at line time (before a trigger
    /// line, so it opens a new window rather than extending a stale one).
    fn flush(&mut self) -> Result<()> {
        if !self.batch.is_empty() {
            self.push_batch()?;
        }
        self.recorder.record_sample()?;
        Ok(())
    }

    fn push_batch(&mut self) -> Result<()> {
        let mut batch = std::mem::take(&mut self.batch);
        let samples = batch.iter_mut().map(|(_, s)| Sample {
            resource: Resource {
                id: &s.resource,
                name: s.name.as_deref(),
                kind: s.kind.as_deref(),
            },
            timestamp: s.ts.0,
            metrics: std::mem::take(&mut s.metrics).into(),
            metadata: s.metadata.as_ref(),
        });
        let pushed = self.recorder.push_samples(samples)?;
        self.report.samples += pushed.accepted as u64;
        self.report.duplicate_samples += pushed.duplicates as u64;
        self.report.stale_samples += pushed.stale as u64;
        for (i, v) in &pushed.rejected_values {
            self.report.rejected_values += 1;
            let line = batch[*i].0;
            // Each callsite has its own budget (see `logging`).
            tracing::warn!(
                target: super::logging::INPUT,
                "line {line}: value of {:?} dropped: {}",
                v.metric,
                v.reason
            );
        }
        for (i, e) in &pushed.rejected {
            self.reject(batch[*i].0, &incident_recorder::error_chain(e));
        }
        batch.clear();
        self.batch = batch;
        Ok(())
    }

    /// Closes the windows still recording of the resources this input has
    /// lines for, at the latest line time.
    fn finish(&mut self) -> Result<()> {
        for resource in &self.seen {
            if let Some(id) = self.recorder.recording_window(resource) {
                self.recorder.stop_recording(&id)?;
            }
        }
        Ok(())
    }

    /// Counts a refused line and says why, within the warning budget (the
    /// lines left out are summarised; the report counts them all).
    fn reject(&mut self, line: u64, why: &str) {
        self.report.rejected_lines += 1;
        // Escaped here too: `-v`'s format prints messages as they are.
        let why = super::format::terminal_safe(why);
        tracing::warn!(target: super::logging::INPUT, "line {line}: {why}");
    }

    /// Counts the windows this ingest closed and those left recording.
    fn summarize(self) -> Result<Report> {
        let mut report = self.report;
        let recording: HashSet<WindowId> = self
            .recorder
            .store()
            .windows(&WindowFilter {
                status: Some(WindowStatus::Recording),
                ..WindowFilter::default()
            })?
            .into_iter()
            .map(|w| w.id)
            .collect();
        report.windows_closed += self
            .touched
            .iter()
            .filter(|id| !recording.contains(*id))
            .count() as u64;
        report.windows_recording = recording.len() as u64;
        Ok(report)
    }
}

/// The input's lines, numbered from 1, parsed; blank lines are skipped.
/// A line longer than `max` bytes is refused without being held: the rest
/// of it is read and dropped up to its newline.
struct Lines {
    reader: Box<dyn BufRead>,
    number: u64,
    name: String,
    max: usize,
    bytes: Vec<u8>,
}

impl Lines {
    fn next(&mut self) -> Result<Option<(u64, std::result::Result<Line, String>)>> {
        loop {
            self.bytes.clear();
            let read = self.read_bounded()?;
            let Some(too_long) = read else {
                return Ok(None);
            };
            self.number += 1;
            if let Some(len) = too_long {
                return Ok(Some((
                    self.number,
                    Err(format!(
                        "line is {len} bytes, over the {}-byte limit (--max-line-bytes)",
                        self.max
                    )),
                )));
            }
            let parsed = match std::str::from_utf8(&self.bytes) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => ingest_line::parse(text),
                Err(_) => Err("not valid UTF-8".to_owned()),
            };
            if self.bytes.capacity() > 4 * (1 << 16) {
                self.bytes = Vec::new(); // give a long line's memory back
            }
            return Ok(Some((self.number, parsed)));
        }
    }

    /// Reads one line into `self.bytes`, at most `max` bytes of it. `None`
    /// at the end of the input; `Some(Some(n))` for a line over the limit
    /// (n = bytes read of it, at least `max + 1`).
    fn read_bounded(&mut self) -> Result<Option<Option<usize>>> {
        let mut len = 0usize;
        let mut any = false;
        loop {
            let chunk = self
                .reader
                .fill_buf()
                .context(format!("cannot read {}", self.name))?;
            if chunk.is_empty() {
                return Ok(any.then_some((len > self.max).then_some(len)));
            }
            any = true;
            let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if len + take <= self.max + 1 {
                self.bytes.extend_from_slice(&chunk[..take]);
            } else if len <= self.max {
                // Crossing the limit: keep nothing more.
                self.bytes.clear();
            }
            len += take;
            self.reader.consume(take);
            if done {
                let content = len - 1; // without the newline
                return Ok(Some((content > self.max).then_some(content)));
            }
        }
    }
}

fn print_report(r: &Report, db: &Path) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut samples = format!("{} samples", r.samples);
    let skipped = r.duplicate_samples + r.stale_samples;
    if skipped > 0 {
        samples.push_str(&format!(
            " ({} skipped: {} already recorded, {} older than their resource's newest sample)",
            skipped, r.duplicate_samples, r.stale_samples
        ));
    }
    let triggers = r.triggers_opened + r.triggers_extended + r.duplicate_triggers;
    let mut trig = format!("{triggers} triggers");
    if triggers > 0 {
        trig.push_str(&format!(
            " ({} opened a window, {} extended one, {} already recorded)",
            r.triggers_opened, r.triggers_extended, r.duplicate_triggers
        ));
    }
    let matched = |n: u64, unmatched: u64, what: &str, found: &str| {
        let mut s = format!("{} {what}", n + unmatched);
        if unmatched > 0 {
            s.push_str(&format!(" ({unmatched} found no {found})"));
        }
        s
    };
    writeln!(
        out,
        "ingested {} lines into {}: {samples}, {trig}, {}, {}",
        r.lines,
        db.display(),
        matched(
            r.resolves,
            r.resolves_unmatched,
            "resolves",
            "unresolved alert"
        ),
        matched(r.stops, r.stops_unmatched, "stops", "open window"),
    )?;
    let mut windows = format!("windows: {} opened", r.windows_opened);
    if r.windows_resumed > 0 {
        windows.push_str(&format!(", {} resumed", r.windows_resumed));
    }
    windows.push_str(&format!(
        "; {} closed; {} recording",
        r.windows_closed, r.windows_recording
    ));
    if r.windows_recording > 0 {
        windows.push_str(" (the next ingest goes on with them; `ingest --finish` closes them)");
    }
    writeln!(out, "{windows}")?;
    if r.rejected_lines > 0 || r.rejected_values > 0 {
        writeln!(
            out,
            "rejected: {} lines, {} values (see stderr)",
            r.rejected_lines, r.rejected_values
        )?;
    }
    if let Some(p) = &r.push {
        writeln!(out, "{}", super::push::describe(p))?;
    }
    Ok(())
}
