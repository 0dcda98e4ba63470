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
        let finite = |v: f64| if v.is_finite() && v >= 0.0 { v } else { 0.0 };
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
}
