//! Reading history: `list`, `show`, `context`, `stats`; and `prune`.
//!
//! The read commands open the database read-only ([`super::open_read_only`]):
//! they never write or trim and work on a file the user may not write, even
//! while a recorder writes it. `prune` is the one maintenance command that
//! deletes, and only when asked.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;

use incident_recorder::{
    IncidentWindow, Store, Timestamp, TriggerType, WindowFilter, WindowStatus,
};

use super::args::{ContextArgs, JsonFlag, ListArgs, PruneArgs, ShowArgs};
use super::error::{Failure, Result};
use super::format;
use super::sparkline::sparkline;
use super::table::{Align, Table};

pub fn list(db: &Path, a: ListArgs) -> Result<ExitCode> {
    let store = super::open_read_only(db)?;
    let since = a.since.as_deref().map(parse_since).transpose()?;
    let filtered = a.resource.is_some() || a.status.is_some() || since.is_some();
    let (windows, damaged) = store.readable_windows(&WindowFilter {
        resource: a.resource,
        status: a.status,
        since,
        limit: a.limit,
        with_points: false,
    })?;
    // Damaged rows do not hide the rest of the history: each is named.
    for e in &damaged {
        eprintln!(
            "warning: skipped {} (`export --skip-damaged` saves the rest)",
            format::terminal_safe(&incident_recorder::error_chain(e))
        );
    }
    let code = super::partial_if(!damaged.is_empty());
    if a.output.json {
        super::print_json(&windows)?;
        return Ok(code);
    }
    let mut out = std::io::stdout().lock();
    if windows.is_empty() {
        let any = filtered
            && !(store.windows(&WindowFilter {
                limit: 1,
                ..WindowFilter::default()
            })?)
            .is_empty();
        if any {
            writeln!(
                out,
                "no windows match (`list` without filters shows them all)"
            )?;
        } else {
            writeln!(out, "no windows yet")?;
            for line in HOW_WINDOWS_OPEN {
                writeln!(out, "  {line}")?;
            }
        }
        return Ok(code);
    }
    let mut t = Table::new(&[
        ("ID", Align::Left),
        ("RESOURCE", Align::Left),
        ("TRIGGER", Align::Left),
        ("STATUS", Align::Left),
        ("START (UTC)", Align::Left),
        ("DURATION", Align::Right),
        ("POINTS", Align::Right),
    ]);
    for w in &windows {
        let (duration, points) = match &w.summary {
            Some(s) => (
                format::duration_ms(s.duration_ms),
                s.data_points.to_string(),
            ),
            None => ("-".into(), "-".into()),
        };
        t.row(vec![
            w.id.to_string(),
            w.resource_id.clone(),
            trigger_text(w),
            w.status.to_string(),
            format::time(w.start_time),
            duration,
            points,
        ]);
    }
    // Stored text (a resource's name, a trigger id) reaches the terminal
    // only through `write_text`: no escape sequence from the database runs.
    let mut text = Vec::new();
    t.write(&mut text)?;
    format::write_text(&mut out, &String::from_utf8_lossy(&text))?;
    Ok(code)
}

/// What an empty history says: nothing is recorded until a window opens,
/// and a quiet `watch` opens none.
const HOW_WINDOWS_OPEN: [&str; 5] = [
    "windows open when something happens; a quiet watch records only its pre-incident buffer, in memory:",
    "- a watch rule holds (defaults: cpu>90 for 1m, memory>90 for 1m, disk>90; add --rule 'load1>8 for 2m')",
    "- `watch --trigger-now` opens one at once; `incident-recorder trigger RESOURCE` asks a running watch for one",
    "- an Alertmanager alert (`watch --listen`), or a trigger line given to `ingest`",
    "- `incident-recorder demo` records a simulated incident to look around in",
];

/// `--since`: a duration back from now, or an RFC 3339 time.
fn parse_since(text: &str) -> Result<Timestamp> {
    if let Ok(d) = super::duration::parse(text) {
        return Ok(Timestamp::now().saturating_sub(d));
    }
    Timestamp::parse_rfc3339(text).map_err(|_| {
        Failure::msg(format!(
            "invalid --since {text:?}: give a duration (2h, 30m, 7d) or an RFC 3339 time (2026-11-24T10:00:00Z)"
        ))
    })
}

fn trigger_text(w: &IncidentWindow) -> String {
    match &w.trigger_id {
        Some(id) => format!("{} {id}", w.trigger_type),
        None => w.trigger_type.to_string(),
    }
}

pub fn show(db: &Path, a: ShowArgs) -> Result<ExitCode> {
    let store = super::open_read_only(db)?;
    let w = find(&store, &a.id)?;
    if a.output.json {
        super::print_json(&w)?;
    } else {
        let running = store.recorder_presence()?;
        let mut text = Vec::new();
        render_window(&w, running, &mut text)?;
        format::write_text(
            &mut std::io::stdout().lock(),
            &String::from_utf8_lossy(&text),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

fn find(store: &Store, id: &str) -> Result<IncidentWindow> {
    store
        .window(id)?
        .ok_or_else(|| incident_recorder::Error::WindowNotFound(id.to_owned()).into())
}

/// Why a recording window is still open and what closes it, one line each
/// (`running`: whether a recorder holds the database, `None` if this user
/// cannot tell: see [`Store::recorder_presence`]).
pub fn still_open(w: &IncidentWindow, running: Option<bool>) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(d) = w.deadline {
        lines.push(format!(
            "it records until at least {} (its deadline; a later trigger moves it)",
            format::time(d)
        ));
    }
    let held: Vec<&str> = w
        .triggers
        .iter()
        .filter(|t| t.trigger_type == TriggerType::Alert && t.resolved_at.is_none())
        .filter_map(|t| t.trigger_id.as_deref())
        .collect();
    if !held.is_empty() {
        lines.push(format!(
            "held open while alert {} fires: it records --post more after the alert resolves",
            held.join(", ")
        ));
    }
    if running == Some(true) {
        lines.push("a recorder is running on this database and closes it when it is due".into());
    } else if running.is_none() {
        lines.push(
            "a recorder running on this database closes it when it is due (whether one runs only its user can tell: the lock file is private to it)"
                .into(),
        );
    } else {
        let last = w
            .summary
            .as_ref()
            .map(|s| w.start_time.as_unix_ms() + s.duration_ms)
            .map(Timestamp::from_unix_ms);
        let ended = last.map_or(String::new(), |t| {
            format!(": its input ended at {}", format::time(t))
        });
        lines.push(format!(
            "no recorder is running on this database{ended}; the next `ingest` with lines of {r:?} (or a `watch` monitoring it) goes on with it, and `ingest --finish` (or a line {{\"type\":\"stop\",\"resource\":{r:?}}}) closes it",
            r = w.resource_id
        ));
    }
    lines
}

/// The text of `show`: header, triggers, summary table, sparklines.
pub fn render_window(
    w: &IncidentWindow,
    running: Option<bool>,
    out: &mut impl Write,
) -> Result<()> {
    let resource = match (&w.resource_name, &w.resource_type) {
        (Some(n), Some(t)) => format!("{} ({n}, {t})", w.resource_id),
        (Some(x), None) | (None, Some(x)) => format!("{} ({x})", w.resource_id),
        (None, None) => w.resource_id.clone(),
    };
    writeln!(out, "window    {}", w.id)?;
    writeln!(out, "resource  {resource}")?;
    writeln!(out, "trigger   {}", trigger_text(w))?;
    if let Some(t) = w.trigger_time {
        writeln!(out, "fired     {}", format::time(t))?;
    }
    writeln!(out, "status    {}", w.status)?;
    if w.status == WindowStatus::Recording {
        for line in still_open(w, running) {
            writeln!(out, "          {line}")?;
        }
    }
    writeln!(out, "start     {}", format::time(w.start_time))?;
    if let Some(end) = w.end_time {
        writeln!(out, "end       {}", format::time(end))?;
    }
    let so_far = if w.status == WindowStatus::Recording {
        " (so far)"
    } else {
        ""
    };
    if let Some(s) = &w.summary {
        writeln!(
            out,
            "duration  {}{so_far}",
            format::duration_ms(s.duration_ms)
        )?;
    }
    writeln!(out, "points    {}{so_far}", w.data_points.len())?;
    if w.triggers.len() > 1 || w.triggers.iter().any(|t| t.resolved_at.is_some()) {
        writeln!(out, "\ntriggers")?;
        for t in &w.triggers {
            let mut line = format!("  {} {}", format::time(t.fired_at), t.trigger_type);
            if let Some(id) = &t.trigger_id {
                line.push(' ');
                line.push_str(id);
            }
            if let Some(r) = t.resolved_at {
                line.push_str(&format!(", resolved {}", format::time(r)));
            }
            if t.opened_window {
                line.push_str(" (opened the window)");
            }
            writeln!(out, "{line}")?;
        }
    }
    let Some(summary) = w.summary.as_ref().filter(|s| !s.samples.is_empty()) else {
        return Ok(());
    };
    writeln!(out, "\nsummary{so_far}")?;
    let mut t = Table::new(&[
        ("METRIC", Align::Left),
        ("SAMPLES", Align::Right),
        ("LOW", Align::Right),
        ("AVG", Align::Right),
        ("P50", Align::Right),
        ("P95", Align::Right),
        ("PEAK", Align::Right),
        ("CHANGE", Align::Right),
    ]);
    let get = |m: &std::collections::BTreeMap<String, f64>, k: &str| {
        m.get(k).map(|v| format::value(*v)).unwrap_or_default()
    };
    for (metric, samples) in &summary.samples {
        t.row(vec![
            metric.clone(),
            samples.to_string(),
            get(&summary.lows, metric),
            get(&summary.averages, metric),
            get(&summary.p50, metric),
            get(&summary.p95, metric),
            get(&summary.peaks, metric),
            summary
                .changes
                .get(metric)
                .map(|v| format::signed(*v))
                .unwrap_or_default(),
        ]);
    }
    t.write(out)?;
    if !summary.anomalies.is_empty() {
        writeln!(
            out,
            "\nanomalies: {} samples far from the samples before the trigger (robust score)",
            summary.anomalies.len()
        )?;
        if summary.anomalies_by_metric.is_empty() {
            for a in &summary.anomalies {
                writeln!(out, "  {}", anomaly_note(a))?;
            }
        }
        for (metric, a) in &summary.anomalies_by_metric {
            writeln!(
                out,
                "  {metric}: {} samples; strongest: {}",
                a.samples,
                anomaly_note(&a.strongest)
            )?;
        }
    }
    writeln!(out)?;
    // Labels as they will print (escaped), so the sparklines line up.
    let shown = |metric: &str| format::terminal_safe(metric).into_owned();
    let label = summary
        .samples
        .keys()
        .map(|k| shown(k).chars().count())
        .max()
        .unwrap_or(0);
    let width = terminal_width().saturating_sub(label + 2).clamp(10, 120);
    for metric in summary.samples.keys() {
        let series: Vec<Option<f64>> = w
            .data_points
            .iter()
            .map(|p| p.metrics.get(metric).copied())
            .collect();
        let name = shown(metric);
        writeln!(out, "{name:<label$}  {}", sparkline(&series, width))?;
    }
    Ok(())
}

/// An anomaly's note with its values in the table's format: the stored
/// `net_rx 2413412.3 at 10:04:05, 44.7 MADs above baseline 730590.1` reads
/// `net_rx 2.41M at 10:04:05, 44.7 MADs above baseline 730.59k`. Notes of
/// another shape (imported from Pulse) are shown as they are.
fn anomaly_note(note: &str) -> String {
    static NOTE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(
            r"^(.+) (-?[0-9.]+) at ([0-9:]+), ([0-9.]+ MADs (?:above|below)) baseline (-?[0-9.]+)$",
        )
        .expect("a valid pattern")
    });
    let Some(c) = NOTE.captures(note) else {
        return note.to_owned();
    };
    let number = |i: usize| c[i].parse::<f64>().map_or(c[i].to_owned(), format::value);
    format!(
        "{} {} at {}, {} baseline {}",
        &c[1],
        number(2),
        &c[3],
        &c[4],
        number(5)
    )
}

/// Columns of the terminal on stdout, or 80 when it is not one.
fn terminal_width() -> usize {
    let term = console::Term::stdout();
    if std::io::stdout().is_terminal() {
        term.size_checked().map_or(80, |(_, cols)| cols as usize)
    } else {
        80
    }
}

pub fn context(db: &Path, a: ContextArgs) -> Result<ExitCode> {
    let store = super::open_read_only(db)?;
    let window = match (&a.id, &a.resource) {
        (Some(id), _) => find(&store, id)?,
        (None, Some(resource)) => store
            .windows(&WindowFilter {
                resource: Some(resource.clone()),
                limit: 1,
                with_points: true,
                ..WindowFilter::default()
            })?
            .pop()
            .ok_or_else(|| Failure::msg(format!("no incident window for resource {resource:?}")))?,
        (None, None) => unreachable!("clap requires an id or --resource"),
    };
    let mut text = incident_recorder::context::format_window(&window);
    if window.status == WindowStatus::Recording {
        text.push_str("\n### Still recording\n");
        for line in still_open(&window, store.recorder_presence()?) {
            text.push_str(&format!("- {line}\n"));
        }
    }
    format::write_text(&mut std::io::stdout().lock(), &text)?;
    Ok(ExitCode::SUCCESS)
}

pub fn stats(db: &Path, a: JsonFlag) -> Result<ExitCode> {
    let store = super::open_read_only(db)?;
    let stats = store.stats()?;
    let running = store.recorder_presence()?;
    let push = store.push_state()?;
    if a.json {
        let mut value = serde_json::to_value(&stats)?;
        value["database"] = db.display().to_string().into();
        value["recorder_running"] = running.into();
        value["push"] = serde_json::to_value(&push)?;
        super::print_json(&value)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    let total: u64 = stats.windows_by_status.values().sum();
    let by_status: Vec<String> = stats
        .windows_by_status
        .iter()
        .map(|(s, n)| format!("{s} {n}"))
        .collect();
    writeln!(
        out,
        "database   {} ({})",
        db.display(),
        format::bytes(stats.database_bytes)
    )?;
    let recorder = match running {
        Some(true) => "running",
        Some(false) => "not running",
        None => "unknown (its lock file is private to the recorder's user)",
    };
    writeln!(out, "recorder   {recorder}")?;
    if by_status.is_empty() {
        writeln!(out, "windows    0")?;
    } else {
        writeln!(out, "windows    {total} ({})", by_status.join(", "))?;
    }
    writeln!(out, "points     {} ({} values)", stats.points, stats.values)?;
    writeln!(out, "resources  {}", stats.resources)?;
    writeln!(out, "metrics    {}", stats.metrics)?;
    writeln!(out, "anomalies  {}", stats.anomalies)?;
    writeln!(out, "suppressed {} triggers", stats.suppressed_triggers)?;
    if let (Some(oldest), Some(newest)) = (stats.oldest, stats.newest) {
        writeln!(out, "oldest     {}", format::time(oldest))?;
        writeln!(out, "newest     {}", format::time(newest))?;
    }
    if push.enabled {
        writeln!(
            out,
            "push       {} waiting, {} pushed, {} refused, {} dropped unpushed",
            push.backlog, push.pushed, push.refused, push.dropped_unpushed
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

pub fn prune(db: &Path, a: PruneArgs) -> Result<ExitCode> {
    let store = super::open_existing(db)?;
    let report = store.prune(Timestamp::now(), a.retention, a.max_windows as usize)?;
    if a.output.json {
        super::print_json(&serde_json::json!({
            "deleted_windows": report.windows,
            "deleted_points": report.points,
            "deleted_unpushed": report.unpushed,
            "deleted_metric_names": report.metric_names,
        }))?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "deleted {} windows ({} points): ended more than {} ago or beyond the newest {}",
            report.windows,
            report.points,
            super::duration::format(a.retention),
            a.max_windows
        )?;
        if report.metric_names > 0 {
            writeln!(
                out,
                "deleted {} metric names no remaining window uses",
                report.metric_names
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn anomaly_notes_use_the_tables_number_format() {
        assert_eq!(
            super::anomaly_note(
                "net_rx_bytes_per_s 2413412.3 at 10:04:05, 44.7 MADs above baseline 730590.1"
            ),
            "net_rx_bytes_per_s 2.41M at 10:04:05, 44.7 MADs above baseline 730.59k"
        );
        assert_eq!(
            super::anomaly_note("cpu 97.2 at 10:04:05, 4.0 MADs below baseline -31.0"),
            "cpu 97.20 at 10:04:05, 4.0 MADs below baseline -31.00"
        );
        assert_eq!(super::anomaly_note("cpu spike"), "cpu spike");
    }
}
