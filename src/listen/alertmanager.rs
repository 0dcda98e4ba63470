//! Alertmanager's webhook (payload version 4) as triggers.
//!
//! Alertmanager decides *when* something is an incident; the recorder
//! already holds the minutes before it. Each alert of a notification is
//! matched to a resource by one of its labels (`instance` by default, which
//! is the `host:port` of the scrape target the alert is about, and the id a
//! `--scrape` target gets) and:
//!
//! - `firing`: opens an `alert` window at `startsAt` (with the buffered
//!   samples before it), or extends the one recording, through
//!   [`record_alert`](IncidentRecorder::record_alert): a `startsAt` ahead
//!   of this host's clock is taken now, one older than the buffers reach
//!   at the oldest buffered time (the answer's `adjusted` says which and by
//!   how much), and the window is held while the alert fires however late
//!   the notification came;
//! - `resolved`: resolves that alert at `endsAt` (at `startsAt` if `endsAt`
//!   is before it) through [`resolve_alert`](IncidentRecorder::resolve_alert),
//!   so the window records its post window and completes; a resolve for an
//!   alert not firing here is kept for its firing, if that comes later.
//!
//! The trigger id is `alertname/fingerprint` (`HighCPU/3f2a9c1b0d4e5f60`):
//! readable in `list`, and unique per alert (the fingerprint is
//! Alertmanager's hash of all the labels, so the same rule on two disks is
//! two alerts). A notification without a fingerprint gets Alertmanager's
//! own (FNV-1a over the sorted labels), so both spellings name one alert.
//!
//! The alert's own words are kept with its trigger (`window_triggers`,
//! [`Store::keep_trigger_words`](crate::Store::keep_trigger_words)): its
//! labels, its annotations (`summary`, `description`, `runbook_url`...) and
//! its `generatorURL` (among the annotations, under that name), bounded by
//! [`WindowTrigger::bound_words`]; a resolve keeps its `endsAt`. Words with
//! a control character are not kept, and the alert's answer says so in its
//! `note`: the alert itself is applied.
//!
//! Alertmanager repeats notifications (`repeat_interval`, a retry, every
//! group change): the recorder skips a trigger it has already recorded (the
//! same resource, alert and `startsAt`) and a resolve it has already
//! recorded, so a repeat changes nothing, also across restarts.
//!
//! Every alert gets its own result in the response, and problems of an
//! alert are its own, never the whole notification's (a resource the
//! recorder does not monitor, a missing label, a bad time): they are
//! answered 200, so Alertmanager does not retry forever over one alert the
//! recorder will never take. A failure of the database is different (locked
//! by another program past the writer's wait, full): that alert's result is
//! `retry` and the notification is answered 503 with `Retry-After`, so
//! Alertmanager, which keeps the notification, sends it again; the alerts
//! already applied are then repeats. Rather than queueing alerts in memory
//! (lost with the process, and unbounded while the database stays locked),
//! the sender that already keeps and retries them does. Both times are at
//! most 10 minutes ahead of the recorder's clock; an alert without
//! `startsAt` or `endsAt` acts now.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, clip};
use crate::model::{Timestamp, WindowId, WindowTrigger};
use crate::recorder::{
    AlertAdjustment, AlertOutcome, AlertResolve, IncidentRecorder, TriggerAction,
};

/// The webhook body (`version: "4"`); fields not used are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    status: Option<String>,
    alerts: Vec<Alert>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
    #[serde(default, rename = "generatorURL")]
    generator_url: Option<String>,
    #[serde(default, rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(default, rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// The answer to a webhook request, status included: the router sends it
/// as it is.
#[derive(Debug)]
pub(super) struct Reply {
    /// 200 once every alert is applied or has a problem of its own; 503
    /// when the database could not take one (Alertmanager retries a 5xx);
    /// 400 for a body that is not a webhook payload.
    pub(super) status: u16,
    /// Seconds for a `Retry-After` header, with 503.
    pub(super) retry_after: Option<u32>,
    /// `{"alerts": [...]}` (one result per alert), or `{"error": ...}`.
    pub(super) body: serde_json::Value,
}

/// Seconds a 503 asks the sender to wait (Alertmanager retries on its own
/// backoff, starting near half a second, and ignores the header).
const RETRY_AFTER_S: u32 = 1;

/// What was done with one alert.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct Outcome {
    /// `alertname/fingerprint`, the trigger id.
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_id: Option<String>,
    /// The resource it was matched to.
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    /// `opened`, `extended`, `unchanged`, `resolved`, `not_open`,
    /// `unknown_resource`, `suppressed`, `error` (the alert itself is
    /// wrong) or `retry` (the database could not take it: the whole
    /// notification is answered 503).
    result: &'static str,
    /// The window concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<WindowId>,
    /// The time the alert was taken at, when not its `startsAt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    taken_at: Option<Timestamp>,
    /// Why `taken_at` differs from `startsAt`.
    #[serde(skip_serializing_if = "Option::is_none")]
    adjusted: Option<Adjustment>,
    /// Start of a window it opened (its oldest buffered sample).
    #[serde(skip_serializing_if = "Option::is_none")]
    window_start: Option<Timestamp>,
    /// When the alert was resolved, if a resolve that came before this
    /// firing was applied.
    #[serde(skip_serializing_if = "Option::is_none")]
    resolved_at: Option<Timestamp>,
    /// What a reader should know about the result, in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<String>,
    /// Why, for results that did nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Why an alert was taken at another time than its `startsAt`.
#[derive(Debug, Serialize, PartialEq, Eq)]
struct Adjustment {
    /// `clock_ahead` (startsAt ahead of this host's clock: taken at now) or
    /// `older_than_buffer` (taken at the oldest buffered time).
    reason: &'static str,
    /// By how much, ms.
    by_ms: i64,
}

impl Outcome {
    fn new(trigger_id: String, resource: &str, result: &'static str) -> Outcome {
        Outcome {
            trigger_id: Some(trigger_id),
            resource: Some(resource.to_owned()),
            result,
            window: None,
            taken_at: None,
            adjusted: None,
            window_start: None,
            resolved_at: None,
            note: None,
            error: None,
        }
    }

    fn problem(
        trigger_id: Option<String>,
        resource: Option<String>,
        result: &'static str,
        error: String,
    ) -> Outcome {
        Outcome {
            trigger_id,
            resource,
            error: Some(error),
            ..Outcome::new(String::new(), "", result)
        }
    }
}

impl Notification {
    /// Checks what the webhook version promises.
    fn check(&self) -> Result<(), String> {
        match self.version.as_deref() {
            None | Some("4") => {}
            Some(v) => {
                return Err(format!(
                    "webhook payload version {:?} is not supported (version 4 is)",
                    clip(v)
                ));
            }
        }
        match self.status.as_deref() {
            None | Some("firing") | Some("resolved") => Ok(()),
            Some(s) => Err(format!(
                "status {:?} is neither firing nor resolved",
                clip(s)
            )),
        }
    }
}

/// Answers one webhook request: parses `body`, applies every alert (see
/// the module docs) and says with which status to answer.
pub(super) fn webhook(recorder: &IncidentRecorder, body: &[u8], resource_label: &str) -> Reply {
    let error = |message: String| Reply {
        status: 400,
        retry_after: None,
        body: serde_json::json!({ "error": message }),
    };
    let n: Notification = match serde_json::from_slice(body) {
        Ok(n) => n,
        Err(e) => return error(format!("not an Alertmanager webhook payload: {e}")),
    };
    if let Err(e) = n.check() {
        return error(e);
    }
    let outcomes: Vec<Outcome> = n
        .alerts
        .iter()
        .map(|a| apply_one(recorder, a, resource_label))
        .collect();
    let retry = outcomes.iter().any(|o| o.result == "retry");
    if retry {
        tracing::warn!(
            alerts = outcomes.len(),
            "the database could not take an alert (locked by another program, or full): answered 503 for Alertmanager to retry"
        );
    }
    Reply {
        status: if retry { 503 } else { 200 },
        retry_after: retry.then_some(RETRY_AFTER_S),
        body: serde_json::json!({ "alerts": outcomes }),
    }
}

/// The result of an error about the alert itself, or `None` for a failure
/// of the database (locked, full, I/O): the sender should try again.
fn alert_problem(e: &Error) -> Option<&'static str> {
    match e {
        Error::Suppressed { .. } => Some("suppressed"),
        Error::InvalidResourceId { .. }
        | Error::NotMonitored { .. }
        | Error::TooManyResources { .. } => Some("unknown_resource"),
        Error::InvalidTimestamp { .. }
        | Error::AheadOfWallClock { .. }
        | Error::InvalidTriggerId { .. }
        | Error::InvalidLabel { .. } => Some("error"),
        _ => None,
    }
}

fn apply_one(recorder: &IncidentRecorder, a: &Alert, resource_label: &str) -> Outcome {
    let fingerprint = match &a.fingerprint {
        Some(f) if !f.is_empty() => f.clone(),
        _ => fingerprint(&a.labels),
    };
    let trigger_id = match a.labels.get("alertname") {
        Some(name) => format!("{name}/{fingerprint}"),
        None => fingerprint,
    };
    if trigger_id.len() > 1024 || trigger_id.chars().any(char::is_control) {
        return Outcome::problem(
            Some(clip(&trigger_id)),
            None,
            "error",
            "the alert name is over 1024 bytes or has control characters".into(),
        );
    }
    let Some(resource) = a.labels.get(resource_label) else {
        tracing::info!(alert = %trigger_id, label = resource_label, "alert without the resource label; ignored");
        return Outcome::problem(
            Some(trigger_id),
            None,
            "unknown_resource",
            format!("the alert has no label {resource_label:?} to name its resource"),
        );
    };
    let known = |e: Error| -> Outcome {
        let result = alert_problem(&e);
        let message = match result {
            Some("error") | None => crate::error_chain(&e),
            Some(_) => e.to_string(),
        };
        match result {
            Some("unknown_resource") => {
                tracing::warn!(alert = %trigger_id, resource = ?clip(resource), "alert for a resource the recorder does not record")
            }
            None => {
                tracing::warn!(alert = %trigger_id, resource = ?clip(resource), error = %message, "cannot store alert now; asking Alertmanager to retry")
            }
            Some(_) => {
                tracing::warn!(alert = %trigger_id, resource = ?clip(resource), error = %message, "cannot apply alert")
            }
        }
        Outcome::problem(
            Some(trigger_id.clone()),
            Some(resource.clone()),
            result.unwrap_or("retry"),
            message,
        )
    };
    let time = |field: &str, text: Option<&str>| -> Result<Option<Timestamp>, String> {
        match text {
            None | Some("") => Ok(None),
            // Go's zero time: no time.
            Some(t) if t.starts_with("0001-01-01") => Ok(None),
            Some(t) => Timestamp::parse_rfc3339(t)
                .map(Some)
                .map_err(|e| format!("invalid {field}: {e}")),
        }
    };
    let bad =
        |e: String| Outcome::problem(Some(trigger_id.clone()), Some(resource.clone()), "error", e);
    // No startsAt (a hand-made payload): now, on the recorder's clock.
    let starts = match time("startsAt", a.starts_at.as_deref()) {
        Ok(t) => t,
        Err(e) => return bad(e),
    };
    match a.status.as_str() {
        "firing" => match recorder.record_alert(resource.as_str(), &trigger_id, starts) {
            Ok(done) => {
                let (window, fired) = (done.window.clone(), starts.unwrap_or(done.taken_at));
                let mut outcome = firing(recorder, trigger_id.clone(), resource, starts, done);
                if let Some(problem) = keep_words(recorder, a, &window, &trigger_id, fired) {
                    tracing::warn!(alert = %trigger_id, resource = %clip(resource), problem = %problem, "alert words not kept");
                    outcome.note = Some(match outcome.note.take() {
                        Some(n) => format!("{n}; {problem}"),
                        None => problem,
                    });
                }
                outcome
            }
            Err(e) => known(e),
        },
        "resolved" => {
            let ends = match time("endsAt", a.ends_at.as_deref()) {
                Ok(t) => t,
                Err(e) => return bad(e),
            };
            let window = recorder.recording_window(resource);
            match recorder.resolve_alert(resource, &trigger_id, starts, ends) {
                Ok(done) => {
                    // The end as sent, beside the time it was resolved at.
                    if let (Some(starts), Some(ends), true) =
                        (starts, ends, done.matched || done.repeat)
                    {
                        let kept =
                            recorder
                                .store()
                                .keep_resolve_end(resource, &trigger_id, starts, ends);
                        if let Err(e) = kept {
                            tracing::warn!(alert = %trigger_id, error = %crate::error_chain(&e), "endsAt not kept");
                        }
                    }
                    resolved(trigger_id.clone(), resource, window, &done)
                }
                Err(e) => known(e),
            }
        }
        other => bad(format!(
            "alert status {:?} is neither firing nor resolved",
            clip(other)
        )),
    }
}

/// Keeps the alert's labels and annotations (its `generatorURL` among
/// them) on the trigger it recorded, bounded ([`WindowTrigger::bound_words`]).
/// Returns what went wrong, for the answer's note: words with a control
/// character are not kept (the alert itself is), nor are words the
/// database could not take (the trigger is recorded already).
fn keep_words(
    recorder: &IncidentRecorder,
    a: &Alert,
    window: &WindowId,
    trigger_id: &str,
    fired: Timestamp,
) -> Option<String> {
    let mut problems = Vec::new();
    let mut words = crate::TriggerWords::default();
    match WindowTrigger::bound_words(a.labels.clone(), false) {
        Ok(labels) => words.labels = labels,
        Err(e) => problems.push(format!("labels not kept: {e}")),
    }
    let mut annotations = a.annotations.clone();
    if let Some(url) = a.generator_url.as_ref().filter(|u| !u.is_empty()) {
        annotations.insert("generatorURL".into(), url.clone());
    }
    match WindowTrigger::bound_words(annotations, true) {
        Ok(annotations) => words.annotations = annotations,
        Err(e) => problems.push(format!("annotations not kept: {e}")),
    }
    let kept = recorder
        .store()
        .keep_trigger_words(window.as_str(), trigger_id, fired, &words);
    if let Err(e) = kept {
        problems.push(format!(
            "the alert's words were not kept: {}",
            crate::error_chain(&e)
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

/// The answer for a firing alert the recorder took, logged.
fn firing(
    recorder: &IncidentRecorder,
    trigger_id: String,
    resource: &str,
    starts: Option<Timestamp>,
    done: AlertOutcome,
) -> Outcome {
    let result = match done.action {
        TriggerAction::Opened => "opened",
        TriggerAction::Extended => "extended",
        TriggerAction::AlreadyRecorded => "unchanged",
    };
    let mut notes = Vec::new();
    // A repeat was taken when it first came; what now would make of its
    // time says nothing about the window.
    let adjustment = done
        .adjusted
        .filter(|_| done.action != TriggerAction::AlreadyRecorded);
    let adjusted = adjustment.map(|a| match a {
        AlertAdjustment::Ahead { by_ms } => {
            notes.push(format!(
                "startsAt is {} ahead of this host's clock: taken at now ({}); the trigger keeps startsAt",
                ms_text(by_ms),
                done.taken_at
            ));
            Adjustment {
                reason: "clock_ahead",
                by_ms,
            }
        }
        AlertAdjustment::Late { by_ms } => {
            notes.push(format!(
                "startsAt is {} older than the buffers reach (--pre + the notification allowance): taken at the oldest buffered time ({}); the trigger keeps startsAt",
                ms_text(by_ms),
                done.taken_at
            ));
            Adjustment {
                reason: "older_than_buffer",
                by_ms,
            }
        }
    });
    let pre = recorder.config().pre_incident_window;
    let interval = recorder.config().sample_interval;
    if let Some(start) = done.window_start {
        let wanted = done.taken_at.saturating_sub(pre);
        if start > wanted.saturating_add(interval) {
            notes.push(format!(
                "the buffer held samples only from {start}: the window has {} before the alert instead of --pre {}",
                ms_text(done.taken_at.as_unix_ms().saturating_sub(start.as_unix_ms()).max(0)),
                ms_text(i64::try_from(pre.as_millis()).unwrap_or(i64::MAX))
            ));
        }
    }
    if let Some(at) = done.resolved_at {
        notes.push(format!(
            "a resolve of this alert (at {at}) came before this firing: the window records --post after it and completes"
        ));
    }
    let note = (!notes.is_empty()).then(|| notes.join("; "));
    if result != "unchanged" {
        match &note {
            Some(n) => {
                tracing::warn!(alert = %trigger_id, resource = %clip(resource), window = %done.window, result, starts_at = ?starts.map(|t| t.to_string()), note = %n, "alert firing")
            }
            None => {
                tracing::info!(alert = %trigger_id, resource = %clip(resource), window = %done.window, result, "alert firing")
            }
        }
    }
    Outcome {
        window: Some(done.window),
        taken_at: adjustment.is_some().then_some(done.taken_at),
        adjusted,
        window_start: done.window_start,
        resolved_at: done.resolved_at,
        note,
        ..Outcome::new(trigger_id, resource, result)
    }
}

/// The answer for a resolved alert, logged.
fn resolved(
    trigger_id: String,
    resource: &str,
    window: Option<WindowId>,
    done: &AlertResolve,
) -> Outcome {
    let mut notes = Vec::new();
    if done.ends_before_start {
        notes.push(format!(
            "endsAt is before startsAt: resolved at startsAt ({})",
            done.at
        ));
    }
    let result = if done.matched {
        tracing::info!(alert = %trigger_id, resource = %clip(resource), "alert resolved");
        "resolved"
    } else {
        if !done.repeat {
            notes.push(
                "no firing alert to resolve: kept, so a firing of this alert that arrives later opens its window and completes it"
                    .to_owned(),
            );
            tracing::info!(alert = %trigger_id, resource = %clip(resource), "resolve of an alert not firing here; kept for a late firing");
        }
        "not_open"
    };
    Outcome {
        window: window.filter(|_| done.matched),
        note: (!notes.is_empty()).then(|| notes.join("; ")),
        ..Outcome::new(trigger_id, resource, result)
    }
}

/// `90s`, `2m30s`, `1500ms`: a duration in ms, for notes.
fn ms_text(ms: i64) -> String {
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let s = ms / 1_000;
    match (s / 3_600, s % 3_600 / 60, s % 60) {
        (0, 0, s) => format!("{s}s"),
        (0, m, 0) => format!("{m}m"),
        (0, m, s) => format!("{m}m{s}s"),
        (h, m, _) if h < 48 => format!("{h}h{m}m"),
        (h, _, _) => format!("{}d", h / 24),
    }
}

/// Alertmanager's fingerprint of a label set: FNV-1a (64 bit) over the
/// labels sorted by name, each name and value followed by a 0xff byte, as
/// 16 hex digits (`model.LabelSet.Fingerprint` in `prometheus/common`).
pub(super) fn fingerprint(labels: &BTreeMap<String, String>) -> String {
    const OFFSET: u64 = 14_695_981_039_346_656_037;
    const PRIME: u64 = 1_099_511_628_211;
    let mut h = OFFSET;
    let mut add = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    };
    for (name, value) in labels {
        add(name.as_bytes());
        add(&[0xff]);
        add(value.as_bytes());
        add(&[0xff]);
    }
    format!("{h:016x}")
}

/// True for a trigger id of the form this listener gives alerts
/// (`name/` and 16 hex digits).
pub fn is_alertmanager_id(id: &str) -> bool {
    let tail = id.rsplit('/').next().unwrap_or(id);
    tail.len() == 16 && tail.bytes().all(|b| b.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_alertmanagers() {
        // Alertmanager's fingerprint of {} is FNV-1a's offset basis.
        assert_eq!(fingerprint(&BTreeMap::new()), "cbf29ce484222325");
        let labels: BTreeMap<String, String> = [("alertname", "HighCPU"), ("instance", "h:9100")]
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        let f = fingerprint(&labels);
        assert_eq!(f.len(), 16);
        assert!(is_alertmanager_id(&format!("HighCPU/{f}")));
        assert!(!is_alertmanager_id("cpu>90 for 1m"));
        assert!(!is_alertmanager_id("x{mountpoint=\"/\"}<1e9"));
    }

    #[test]
    fn notifications_parse_and_check_their_version() {
        let n: Notification = serde_json::from_str(
            r#"{"version":"4","status":"firing","receiver":"r","groupKey":"{}","truncatedAlerts":0,
                "alerts":[{"status":"firing","labels":{"alertname":"A","instance":"h:1"},
                "annotations":{"summary":"s"},"startsAt":"2026-11-24T10:00:00.123Z",
                "endsAt":"0001-01-01T00:00:00Z","generatorURL":"http://x","fingerprint":"0123456789abcdef"}]}"#,
        )
        .unwrap();
        assert!(n.check().is_ok());
        assert_eq!(n.alerts[0].fingerprint.as_deref(), Some("0123456789abcdef"));
        let old: Notification = serde_json::from_str(r#"{"version":"3","alerts":[]}"#).unwrap();
        assert!(old.check().unwrap_err().contains("version \"3\""));
    }
}
