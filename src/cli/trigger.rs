//! `trigger`: ask the recorder running on a database to open a window.
//!
//! The request goes into the `trigger_requests` table, which a running
//! recorder (`watch`, or an `ingest` in progress) polls every tick. Without a
//! running recorder nothing would pick it up, so the command refuses rather
//! than leave a request that some later recorder would act on at a
//! surprising time. It then waits, bounded by `--wait`, for the request to be
//! handled and prints the window's id.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use incident_recorder::{Timestamp, Trigger, TriggerRequestStatus, WindowId};

use super::args::TriggerArgs;
use super::error::{Failure, Result};

const POLL: Duration = Duration::from_millis(100);

pub fn run(db: &Path, a: TriggerArgs) -> Result<ExitCode> {
    let store = super::open_existing(db)?;
    if !store.recorder_running()? {
        return Err(Failure::msg(format!(
            "no recorder is running on {}; start one with `incident-recorder --db {} watch` (it picks requests up within one interval)",
            db.display(),
            db.display()
        )));
    }
    let trigger = Trigger::new(a.kind, a.id.clone());
    let request = store.request_trigger(&a.resource, &trigger, Timestamp::now())?;
    let outcome = if a.wait.is_zero() {
        Outcome::Pending
    } else {
        wait(&store, request, a.wait)?
    };
    let failure = match &outcome {
        Outcome::Pending | Outcome::Handled(_) => None,
        Outcome::Refused(reason) => {
            Some(format!("the recorder refused request {request}: {reason}"))
        }
        Outcome::TimedOut => Some(format!(
            "request {request} was not handled within {}; it stays queued for the recorder on {}",
            super::duration::format(a.wait),
            db.display()
        )),
    };
    if a.output.json {
        // One shape whatever happened, so scripts need one parser.
        let (status, window, error) = match &outcome {
            Outcome::Pending => ("pending", None, None),
            Outcome::Handled(w) => ("handled", Some(w.as_str()), None),
            Outcome::Refused(reason) => ("refused", None, Some(reason.as_str())),
            Outcome::TimedOut => ("timed_out", None, None),
        };
        super::print_json(&serde_json::json!({
            "request": request,
            "status": status,
            "window_id": window,
            "error": error,
        }))?;
    } else {
        let mut out = std::io::stdout().lock();
        match &outcome {
            Outcome::Pending => writeln!(out, "request {request} queued")?,
            Outcome::Handled(w) => writeln!(out, "{w}")?,
            Outcome::Refused(_) | Outcome::TimedOut => {}
        }
    }
    match failure {
        Some(message) => Err(Failure::msg(message)),
        None => Ok(ExitCode::SUCCESS),
    }
}

/// What became of a request.
enum Outcome {
    /// Not waited for.
    Pending,
    /// A window opened or extended.
    Handled(WindowId),
    /// The recorder refused it, saying why.
    Refused(String),
    /// Not handled in time.
    TimedOut,
}

/// Waits up to `limit` for request `request` to be handled.
fn wait(store: &incident_recorder::Store, request: i64, limit: Duration) -> Result<Outcome> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(TriggerRequestStatus {
            handled_at: Some(_),
            window_id,
            error,
            ..
        }) = store.trigger_request(request)?
        {
            return Ok(match (window_id, error) {
                (_, Some(reason)) => Outcome::Refused(reason),
                (Some(w), None) => Outcome::Handled(w),
                (None, None) => Outcome::Refused("no window was opened".into()),
            });
        }
        if Instant::now() >= deadline {
            return Ok(Outcome::TimedOut);
        }
        std::thread::sleep(POLL);
    }
}
