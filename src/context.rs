//! The incident digest for an AI prompt.
//!
//! Keeps the seed's layout (summary, peak values, changes, the last 10 points)
//! so prompts written for Pulse keep working, and adds what an assistant needs
//! to reason about the incident: which window, which resource, when, what
//! triggered it, and the 95th percentiles. Output is deterministic: metrics are
//! sorted by name (the seed iterated Go maps in random order). Numbers have two
//! decimals, rounded, with their sign (the seed printed `-0.5` as `0.50`).

use std::fmt::Write;

use crate::model::{IncidentWindow, Timestamp, WindowStatus};

/// How many of the most recent points the digest lists.
pub const RECENT_POINTS: usize = 10;
/// How many anomalies the digest lists (the rest are counted).
pub const MAX_ANOMALIES: usize = 10;
/// Notes listed (the most recent ones).
pub const MAX_NOTES: usize = 20;

/// The digest of one window.
///
/// ```
/// # use incident_recorder::context::format_number;
/// assert_eq!(format_number(-0.5), "-0.50");
/// assert_eq!(format_number(93.456), "93.46");
/// ```
pub fn format_window(w: &IncidentWindow) -> String {
    let mut out = String::new();
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

    if let Some(s) = &w.summary {
        out.push_str(if w.status == WindowStatus::Recording {
            "\n### Summary (so far: still recording)\n"
        } else {
            "\n### Summary\n"
        });
        let _ = writeln!(out, "- Duration: {}", format_duration_ms(s.duration_ms));
        let _ = writeln!(out, "- Data points: {}", s.data_points);
        section(&mut out, "Peak values", s.peaks.iter(), format_number);
        section(
            &mut out,
            "Changes during incident",
            s.changes.iter(),
            format_signed,
        );
        section(&mut out, "95th percentiles", s.p95.iter(), format_number);
        if !s.anomalies.is_empty() {
            let _ = writeln!(
                out,
                "\nAnomalies ({} samples far from the pre-incident baseline, robust score):",
                s.anomalies.len()
            );
            if s.anomalies_by_metric.is_empty() {
                for a in s.anomalies.iter().take(MAX_ANOMALIES) {
                    let _ = writeln!(out, "- {a}");
                }
                if s.anomalies.len() > MAX_ANOMALIES {
                    let _ = writeln!(out, "- ... and {} more", s.anomalies.len() - MAX_ANOMALIES);
                }
            }
            for (metric, a) in &s.anomalies_by_metric {
                let _ = writeln!(
                    out,
                    "- {metric}: {} samples; strongest: {}",
                    a.samples, a.strongest
                );
            }
        }
    }

    if !w.notes.is_empty() {
        // What the people handling it wrote: often the cause, or what was done.
        out.push_str("\n### Notes\n");
        let skip = w.notes.len().saturating_sub(MAX_NOTES);
        if skip > 0 {
            let _ = writeln!(out, "- ({skip} earlier notes left out)");
        }
        for n in &w.notes[skip..] {
            let _ = writeln!(out, "- {} {}: {}", n.at, n.author, n.text);
        }
    }

    if !w.data_points.is_empty() {
        out.push_str("\n### Recent Data Points\n");
        let start = w.data_points.len().saturating_sub(RECENT_POINTS);
        for p in &w.data_points[start..] {
            out.push_str(&clock_time(p.timestamp));
            out.push(':');
            for (name, value) in &p.metrics {
                let _ = write!(out, " {name}={}", format_number(*value));
            }
            out.push('\n');
        }
    }
    out
}

fn section<'a>(
    out: &mut String,
    title: &str,
    values: impl ExactSizeIterator<Item = (&'a String, &'a f64)>,
    fmt: fn(f64) -> String,
) {
    if values.len() == 0 {
        return;
    }
    let _ = writeln!(out, "\n{title}:");
    for (name, v) in values {
        let _ = writeln!(out, "- {name}: {}", fmt(*v));
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

    #[test]
    fn notes_are_listed_last_twenty_with_the_rest_counted() {
        let at = Timestamp::from_unix_ms(1_795_514_400_000);
        let w = IncidentWindow {
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
            notes: (0..25)
                .map(|i| crate::WindowNote {
                    at,
                    author: "ops".into(),
                    text: format!("step {i}"),
                })
                .collect(),
            data_points: Vec::new(),
            summary: None,
        };
        let text = format_window(&w);
        assert!(
            text.contains("### Notes\n- (5 earlier notes left out)\n"),
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
