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

use clap::Args;
use incident_recorder::{DeleteSelection, Timestamp};

use super::args::JsonFlag;
use super::error::{Failure, Result};

/// `delete ID...` or `delete [--resource R] [--before T]`.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").required(true).multiple(true).args(["ids", "resource", "before"]))]
pub struct DeleteArgs {
    /// The windows to delete, by id (from `list`). A window still recording
    /// is refused while a recorder runs on the database.
    #[arg(value_name = "ID", conflicts_with_all = ["resource", "before"])]
    pub ids: Vec<String>,
    /// Instead of ids: every closed window of this resource (with --before,
    /// only those that ended before then).
    #[arg(long, value_name = "ID")]
    pub resource: Option<String>,
    /// Instead of ids: the closed windows that ended before this time, a
    /// duration back from now (7d, 12h) or an RFC 3339 time
    /// (2026-11-24T10:00:00Z).
    #[arg(long, value_name = "DURATION|TIME")]
    pub before: Option<String>,
    #[command(flatten)]
    pub output: JsonFlag,
}

/// `delete --help`: what goes and what stays.
pub const DELETE_ABOUT: &str = "\
Delete windows with everything recorded under them: values, triggers, summary, anomalies, \
notes and push marks (the same deletion as retention's).

  incident-recorder delete iw-20261124100000-1f2e3d4c-1 iw-20261124100000-1f2e3d4c-2
  incident-recorder delete --resource vm-101 --before 7d

By id: all the windows named go, or none (an unknown id, or a window still recording \
while a recorder runs, is an error and deletes nothing). A window still recording can be \
deleted once no recorder runs on the database. --resource and --before select closed \
windows only. A window already pushed to a central PostgreSQL stays there. Exit code 1 on \
an error, 0 otherwise (also when the selection is empty).";

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
