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
    IncidentSummary, IncidentWindow, Store, Timestamp, TriggerType, WindowFilter, WindowStatus,
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
    let mut w = find(&store, &a.id)?;
    if let Some(re) = &a.metric {
        keep_metrics(&mut w, re)?;
    }
    let procs = store.window_processes(w.id.as_str())?;
    if a.output.json {
        let mut value = serde_json::to_value(&w)?;
        if !procs.is_empty() {
            value["processes"] = serde_json::to_value(&procs)?;
        }
        super::print_json(&value)?;
    } else {
        let running = store.recorder_presence()?;
        let top = match (a.all, a.top) {
            (true, _) => usize::MAX,
            (false, Some(n)) => n,
            // A name picked with --metric shows every match.
            (false, None) if a.metric.is_some() => usize::MAX,
            (false, None) => SHOW_TOP,
        };
        let mut text = Vec::new();
        render_window(&w, running, top, &mut text)?;
        super::processes::render(&procs, w.trigger_time, &mut text)?;
        format::write_text(
            &mut std::io::stdout().lock(),
            &String::from_utf8_lossy(&text),
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `show --metric`: keeps only the metrics whose name matches `re`, in the
/// points and in the summary; none matching is an error naming the metrics
/// the window has.
fn keep_metrics(w: &mut IncidentWindow, re: &regex::Regex) -> Result<()> {
    let mut all = std::collections::BTreeSet::new();
    for p in &mut w.data_points {
        all.extend(p.metrics.keys().cloned());
        p.metrics.retain(|m, _| re.is_match(m));
    }
    w.data_points.retain(|p| !p.metrics.is_empty());
    if let Some(s) = &mut w.summary {
        all.extend(s.samples.keys().cloned());
        for map in [
            &mut s.peaks,
            &mut s.lows,
            &mut s.averages,
            &mut s.changes,
            &mut s.p50,
            &mut s.p95,
            &mut s.p99,
        ] {
            map.retain(|m, _| re.is_match(m));
        }
        s.samples.retain(|m, _| re.is_match(m));
        s.anomaly_points.retain(|a| re.is_match(&a.metric));
        s.anomalies_by_metric.retain(|m, _| re.is_match(m));
        // The ranks stay the window's: `--metric` picks, it does not re-rank.
        s.change_scores.retain(|m, _| re.is_match(m));
        let kept: Vec<String> = all.iter().filter(|m| re.is_match(m)).cloned().collect();
        s.anomalies
            .retain(|d| kept.iter().any(|m| d.starts_with(&format!("{m} "))));
    }
    if !all.iter().any(|m| re.is_match(m)) {
        let names: Vec<&str> = all.iter().map(String::as_str).take(20).collect();
        let more = if all.len() > 20 { ", ..." } else { "" };
        return Err(Failure::msg(format!(
            "no metric of window {} matches --metric {:?} (it has: {}{more})",
            w.id,
            re.as_str(),
            names.join(", ")
        )));
    }
    Ok(())
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

/// How many metrics `show` prints by default: the ones that moved most.
pub const SHOW_TOP: usize = 10;

/// The text of `show`: header, triggers (with an alert's words), then the
/// `top` metrics that moved most after the trigger (table, anomalies,
/// sparklines, in rank order), and a line counting the rest.
pub fn render_window(
    w: &IncidentWindow,
    running: Option<bool>,
    top: usize,
    out: &mut impl Write,
) -> Result<()> {
    header(w, running, out)?;
    let Some(summary) = w.summary.as_ref().filter(|s| !s.samples.is_empty()) else {
        return Ok(());
    };
    let so_far = if w.status == WindowStatus::Recording {
        " (so far)"
    } else {
        ""
    };
    let ranked = summary.metrics_by_rank();
    let shown = &ranked[..ranked.len().min(top)];
    writeln!(
        out,
        "\nsummary{so_far}, moved most first (MOVED: shift after the trigger, in robust deviations of the baseline before it)"
    )?;
    summary_table(summary, shown, out)?;
    let unscored: Vec<String> = shown
        .iter()
        .filter_map(|m| {
            let why = summary.change_scores.get(*m)?.unscored.as_deref()?;
            Some(format!("{m} ({why})"))
        })
        .collect();
    if !unscored.is_empty() {
        writeln!(out, "not scored: {}", unscored.join(", "))?;
    }
    anomalies(summary, shown, out)?;
    writeln!(out)?;
    // Labels as they will print (escaped), so the sparklines line up.
    let label_of = |metric: &str| format::terminal_safe(metric).into_owned();
    let label = shown
        .iter()
        .map(|k| label_of(k).chars().count())
        .max()
        .unwrap_or(0);
    let width = terminal_width().saturating_sub(label + 2).clamp(10, 120);
    for metric in shown {
        let series: Vec<Option<f64>> = w
            .data_points
            .iter()
            .map(|p| p.metrics.get(*metric).copied())
            .collect();
        let name = label_of(metric);
        writeln!(out, "{name:<label$}  {}", sparkline(&series, width))?;
    }
    let more = ranked.len() - shown.len();
    if more > 0 {
        writeln!(
            out,
            "\n{more} more metrics (moved less): --all shows every one, --metric REGEX picks by name, --top N the N that moved most"
        )?;
    }
    Ok(())
}

/// `show`'s header: the window, its resource, trigger, times; the triggers
/// with their words; the notes.
fn header(w: &IncidentWindow, running: Option<bool>, out: &mut impl Write) -> Result<()> {
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
    if let Some(t) = w.triggers.iter().find(|t| t.opened_window) {
        for line in incident_recorder::context::trigger_words(t) {
            writeln!(out, "          {line}")?;
        }
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
            if !t.opened_window {
                for words in incident_recorder::context::trigger_words(t) {
                    writeln!(out, "    {words}")?;
                }
            }
        }
    }
    if !w.notes.is_empty() {
        writeln!(out, "\nnotes")?;
        for n in &w.notes {
            writeln!(out, "  {} {}: {}", format::time(n.at), n.author, n.text)?;
        }
    }
    Ok(())
}

/// The statistics of `shown` metrics, in that order, with their scores.
fn summary_table(s: &IncidentSummary, shown: &[&str], out: &mut impl Write) -> Result<()> {
    let mut t = Table::new(&[
        ("METRIC", Align::Left),
        ("MOVED", Align::Right),
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
    for metric in shown {
        let moved = s
            .change_scores
            .get(*metric)
            .and_then(|c| c.score)
            .map_or("-".to_owned(), |v| format!("{v:+.1}"));
        t.row(vec![
            (*metric).to_owned(),
            moved,
            s.samples
                .get(*metric)
                .map(u64::to_string)
                .unwrap_or_default(),
            get(&s.lows, metric),
            get(&s.averages, metric),
            get(&s.p50, metric),
            get(&s.p95, metric),
            get(&s.peaks, metric),
            s.changes
                .get(*metric)
                .map(|v| format::signed(*v))
                .unwrap_or_default(),
        ]);
    }
    t.write(out)?;
    Ok(())
}

/// The anomalies of the `shown` metrics, ranked; imported notes as they are.
fn anomalies(s: &IncidentSummary, shown: &[&str], out: &mut impl Write) -> Result<()> {
    if s.anomalies.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\nanomalies: {} samples far from the samples before the trigger (robust score)",
        s.anomalies.len()
    )?;
    if s.anomalies_by_metric.is_empty() {
        for a in &s.anomalies {
            writeln!(out, "  {}", anomaly_note(a))?;
        }
    }
    let others = s
        .anomalies_by_metric
        .keys()
        .filter(|m| !shown.contains(&m.as_str()))
        .count();
    for metric in shown {
        if let Some(a) = s.anomalies_by_metric.get(*metric) {
            writeln!(
                out,
                "  {metric}: {} samples; strongest: {}",
                a.samples,
                anomaly_note(&a.strongest)
            )?;
        }
    }
    if others > 0 {
        writeln!(out, "  and in {others} metrics not shown")?;
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
    let mut budget = incident_recorder::context::Budget {
        max_bytes: a.max_bytes,
        trailer: Vec::new(),
    };
    if window.status == WindowStatus::Recording {
        budget.trailer.push("### Still recording".into());
        for line in still_open(&window, store.recorder_presence()?) {
            budget.trailer.push(format!("- {line}"));
        }
    }
    let procs = store.window_processes(window.id.as_str())?;
    let text = incident_recorder::context::format_window_with_processes(&window, &procs, &budget);
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
