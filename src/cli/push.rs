//! `push`, and `--push-to` for `watch` and `ingest`: the library's fleet
//! push (`incident_recorder::fleet`) on the command line.
//!
//! The URL is parsed before anything else runs, so a bad one fails at once;
//! it is only ever printed as the library displays it, without its password.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use incident_recorder::Store;
use incident_recorder::fleet::{self, PushRequest, Pusher, PusherOptions, PusherStatus, Target};
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{PushArgs, PushOptions};
use super::error::Result;

/// A push of at least this many windows shows a progress bar (on a terminal).
const PROGRESS_FROM: u64 = 20;

/// How long `watch` and `ingest` give their pusher to push what waits when
/// they end; what is left goes with the next push.
pub const FINISH_WITHIN: Duration = Duration::from_secs(30);

pub fn run(db: &Path, a: PushArgs) -> Result<ExitCode> {
    let target = Target::new(&a.to, a.node.as_deref())?;
    let store = super::open_existing(db)?;
    let total = store.push_state()?.backlog;
    let bar = (std::io::stderr().is_terminal() && total >= PROGRESS_FROM).then(|| {
        let bar = ProgressBar::new(total);
        bar.set_style(
            ProgressStyle::with_template("pushing {bar:30} {pos}/{len} windows, {eta} left")
                .expect("valid template"),
        );
        bar
    });
    let started = Instant::now();
    let request = PushRequest::default()
        .with_verify(a.verify)
        .with_retry_refused(a.retry_refused);
    let result = fleet::push_with(&store, &target, &request, &mut |s| {
        if let Some(bar) = &bar {
            bar.set_position(s.pushed + s.skipped + s.failed);
        }
    });
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let summary = result?;
    let state = store.push_state()?;
    let backlog = state.backlog;
    let seconds = started.elapsed().as_secs_f64();
    if a.output.json {
        let mut value = serde_json::to_value(&summary)?;
        value["node"] = target.node().into();
        value["central"] = target.display().into();
        value["backlog"] = backlog.into();
        value["refused_waiting"] = state.refused.into();
        value["next_retry"] = serde_json::to_value(state.next_retry)?;
        value["seconds"] = seconds.into();
        super::print_json(&value)?;
    } else {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "pushed {} windows ({} points, {} values) to {} as node {} in {:.1}s",
            summary.pushed,
            summary.points,
            summary.values,
            target.display(),
            target.node(),
            seconds
        )?;
        if summary.missing > 0 {
            writeln!(
                out,
                "found {} windows pushed before missing from the central database; sent them again",
                summary.missing
            )?;
        }
        if summary.skipped > 0 {
            writeln!(
                out,
                "skipped {} windows the central database already had",
                summary.skipped
            )?;
        }
        if summary.retried > 0 {
            writeln!(
                out,
                "tried {} windows refused before again",
                summary.retried
            )?;
        }
        for r in &summary.refused {
            let line = format!("refused {}: {}", r.window, r.reason);
            writeln!(out, "{}", super::format::terminal_safe(&line))?;
        }
        if summary.failed > summary.refused.len() as u64 {
            writeln!(out, "... {} windows refused in all", summary.failed)?;
        }
        if backlog > 0 {
            writeln!(
                out,
                "{backlog} closed windows still wait (closed during the push)"
            )?;
        }
        if let (n @ 1.., Some(at)) = (state.refused, state.next_retry) {
            writeln!(
                out,
                "{n} refused windows are tried again from {} (`push --retry-refused` tries them now)",
                super::format::time(at)
            )?;
        }
    }
    Ok(super::partial_if(summary.failed > 0))
}

/// The target of `--push-to`, checked before the command starts recording.
pub fn target(o: &PushOptions) -> Result<Option<Target>> {
    let Some(url) = &o.push_to else {
        return Ok(None);
    };
    let target = Target::new(url, o.push_node.as_deref())?;
    match &o.push_password_file {
        Some(_) if super::config::url_has_password(url) => Err(super::error::Failure::msg(
            "--push-to has a password and --push-password-file gives one too; keep the file's and drop the URL's",
        )),
        Some(file) => Ok(Some(target.with_password(&super::secret::read_secret(
            file,
            "the PostgreSQL password file",
        )?))),
        None => Ok(Some(target)),
    }
}

/// Starts the background pusher on `db` (which the recorder has opened).
pub fn start(db: &Path, target: Option<Target>) -> Result<Option<Pusher>> {
    let Some(target) = target else {
        return Ok(None);
    };
    let store = Store::open(db)?;
    Ok(Some(Pusher::start(
        store,
        target,
        PusherOptions::default(),
    )?))
}

/// One line on what a pusher did, for the end of `watch` and `ingest`.
pub fn describe(s: &PusherStatus) -> String {
    let mut line = format!("pushed {} windows to the central database", s.pushed);
    if s.skipped > 0 {
        line.push_str(&format!(", {} already there", s.skipped));
    }
    if s.missing > 0 {
        line.push_str(&format!(
            ", {} sent again (the central database had lost them)",
            s.missing
        ));
    }
    if s.failed > 0 {
        line.push_str(&format!(", {} refused (tried again later)", s.failed));
    }
    if s.backlog > 0 {
        line.push_str(&format!(
            "; {} wait for the next push (`incident-recorder push`)",
            s.backlog
        ));
    }
    if let Some(e) = &s.last_error {
        line.push_str(": ");
        line.push_str(e);
    }
    line
}
