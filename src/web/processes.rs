//! The process table of `/w/ID`: who used most CPU and memory during the
//! window and who was new after the trigger (from its process snapshots,
//! [`crate::processes`]).

use std::fmt::Write;

use super::escape;
use crate::model::Timestamp;
use crate::processes::{ProcessSnapshot, summarize};

/// Rows the page lists (busiest by peak CPU first).
pub const PAGE_PROCESSES: usize = 25;

/// The table, or nothing if the window has no snapshots.
pub fn process_table(snaps: &[ProcessSnapshot], trigger: Option<Timestamp>) -> String {
    if snaps.is_empty() {
        return String::new();
    }
    let all = summarize(snaps, trigger);
    let mut out = format!(
        "<h2>Processes</h2><p class=\"processes-note\">{} snapshots; CPU in % of one core; \
         new: first seen after the trigger</p><table class=\"processes\"><thead><tr>\
         <th>pid</th><th>name</th><th>user</th><th>peak CPU</th><th>avg CPU</th>\
         <th>peak RSS (MiB)</th><th>new</th><th>command</th></tr></thead><tbody>",
        snaps.len()
    );
    for p in all.iter().take(PAGE_PROCESSES) {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{:.1}</td><td>{:.1}</td><td>{:.1}</td>\
             <td>{}</td><td>{}</td></tr>",
            p.pid,
            escape(&p.name),
            escape(p.user.as_deref().unwrap_or("")),
            p.peak_cpu,
            p.mean_cpu,
            p.peak_rss as f64 / 1_048_576.0,
            if p.new { "new" } else { "" },
            escape(p.cmdline.as_deref().unwrap_or("")),
        );
    }
    out.push_str("</tbody></table>");
    out
}

/// `page` (a window page) with `table` before its data block, or at the
/// end of its body.
pub fn with_process_table(page: String, table: &str) -> String {
    if table.is_empty() {
        return page;
    }
    let at = page
        .find("<script type=\"application/json\" id=\"window-data\">")
        .or_else(|| page.rfind("</body>"))
        .unwrap_or(page.len());
    let mut out = String::with_capacity(page.len() + table.len());
    out.push_str(&page[..at]);
    out.push_str(table);
    out.push_str(&page[at..]);
    out
}
