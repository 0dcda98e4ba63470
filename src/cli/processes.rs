//! `show`'s process table: who used most CPU and memory during the window,
//! and who was new after the trigger (from the window's process snapshots,
//! `incident_recorder::processes`).

use std::io::Write;

use incident_recorder::Timestamp;
use incident_recorder::processes::{ProcessSnapshot, summarize};

use super::error::Result;
use super::format;
use super::table::{Align, Table};

/// Rows `show` prints: the busiest by CPU, then memory.
pub const SHOW_PROCESSES: usize = 15;
/// Longest command line `show` prints, in characters (the store keeps up
/// to 512 bytes; `show --json` has all of it).
const CMDLINE_CHARS: usize = 60;

/// Writes the table, or nothing if the window has no snapshots.
pub fn render(
    snaps: &[ProcessSnapshot],
    trigger: Option<Timestamp>,
    out: &mut impl Write,
) -> Result<()> {
    if snaps.is_empty() {
        return Ok(());
    }
    let all = summarize(snaps, trigger);
    writeln!(
        out,
        "\nprocesses, busiest first ({} snapshots from {} to {}; CPU in % of one core; NEW: first seen after the trigger)",
        snaps.len(),
        format::time(snaps[0].at),
        format::time(snaps[snaps.len() - 1].at),
    )?;
    let mut t = Table::new(&[
        ("PID", Align::Right),
        ("NAME", Align::Left),
        ("USER", Align::Left),
        ("PEAK CPU", Align::Right),
        ("AVG CPU", Align::Right),
        ("PEAK RSS", Align::Right),
        ("READ/S", Align::Right),
        ("WRITE/S", Align::Right),
        ("NEW", Align::Left),
        ("COMMAND", Align::Left),
    ]);
    let rate = |v: Option<f64>| v.map_or(String::new(), |v| format::bytes(v as u64));
    for p in all.iter().take(SHOW_PROCESSES) {
        let cmd: String = p
            .cmdline
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(CMDLINE_CHARS)
            .collect();
        t.row(vec![
            p.pid.to_string(),
            format::terminal_safe(&p.name).into_owned(),
            p.user.clone().unwrap_or_default(),
            format!("{:.1}", p.peak_cpu),
            format!("{:.1}", p.mean_cpu),
            format::bytes(p.peak_rss),
            rate(p.peak_read_bps),
            rate(p.peak_write_bps),
            if p.new { "new" } else { "" }.to_owned(),
            format::terminal_safe(&cmd).into_owned(),
        ]);
    }
    t.write(out)?;
    if all.len() > SHOW_PROCESSES {
        writeln!(
            out,
            "{} more processes: show --json has every snapshot",
            all.len() - SHOW_PROCESSES
        )?;
    }
    Ok(())
}
