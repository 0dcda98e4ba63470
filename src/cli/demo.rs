//! `demo`: a simulated fleet, an injected CPU incident, and what the recorder
//! made of it, in a few seconds.
//!
//! The fleet ([`super::fleet`]) is sampled through the same recorder and the
//! same rule machinery as `watch` (`cpu>90 for 30s`), on a [`ManualClock`]
//! that jumps one interval per tick, so the simulated half hour ends at the
//! current time and the window lands in recent history. Rule events are
//! handled on this thread after each tick (the channel is drained), exactly
//! as `watch` does, then the incident's window is printed as `show` and
//! `context` would.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use incident_recorder::{Clock, IncidentRecorder, ManualClock, Timestamp};

use super::args::DemoArgs;
use super::error::{Failure, Result};
use super::fleet::Fleet;
use super::rules::{self, Applied, RuleEvent, RuleProvider};

/// The rule that catches the incident.
const RULE: &str = "cpu>90 for 30s";
/// How long the incident lasts.
const INCIDENT: Duration = Duration::from_secs(4 * 60);
/// More ticks than this means an interval too small for the simulation.
const MAX_TICKS: u128 = 200_000;

pub fn run(db: &Path, a: DemoArgs) -> Result<ExitCode> {
    let wall = Instant::now();
    let opts = &a.window;
    let interval = a.sampling.interval;
    // Fill the pre-incident buffers, then five quiet minutes, the incident,
    // and enough time after it for its window to complete.
    let from = opts.pre + Duration::from_secs(5 * 60);
    let until = from + INCIDENT;
    let span = until + opts.post + 2 * interval + Duration::from_secs(60);
    let ticks = span.as_millis() / interval.as_millis().max(1);
    if ticks > MAX_TICKS {
        return Err(Failure::msg(format!(
            "the demo would take {ticks} ticks; use a longer --interval or a shorter --post/--pre"
        )));
    }
    let clock = ManualClock::new(Timestamp::now().saturating_sub(span));
    let mut config = opts.config(db, Some(interval));
    config.hold_while_alert_active = true;
    let recorder = IncidentRecorder::open_with_clock(config, Arc::new(clock.clone()))?;
    let fleet = Fleet::new(a.resources as usize, clock.clone(), from, until);
    let victim = fleet.id(fleet.incident().resource).to_owned();
    let (tx, rx) = mpsc::channel::<RuleEvent>();
    let rule = RULE.parse().expect("built-in rule parses");
    recorder.set_metrics_provider(Arc::new(RuleProvider::new(
        fleet,
        vec![rule],
        Arc::new(clock.clone()),
        tx,
    )));

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "demo: {} simulated resources sampled every {} for {} into {}",
        a.resources,
        super::duration::format(interval),
        super::duration::format(span),
        db.display()
    )?;
    writeln!(
        out,
        "      CPU incident injected on {victim} from +{} to +{}; rule {RULE}",
        super::duration::format(from),
        super::duration::format(until)
    )?;
    let start = clock.now();
    let mut incident = None;
    for _ in 0..ticks {
        recorder.record_sample()?;
        for event in rx.try_iter() {
            let at = super::duration::format(Duration::from_millis(
                (clock.now().as_unix_ms() - start.as_unix_ms()) as u64,
            ));
            match (rules::apply(&recorder, &event)?, &event) {
                (Applied::Opened(id), RuleEvent::Fired { resource, rule, .. }) => {
                    writeln!(out, "  +{at:<7} {rule} fired on {resource}: window {id}")?;
                    if *resource == victim {
                        incident.get_or_insert(id);
                    }
                }
                (Applied::Resolved(true), RuleEvent::Resolved { resource, rule, .. }) => {
                    writeln!(out, "  +{at:<7} {rule} cleared on {resource}")?;
                }
                _ => {}
            }
        }
        clock.advance(interval);
    }
    recorder.stop()?;
    let samples = recorder.stats().samples;
    let id = incident.ok_or_else(|| {
        Failure::msg("the simulated incident did not fire its rule (try the default options)")
    })?;
    let window = recorder.window(&id)?.ok_or_else(|| {
        Failure::msg(format!(
            "window {id} vanished (was it trimmed by --max-windows?)"
        ))
    })?;
    writeln!(
        out,
        "recorded {samples} samples in {:.2} s; window {id} holds {} points",
        wall.elapsed().as_secs_f64(),
        window.data_points.len()
    )?;
    writeln!(out, "\n== incident-recorder show {id}\n")?;
    super::history::render_window(&window, Some(false), super::history::SHOW_TOP, &mut out)?;
    writeln!(out, "\n== incident-recorder context {id}")?;
    write!(
        out,
        "{}",
        incident_recorder::context::format_window(&window)
    )?;
    writeln!(
        out,
        "\nnext: incident-recorder list | show {id} | context {id}\n      sqlite3 {} \"SELECT ts, value FROM incident_samples WHERE window_id = '{id}' AND metric = 'cpu'\"",
        db.display()
    )?;
    Ok(ExitCode::SUCCESS)
}
