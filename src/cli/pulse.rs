//! Pulse's `incident_windows.json`: the seed's file shape, both ways.
//!
//! The seed (`incident_recorder.go`) persisted `{"completed_windows": [...]}`
//! with Go's `encoding/json`: string fields with `omitempty` are left out
//! when empty, times are RFC 3339 with nanoseconds, maps are sorted by key,
//! and `summary.duration_ms` is a Go `time.Duration`, i.e. **nanoseconds**
//! despite its name. These types write exactly those fields, with Go's
//! conventions (integral floats as `3`, trailing zeros of fractional seconds
//! trimmed, two-space indentation), so the export reads back in Pulse; they
//! read files Pulse wrote, including `null` for empty maps and slices and
//! times with any UTC offset.
//!
//! Going from Pulse to here, three things are repaired rather than copied,
//! since the seed got them wrong: the window starts at its first point (the
//! seed wrote trigger time − pre-incident window, whether or not samples went
//! back that far); the summary is recomputed from the points (with
//! milliseconds and percentiles); and the opening trigger, which the seed
//! did not store, is dated five minutes (the seed's default pre-incident
//! window) after the seed's start time, within the window.

use std::collections::BTreeMap;
use std::time::Duration;

use incident_recorder::{
    DataPoint, IncidentSummary, IncidentWindow, Timestamp, TriggerType, WindowId, WindowStatus,
    WindowTrigger,
};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The seed's default pre-incident window (its start time = trigger − this).
const SEED_PRE_INCIDENT_WINDOW: Duration = Duration::from_secs(5 * 60);

/// One element of `completed_windows`, field for field as the seed's
/// `IncidentWindow`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PulseWindow {
    id: String,
    resource_id: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "or_default"
    )]
    resource_name: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "or_default"
    )]
    resource_type: String,
    trigger_type: String,
    #[serde(
        default,
        skip_serializing_if = "String::is_empty",
        deserialize_with = "or_default"
    )]
    trigger_id: String,
    start_time: GoTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end_time: Option<GoTime>,
    status: String,
    #[serde(default, deserialize_with = "or_default")]
    data_points: Vec<PulsePoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    summary: Option<PulseSummary>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PulsePoint {
    timestamp: GoTime,
    #[serde(default, deserialize_with = "or_default")]
    metrics: BTreeMap<String, GoFloat>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Debug, Serialize, Deserialize)]
struct PulseSummary {
    /// Nanoseconds (a Go `time.Duration`), whatever the name says.
    duration_ms: i64,
    data_points: u64,
    #[serde(default, deserialize_with = "or_default")]
    peaks: BTreeMap<String, GoFloat>,
    #[serde(default, deserialize_with = "or_default")]
    lows: BTreeMap<String, GoFloat>,
    #[serde(default, deserialize_with = "or_default")]
    averages: BTreeMap<String, GoFloat>,
    #[serde(default, deserialize_with = "or_default")]
    changes: BTreeMap<String, GoFloat>,
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "or_default"
    )]
    anomalies: Vec<String>,
}

impl PulseWindow {
    /// The seed's shape of a closed window (`None` for a recording one: the
    /// seed's file only ever held completed windows).
    pub fn from_window(w: &IncidentWindow) -> Option<PulseWindow> {
        if w.status == WindowStatus::Recording {
            return None;
        }
        let floats = |m: &BTreeMap<String, f64>| -> BTreeMap<String, GoFloat> {
            m.iter().map(|(k, v)| (k.clone(), GoFloat(*v))).collect()
        };
        // Pulse writes the trigger time minus its pre-incident window, and
        // reads the trigger back as start + 5 min: so does the import here.
        let fired = w
            .trigger_time
            .or_else(|| {
                w.triggers
                    .iter()
                    .find(|t| t.opened_window)
                    .map(|t| t.fired_at)
            })
            .unwrap_or(w.start_time);
        Some(PulseWindow {
            id: w.id.to_string(),
            resource_id: w.resource_id.clone(),
            resource_name: w.resource_name.clone().unwrap_or_default(),
            resource_type: w.resource_type.clone().unwrap_or_default(),
            trigger_type: w.trigger_type.to_string(),
            trigger_id: w.trigger_id.clone().unwrap_or_default(),
            start_time: GoTime(fired.saturating_sub(SEED_PRE_INCIDENT_WINDOW)),
            end_time: w.end_time.map(GoTime),
            status: w.status.to_string(),
            data_points: w
                .data_points
                .iter()
                .map(|p| PulsePoint {
                    timestamp: GoTime(p.timestamp),
                    metrics: floats(&p.metrics),
                    metadata: p.metadata.clone().filter(|m| !m.is_empty()),
                })
                .collect(),
            summary: w.summary.as_ref().map(|s| PulseSummary {
                duration_ms: s.duration_ms.saturating_mul(1_000_000),
                data_points: s.data_points,
                peaks: floats(&s.peaks),
                lows: floats(&s.lows),
                averages: floats(&s.averages),
                changes: floats(&s.changes),
                anomalies: s.anomalies.clone(),
            }),
        })
    }

    /// The window to import (see the module docs for what is repaired).
    pub fn into_window(self) -> Result<IncidentWindow, String> {
        let trigger_type: TriggerType = self.trigger_type.parse().map_err(|e| format!("{e}"))?;
        let status: WindowStatus = self.status.parse().map_err(|e| format!("{e}"))?;
        let non_empty = |s: String| Some(s).filter(|s| !s.is_empty());
        let data_points: Vec<DataPoint> = self
            .data_points
            .into_iter()
            .map(|p| DataPoint {
                timestamp: p.timestamp.0,
                metrics: p.metrics.into_iter().map(|(k, v)| (k, v.0)).collect(),
                metadata: p.metadata.filter(|m| !m.is_empty()),
            })
            .collect();
        let first = data_points.iter().map(|p| p.timestamp).min();
        let last = data_points.iter().map(|p| p.timestamp).max();
        let end = self.end_time.map(|t| t.0);
        let latest = last.max(end).unwrap_or(self.start_time.0);
        let fired = self
            .start_time
            .0
            .saturating_add(SEED_PRE_INCIDENT_WINDOW)
            .min(latest);
        let trigger_id = non_empty(self.trigger_id);
        Ok(IncidentWindow {
            id: WindowId::new(self.id),
            resource_id: self.resource_id,
            resource_name: non_empty(self.resource_name),
            resource_type: non_empty(self.resource_type),
            trigger_type,
            trigger_id: trigger_id.clone(),
            trigger_time: Some(fired),
            start_time: first.unwrap_or(self.start_time.0),
            end_time: end,
            deadline: None,
            status,
            notes: Vec::new(),
            triggers: vec![WindowTrigger {
                trigger_type,
                trigger_id,
                fired_at: fired,
                resolved_at: None,
                opened_window: true,
                // Pulse's format has no field for an alert's words.
                labels: Default::default(),
                annotations: Default::default(),
                rule: None,
                ends_at: None,
            }],
            data_points,
            summary: self.summary.map(|s| IncidentSummary {
                anomalies: s.anomalies,
                ..IncidentSummary::default()
            }),
        })
    }
}

/// Go writes `null` for nil maps and slices.
fn or_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A time as Go's `time.Time` marshals it: RFC 3339, fractional seconds
/// without trailing zeros (`2026-11-24T10:00:00.25Z`).
#[derive(Debug, Clone, Copy)]
struct GoTime(Timestamp);

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let text = self.0.to_string(); // 2026-11-24T10:00:00.250Z
        let (seconds, fraction) = text.trim_end_matches('Z').split_at(19);
        let fraction = fraction.trim_end_matches('0').trim_end_matches('.');
        s.collect_str(&format_args!("{seconds}{fraction}Z"))
    }
}

impl<'de> Deserialize<'de> for GoTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GoTime, D::Error> {
        Timestamp::deserialize(d).map(GoTime)
    }
}

/// A float as Go's `encoding/json` writes one: integral values without `.0`.
#[derive(Debug, Clone, Copy)]
struct GoFloat(f64);

impl Serialize for GoFloat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.fract() == 0.0 && v.abs() < 9.0e15 {
            s.serialize_i64(v as i64)
        } else {
            s.serialize_f64(v)
        }
    }
}

impl<'de> Deserialize<'de> for GoFloat {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<GoFloat, D::Error> {
        f64::deserialize(d).map(GoFloat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn go_conventions_for_times_and_floats() {
        assert_eq!(
            serde_json::to_string(&GoTime(ts("2026-11-24T10:00:00Z"))).unwrap(),
            "\"2026-11-24T10:00:00Z\""
        );
        assert_eq!(
            serde_json::to_string(&GoTime(ts("2026-11-24T10:00:00.250Z"))).unwrap(),
            "\"2026-11-24T10:00:00.25Z\""
        );
        assert_eq!(serde_json::to_string(&GoFloat(3.0)).unwrap(), "3");
        assert_eq!(serde_json::to_string(&GoFloat(-0.5)).unwrap(), "-0.5");
        assert_eq!(serde_json::to_string(&GoFloat(93.25)).unwrap(), "93.25");
    }

    #[test]
    fn a_seed_window_is_repaired_on_the_way_in() {
        let text = r#"{
          "id": "iw-vm-101-20261124100500-1", "resource_id": "vm-101", "resource_name": "web",
          "trigger_type": "alert", "trigger_id": "", "start_time": "2026-11-24T11:00:00.123456789+01:00",
          "end_time": "2026-11-24T10:15:00Z", "status": "complete",
          "data_points": [
            {"timestamp": "2026-11-24T10:03:00Z", "metrics": {"cpu": 3}},
            {"timestamp": "2026-11-24T10:06:00Z", "metrics": null, "metadata": {"n": 1}}
          ],
          "summary": {"duration_ms": 180000000000, "data_points": 2, "peaks": null, "lows": {},
                      "averages": {}, "changes": {}, "anomalies": ["cpu spike"]}
        }"#;
        let w = serde_json::from_str::<PulseWindow>(text)
            .unwrap()
            .into_window()
            .unwrap();
        assert_eq!(
            w.start_time,
            ts("2026-11-24T10:03:00Z"),
            "starts at the first point"
        );
        assert_eq!(w.trigger_id, None);
        assert_eq!(w.resource_type, None);
        assert_eq!(w.triggers[0].fired_at, ts("2026-11-24T10:05:00.123Z"));
        assert_eq!(w.data_points[0].metrics["cpu"], 3.0);
        assert!(w.data_points[1].metrics.is_empty());
        assert_eq!(w.summary.unwrap().anomalies, vec!["cpu spike".to_owned()]);

        let bad = text.replace("\"complete\"", "\"done\"");
        let err = serde_json::from_str::<PulseWindow>(&bad)
            .unwrap()
            .into_window()
            .unwrap_err();
        assert!(err.contains("done"), "{err}");
    }
}
