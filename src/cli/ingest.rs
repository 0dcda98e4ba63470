//! `ingest`: record samples and triggers from JSON lines (see `ingest_line`).
//!
//! The recorder runs on the lines' clock, not the wall clock: a
//! [`ManualClock`] starts at the first line's time (so recovery and retention
//! at open already follow the input) and moves to each line's time, never
//! backwards. Samples are pushed in batches (`push_samples`, one commit per
//! batch); a trigger, resolve or stop line first flushes the batch, so it
//! acts on exactly the samples before it. After each batch a maintenance tick
//! (`record_sample` without a provider) closes the windows whose deadline
//! has passed in line time. Replaying a file into a fresh database therefore
//! gives the same windows and summaries whenever and wherever it runs.
//!
//! A bad line is reported as `line N: <why>` on stderr and skipped; the rest
//! is recorded, and the exit code is then 3 ([`super::EXIT_PARTIAL`]).
//! Windows still recording at the end stay recording (a later ingest on the
//! same database continues them) unless `--finish` closes them.

use std::collections::HashSet;
use std::io::{BufRead, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use incident_recorder::{
    Clock, IncidentRecorder, ManualClock, Resource, Sample, Timestamp, Trigger, WindowFilter,
    WindowId, WindowStatus,
};
use serde::Serialize;

use super::args::IngestArgs;
use super::error::{Context, Result};
use super::ingest_line::{self, Line, SampleLine};
use super::input::Input;

/// Samples pushed per commit.
const BATCH: usize = 1000;
/// Lines whose errors are printed; later ones are only counted.
const MAX_REPORTED: u64 = 100;

/// What an ingest did, printed at the end.
#[derive(Debug, Default, Serialize)]
struct Report {
    lines: u64,
    samples: u64,
    triggers: u64,
    resolves: u64,
    stops: u64,
    windows_opened: u64,
    windows_closed: u64,
    windows_recording: u64,
    rejected_lines: u64,
    rejected_values: u64,
    /// What `--push-to` pushed.
    #[serde(skip_serializing_if = "Option::is_none")]
    push: Option<incident_recorder::fleet::PusherStatus>,
}

struct Ingest<'a> {
    recorder: &'a IncidentRecorder,
    clock: ManualClock,
    /// Samples waiting to be pushed, with their line numbers.
    batch: Vec<(u64, SampleLine)>,
    /// Windows this ingest opened (not ones it extended).
    opened: HashSet<WindowId>,
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
    };
    // The clock starts at the first line that has a time; lines before it
    // (triggers without ts, bad lines) wait in `early`.
    let mut early = Vec::new();
    let start = loop {
        match lines.next()? {
            Some((n, parsed)) => {
                let time = parsed.as_ref().ok().and_then(Line::time);
                early.push((n, parsed));
                if let Some(t) = time {
                    break t;
                }
            }
            None => break Timestamp::now(),
        }
    };
    let clock = ManualClock::new(start);
    let recorder = IncidentRecorder::open_with_clock(a.window.config(db), Arc::new(clock.clone()))?;
    let pusher = super::push::start(db, push_target)?;
    let mut ingest = Ingest {
        recorder: &recorder,
        clock,
        batch: Vec::with_capacity(BATCH),
        opened: HashSet::new(),
        report: Report::default(),
        progress: input.progress.clone(),
    };
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
        bar.finish_and_clear();
    }
    let mut report = ingest.summarize()?;
    report.lines = lines.number;
    report.rejected_values = recorder.stats().rejected_values;
    report.push = pusher.map(|p| p.finish(super::push::FINISH_WITHIN));
    if a.output.json {
        super::print_json(&report)?;
    } else {
        print_report(&report, db)?;
    }
    Ok(super::partial_if(report.rejected_lines > 0))
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
            && t > self.clock.now()
        {
            self.clock.set(t);
        }
        match line {
            Line::Sample(sample) => {
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
                let res = Resource {
                    id: &resource,
                    name: name.as_deref(),
                    kind: kind.as_deref(),
                };
                let was_recording = self.recorder.recording_window(&resource).is_some();
                match self
                    .recorder
                    .start_recording(res, Trigger::new(trigger, trigger_id))
                {
                    Ok(id) => {
                        self.report.triggers += 1;
                        if !was_recording {
                            self.opened.insert(id);
                        }
                    }
                    Err(e) => self.reject(n, &incident_recorder::error_chain(&e)),
                }
            }
            Line::Resolve {
                resource,
                trigger_id,
                ..
            } => {
                self.flush()?;
                self.recorder.resolve_trigger(&resource, &trigger_id)?;
                self.report.resolves += 1;
            }
            Line::Stop { resource, .. } => {
                self.flush()?;
                if let Some(id) = self.recorder.recording_window(&resource) {
                    self.recorder.stop_recording(&id)?;
                }
                self.report.stops += 1;
            }
        }
        Ok(())
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
        for (i, e) in &pushed.rejected {
            self.reject(batch[*i].0, &incident_recorder::error_chain(e));
        }
        batch.clear();
        self.batch = batch;
        Ok(())
    }

    /// Closes every window still recording, at the current line time.
    fn finish(&mut self) -> Result<()> {
        let store = self.recorder.store();
        let recording = store.windows(&WindowFilter {
            status: Some(WindowStatus::Recording),
            ..WindowFilter::default()
        })?;
        for w in recording {
            self.recorder.stop_recording(&w.id)?;
        }
        Ok(())
    }

    fn reject(&mut self, line: u64, why: &str) {
        self.report.rejected_lines += 1;
        let note = |text: &str| Input::note(self.progress.as_ref(), text);
        if self.report.rejected_lines <= MAX_REPORTED {
            note(&format!("line {line}: {why}"));
        } else if self.report.rejected_lines == MAX_REPORTED + 1 {
            note("(more rejected lines are counted but not shown)");
        }
    }

    /// Counts the windows this ingest opened, closed, and left recording.
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
        report.windows_opened = self.opened.len() as u64;
        report.windows_closed = self
            .opened
            .iter()
            .filter(|id| !recording.contains(*id))
            .count() as u64;
        report.windows_recording = recording.len() as u64;
        Ok(report)
    }
}

/// The input's lines, numbered from 1, parsed; blank lines are skipped.
struct Lines {
    reader: Box<dyn BufRead>,
    number: u64,
    name: String,
}

impl Lines {
    fn next(&mut self) -> Result<Option<(u64, std::result::Result<Line, String>)>> {
        let mut bytes = Vec::new();
        loop {
            bytes.clear();
            let n = self
                .reader
                .read_until(b'\n', &mut bytes)
                .context(format!("cannot read {}", self.name))?;
            if n == 0 {
                return Ok(None);
            }
            self.number += 1;
            let parsed = match std::str::from_utf8(&bytes) {
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => ingest_line::parse(text),
                Err(_) => Err("not valid UTF-8".to_owned()),
            };
            return Ok(Some((self.number, parsed)));
        }
    }
}

fn print_report(r: &Report, db: &Path) -> Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "ingested {} lines into {}: {} samples, {} triggers, {} resolves, {} stops",
        r.lines,
        db.display(),
        r.samples,
        r.triggers,
        r.resolves,
        r.stops
    )?;
    writeln!(
        out,
        "windows: {} opened, {} of them closed; {} recording",
        r.windows_opened, r.windows_closed, r.windows_recording
    )?;
    if r.rejected_lines > 0 || r.rejected_values > 0 {
        writeln!(
            out,
            "rejected: {} lines (see stderr), {} values (not finite or invalid metric name)",
            r.rejected_lines, r.rejected_values
        )?;
    }
    if let Some(p) = &r.push {
        writeln!(out, "{}", super::push::describe(p))?;
    }
    Ok(())
}
