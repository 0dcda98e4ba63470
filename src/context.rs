//! The incident digest for an AI prompt, within a byte budget.
//!
//! What an assistant needs first comes first: which window, which
//! resource, when, what triggered it and the alert's own words; then the
//! metrics that moved most after the trigger (ranked by [`crate::change`]),
//! each with its numbers; the anomalies; the top processes (when the window
//! has process snapshots); the notes people wrote; the last
//! points of the top metrics. The digest fits [`Budget::max_bytes`] (8 KB by
//! default: a node_exporter window has hundreds of series, and the whole of
//! it would be hundreds of KB): it shows fewer metrics, points, anomalies
//! and notes until it fits, never cuts inside a line, and its last line says
//! what it left out. Output is deterministic. Numbers have two decimals,
//! rounded, with their sign (the seed printed `-0.5` as `0.50`).

use std::fmt::Write;

use crate::model::{IncidentSummary, IncidentWindow, Timestamp, WindowStatus, WindowTrigger};
use crate::processes::{ProcessSnapshot, ProcessSummary};

/// How many of the most recent points the digest lists.
pub const RECENT_POINTS: usize = 10;
/// How many anomalies the digest lists (the rest are counted).
pub const MAX_ANOMALIES: usize = 10;
/// Notes listed (the most recent ones).
pub const MAX_NOTES: usize = 20;
/// Metrics the digest lists first, ranked (the rest are counted).
pub const TOP_METRICS: usize = 10;
/// The default budget: 8 KB, a small part of any model's context.
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024;
/// The smallest budget: the header and the last line fit in it.
pub const MIN_MAX_BYTES: usize = 1024;
/// Longest label or annotation value the digest prints (the stored value
/// may be up to [`WindowTrigger::MAX_VALUE_BYTES`]); longer ones are cut
/// with [`WindowTrigger::CUT_MARKER`].
pub const MAX_WORD_BYTES: usize = 512;
/// Processes the digest lists (busiest by peak CPU; the rest are counted).
pub const TOP_PROCESSES: usize = 10;
/// Longest command line the digest prints, in characters.
const PROCESS_CMDLINE_CHARS: usize = 120;
/// Metrics per line of the recent points (the top ones).
const RECENT_METRICS: usize = TOP_METRICS;

/// What the digest may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Most bytes of the digest, the trailer included; at least
    /// [`MIN_MAX_BYTES`].
    pub max_bytes: usize,
    /// Lines the caller appends at the end (before the left-out line), e.g.
    /// why a recording window is still open.
    pub trailer: Vec<String>,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            max_bytes: DEFAULT_MAX_BYTES,
            trailer: Vec::new(),
        }
    }
}

/// How much of each section one attempt at the digest shows.
#[derive(Clone, Copy, Debug)]
struct Limits {
    top: usize,
    recent: usize,
    recent_metrics: usize,
    anomalies: usize,
    notes: usize,
    processes: usize,
}

/// Each attempt shows less than the one before, until one fits.
const LADDER: [Limits; 7] = [
    Limits {
        top: TOP_METRICS,
        recent: RECENT_POINTS,
        recent_metrics: RECENT_METRICS,
        anomalies: MAX_ANOMALIES,
        notes: MAX_NOTES,
        processes: 10,
    },
    Limits {
        top: TOP_METRICS,
        recent: 5,
        recent_metrics: 3,
        anomalies: MAX_ANOMALIES,
        notes: 10,
        processes: 10,
    },
    Limits {
        top: TOP_METRICS,
        recent: 0,
        recent_metrics: 0,
        anomalies: 5,
        notes: 5,
        processes: 5,
    },
    Limits {
        top: 5,
        recent: 0,
        recent_metrics: 0,
        anomalies: 5,
        notes: 3,
        processes: 5,
    },
    Limits {
        top: 3,
        recent: 0,
        recent_metrics: 0,
        anomalies: 3,
        notes: 1,
        processes: 3,
    },
    Limits {
        top: 1,
        recent: 0,
        recent_metrics: 0,
        anomalies: 1,
        notes: 0,
        processes: 0,
    },
    Limits {
        top: 0,
        recent: 0,
        recent_metrics: 0,
        anomalies: 0,
        notes: 0,
        processes: 0,
    },
];

/// The digest of one window within the default budget (8 KB).
///
/// ```
/// # use incident_recorder::context::format_number;
/// assert_eq!(format_number(-0.5), "-0.50");
/// assert_eq!(format_number(93.456), "93.46");
/// ```
pub fn format_window(w: &IncidentWindow) -> String {
    format_window_within(w, &Budget::default())
}

/// The digest of one window within `budget`: the first of ever smaller
/// attempts that fits, or, if even the smallest does not (a trailer or the
/// header larger than the budget), its first lines that fit. The last line
/// says what was left out, if anything was.
pub fn format_window_within(w: &IncidentWindow, budget: &Budget) -> String {
    format_window_with_processes(w, &[], budget)
}

/// Like [`format_window_within`], with a "Top processes" section from the
/// window's process snapshots (the busiest [`TOP_PROCESSES`] by peak CPU,
/// fewer when the budget is tight).
pub fn format_window_with_processes(
    w: &IncidentWindow,
    procs: &[ProcessSnapshot],
    budget: &Budget,
) -> String {
    let max = budget.max_bytes.max(MIN_MAX_BYTES);
    let mut last = String::new();
    let procs = crate::processes::summarize(procs, w.trigger_time);
    for limits in LADDER {
        let (text, left_out) = render(w, &procs, limits, &budget.trailer);
        let full = with_left_out(text, &left_out, max);
        if full.len() <= max {
            return full;
        }
        last = full;
    }
    // Whole lines from the start, then the note that the rest is gone.
    let note = format!("(left out to fit {max} bytes: the rest of this digest)\n");
    let mut out = String::new();
    for line in last.split_inclusive('\n') {
        if out.len() + line.len() + note.len() > max {
            break;
        }
        out.push_str(line);
    }
    out.push_str(&note);
    out
}

fn with_left_out(mut text: String, left_out: &[String], max: usize) -> String {
    if !left_out.is_empty() {
        let _ = writeln!(
            text,
            "\n(left out to fit {max} bytes: {}; `show ID --all` lists every metric, `context --max-bytes N` gives more)",
            left_out.join(", ")
        );
    }
    text
}

/// One attempt: the digest with `limits`, and what it left out.
fn render(
    w: &IncidentWindow,
    procs: &[ProcessSummary],
    limits: Limits,
    trailer: &[String],
) -> (String, Vec<String>) {
    let mut out = String::new();
    let mut left_out = Vec::new();
    header(&mut out, w);
    let ranked: Vec<&str> = w
        .summary
        .as_ref()
        .map(IncidentSummary::metrics_by_rank)
        .unwrap_or_default();
    if let Some(s) = &w.summary {
        summary(&mut out, w, s, &ranked, limits, &mut left_out);
    }
    processes(&mut out, procs, limits.processes, &mut left_out);
    notes(&mut out, w, limits.notes, &mut left_out);
    recent(&mut out, w, &ranked, limits, &mut left_out);
    if !trailer.is_empty() {
        out.push('\n');
        for line in trailer {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, left_out)
}

fn header(out: &mut String, w: &IncidentWindow) {
    out.push_str("\n## Incident Recording Data\n");
    out.push_str("High-frequency metrics captured during incident:\n\n");
    let _ = write!(
        out,
        "- Window: {} ({})\n- Resource: {}",
        w.id, w.status, w.resource_id
    );
    match (&w.resource_name, &w.resource_type) {
        (Some(n), Some(t)) => {
            let _ = write!(out, " ({n}, {t})");
        }
        (Some(x), None) | (None, Some(x)) => {
            let _ = write!(out, " ({x})");
        }
        (None, None) => {}
    }
    let _ = write!(out, "\n- Trigger: {}", w.trigger_type);
    if let Some(id) = &w.trigger_id {
        let _ = write!(out, " {id}");
    }
    let extra = w.triggers.len().saturating_sub(1);
    if extra > 0 {
        let _ = write!(out, " (+{extra} more)");
    }
    if let Some(t) = w.trigger_time {
        let _ = write!(out, "\n- Triggered: {t}");
    }
    let _ = write!(out, "\n- Started: {}", w.start_time);
    match w.end_time {
        Some(end) => {
            let _ = write!(out, "\n- Ended: {end}");
        }
        None => {
            if let Some(d) = w.deadline {
                let _ = write!(out, "\n- Recording until at least: {d}");
            }
        }
    }
    out.push('\n');
    let opening = w.triggers.iter().find(|t| t.opened_window);
    if let Some(t) = opening.filter(|t| has_words(t)) {
        out.push_str("\n### What the trigger said\n");
        for line in trigger_words(t) {
            let _ = writeln!(out, "- {line}");
        }
    }
}

/// Whether a trigger kept any words (an alert's labels or annotations, a
/// rule's expression, a resolve's end).
pub fn has_words(t: &WindowTrigger) -> bool {
    !t.labels.is_empty() || !t.annotations.is_empty() || t.rule.is_some() || t.ends_at.is_some()
}

/// A trigger's words, one line each: the rule, the annotations (`summary`
/// and `description` first), the labels on one line, the end it gave.
/// Values longer than [`MAX_WORD_BYTES`] are cut with the marker, and line
/// breaks in them print as ` ⏎ `, so each stays one line.
pub fn trigger_words(t: &WindowTrigger) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(rule) = &t.rule {
        lines.push(format!("rule: {}", one_line(rule)));
    }
    let first = ["summary", "description"];
    let ordered = first
        .iter()
        .filter_map(|k| t.annotations.get_key_value(*k))
        .chain(
            t.annotations
                .iter()
                .filter(|(k, _)| !first.contains(&k.as_str())),
        );
    for (k, v) in ordered {
        lines.push(format!("{k}: {}", one_line(v)));
    }
    if !t.labels.is_empty() {
        let labels: Vec<String> = t
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={}", one_line(v)))
            .collect();
        lines.push(format!("labels: {}", labels.join(", ")));
    }
    if let Some(end) = t.ends_at {
        lines.push(format!("ends at: {end}"));
    }
    lines
}

/// `text` on one line, at most [`MAX_WORD_BYTES`] (then cut, with the marker).
fn one_line(text: &str) -> String {
    let mut s = text
        .replace("\r\n", "\n")
        .replace('\n', " ⏎ ")
        .replace('\t', " ");
    if s.len() > MAX_WORD_BYTES {
        let mut end = MAX_WORD_BYTES - WindowTrigger::CUT_MARKER.len();
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(WindowTrigger::CUT_MARKER);
    }
    s
}

fn summary(
    out: &mut String,
    w: &IncidentWindow,
    s: &IncidentSummary,
    ranked: &[&str],
    limits: Limits,
    left_out: &mut Vec<String>,
) {
    out.push_str(if w.status == WindowStatus::Recording {
        "\n### Summary (so far: still recording)\n"
    } else {
        "\n### Summary\n"
    });
    let _ = writeln!(out, "- Duration: {}", format_duration_ms(s.duration_ms));
    let _ = writeln!(out, "- Data points: {}", s.data_points);
    let _ = writeln!(out, "- Metrics: {}", ranked.len());
    if limits.top > 0 && !ranked.is_empty() {
        out.push_str(
            "\n### What changed most\n(score: how far the metric moved after the trigger from its pre-trigger baseline, in robust standard deviations; ±200 at most)\n",
        );
        for m in ranked.iter().take(limits.top) {
            let _ = writeln!(out, "- {}", metric_line(s, m));
        }
    }
    let more = ranked.len().saturating_sub(limits.top);
    if more > 0 {
        left_out.push(format!("{more} metrics that moved less"));
    }
    anomalies(out, s, ranked, limits.anomalies, left_out);
}

/// `cpu: score +47.90 (rank 1); low 20.00, avg 55.00, p50 .., p95 .., peak .., change +70.00`.
fn metric_line(s: &IncidentSummary, m: &str) -> String {
    let mut line = format!("{m}: ");
    match s.change_scores.get(m) {
        Some(c) => match (c.score, &c.unscored) {
            (Some(score), _) => {
                let _ = write!(line, "score {} (rank {})", format_signed(score), c.rank);
            }
            (None, why) => {
                let why = why.as_deref().unwrap_or("no score");
                let _ = write!(line, "not scored: {why} (rank {})", c.rank);
            }
        },
        None => line.push_str("not scored"),
    }
    let num = |map: &std::collections::BTreeMap<String, f64>| {
        map.get(m).map_or("-".to_owned(), |v| format_number(*v))
    };
    let _ = write!(
        line,
        "; low {}, avg {}, p50 {}, p95 {}, peak {}, change {}",
        num(&s.lows),
        num(&s.averages),
        num(&s.p50),
        num(&s.p95),
        num(&s.peaks),
        s.changes
            .get(m)
            .map_or("-".to_owned(), |v| format_signed(*v)),
    );
    line
}

fn anomalies(
    out: &mut String,
    s: &IncidentSummary,
    ranked: &[&str],
    limit: usize,
    left_out: &mut Vec<String>,
) {
    if s.anomalies.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "\nAnomalies ({} samples far from the pre-incident baseline, robust score):",
        s.anomalies.len()
    );
    if s.anomalies_by_metric.is_empty() {
        // Known only by their notes (imported).
        for a in s.anomalies.iter().take(limit) {
            let _ = writeln!(out, "- {a}");
        }
        if s.anomalies.len() > limit {
            left_out.push(format!("{} anomaly notes", s.anomalies.len() - limit));
        }
        return;
    }
    // The metrics that moved most first.
    let mut metrics: Vec<&String> = s.anomalies_by_metric.keys().collect();
    let rank = |m: &str| ranked.iter().position(|r| *r == m).unwrap_or(usize::MAX);
    metrics.sort_by_key(|m| rank(m));
    for m in metrics.iter().take(limit) {
        let a = &s.anomalies_by_metric[*m];
        let _ = writeln!(
            out,
            "- {m}: {} samples; strongest: {}",
            a.samples, a.strongest
        );
    }
    if metrics.len() > limit {
        left_out.push(format!(
            "the anomalies of {} more metrics",
            metrics.len() - limit
        ));
    }
}

/// The busiest processes during the window: what was running.
fn processes(out: &mut String, procs: &[ProcessSummary], limit: usize, left_out: &mut Vec<String>) {
    if procs.is_empty() {
        return;
    }
    let shown = procs.len().min(limit);
    if shown < procs.len() {
        left_out.push(format!("{} more processes", procs.len() - shown));
    }
    if shown == 0 {
        return;
    }
    out.push_str(
        "\n### Top processes (peak CPU in % of one core; new: first seen after the trigger)\n",
    );
    for p in &procs[..shown] {
        let _ = write!(
            out,
            "- pid {} {} ({}): cpu peak {}, avg {}; rss peak {} MB",
            p.pid,
            one_line(&p.name),
            p.user.as_deref().map_or("?".into(), one_line),
            format_number(p.peak_cpu),
            format_number(p.mean_cpu),
            format_number(p.peak_rss as f64 / 1_048_576.0),
        );
        if p.new {
            out.push_str("; new");
        }
        if let Some(cmd) = &p.cmdline {
            let cut: String = cmd.chars().take(PROCESS_CMDLINE_CHARS).collect();
            let _ = write!(out, "; cmd: {}", one_line(&cut));
        }
        out.push('\n');
    }
}

fn notes(out: &mut String, w: &IncidentWindow, limit: usize, left_out: &mut Vec<String>) {
    if w.notes.is_empty() {
        return;
    }
    let skip = w.notes.len().saturating_sub(limit);
    if skip > 0 {
        left_out.push(format!("{skip} earlier notes"));
    }
    if limit == 0 {
        return;
    }
    // What the people handling it wrote: often the cause, or what was done.
    out.push_str("\n### Notes\n");
    for n in &w.notes[skip..] {
        let _ = writeln!(out, "- {} {}: {}", n.at, n.author, n.text);
    }
}

fn recent(
    out: &mut String,
    w: &IncidentWindow,
    ranked: &[&str],
    limits: Limits,
    left_out: &mut Vec<String>,
) {
    if w.data_points.is_empty() {
        return;
    }
    let shown = w.data_points.len().min(limits.recent);
    if shown < w.data_points.len().min(RECENT_POINTS) {
        left_out.push(format!(
            "the last {} points",
            w.data_points.len().min(RECENT_POINTS)
        ));
    }
    if shown == 0 {
        return;
    }
    let metrics: Vec<&str> = ranked.iter().take(limits.recent_metrics).copied().collect();
    if ranked.len() > metrics.len() {
        left_out.push(format!(
            "in the recent points, all but the top {} metrics",
            metrics.len()
        ));
    }
    out.push_str("\n### Recent Data Points\n");
    for p in &w.data_points[w.data_points.len() - shown..] {
        out.push_str(&clock_time(p.timestamp));
        out.push(':');
        for name in &metrics {
            if let Some(value) = p.metrics.get(*name) {
                let _ = write!(out, " {name}={}", format_number(*value));
            }
        }
        out.push('\n');
    }
}

/// Two decimals, rounded, sign kept (`-0.50`); negative zero prints as `0.00`.
pub fn format_number(v: f64) -> String {
    let s = format!("{v:.2}");
    if s == "-0.00" { "0.00".to_owned() } else { s }
}

/// Like [`format_number`] with a `+` on values that are not negative.
pub fn format_signed(v: f64) -> String {
    let s = format_number(v);
    if s.starts_with('-') {
        s
    } else {
        format!("+{s}")
    }
}

/// A duration the way Go prints one (`5m0s`, `1h2m3.5s`, `250ms`), as the
/// seed's prompts did.
pub fn format_duration_ms(ms: i64) -> String {
    if ms == 0 {
        return "0s".to_owned();
    }
    let sign = if ms < 0 { "-" } else { "" };
    let ms = ms.unsigned_abs();
    if ms < 1000 {
        return format!("{sign}{ms}ms");
    }
    let (h, m) = (ms / 3_600_000, ms / 60_000 % 60);
    let (s, frac) = (ms / 1000 % 60, ms % 1000);
    let mut secs = s.to_string();
    if frac > 0 {
        let f = format!("{frac:03}");
        secs.push('.');
        secs.push_str(f.trim_end_matches('0'));
    }
    match (h, m) {
        (0, 0) => format!("{sign}{secs}s"),
        (0, m) => format!("{sign}{m}m{secs}s"),
        (h, m) => format!("{sign}{h}h{m}m{secs}s"),
    }
}

/// `HH:MM:SS` in UTC.
fn clock_time(t: Timestamp) -> String {
    let dt = t.to_datetime();
    format!("{:02}:{:02}:{:02}", dt.hour(), dt.minute(), dt.second())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A closed window with `notes` and no points.
    fn window(notes: Vec<crate::WindowNote>) -> IncidentWindow {
        let at = Timestamp::from_unix_ms(1_795_514_400_000);
        IncidentWindow {
            id: crate::WindowId::new("iw-1"),
            resource_id: "db-02".into(),
            resource_name: None,
            resource_type: None,
            trigger_type: crate::TriggerType::Manual,
            trigger_id: None,
            trigger_time: None,
            start_time: at,
            end_time: Some(at),
            deadline: None,
            status: WindowStatus::Complete,
            triggers: Vec::new(),
            notes,
            data_points: Vec::new(),
            summary: None,
        }
    }

    fn note(text: String) -> crate::WindowNote {
        crate::WindowNote {
            at: Timestamp::from_unix_ms(1_795_514_400_000),
            author: "ops".into(),
            text,
        }
    }

    #[test]
    fn a_budget_shows_fewer_notes_then_says_so() {
        // 20 notes of 400 bytes: 8 KB do not hold them, 1 KB holds one.
        let w = window(
            (0..20)
                .map(|i| note(format!("{i:02}{}", "n".repeat(398))))
                .collect(),
        );
        let text = format_window_within(
            &w,
            &Budget {
                max_bytes: 1024,
                trailer: Vec::new(),
            },
        );
        assert!(text.len() <= 1024, "{}", text.len());
        assert!(
            text.contains("- 2026-11-24T10:00:00.000Z ops: 19nnn"),
            "{text}"
        );
        assert!(!text.contains("ops: 18n"), "{text}");
        assert!(
            text.ends_with("(left out to fit 1024 bytes: 19 earlier notes; `show ID --all` lists every metric, `context --max-bytes N` gives more)\n"),
            "{text}"
        );
        let all = format_window_within(
            &w,
            &Budget {
                max_bytes: 100_000,
                trailer: Vec::new(),
            },
        );
        assert!(
            all.contains("ops: 00n") && !all.contains("(left out"),
            "{all}"
        );
    }

    #[test]
    fn a_trailer_over_the_budget_is_cut_between_lines() {
        let w = window(Vec::new());
        let trailer: Vec<String> = (0..10).map(|i| format!("{i}{}", "t".repeat(299))).collect();
        let text = format_window_within(
            &w,
            &Budget {
                max_bytes: 1024,
                trailer: trailer.clone(),
            },
        );
        assert!(text.len() <= 1024, "{}", text.len());
        assert!(text.ends_with("(left out to fit 1024 bytes: the rest of this digest)\n"));
        for line in text
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
        {
            assert!(trailer.iter().any(|t| t == line), "{line:?} cut");
        }
    }

    #[test]
    fn notes_are_listed_last_twenty_with_the_rest_counted() {
        let at = Timestamp::from_unix_ms(1_795_514_400_000);
        let w = window(
            (0..25)
                .map(|i| crate::WindowNote {
                    at,
                    author: "ops".into(),
                    text: format!("step {i}"),
                })
                .collect(),
        );
        let text = format_window(&w);
        assert!(text.contains("### Notes\n- "), "{text}");
        assert!(
            text.ends_with("(left out to fit 8192 bytes: 5 earlier notes; `show ID --all` lists every metric, `context --max-bytes N` gives more)\n"),
            "{text}"
        );
        assert!(
            text.contains("- 2026-11-24T10:00:00.000Z ops: step 5\n"),
            "{text}"
        );
        assert!(!text.contains("step 4\n"), "{text}");
        assert!(text.contains("step 24\n"), "{text}");
    }

    #[test]
    fn durations_print_like_go() {
        assert_eq!(format_duration_ms(0), "0s");
        assert_eq!(format_duration_ms(250), "250ms");
        assert_eq!(format_duration_ms(300_000), "5m0s");
        assert_eq!(format_duration_ms(3_723_500), "1h2m3.5s");
        assert_eq!(format_duration_ms(1_050), "1.05s");
    }

    #[test]
    fn numbers_keep_sign_and_round() {
        assert_eq!(format_number(-0.5), "-0.50");
        assert_eq!(format_number(-0.001), "0.00");
        assert_eq!(format_number(1.239), "1.24");
        assert_eq!(format_signed(0.0), "+0.00");
        assert_eq!(format_signed(-0.25), "-0.25");
        assert_eq!(format_signed(12.3), "+12.30");
    }
}
