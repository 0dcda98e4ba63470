//! The binary's logging: tracing events on stderr, one line each, with
//! repeated warnings rate-limited.
//!
//! By default only warnings and errors show, as `warning: <message>
//! (field=value, ...)`, in the shape of the commands' own messages; `watch`
//! prefixes them with the time as it does its stdout lines
//! ([`with_times`]). `-v` and `RUST_LOG` give tracing's full format.
//!
//! **Budget**: a flood (one client hammering the listener, an exporter
//! sending thousands of bad series, a script posting alerts for unknown
//! resources) must not bury everything else in a log of gigabytes. Every
//! place in the code that warns (a tracing callsite) shows at most
//! [`BUDGET`] warnings or errors per [`PERIOD`]; the rest are counted, and
//! when the period ends one line says how many were left out and what the
//! first of them said (`... and 12,000 more like "listener busy" in the
//! last 1m0s`). What is still counted when the program exits is summarised the
//! same way, so no count is lost. Info and debug events (asked for with
//! `-v`) are never held back.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use incident_recorder::Timestamp;
use tracing::callsite::Identifier;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;

use super::format;

/// Warnings (and errors) one callsite shows per [`PERIOD`].
pub const BUDGET: u32 = 10;
/// The period [`BUDGET`] applies to.
pub const PERIOD: Duration = Duration::from_secs(60);
/// The target of the summary lines (never throttled themselves).
const SUMMARY_TARGET: &str = "incident_recorder::log";
/// The target of problems with a command's input (`line 12: <why>`): shown
/// without the `warning: ` prefix, since they name their place themselves.
pub const INPUT: &str = "incident_recorder::input";

/// Whether warnings carry the time (`watch`, whose stdout lines do).
static TIMES: AtomicBool = AtomicBool::new(false);
/// The throttle of the installed subscriber, for [`flush_due`] and [`finish`].
static THROTTLE: Mutex<Option<Throttle<Identifier>>> = Mutex::new(None);
/// A progress bar or status line on stderr that log lines must not garble.
static BAR: Mutex<Option<indicatif::ProgressBar>> = Mutex::new(None);

/// Installs the subscriber: `-v` count or `RUST_LOG` choose what shows.
pub fn init(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let custom = std::env::var_os("RUST_LOG").is_some();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let ansi = std::io::stderr().is_terminal();
    // By default only warnings show, in the same one-line shape as the
    // commands' own messages (`warning: ...`), never interleaved with them
    // in another format.
    let plain = verbose == 0 && !custom;
    let one_line = plain.then(|| {
        tracing_subscriber::fmt::layer()
            .event_format(OneLine)
            .with_writer(|| StderrLine)
            .with_ansi(ansi)
    });
    let full = (!plain).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(|| StderrLine)
            .with_ansi(ansi)
    });
    *lock(&THROTTLE) = Some(Throttle::new(BUDGET, PERIOD));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(Throttled)
        .with(one_line)
        .with(full)
        .try_init();
}

/// From now on warnings start with the time, `HH:MM:SS`, as `watch`'s lines.
pub fn with_times() {
    TIMES.store(true, Ordering::Relaxed);
}

/// Routes log lines around `bar` (a progress bar or status line on stderr)
/// until [`detach_bar`].
pub fn attach_bar(bar: &indicatif::ProgressBar) {
    *lock(&BAR) = Some(bar.clone());
}

/// Log lines go straight to stderr again.
pub fn detach_bar() {
    *lock(&BAR) = None;
}

/// Prints the summaries of the periods that have ended (a long-running
/// command calls this now and then, so a flood that stopped is still
/// reported within about a period).
pub fn flush_due() {
    let due = match lock(&THROTTLE).as_mut() {
        Some(t) => t.due(Instant::now()),
        None => return,
    };
    emit(due);
}

/// Prints what is still counted: called once, as the program ends.
pub fn finish() {
    let left = match lock(&THROTTLE).as_mut() {
        Some(t) => t.drain(Instant::now()),
        None => return,
    };
    emit(left);
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Logs each summary, outside the throttle's lock (the line goes through
/// the subscriber again).
fn emit(summaries: Vec<Summary>) {
    for s in summaries {
        let line = s.line();
        match s.level {
            tracing::Level::ERROR => tracing::error!(target: SUMMARY_TARGET, "{line}"),
            _ => tracing::warn!(target: SUMMARY_TARGET, "{line}"),
        }
    }
}

/// How many events one key has left out, for its summary line.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// Events not shown.
    pub left_out: u64,
    /// The first of them, as it would have read.
    pub like: String,
    /// The time they came in: from the first of the period to the last.
    pub within: Duration,
    /// The level of the first left out.
    pub level: tracing::Level,
}

impl Summary {
    /// `... and 12,000 more like "listener busy" in the last 1m0s (not
    /// shown: at most 10 a minute from one place)`.
    pub fn line(&self) -> String {
        format!(
            "... and {} more like {:?} in the last {} (not shown: at most {BUDGET} a minute from one place)",
            format::count(self.left_out),
            self.like,
            format::duration_ms(self.within.as_millis().max(1000) as i64),
        )
    }
}

/// The budget's bookkeeping, pure: what each key (a callsite) has shown and
/// left out in its current period. Time is given, so tests drive it.
#[derive(Debug)]
pub struct Throttle<K> {
    budget: u32,
    period: Duration,
    keys: HashMap<K, Period>,
}

#[derive(Debug)]
struct Period {
    started: Instant,
    shown: u32,
    left_out: u64,
    like: String,
    level: tracing::Level,
}

impl Period {
    fn summary(self, now: Instant) -> Option<Summary> {
        (self.left_out > 0).then(|| Summary {
            left_out: self.left_out,
            like: self.like,
            within: now.saturating_duration_since(self.started),
            level: self.level,
        })
    }
}

impl<K: std::hash::Hash + Eq + Clone> Throttle<K> {
    /// `budget` events per `period` for each key.
    pub fn new(budget: u32, period: Duration) -> Self {
        Throttle {
            budget,
            period,
            keys: HashMap::new(),
        }
    }

    /// Whether an event of `key` at `now` is shown; `message` is asked only
    /// for the first one left out in a period.
    pub fn admit(
        &mut self,
        key: &K,
        now: Instant,
        level: tracing::Level,
        message: impl FnOnce() -> String,
    ) -> bool {
        let p = self.keys.entry(key.clone()).or_insert_with(|| Period {
            started: now,
            shown: 0,
            left_out: 0,
            like: String::new(),
            level,
        });
        if p.shown < self.budget {
            p.shown += 1;
            return true;
        }
        if p.left_out == 0 {
            p.like = message();
            p.level = level;
        }
        p.left_out += 1;
        false
    }

    /// Ends the periods past their length: the summaries of those that left
    /// events out (their keys start a new period with their next event).
    pub fn due(&mut self, now: Instant) -> Vec<Summary> {
        let period = self.period;
        let ended: Vec<K> = self
            .keys
            .iter()
            .filter(|(_, p)| now.saturating_duration_since(p.started) >= period)
            .map(|(k, _)| k.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|k| self.keys.remove(&k)?.summary(now))
            .collect()
    }

    /// Ends every period: the summaries of all events still left out.
    pub fn drain(&mut self, now: Instant) -> Vec<Summary> {
        self.keys
            .drain()
            .filter_map(|(_, p)| p.summary(now))
            .collect()
    }
}

/// The layer that applies the installed [`Throttle`] to warnings and errors.
struct Throttled;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Throttled {
    fn event_enabled(&self, event: &tracing::Event<'_>, _: Context<'_, S>) -> bool {
        let meta = event.metadata();
        if *meta.level() > tracing::Level::WARN || meta.target() == SUMMARY_TARGET {
            return true;
        }
        let now = Instant::now();
        let (shown, due) = {
            let mut guard = lock(&THROTTLE);
            let Some(t) = guard.as_mut() else {
                return true;
            };
            let due = t.due(now);
            let shown = t.admit(&meta.callsite(), now, *meta.level(), || {
                let mut fields = Fields::default();
                event.record(&mut fields);
                fields.message
            });
            (shown, due)
        };
        emit(due);
        shown
    }
}

/// Writes one formatted event to stderr, around the attached bar if any.
struct StderrLine;

impl Write for StderrLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        let write = || std::io::stderr().lock().write_all(buf);
        match lock(&BAR).as_ref() {
            Some(bar) => bar.suspend(write),
            None => write(),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// An event's message and its other fields, as text.
#[derive(Default)]
struct Fields {
    message: String,
    rest: Vec<String>,
}

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
        if f.name() == "message" {
            self.message = format!("{v:?}");
        } else {
            self.rest.push(format!("{}={v:?}", f.name()));
        }
    }

    fn record_str(&mut self, f: &tracing::field::Field, v: &str) {
        if f.name() == "message" {
            self.message = v.to_owned();
        } else {
            self.rest.push(format!("{}={v}", f.name()));
        }
    }
}

/// `[HH:MM:SS ]warning: <message> (field=value, ...)`: one plain line.
struct OneLine;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for OneLine
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            _ => "note",
        };
        if TIMES.load(Ordering::Relaxed) {
            write!(w, "{} ", format::clock(Timestamp::now()))?;
        }
        let text = format::terminal_safe(&fields.message);
        if event.metadata().target() == INPUT {
            write!(w, "{text}")?;
        } else {
            write!(w, "{level}: {text}")?;
        }
        if !fields.rest.is_empty() {
            write!(w, " ({})", format::terminal_safe(&fields.rest.join(", ")))?;
        }
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WARN: tracing::Level = tracing::Level::WARN;

    fn msg(text: &str) -> impl FnOnce() -> String + '_ {
        || text.to_owned()
    }

    #[test]
    fn a_flood_shows_the_budget_then_one_summary_per_period() {
        let t0 = Instant::now();
        let mut t = Throttle::new(10, PERIOD);
        let mut shown = 0;
        // 12,010 warnings within the first minute from one place.
        for i in 0..12_010u64 {
            let at = t0 + Duration::from_millis(i * 4);
            assert!(t.due(at).is_empty(), "nothing ends within the period");
            shown += u32::from(t.admit(&"busy", at, WARN, msg(&format!("busy {i}"))));
        }
        assert_eq!(shown, 10);
        // Another place keeps its own budget meanwhile.
        assert!(t.admit(&"other", t0 + Duration::from_secs(30), WARN, msg("x")));
        // The period ends: one summary, naming the first left out.
        let end = t0 + PERIOD;
        let due = t.due(end);
        assert_eq!(
            due,
            [Summary {
                left_out: 12_000,
                like: "busy 10".into(),
                within: PERIOD,
                level: WARN,
            }]
        );
        assert_eq!(
            due[0].line(),
            "... and 12,000 more like \"busy 10\" in the last 1m0s (not shown: at most 10 a minute from one place)"
        );
        // The other place left nothing out: its period ends silently.
        assert!(t.due(t0 + Duration::from_secs(90)).is_empty());
        // A new period: the budget again.
        let later = end + Duration::from_secs(1);
        assert!((0..10).all(|_| t.admit(&"busy", later, WARN, msg("busy"))));
        assert!(!t.admit(&"busy", later, WARN, msg("busy")));
    }

    #[test]
    fn what_is_counted_at_exit_is_summarised() {
        let t0 = Instant::now();
        let mut t = Throttle::new(2, PERIOD);
        for _ in 0..5 {
            t.admit(&1, t0, WARN, msg("one"));
        }
        t.admit(&2, t0, WARN, msg("two"));
        let left = t.drain(t0 + Duration::from_secs(5));
        assert_eq!(left.len(), 1, "only the key that left events out");
        assert_eq!(left[0].left_out, 3);
        assert_eq!(left[0].within, Duration::from_secs(5));
        assert!(
            left[0].line().contains("in the last 5s"),
            "{}",
            left[0].line()
        );
        assert!(t.drain(t0).is_empty(), "reported once");
    }

    #[test]
    fn the_message_is_built_only_for_the_first_left_out() {
        let t0 = Instant::now();
        let mut t = Throttle::new(1, PERIOD);
        let mut built = 0;
        for _ in 0..100 {
            t.admit(&(), t0, WARN, || {
                built += 1;
                String::new()
            });
        }
        assert_eq!(built, 1);
    }
}
