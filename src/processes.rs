//! Process snapshots: what was running on a machine (issue 20 part 3).
//!
//! The data a [`crate::provider::process::ProcessProvider`] gives, the
//! recorder keeps in its ring, the store writes (`process_samples`,
//! migrations/V13) and `show`, `context`, `export` print.
//!
//! # Bounds
//!
//! - A snapshot keeps the top [`ProcessLimits::top`] processes by CPU and
//!   the top `top` by resident memory (the union: at most `2 × top` rows;
//!   `top` defaults to [`DEFAULT_TOP`] = 10, at most [`MAX_TOP`] = 100).
//! - A name is cut at [`MAX_NAME_BYTES`] (255), a user at [`MAX_USER_BYTES`]
//!   (64) and a command line at [`MAX_CMDLINE_BYTES`] (512) bytes, on a
//!   character boundary; control characters become spaces.

use crate::model::Timestamp;

/// One snapshot: the top processes at one instant.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcessSnapshot {
    /// When it was taken.
    pub at: Timestamp,
    /// The processes, bounded (see the module docs).
    pub processes: Vec<ProcessSample>,
}

/// Default number of processes kept per ranking (CPU, memory).
pub const DEFAULT_TOP: usize = 10;
/// Largest `top` accepted.
pub const MAX_TOP: usize = 100;
/// Longest name kept, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Longest user name kept, in bytes.
pub const MAX_USER_BYTES: usize = 64;
/// Longest command line kept, in bytes.
pub const MAX_CMDLINE_BYTES: usize = 512;

/// One process at one instant.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProcessSample {
    /// Process id.
    pub pid: u32,
    /// Executable name.
    pub name: String,
    /// Command line, arguments joined by spaces (truncated); `None` when
    /// command lines are off or unreadable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmdline: Option<String>,
    /// Owner's user name (or numeric id when it has no name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// CPU use, % of one core (a process on 4 busy cores shows 400).
    pub cpu: f64,
    /// Resident memory, bytes.
    pub rss: u64,
    /// Bytes read per second since the previous snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_bps: Option<f64>,
    /// Bytes written per second since the previous snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_bps: Option<f64>,
}

impl ProcessSample {
    /// Makes the sample fit the documented bounds: names, users and command
    /// lines cut, control characters replaced, non-finite numbers zeroed.
    pub fn bounded(mut self) -> ProcessSample {
        self.name = clip_text(&self.name, MAX_NAME_BYTES);
        self.user = self.user.map(|u| clip_text(&u, MAX_USER_BYTES));
        self.cmdline = self.cmdline.map(|c| clip_text(&c, MAX_CMDLINE_BYTES));
        fn finite(v: f64) -> f64 {
            if v.is_finite() && v >= 0.0 { v } else { 0.0 }
        }
        self.cpu = finite(self.cpu);
        self.read_bps = self.read_bps.map(finite);
        self.write_bps = self.write_bps.map(finite);
        self
    }
}

/// Cuts `s` at `max` bytes on a character boundary, control characters
/// replaced by spaces.
pub fn clip_text(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

/// Which processes a snapshot keeps and what of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessLimits {
    /// Processes kept per ranking (by CPU, by memory); clamped to 1..=[`MAX_TOP`].
    pub top: usize,
    /// Keep command lines (`watch --no-cmdline` turns this off: they may
    /// hold secrets passed as arguments).
    pub cmdline: bool,
}

impl Default for ProcessLimits {
    fn default() -> Self {
        ProcessLimits {
            top: DEFAULT_TOP,
            cmdline: true,
        }
    }
}

/// Keeps the top `top` of `all` by CPU and the top `top` by resident memory
/// (each process once), ordered by CPU, then memory, then pid.
pub fn top_processes(mut all: Vec<ProcessSample>, top: usize) -> Vec<ProcessSample> {
    let top = top.clamp(1, MAX_TOP);
    if all.len() <= top {
        all.sort_by(rank);
        return all;
    }
    let mut keep = vec![false; all.len()];
    let mut idx: Vec<usize> = (0..all.len()).collect();
    idx.sort_by(|&a, &b| rank(&all[a], &all[b]));
    idx.iter().take(top).for_each(|&i| keep[i] = true);
    idx.sort_by(|&a, &b| {
        all[b]
            .rss
            .cmp(&all[a].rss)
            .then(all[a].pid.cmp(&all[b].pid))
    });
    idx.iter().take(top).for_each(|&i| keep[i] = true);
    let mut i = 0;
    all.retain(|_| {
        i += 1;
        keep[i - 1]
    });
    all.sort_by(rank);
    all
}

fn rank(a: &ProcessSample, b: &ProcessSample) -> std::cmp::Ordering {
    b.cpu
        .total_cmp(&a.cpu)
        .then(b.rss.cmp(&a.rss))
        .then(a.pid.cmp(&b.pid))
}

/// One process over a window's snapshots: what `show`, `context` and the
/// web page print.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct ProcessSummary {
    /// Process id.
    pub pid: u32,
    /// Executable name.
    pub name: String,
    /// Owner, as last seen.
    pub user: Option<String>,
    /// Command line, as last seen.
    pub cmdline: Option<String>,
    /// Highest CPU %, of one core.
    pub peak_cpu: f64,
    /// Mean CPU % over the snapshots it was in.
    pub mean_cpu: f64,
    /// Highest resident memory, bytes.
    pub peak_rss: u64,
    /// Highest read and write rates, bytes per second.
    pub peak_read_bps: Option<f64>,
    /// See `peak_read_bps`.
    pub peak_write_bps: Option<f64>,
    /// Snapshots it was in.
    pub seen: usize,
    /// First seen after the trigger: in no snapshot taken before it (while
    /// there were snapshots before it).
    pub new: bool,
}

/// Folds a window's snapshots by process (pid and name: a reused pid with
/// another name is another process), busiest first (peak CPU, then peak
/// memory). `trigger` marks the processes new after it.
pub fn summarize(snaps: &[ProcessSnapshot], trigger: Option<Timestamp>) -> Vec<ProcessSummary> {
    let mut by: std::collections::HashMap<(u32, &str), ProcessSummary> =
        std::collections::HashMap::new();
    let cut = trigger.map(|t| t.as_unix_ms());
    let any_before = cut.is_some_and(|c| snaps.iter().any(|s| s.at.as_unix_ms() < c));
    let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, y) => x.or(y),
    };
    for snap in snaps {
        let before = cut.is_some_and(|c| snap.at.as_unix_ms() < c);
        for p in &snap.processes {
            let e = by
                .entry((p.pid, p.name.as_str()))
                .or_insert_with(|| ProcessSummary {
                    pid: p.pid,
                    name: p.name.clone(),
                    user: None,
                    cmdline: None,
                    peak_cpu: 0.0,
                    mean_cpu: 0.0,
                    peak_rss: 0,
                    peak_read_bps: None,
                    peak_write_bps: None,
                    seen: 0,
                    new: any_before,
                });
            if before {
                e.new = false;
            }
            e.user = p.user.clone().or(e.user.take());
            e.cmdline = p.cmdline.clone().or(e.cmdline.take());
            e.peak_cpu = e.peak_cpu.max(p.cpu);
            e.mean_cpu += p.cpu;
            e.peak_rss = e.peak_rss.max(p.rss);
            e.peak_read_bps = max(e.peak_read_bps, p.read_bps);
            e.peak_write_bps = max(e.peak_write_bps, p.write_bps);
            e.seen += 1;
        }
    }
    let mut out: Vec<ProcessSummary> = by
        .into_values()
        .map(|mut e| {
            e.mean_cpu /= e.seen.max(1) as f64;
            e
        })
        .collect();
    out.sort_by(|a, b| {
        b.peak_cpu
            .total_cmp(&a.peak_cpu)
            .then(b.peak_rss.cmp(&a.peak_rss))
            .then(a.pid.cmp(&b.pid))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pid: u32, cpu: f64, rss: u64) -> ProcessSample {
        ProcessSample {
            pid,
            name: format!("p{pid}"),
            cmdline: None,
            user: None,
            cpu,
            rss,
            read_bps: None,
            write_bps: None,
        }
    }

    #[test]
    fn top_keeps_the_top_by_cpu_and_the_top_by_memory() {
        let all = vec![p(1, 90.0, 1), p(2, 1.0, 900), p(3, 50.0, 2), p(4, 0.0, 3)];
        let top: Vec<u32> = top_processes(all, 1).iter().map(|s| s.pid).collect();
        assert_eq!(top, vec![1, 2]);
    }

    #[test]
    fn text_is_cut_on_a_character_boundary_without_control_characters() {
        assert_eq!(clip_text("a\u{1b}[31méé", 5), "a [31");
        assert_eq!(clip_text("éé", 3), "é");
    }

    #[test]
    fn summaries_rank_by_peak_cpu_and_mark_processes_new_after_the_trigger() {
        let at = |ms, ps| ProcessSnapshot {
            at: Timestamp::from_unix_ms(ms),
            processes: ps,
        };
        let snaps = vec![
            at(1000, vec![p(1, 10.0, 100), p(2, 5.0, 50)]),
            at(3000, vec![p(1, 20.0, 100), p(3, 95.0, 10)]),
        ];
        let s = summarize(&snaps, Some(Timestamp::from_unix_ms(2000)));
        let rows: Vec<(u32, f64, f64, bool)> = s
            .iter()
            .map(|e| (e.pid, e.peak_cpu, e.mean_cpu, e.new))
            .collect();
        assert_eq!(
            rows,
            vec![
                (3, 95.0, 95.0, true),
                (1, 20.0, 15.0, false),
                (2, 5.0, 5.0, false)
            ]
        );
        // With nothing before the trigger, nothing can be called new.
        assert!(
            summarize(&snaps[1..], Some(Timestamp::from_unix_ms(2000)))
                .iter()
                .all(|e| !e.new)
        );
    }
}
