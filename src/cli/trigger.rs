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

use incident_recorder::{Timestamp, Trigger, TriggerRequestStatus};

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
    let mut out = std::io::stdout().lock();
    if a.wait.is_zero() {
        if a.output.json {
            super::print_json(&serde_json::json!({ "request": request, "status": "pending" }))?;
        } else {
            writeln!(out, "request {request} queued")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let deadline = Instant::now() + a.wait;
    let status = loop {
        match store.trigger_request(request)? {
            Some(
                s @ TriggerRequestStatus {
                    handled_at: Some(_),
                    ..
                },
            ) => break s,
            _ if Instant::now() >= deadline => {
                return Err(Failure::msg(format!(
                    "request {request} was not handled within {}; it stays queued for the recorder on {}",
                    super::duration::format(a.wait),
                    db.display()
                )));
            }
            _ => std::thread::sleep(POLL),
        }
    };
    if let Some(reason) = &status.error {
        return Err(Failure::msg(format!(
            "the recorder refused request {request}: {reason}"
        )));
    }
    let window = status.window_id.map(|w| w.to_string()).unwrap_or_default();
    if a.output.json {
        super::print_json(&serde_json::json!({ "request": request, "window_id": window }))?;
    } else {
        writeln!(out, "{window}")?;
    }
    Ok(ExitCode::SUCCESS)
}
