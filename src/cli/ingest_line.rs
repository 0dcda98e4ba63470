//! The JSON-lines format `ingest` reads, one object per line:
//!
//! ```text
//! {"type":"sample","resource":"vm-101","name":"web","kind":"vm","ts":1732440000000,"metrics":{"cpu":93.5},"metadata":{"node":"pve1"}}
//! {"type":"trigger","resource":"vm-101","trigger":"alert","trigger_id":"cpu-high","ts":"2026-11-24T10:00:00Z"}
//! {"type":"resolve","resource":"vm-101","trigger_id":"cpu-high"}
//! {"type":"stop","resource":"vm-101"}
//! {"type":"processes","resource":"vm-101","ts":1732440000000,"processes":[{"pid":42,"name":"java","cpu":180.5,"rss":2147483648,"user":"app","cmdline":"java -jar app.jar"}]}
//! ```
//!
//! A `processes` line is a snapshot of the resource's top processes: kept
//! in the recorder's ring for a window that opens later (its pre-incident
//! minutes), written at once to a window that records (see
//! `IncidentRecorder::push_processes`).
//!
//! `ts` is Unix milliseconds (a number or a string of digits; a number below
//! 10^11 looks like seconds and is refused) or an RFC 3339 string; it is
//! required on samples and optional elsewhere (then the line happens at the
//! latest time seen).
//! `name`, `kind` and `metadata` are optional; `trigger` defaults to
//! `manual`. Unknown fields are ignored, so monitors can send more.

use std::collections::BTreeMap;
use std::fmt;

use incident_recorder::{Timestamp, TriggerType};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// One parsed line.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Line {
    Sample(SampleLine),
    Trigger {
        resource: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        kind: Option<String>,
        #[serde(default = "manual")]
        trigger: TriggerType,
        #[serde(default)]
        trigger_id: Option<String>,
        #[serde(default)]
        ts: Option<LineTime>,
    },
    Resolve {
        resource: String,
        trigger_id: String,
        #[serde(default)]
        ts: Option<LineTime>,
    },
    Stop {
        resource: String,
        #[serde(default)]
        ts: Option<LineTime>,
    },
    /// A snapshot of the resource's top processes (fields of
    /// `incident_recorder::ProcessSample`: pid, name, cpu, rss required;
    /// cmdline, user, read_bps, write_bps optional).
    Processes {
        resource: String,
        #[serde(default)]
        ts: Option<LineTime>,
        processes: Vec<incident_recorder::ProcessSample>,
    },
}

/// A `sample` line.
#[derive(Debug, Deserialize, PartialEq)]
pub struct SampleLine {
    pub resource: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    pub ts: LineTime,
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

fn manual() -> TriggerType {
    TriggerType::Manual
}

impl Line {
    /// The line's own time, if it has one.
    pub fn time(&self) -> Option<Timestamp> {
        match self {
            Line::Sample(s) => Some(s.ts.0),
            Line::Trigger { ts, .. }
            | Line::Resolve { ts, .. }
            | Line::Stop { ts, .. }
            | Line::Processes { ts, .. } => ts.map(|t| t.0),
        }
    }
}

/// Parses one line; the error reads well after `line N: `, and a value of
/// the wrong type names its field (`field "metrics", metric "cpu": invalid
/// type: string "x", expected f64`).
pub fn parse(text: &str) -> Result<Line, String> {
    serde_json::from_str(text).map_err(|e| {
        // serde_json appends " at line 1 column C"; within one line only the
        // column means anything.
        let message = e.to_string();
        let suffix = format!(" at line {} column {}", e.line(), e.column());
        let message = match message.strip_suffix(&suffix) {
            Some(m) if e.column() > 0 => format!("{m} (column {})", e.column()),
            Some(m) => m.to_owned(),
            None => message,
        };
        // The tagged enum buffers the object, so serde's message has lost
        // the field; on this (rare) path the fields are checked one by one.
        // (Only serde's own messages: ours already name what they are about.)
        let generic = ["invalid type", "invalid value", "invalid length"];
        if e.classify() == serde_json::error::Category::Data
            && generic.iter().any(|g| message.starts_with(g))
            && let Some(field) = wrong_field(text)
        {
            return field;
        }
        message
    })
}

/// The first field of a well-formed line whose value has the wrong type:
/// `field "resource": invalid type: ...`.
fn wrong_field(text: &str) -> Option<String> {
    use serde::de::DeserializeOwned;
    use serde_json::Value;
    fn check<T: DeserializeOwned>(v: &Value) -> Result<(), String> {
        T::deserialize(v).map(drop).map_err(|e| e.to_string())
    }
    fn metrics(v: &Value) -> Result<(), String> {
        let Value::Object(map) = v else {
            return check::<BTreeMap<String, f64>>(v);
        };
        for (name, value) in map {
            check::<f64>(value).map_err(|e| format!("metric {name:?}: {e}"))?;
        }
        Ok(())
    }
    type Check = fn(&Value) -> Result<(), String>;
    let common: [(&str, Check); 3] = [
        ("resource", check::<String>),
        ("name", check::<Option<String>>),
        ("kind", check::<Option<String>>),
    ];
    let Ok(Value::Object(object)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let specific: &[(&str, Check)] = match object.get("type")?.as_str()? {
        "sample" => &[
            ("ts", check::<LineTime>),
            ("metrics", metrics),
            ("metadata", check::<Option<serde_json::Map<String, Value>>>),
        ],
        "trigger" => &[
            ("trigger", check::<TriggerType>),
            ("trigger_id", check::<Option<String>>),
            ("ts", check::<Option<LineTime>>),
        ],
        "resolve" => &[
            ("trigger_id", check::<String>),
            ("ts", check::<Option<LineTime>>),
        ],
        "stop" => &[("ts", check::<Option<LineTime>>)],
        _ => return None,
    };
    common.iter().chain(specific).find_map(|(field, check)| {
        let e = check(object.get(*field)?).err()?;
        // A metric's value says which metric: `field "metrics", metric "cpu": ...`.
        let joint = if e.starts_with("metric ") { ", " } else { ": " };
        Some(format!("field {field:?}{joint}{e}"))
    })
}

/// A line's time: Unix milliseconds (a number, or a string of digits) or
/// RFC 3339 text.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LineTime(pub Timestamp);

/// Milliseconds below this (1973-03-03) are taken for a mistake: they look
/// like Unix seconds, which would be recorded in January 1970.
const MIN_MS: i64 = 100_000_000_000;

fn from_ms(ms: i64) -> Result<LineTime, String> {
    if (0..MIN_MS).contains(&ms) {
        return Err(format!(
            "ts {ms} looks like Unix seconds; give milliseconds ({}) or RFC 3339",
            ms.saturating_mul(1000)
        ));
    }
    let t = Timestamp::from_unix_ms(ms);
    if t.is_valid() {
        Ok(LineTime(t))
    } else {
        Err(format!("ts {ms} is outside years 1970..9999"))
    }
}

impl<'de> Deserialize<'de> for LineTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<LineTime, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = LineTime;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("Unix milliseconds or an RFC 3339 time")
            }
            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<LineTime, E> {
                from_ms(ms).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<LineTime, E> {
                self.visit_i64(i64::try_from(ms).unwrap_or(i64::MAX))
            }
            fn visit_f64<E: de::Error>(self, ms: f64) -> Result<LineTime, E> {
                if ms.is_finite() && ms.abs() < 9.0e15 {
                    self.visit_i64(ms.floor() as i64)
                } else {
                    Err(E::custom(format!("ts {ms} is outside years 1970..9999")))
                }
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<LineTime, E> {
                if !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) {
                    let ms = s.parse::<i64>().map_err(E::custom)?;
                    return self.visit_i64(ms);
                }
                let t = Timestamp::parse_rfc3339(s).map_err(E::custom)?;
                self.visit_i64(t.as_unix_ms())
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_795_514_400_000; // 2026-11-24T10:00:00Z

    #[test]
    fn samples_with_either_kind_of_time() {
        let line = parse(r#"{"type":"sample","resource":"vm-101","name":"web","kind":"vm","ts":1795514400000,"metrics":{"cpu":93.5},"metadata":{"node":"pve1"},"extra":1}"#).unwrap();
        let Line::Sample(s) = line else {
            panic!("a sample")
        };
        let (resource, name, kind) = (s.resource, s.name, s.kind);
        let (ts, metrics, metadata) = (s.ts, s.metrics, s.metadata);
        assert_eq!(
            (resource.as_str(), name.as_deref(), kind.as_deref()),
            ("vm-101", Some("web"), Some("vm"))
        );
        assert_eq!(ts.0.as_unix_ms(), T);
        assert_eq!(metrics["cpu"], 93.5);
        assert_eq!(metadata.unwrap()["node"], "pve1");
        let text =
            parse(r#"{"type":"sample","resource":"a","ts":"2026-11-24T10:00:00.5Z","metrics":{}}"#)
                .unwrap();
        assert_eq!(text.time(), Some(Timestamp::from_unix_ms(T + 500)));
        for ts in [
            r#""2026-11-24T11:00:00.5+0100""#,
            r#""1795514400500""#,
            "1795514400500.9",
        ] {
            let line = format!(r#"{{"type":"sample","resource":"a","ts":{ts},"metrics":{{}}}}"#);
            assert_eq!(
                parse(&line).unwrap().time(),
                Some(Timestamp::from_unix_ms(T + 500)),
                "{ts}"
            );
        }
    }

    #[test]
    fn triggers_stops_and_resolves() {
        let t = parse(
            r#"{"type":"trigger","resource":"vm-101","trigger":"alert","trigger_id":"cpu-high"}"#,
        )
        .unwrap();
        assert_eq!(
            t,
            Line::Trigger {
                resource: "vm-101".into(),
                name: None,
                kind: None,
                trigger: TriggerType::Alert,
                trigger_id: Some("cpu-high".into()),
                ts: None
            }
        );
        assert_eq!(t.time(), None);
        let m = parse(r#"{"type":"trigger","resource":"x","ts":1795514400000}"#).unwrap();
        assert!(matches!(
            m,
            Line::Trigger {
                trigger: TriggerType::Manual,
                ..
            }
        ));
        assert!(matches!(
            parse(r#"{"type":"stop","resource":"x"}"#).unwrap(),
            Line::Stop { .. }
        ));
        assert!(matches!(
            parse(r#"{"type":"resolve","resource":"x","trigger_id":"a"}"#).unwrap(),
            Line::Resolve { .. }
        ));
    }

    #[test]
    fn bad_lines_say_why() {
        for (text, why) in [
            ("garbage", "expected value"),
            (r#"{"resource":"x"}"#, "missing field `type`"),
            (
                r#"{"type":"metric","resource":"x"}"#,
                "unknown variant `metric`",
            ),
            (
                r#"{"type":"sample","resource":"x","ts":1795514400000}"#,
                "missing field `metrics`",
            ),
            (
                r#"{"type":"sample","resource":"x","metrics":{}}"#,
                "missing field `ts`",
            ),
            (
                r#"{"type":"sample","resource":"x","ts":"yesterday","metrics":{}}"#,
                "invalid timestamp",
            ),
            (
                r#"{"type":"sample","resource":"x","ts":-5,"metrics":{}}"#,
                "outside years",
            ),
            (
                r#"{"type":"sample","resource":"x","ts":1795514400,"metrics":{}}"#,
                "looks like Unix seconds; give milliseconds (1795514400000) or RFC 3339",
            ),
            (
                r#"{"type":"sample","resource":"x","ts":"2026-11-24","metrics":{}}"#,
                "expected an RFC 3339 time such as 2026-11-24T10:00:00Z",
            ),
            (
                r#"{"type":"sample","resource":"x","ts":1795514400000,"metrics":{"cpu":"high"}}"#,
                r#"field "metrics", metric "cpu": invalid type: string "high", expected f64"#,
            ),
            (
                r#"{"type":"sample","resource":5,"ts":1795514400000,"metrics":{}}"#,
                r#"field "resource": invalid type: integer `5`, expected a string"#,
            ),
            (
                r#"{"type":"sample","resource":"x","ts":1795514400000,"metrics":[1]}"#,
                r#"field "metrics": invalid type: sequence, expected a map"#,
            ),
            (
                r#"{"type":"sample","resource":"x","ts":true,"metrics":{}}"#,
                r#"field "ts": invalid type: boolean `true`, expected Unix milliseconds"#,
            ),
            (
                r#"{"type":"resolve","resource":"x","trigger_id":7}"#,
                r#"field "trigger_id": invalid type: integer `7`, expected a string"#,
            ),
            (
                r#"{"type":"trigger","resource":"x","trigger":"alert","ts":{}}"#,
                r#"field "ts": invalid type: map"#,
            ),
            (
                r#"{"type":"trigger","resource":"x","trigger":"page"}"#,
                "unknown variant `page`",
            ),
        ] {
            let err = parse(text).unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(!err.contains("at line"), "{err}");
        }
    }
}
