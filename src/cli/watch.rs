//! `watch`: record this host until stopped.
//!
//! The host provider (the library's `HostProvider`) is wrapped in a
//! [`RuleProvider`]: the recorder's thread samples the host every interval,
//! the wrapper checks the rules on each sample and sends what fired or
//! cleared over a channel. This thread owns the recorder and acts on those
//! events (`start_recording` / `resolve_trigger`), refreshes the display,
//! and stops on `--for`, SIGINT, SIGTERM or SIGHUP, which arrive on the same
//! channel. `hold_while_alert_active` is on: a window opened by a rule keeps
//! recording while the rule's condition holds and until `--post` after it
//! clears.
//!
//! Alerts are resolved only by their rules, so at start the alerts of
//! resumed windows whose rule is no longer given are resolved (otherwise
//! they would hold their window open until its point limit). The same holds
//! for an `alert` sent with `incident-recorder trigger --type alert`: no rule
//! clears it, so it holds its window until `--max-points`; `manual` and
//! `focus` requests record `--post` after they arrive.
//!
//! Stopping calls `recorder.stop()`, which waits for the tick in flight and
//! commits every pending sample; windows still recording stay `recording` in
//! the database and the next `watch` (or any recorder) resumes them. A
//! second signal exits at once.

use std::collections::HashSet;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use incident_recorder::{
    IncidentRecorder, SystemClock, Trigger, TriggerType, WindowFilter, WindowStatus,
};

use super::args::WatchArgs;
use super::error::{Context, Result};
use super::live::Live;
use super::rules::{self, Applied, Rule, RuleEvent, RuleProvider};
use incident_recorder::provider::process::{HostProcesses, ProcessLimits};

/// How often the status line is refreshed.
const REFRESH: Duration = Duration::from_millis(200);

/// What the main loop waits for.
enum Event {
    Rule(RuleEvent),
    Signal,
}

impl From<RuleEvent> for Event {
    fn from(e: RuleEvent) -> Event {
        Event::Rule(e)
    }
}

pub fn run(db: &Path, a: WatchArgs) -> Result<ExitCode> {
    // Before anything is opened or printed: a bad option changes nothing.
    let mut listen = match super::listen::check(&a.listen) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e} (see --help)");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    // Its stdout lines carry the time; its warnings do the same.
    super::logging::with_times();
    let rules = if a.rules.is_empty() {
        rules::default_rules()
    } else {
        a.rules
    };
    let push_target = super::push::target(&a.push)?;
    super::listen::read_named(&mut listen)?;
    let mut config = a.window.config(db, Some(a.sampling.interval));
    config.hold_while_alert_active = true;
    config.max_windows_per_resource_per_day = a.max_per_day as usize;
    config.anomaly.detect = a.anomaly;
    config.anomaly.threshold = a.anomaly_threshold;
    super::listen::configure(&a.listen, &mut config);
    let sources = super::scrape::sources(&a.scrape, &config)?;
    let (rules, warnings) = super::scrape::check_rules(rules, &sources)?;
    if a.group_readable {
        group_readable(db)?;
    }
    let recorder = Arc::new(IncidentRecorder::open(config)?);
    let listen = super::listen::prepare(listen, db)?;
    let pusher = super::push::start(db, push_target)?;
    let resource = sources.first.clone();
    let (tx, rx) = mpsc::channel::<Event>();
    let provider = RuleProvider::new(
        sources.provider,
        rules.clone(),
        Arc::new(SystemClock),
        tx.clone(),
    );
    recorder.set_metrics_provider(Arc::new(provider));
    if sources.host && a.top_processes > 0 {
        let limits = ProcessLimits {
            top: a.top_processes as usize,
            cmdline: !a.no_cmdline,
        };
        let procs = HostProcesses::new(resource.as_str(), limits)
            .context("cannot read this host's processes")?;
        recorder.set_process_provider(Arc::new(procs), 0);
    }
    on_signal(tx)?;
    resolve_orphan_alerts(&recorder, &rules, a.listen.addr.is_some())?;

    let started = Instant::now();
    let mut live = Live::new(&recorder, &sources.label)?;
    let recovery = recorder.recovery();
    for (id, status) in &recovery.closed {
        live.say(&format!(
            "closed window {id}, left recording by an earlier run: its deadline had passed ({status})"
        ))?;
    }
    if !recovery.resumed.is_empty() {
        live.say(&format!(
            "resuming {} window(s) left recording by an earlier run",
            recovery.resumed.len()
        ))?;
    }
    let rule_list: Vec<String> = rules.iter().map(|r| r.id()).collect();
    live.say(&format!(
        "recording {} every {} into {} (rules: {}); Ctrl-C stops",
        sources.label,
        super::duration::format(a.sampling.interval),
        db.display(),
        if rule_list.is_empty() {
            "none".to_owned()
        } else {
            rule_list.join(", ")
        }
    ))?;
    for w in warnings {
        live.say(&format!("warning: {w}"))?;
    }
    recorder.record_sample()?; // the first sample now, not one interval later
    // After the first tick: the recorder knows its resources, so an alert
    // for one it does not monitor is answered as such.
    let listener = match super::listen::start(listen, &recorder)? {
        Some((l, banner)) => {
            live.say(&banner)?;
            Some(l)
        }
        None => None,
    };
    if a.trigger_now {
        recorder.start_recording(resource.as_str(), Trigger::manual())?;
    }
    recorder.start()?;
    let deadline = a.run_for.map(|d| started + d);
    // Rule events that found the database locked by another program, to
    // apply again (at their own time) once it lets go.
    let mut waiting: Vec<RuleEvent> = Vec::new();
    loop {
        let wait = deadline.map_or(REFRESH, |d| {
            d.saturating_duration_since(Instant::now()).min(REFRESH)
        });
        match rx.recv_timeout(wait) {
            Ok(Event::Rule(e)) => waiting.push(e),
            Ok(Event::Signal) => {
                live.clear();
                live.say("stopping: finishing the tick in flight and saving pending samples")?;
                break;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        let mut still = Vec::new();
        for e in waiting.drain(..) {
            if let Some(e) = rule_event(&recorder, &live, e)? {
                still.push(e);
            }
        }
        waiting = still;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        live.refresh()?;
    }
    drop(listener); // no new triggers while the recorder stops
    recorder.stop()?;
    if let Some(p) = pusher {
        live.say(&super::push::describe(
            &p.finish(super::push::FINISH_WITHIN),
        ))?;
    }
    live.finish(started.elapsed())?;
    Ok(ExitCode::SUCCESS)
}

/// `--group-readable`: the database readable by its group before the
/// recorder opens it. A missing one is created empty (exclusively, never
/// through a link) with mode 0640 whatever the umask, which SQLite takes
/// as a new database and whose mode it gives its `-wal` and `-shm`; an
/// existing one of this user's gets g+r. Anything else is left to the
/// store's checks, which refuse it with their reasons.
fn group_readable(db: &Path) -> Result<()> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
    let what = || format!("cannot make {} readable by its group", db.display());
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    match std::fs::symlink_metadata(db) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o640)
                .custom_flags(libc::O_NOFOLLOW)
                .open(db)
                .context(what())?;
            file.set_permissions(std::fs::Permissions::from_mode(0o640))
                .context(what())
        }
        Ok(m) if m.is_file() && m.uid() == me && m.mode() & 0o040 == 0 => std::fs::set_permissions(
            db,
            std::fs::Permissions::from_mode(m.mode() & 0o7777 | 0o040),
        )
        .context(what()),
        _ => Ok(()),
    }
}

/// Resolves the alerts of resumed windows whose rule is no longer given:
/// nothing could ever clear them, and they would hold their window open
/// until it reaches its point limit. (Alerts of rules still given are
/// cleared by the rules themselves on the first sample, see `rules`.)
fn resolve_orphan_alerts(
    recorder: &IncidentRecorder,
    rules: &[Rule],
    listening: bool,
) -> Result<()> {
    let ids: HashSet<String> = rules.iter().map(Rule::id).collect();
    // Alertmanager resolves its own alerts (and repeats them until then).
    let kept =
        |id: &String| ids.contains(id) || (listening && super::listen::is_alertmanager_id(id));
    let recording = recorder.store().windows(&WindowFilter {
        status: Some(WindowStatus::Recording),
        ..WindowFilter::default()
    })?;
    for w in recording {
        let orphans = w.triggers.iter().filter(|t| {
            t.trigger_type == TriggerType::Alert
                && t.resolved_at.is_none()
                && t.trigger_id.as_ref().is_some_and(|id| !kept(id))
        });
        for t in orphans {
            let id = t.trigger_id.as_deref().unwrap_or_default();
            recorder.resolve_trigger(&w.resource_id, id)?;
            tracing::info!(window = %w.id, alert = id, "resolved an alert of a rule no longer given");
        }
    }
    Ok(())
}

/// Opens or resolves the rule's alert and says so.
/// Opens or resolves the rule's alert and says so; gives the event back if
/// the database is locked by another program, to try again.
fn rule_event(
    recorder: &IncidentRecorder,
    live: &Live<'_>,
    e: RuleEvent,
) -> Result<Option<RuleEvent>> {
    match (rules::apply(recorder, &e), &e) {
        (Ok(Applied::Opened(id)), RuleEvent::Fired { rule, .. }) => {
            live.say(&format!("rule {rule} fired: recording into {id}"))?
        }
        (Ok(Applied::Resolved(true)), RuleEvent::Resolved { rule, .. }) => {
            live.say(&format!("rule {rule} cleared"))?
        }
        (Ok(_), _) => {}
        (Err(err), _) if err.is_locked() => return Ok(Some(e)),
        (Err(err), _) => live.say(&format!(
            "could not act on {e}: {}",
            incident_recorder::error_chain(&err)
        ))?,
    }
    Ok(None)
}

/// Sends [`Event::Signal`] on SIGINT, SIGTERM or SIGHUP; a second signal
/// exits at once (exit code 130).
fn on_signal(tx: Sender<Event>) -> Result<()> {
    static SIGNALLED: AtomicBool = AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if SIGNALLED.swap(true, Ordering::SeqCst) {
            eprintln!("error: interrupted again; exiting without waiting for the recorder");
            std::process::exit(130);
        }
        let _ = tx.send(Event::Signal);
    })
    .context("cannot install the signal handler")
}
