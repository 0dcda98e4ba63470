//! Alertmanager's webhook (payload version 4) as triggers.
//!
//! Alertmanager decides *when* something is an incident; the recorder
//! already holds the minutes before it. Each alert of a notification is
//! matched to a resource by one of its labels (`instance` by default, which
//! is the `host:port` of the scrape target the alert is about, and the id a
//! `--scrape` target gets) and:
//!
//! - `firing`: opens an `alert` window at `startsAt` (with the buffered
//!   samples before it), or extends the one recording;
//! - `resolved`: resolves that alert at `endsAt`, so the window (held while
//!   the alert fires) records its post window and completes.
//!
//! The trigger id is `alertname/fingerprint` (`HighCPU/3f2a9c1b0d4e5f60`):
//! readable in `list`, and unique per alert (the fingerprint is
//! Alertmanager's hash of all the labels, so the same rule on two disks is
//! two alerts). A notification without a fingerprint gets Alertmanager's
//! own (FNV-1a over the sorted labels), so both spellings name one alert.
//!
//! Alertmanager repeats notifications (`repeat_interval`, a retry, every
//! group change): the recorder skips a trigger it has already recorded (the
//! same resource, alert and `startsAt`) and a resolve it has already
//! recorded, so a repeat changes nothing, also across restarts.
//!
//! Every alert gets its own result in the response, and problems are per
//! alert, never for the whole notification (a resource the recorder does
//! not monitor, a missing label): a notification is answered 200 once it
//! parses, so Alertmanager does not retry it forever over one alert the
//! recorder cannot take. Both times act as the recorder's
//! [`record_trigger`](IncidentRecorder::record_trigger) and
//! [`resolve_trigger_at`](IncidentRecorder::resolve_trigger_at) say: at most
//! 10 minutes ahead of the recorder's clock; an alert without `startsAt` or
//! `endsAt` acts now.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{Error, clip};
use crate::model::{Timestamp, Trigger, WindowId};
use crate::recorder::{IncidentRecorder, TriggerAction};

/// The webhook body (`version: "4"`); fields not used are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Notification {
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
    #[serde(default, rename = "startsAt")]
    starts_at: Option<String>,
    #[serde(default, rename = "endsAt")]
    ends_at: Option<String>,
    #[serde(default)]
    fingerprint: Option<String>,
}

/// What was done with one alert.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub(super) struct Outcome {
    /// `alertname/fingerprint`, the trigger id.
    #[serde(skip_serializing_if = "Option::is_none")]
    trigger_id: Option<String>,
    /// The resource it was matched to.
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<String>,
    /// `opened`, `extended`, `unchanged`, `resolved`, `not_open`,
    /// `unknown_resource`, `suppressed` or `error`.
    result: &'static str,
    /// The window concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<WindowId>,
    /// Why, for results that did nothing.
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

impl Outcome {
    fn problem(
        trigger_id: Option<String>,
        resource: Option<String>,
        result: &'static str,
        error: String,
    ) -> Outcome {
        Outcome {
            trigger_id,
            resource,
            result,
            window: None,
            error: Some(error),
        }
    }
}

impl Notification {
    /// Checks what the webhook version promises.
    pub(super) fn check(&self) -> Result<(), String> {
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

/// Applies every alert of `n`; see the module docs.
pub(super) fn apply(
    recorder: &IncidentRecorder,
    n: &Notification,
    resource_label: &str,
) -> Vec<Outcome> {
    n.alerts
        .iter()
        .map(|a| apply_one(recorder, a, resource_label))
        .collect()
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
        let (result, message) = match &e {
            Error::Suppressed { .. } => ("suppressed", e.to_string()),
            Error::InvalidResourceId { .. } | Error::NotMonitored { .. } => {
                ("unknown_resource", e.to_string())
            }
            _ => ("error", crate::error_chain(&e)),
        };
        if result == "unknown_resource" {
            tracing::warn!(alert = %trigger_id, resource = ?clip(resource), "alert for a resource the recorder does not record");
        } else {
            tracing::warn!(alert = %trigger_id, resource = ?clip(resource), error = %message, "cannot apply alert");
        }
        Outcome::problem(
            Some(trigger_id.clone()),
            Some(resource.clone()),
            result,
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
    match a.status.as_str() {
        "firing" => {
            // No startsAt (a hand-made payload): now, on the recorder's clock.
            let starts = match time("startsAt", a.starts_at.as_deref()) {
                Ok(t) => t,
                Err(e) => {
                    return Outcome::problem(Some(trigger_id), Some(resource.clone()), "error", e);
                }
            };
            let trigger = Trigger::alert(trigger_id.clone());
            match recorder.record_trigger(resource.as_str(), trigger, starts) {
                Ok(outcome) => {
                    let result = match outcome.action {
                        TriggerAction::Opened => "opened",
                        TriggerAction::Extended => "extended",
                        TriggerAction::AlreadyRecorded => "unchanged",
                    };
                    if result != "unchanged" {
                        tracing::info!(alert = %trigger_id, resource = %clip(resource), window = %outcome.window, result, "alert firing");
                    }
                    Outcome {
                        trigger_id: Some(trigger_id),
                        resource: Some(resource.clone()),
                        result,
                        window: Some(outcome.window),
                        error: None,
                    }
                }
                Err(e) => known(e),
            }
        }
        "resolved" => {
            let ends = match time("endsAt", a.ends_at.as_deref()) {
                Ok(t) => t,
                Err(e) => {
                    return Outcome::problem(Some(trigger_id), Some(resource.clone()), "error", e);
                }
            };
            let window = recorder.recording_window(resource);
            match recorder.resolve_trigger_at(resource, &trigger_id, ends) {
                Ok(true) => {
                    tracing::info!(alert = %trigger_id, resource = %clip(resource), "alert resolved");
                    Outcome {
                        trigger_id: Some(trigger_id),
                        resource: Some(resource.clone()),
                        result: "resolved",
                        window,
                        error: None,
                    }
                }
                Ok(false) => Outcome {
                    trigger_id: Some(trigger_id),
                    resource: Some(resource.clone()),
                    result: "not_open",
                    window: None,
                    error: None,
                },
                Err(e) => known(e),
            }
        }
        other => Outcome::problem(
            Some(trigger_id),
            Some(resource.clone()),
            "error",
            format!(
                "alert status {:?} is neither firing nor resolved",
                clip(other)
            ),
        ),
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
