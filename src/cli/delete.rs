//! `delete`: removing windows a user names, with everything recorded under
//! them, through the store's one deletion path (the one retention uses).
//!
//! Closed windows go even while a recorder runs (as with `prune`); a window
//! still recording only when no recorder runs on the database, since a
//! running recorder keeps its bookkeeping in memory and would go on writing
//! into it. Either every named window goes, or (one unknown or refused)
//! none does.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use incident_recorder::{DeleteSelection, Timestamp};

use super::args::DeleteArgs;
use super::error::{Failure, Result};

pub fn run(db: &Path, a: DeleteArgs) -> Result<ExitCode> {
    let before = a.before.as_deref().map(parse_before).transpose()?;
    let store = super::open_existing(db)?;
    let selection = if a.ids.is_empty() {
        DeleteSelection::Closed {
            resource: a.resource.as_deref(),
            before,
        }
    } else {
        DeleteSelection::Ids(&a.ids)
    };
    let report = store.delete_windows(selection)?;
    if a.output.json {
        super::print_json(&serde_json::json!({
            "deleted_windows": report.windows,
            "deleted_points": report.points,
            "deleted_metric_names": report.metric_names,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "deleted {} windows ({} points)",
        report.windows.len(),
        report.points
    )?;
    for id in &report.windows {
        super::format::write_text(&mut out, &format!("  {id}\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--before`: a duration back from now, or an RFC 3339 time.
fn parse_before(text: &str) -> Result<Timestamp> {
    if let Ok(d) = super::duration::parse(text) {
        return Ok(Timestamp::now().saturating_sub(d));
    }
    Timestamp::parse_rfc3339(text).map_err(|_| {
        Failure::msg(format!(
            "invalid --before {text:?}: give a duration (2h, 30m, 7d) or an RFC 3339 time (2026-11-24T10:00:00Z)"
        ))
    })
}
