//! The data the recorder hands out: windows, their points and summaries.
//!
//! These types mirror the seed's JSON (`IncidentWindow`, `IncidentDataPoint`,
//! `IncidentSummary`) field for field, so a window serialized here reads like one
//! from Pulse's `incident_windows.json`. Fields the seed lacks (`deadline`,
//! `triggers`, percentiles) are added with new names, never by renaming.
//! Two deliberate differences: `duration_ms` holds milliseconds (the seed wrote
//! a Go `time.Duration`, i.e. nanoseconds) and maps are `BTreeMap`s, so output is
//! sorted by metric name and stable from run to run.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::Error;

/// A point in time: whole milliseconds since the Unix epoch, UTC.
///
/// This is exactly what the database stores (`*_ms` columns). In JSON it is an
/// RFC 3339 string, as in the seed; deserializing also accepts an integer of
/// milliseconds, which is what most monitors emit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The earliest timestamp the recorder accepts: the Unix epoch.
    pub const MIN: Timestamp = Timestamp(0);
    /// The latest timestamp the recorder accepts: the last millisecond of year 9999,
    /// so every stored time prints as a four-digit-year RFC 3339 string.
    pub const MAX: Timestamp = Timestamp(253_402_300_799_999);

    /// Wraps a count of milliseconds since the Unix epoch.
    pub const fn from_unix_ms(ms: i64) -> Timestamp {
        Timestamp(ms)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_unix_ms(self) -> i64 {
        self.0
    }

    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        let now = OffsetDateTime::now_utc();
        Timestamp((now.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    /// This time plus `d` (saturating, so far deadlines never wrap).
    pub fn saturating_add(self, d: std::time::Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(duration_ms(d)))
    }

    /// This time minus `d` (saturating).
    pub fn saturating_sub(self, d: std::time::Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(duration_ms(d)))
    }

    /// Whether the recorder can store this time (between [`Timestamp::MIN`] and
    /// [`Timestamp::MAX`]).
    pub fn is_valid(self) -> bool {
        (Self::MIN..=Self::MAX).contains(&self)
    }

    /// The same instant as a `time` date-time, for formatting.
    pub fn to_datetime(self) -> OffsetDateTime {
        let clamped = self.0.clamp(Self::MIN.0, Self::MAX.0);
        OffsetDateTime::from_unix_timestamp_nanos(clamped as i128 * 1_000_000)
            .expect("clamped into the representable range")
    }

    /// Parses RFC 3339 (`2026-11-24T10:00:00Z`, any offset, any fraction).
    /// Also accepted, as other tools write them: a space for the `T`,
    /// lower-case `t` and `z`, and offsets without a colon (`+0100`).
    pub fn parse_rfc3339(s: &str) -> Result<Timestamp, Error> {
        let parsed = OffsetDateTime::parse(s, &Rfc3339)
            .or_else(|_| OffsetDateTime::parse(&normalize_rfc3339(s), &Rfc3339));
        let dt = parsed.map_err(|_| Error::InvalidTimestamp {
            input: s.chars().take(64).collect(),
            reason: "expected an RFC 3339 time such as 2026-11-24T10:00:00Z or 2026-11-24T11:00:00.250+01:00".into(),
        })?;
        let ms = dt.unix_timestamp_nanos().div_euclid(1_000_000);
        Ok(Timestamp(ms as i64))
    }
}

/// `s` with the spellings RFC 3339 tolerates or other tools use turned into
/// the strict form: `T` and `Z` upper case, a space as `T`, and a numeric
/// offset given as `+hhmm` as `+hh:mm`.
fn normalize_rfc3339(s: &str) -> String {
    let mut out: String = s
        .char_indices()
        .map(|(i, c)| match c {
            ' ' | 't' if i == 10 => 'T',
            'z' => 'Z',
            c => c,
        })
        .collect();
    let bytes = out.as_bytes();
    let n = bytes.len();
    if n > 5
        && matches!(bytes[n - 5], b'+' | b'-')
        && bytes[n - 4..].iter().all(u8::is_ascii_digit)
        && out[..n - 5].contains('T')
    {
        out.insert(n - 2, ':');
    }
    out
}

/// Milliseconds in `d`, saturating at `i64::MAX`.
pub(crate) fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl fmt::Display for Timestamp {
    /// RFC 3339 with milliseconds, always in UTC: `2026-11-24T10:00:00.000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dt = self.to_datetime();
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            dt.month() as u8,
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond()
        )
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr<'a> {
            Ms(i64),
            #[serde(borrow)]
            Text(Cow<'a, str>),
        }
        match Repr::deserialize(d)? {
            Repr::Ms(ms) => Ok(Timestamp(ms)),
            Repr::Text(s) => Timestamp::parse_rfc3339(&s).map_err(serde::de::Error::custom),
        }
    }
}

/// The public name of an incident window, e.g. `iw-20261124100000-42`.
///
/// New ids are derived from the database row id, so they are unique per database
/// without any process-wide counter. Windows imported from Pulse keep their ids.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WindowId(String);

impl WindowId {
    /// Wraps an existing id, e.g. one typed by a user or read from an export.
    pub fn new(id: impl Into<String>) -> WindowId {
        WindowId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for WindowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for WindowId {
    fn from(s: &str) -> WindowId {
        WindowId(s.to_owned())
    }
}

impl From<String> for WindowId {
    fn from(s: String) -> WindowId {
        WindowId(s)
    }
}

impl AsRef<str> for WindowId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident ($human:literal) { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The name stored in the database and used in JSON.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<$name, Error> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(Error::UnknownName {
                        kind: $human,
                        input: s.chars().take(64).collect(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }
    };
}

text_enum! {
    /// Where a window is in its life.
    WindowStatus ("status") {
        /// Still collecting samples.
        Recording = "recording",
        /// Closed at its deadline or by `stop_recording`.
        Complete = "complete",
        /// Closed because it reached `max_data_points_per_window`.
        Truncated = "truncated",
        /// Found recording after a crash, past its deadline, and closed on restart.
        Interrupted = "interrupted",
    }
}

text_enum! {
    /// What opened a window.
    TriggerType ("trigger type") {
        /// An alert fired (resolvable with `resolve_trigger`).
        Alert = "alert",
        /// An anomaly was detected.
        Anomaly = "anomaly",
        /// A user focused the resource.
        Focus = "focus",
        /// Someone asked for a recording.
        Manual = "manual",
    }
}

/// A request to open (or extend) a window: what fired, and its name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Trigger {
    /// The kind of trigger.
    pub kind: TriggerType,
    /// The trigger's own id (an alert rule, a user...), if it has one.
    /// Alerts are resolved by this id.
    pub id: Option<String>,
}

impl Trigger {
    /// A trigger of `kind` with an optional id.
    pub fn new(kind: TriggerType, id: Option<String>) -> Trigger {
        Trigger { kind, id }
    }

    /// An alert named `id` (e.g. the rule `cpu>90`).
    pub fn alert(id: impl Into<String>) -> Trigger {
        Trigger::new(TriggerType::Alert, Some(id.into()))
    }

    /// An anomaly named `id` (e.g. the metric that moved).
    pub fn anomaly(id: impl Into<String>) -> Trigger {
        Trigger::new(TriggerType::Anomaly, Some(id.into()))
    }

    /// A user focused the resource.
    pub fn focus() -> Trigger {
        Trigger::new(TriggerType::Focus, None)
    }

    /// A manual request.
    pub fn manual() -> Trigger {
        Trigger::new(TriggerType::Manual, None)
    }
}

/// The resource a sample or window belongs to: its id, and optionally the
/// display name and type the host knows it by (stored in `resources`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Resource<'a> {
    /// The host's id for the resource (`vm-101`, a host name...).
    pub id: &'a str,
    /// A display name, e.g. `web`.
    pub name: Option<&'a str>,
    /// A type, e.g. `vm` or `container`.
    pub kind: Option<&'a str>,
}

impl<'a> Resource<'a> {
    /// A resource with a name and type.
    pub fn named(id: &'a str, name: &'a str, kind: &'a str) -> Resource<'a> {
        Resource {
            id,
            name: Some(name),
            kind: Some(kind),
        }
    }
}

impl<'a> From<&'a str> for Resource<'a> {
    fn from(id: &'a str) -> Resource<'a> {
        Resource {
            id,
            name: None,
            kind: None,
        }
    }
}

impl<'a> From<&'a String> for Resource<'a> {
    fn from(id: &'a String) -> Resource<'a> {
        Resource::from(id.as_str())
    }
}

/// One trigger that opened or extended a window.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowTrigger {
    /// The kind of trigger.
    pub trigger_type: TriggerType,
    /// Its id, if it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
    /// When it fired.
    pub fired_at: Timestamp,
    /// When it cleared (`resolve_trigger`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_at: Option<Timestamp>,
    /// True for the trigger that opened the window, false for ones that extended it.
    pub opened_window: bool,
    /// An Alertmanager alert's labels (bounded: [`WindowTrigger::MAX_WORDS_BYTES`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// An Alertmanager alert's annotations (`summary`, `description`,
    /// `runbook_url`... and its `generatorURL` under that name), bounded
    /// as the labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// A `watch` rule's expression (`cpu>90 for 30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// The end an alert's resolve gave (Alertmanager's `endsAt`), where it
    /// differs from `resolved_at` or no window took the resolve's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Timestamp>,
}

impl WindowTrigger {
    /// Most bytes of labels, or of annotations, kept per trigger (names and
    /// values together): the words of an alert, not a document. Beyond it,
    /// values are cut (see [`crate::model::cut_words`]).
    pub const MAX_WORDS_BYTES: usize = 16 * 1024;
    /// Most bytes of one label or annotation value.
    pub const MAX_VALUE_BYTES: usize = 4096;
    /// What ends a value that was cut.
    pub const CUT_MARKER: &'static str = "…[cut]";
    /// Longest label or annotation name, in bytes.
    pub const MAX_NAME_BYTES: usize = 256;

    /// Checks and bounds an alert's labels or annotations. A name that is
    /// empty, longer than [`Self::MAX_NAME_BYTES`] or holds a control
    /// character, or a value with a control character (but newlines and
    /// tabs where `multiline`: annotations are often templated over lines),
    /// is an error naming it. A value over [`Self::MAX_VALUE_BYTES`] is cut
    /// and ends with [`Self::CUT_MARKER`]; once names and values pass
    /// [`Self::MAX_WORDS_BYTES`] in all, the values left (in name order)
    /// are the marker alone. Nothing is dropped without the marker.
    ///
    /// ```
    /// # use std::collections::BTreeMap;
    /// # use incident_recorder::WindowTrigger;
    /// let long: BTreeMap<String, String> = [("d".to_owned(), "x".repeat(5000))].into();
    /// let kept = WindowTrigger::bound_words(long, true).unwrap();
    /// assert!(kept["d"].ends_with(WindowTrigger::CUT_MARKER));
    /// assert!(kept["d"].len() <= WindowTrigger::MAX_VALUE_BYTES);
    /// let bad: BTreeMap<String, String> = [("s".to_owned(), "\u{1b}[31m".to_owned())].into();
    /// assert!(WindowTrigger::bound_words(bad, true).is_err());
    /// ```
    pub fn bound_words(
        words: BTreeMap<String, String>,
        multiline: bool,
    ) -> Result<BTreeMap<String, String>, String> {
        let mut total = 0usize;
        let mut out = BTreeMap::new();
        for (name, value) in words {
            if name.is_empty() || name.len() > Self::MAX_NAME_BYTES {
                return Err(format!(
                    "a name of {} bytes (1 to {} allowed)",
                    name.len(),
                    Self::MAX_NAME_BYTES
                ));
            }
            if name.chars().any(char::is_control) {
                return Err(format!("the name {name:?} contains a control character"));
            }
            let allowed = |c: char| multiline && (c == '\n' || c == '\t');
            if value.chars().any(|c| c.is_control() && !allowed(c)) {
                return Err(format!(
                    "the value of {name:?} contains a control character"
                ));
            }
            let room =
                Self::MAX_VALUE_BYTES.min(Self::MAX_WORDS_BYTES.saturating_sub(total + name.len()));
            let value = if value.len() <= room {
                value
            } else {
                let mut end = room.saturating_sub(Self::CUT_MARKER.len());
                while !value.is_char_boundary(end) {
                    end -= 1;
                }
                format!("{}{}", &value[..end], Self::CUT_MARKER)
            };
            total += name.len() + value.len();
            out.insert(name, value);
        }
        Ok(out)
    }
}

/// A note on a window ("rebooted db-02 at 10:40"): the timeline the people
/// handling an incident write beside its samples.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowNote {
    /// When it was written.
    pub at: Timestamp,
    /// Who wrote it (a user name, or what `--author` gave).
    pub author: String,
    /// The note (at most [`WindowNote::MAX_TEXT_BYTES`], no control
    /// characters but tabs).
    pub text: String,
}

impl WindowNote {
    /// Longest note text, in bytes: a timeline entry, not a document.
    pub const MAX_TEXT_BYTES: usize = 4096;
    /// Longest author, in bytes (as resource names and types).
    pub const MAX_AUTHOR_BYTES: usize = 256;
}

/// One sample: when, the metric values, and any metadata the host attached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DataPoint {
    /// When the sample was taken.
    pub timestamp: Timestamp,
    /// Metric name to value. Every value is finite.
    pub metrics: BTreeMap<String, f64>,
    /// Free-form JSON the host attached to the sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Statistics of a completed window, per metric.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IncidentSummary {
    /// Milliseconds from the first to the last point (0 for a single point).
    pub duration_ms: i64,
    /// Number of points in the window.
    pub data_points: u64,
    /// Highest value of each metric.
    pub peaks: BTreeMap<String, f64>,
    /// Lowest value of each metric.
    pub lows: BTreeMap<String, f64>,
    /// Mean of each metric.
    pub averages: BTreeMap<String, f64>,
    /// Last value minus first value of each metric (over the points that have it).
    pub changes: BTreeMap<String, f64>,
    /// Number of points that carry each metric.
    #[serde(default)]
    pub samples: BTreeMap<String, u64>,
    /// Median of each metric (linear interpolation between closest ranks).
    #[serde(default)]
    pub p50: BTreeMap<String, f64>,
    /// 95th percentile of each metric.
    #[serde(default)]
    pub p95: BTreeMap<String, f64>,
    /// 99th percentile of each metric.
    #[serde(default)]
    pub p99: BTreeMap<String, f64>,
    /// Human-readable notes on samples that stood out, in time order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomalies: Vec<String>,
    /// The same samples with their metric, time, value and score (empty
    /// for anomalies known only by their note, as Pulse's files give them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anomaly_points: Vec<WindowAnomaly>,
    /// The anomalies per metric: how many samples, and the strongest one.
    /// A view derived from the stored anomalies for digests, so not part of
    /// the JSON (which lists every note). Empty for anomalies known only as
    /// text (imported windows).
    #[serde(skip)]
    pub anomalies_by_metric: BTreeMap<String, MetricAnomalies>,
    /// How far each metric moved after the trigger, and its rank (1 moved
    /// most): see [`crate::change`]. Empty only for a window without points.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub change_scores: BTreeMap<String, MetricChange>,
}

impl IncidentSummary {
    /// The window's metrics, the one that moved most first: by rank, then
    /// (metrics without a rank: an import's) by name.
    pub fn metrics_by_rank(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.samples.keys().map(String::as_str).collect();
        names.sort_by_key(|m| self.change_scores.get(*m).map_or(u32::MAX, |c| c.rank));
        names
    }
}

/// One sample of a window that stood out from its pre-incident baseline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WindowAnomaly {
    /// The metric.
    pub metric: String,
    /// When the sample was taken.
    pub timestamp: Timestamp,
    /// Its value.
    pub value: f64,
    /// Its signed robust score (positive above the baseline).
    pub score: f64,
    /// The note, as in [`IncidentSummary::anomalies`].
    pub description: String,
}

/// The anomalies of one metric in a window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricAnomalies {
    /// Anomalous samples.
    pub samples: u64,
    /// The note of the sample with the highest score (in absolute value).
    pub strongest: String,
}

/// How far one metric of a window moved after the trigger (see
/// [`crate::change`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricChange {
    /// Place among the window's metrics: 1 moved most; metrics without a
    /// score come after every scored one.
    pub rank: u32,
    /// Median shift in MADs of the pre-trigger baseline, signed (positive:
    /// up), in [-200, 200]; `None` when it cannot be scored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// Why there is no score (`no values before the trigger`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unscored: Option<String>,
}

impl MetricChange {
    /// A scored metric.
    pub fn scored(rank: u32, score: f64) -> MetricChange {
        MetricChange {
            rank,
            score: Some(score),
            unscored: None,
        }
    }

    /// A metric without a score, and why.
    pub fn unscored(rank: u32, why: String) -> MetricChange {
        MetricChange {
            rank,
            score: None,
            unscored: Some(why),
        }
    }
}

/// A recording around one incident on one resource.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentWindow {
    /// Public id.
    pub id: WindowId,
    /// The resource's id.
    pub resource_id: String,
    /// The resource's display name, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_name: Option<String>,
    /// The resource's type, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
    /// What opened the window.
    pub trigger_type: TriggerType,
    /// The id of the trigger that opened it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_id: Option<String>,
    /// When the trigger that opened it fired (`windows.opened_ms`); the
    /// window starts up to a pre-incident window earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_time: Option<Timestamp>,
    /// Time of the first point (the oldest buffered sample copied in), or the
    /// trigger time if there was no buffered sample.
    pub start_time: Timestamp,
    /// When recording ended; `None` while recording.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Timestamp>,
    /// When a recording window will complete unless extended (for a closed
    /// window, the deadline it had when it closed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline: Option<Timestamp>,
    /// Where the window is in its life.
    pub status: WindowStatus,
    /// Every trigger that opened or extended the window, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub triggers: Vec<WindowTrigger>,
    /// Notes written on the window (`note ID TEXT`), oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<WindowNote>,
    /// The samples, oldest first. Empty in listings that skip points.
    #[serde(default)]
    pub data_points: Vec<DataPoint>,
    /// Statistics of a closed window with at least one point; for a window
    /// still recording, of its points so far (without anomalies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<IncidentSummary>,
}

/// A set of metric values for one sample, in the order the provider gave them.
///
/// Names are `Cow<'static, str>` so a provider with a fixed set of metrics
/// (`"cpu"`, `"memory"`...) builds one without allocating a string per value.
/// Inserting a name twice keeps the last value.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    entries: Vec<(Cow<'static, str>, f64)>,
    /// Bit `len % 64` is set for the length of every name held: a name whose
    /// length bit is clear cannot be a duplicate, so most inserts skip the
    /// scan (providers build one of these per resource per tick).
    lengths: u64,
}

impl Metrics {
    /// An empty set.
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// An empty set with room for `n` values.
    pub fn with_capacity(n: usize) -> Metrics {
        Metrics {
            entries: Vec::with_capacity(n),
            lengths: 0,
        }
    }

    /// Sets `name` to `value`, replacing an earlier value of the same name.
    /// Non-finite values are kept here and rejected (and counted) by the recorder.
    #[inline]
    pub fn insert(&mut self, name: impl Into<Cow<'static, str>>, value: f64) {
        let name = name.into();
        let len = name.len();
        let bit = 1u64 << (len % 64);
        if self.lengths & bit != 0
            && let Some(entry) = self
                .entries
                .iter_mut()
                .find(|(n, _)| crate::names::same_bytes(n.as_bytes(), name.as_bytes()))
        {
            entry.1 = value;
            return;
        }
        self.lengths |= bit;
        self.entries.push((name, value));
    }

    /// Appends `name`, which the caller knows is not in the set yet: no
    /// scan, so a provider that has deduplicated its names itself (a scrape
    /// of 1,000 series) builds the set in linear time.
    pub(crate) fn push_distinct(&mut self, name: Cow<'static, str>, value: f64) {
        debug_assert!(self.get(&name).is_none(), "duplicate metric name {name}");
        self.lengths |= 1u64 << (name.len() % 64);
        self.entries.push((name, value));
    }

    /// Builder form of [`Metrics::insert`].
    pub fn with(mut self, name: impl Into<Cow<'static, str>>, value: f64) -> Metrics {
        self.insert(name, value);
        self
    }

    /// The value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<f64> {
        self.entries.iter().find(|(n, _)| n == name).map(|e| e.1)
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no values.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// `(name, value)` pairs in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, f64)> {
        self.entries.iter().map(|(n, v)| (n.as_ref(), *v))
    }
}

impl<K: Into<Cow<'static, str>>> FromIterator<(K, f64)> for Metrics {
    fn from_iter<I: IntoIterator<Item = (K, f64)>>(iter: I) -> Metrics {
        let mut m = Metrics::new();
        for (k, v) in iter {
            m.insert(k, v);
        }
        m
    }
}

impl<K: Into<Cow<'static, str>>, const N: usize> From<[(K, f64); N]> for Metrics {
    fn from(pairs: [(K, f64); N]) -> Metrics {
        pairs.into_iter().collect()
    }
}

impl Metrics {
    /// From pairs whose names are already distinct (a map's keys): no
    /// search for duplicates, so a sample of many metrics costs linear time.
    fn from_distinct(pairs: impl ExactSizeIterator<Item = (String, f64)>) -> Metrics {
        let mut m = Metrics::with_capacity(pairs.len());
        for (name, value) in pairs {
            m.lengths |= 1u64 << (name.len() % 64);
            m.entries.push((Cow::Owned(name), value));
        }
        m
    }
}

impl From<std::collections::HashMap<String, f64>> for Metrics {
    fn from(map: std::collections::HashMap<String, f64>) -> Metrics {
        Metrics::from_distinct(map.into_iter())
    }
}

impl From<BTreeMap<String, f64>> for Metrics {
    fn from(map: BTreeMap<String, f64>) -> Metrics {
        Metrics::from_distinct(map.into_iter())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamp_round_trips_through_json_and_accepts_integers() {
        let t = Timestamp::from_unix_ms(1_732_440_000_123);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, "\"2024-11-24T09:20:00.123Z\"");
        assert_eq!(serde_json::from_str::<Timestamp>(&json).unwrap(), t);
        assert_eq!(
            serde_json::from_str::<Timestamp>("1732440000123").unwrap(),
            t
        );
        // Offsets are honoured; sub-millisecond digits are floored.
        assert_eq!(
            Timestamp::parse_rfc3339("2024-11-24T10:20:00.1239+01:00").unwrap(),
            t
        );
        // Spellings other tools write.
        for text in [
            "2024-11-24T10:20:00.1239+0100",
            "2024-11-24 09:20:00.123Z",
            "2024-11-24t09:20:00.123z",
            "2024-11-24T04:20:00.123-0500",
        ] {
            assert_eq!(Timestamp::parse_rfc3339(text).unwrap(), t, "{text}");
        }
        let err = Timestamp::parse_rfc3339("2024-11-24T10:20").unwrap_err();
        assert!(
            err.to_string()
                .contains("expected an RFC 3339 time such as"),
            "{err}"
        );
    }

    #[test]
    fn enums_parse_their_own_names_and_reject_others() {
        for s in WindowStatus::ALL {
            assert_eq!(s.as_str().parse::<WindowStatus>().unwrap(), *s);
        }
        let err = "Recording".parse::<WindowStatus>().unwrap_err();
        assert!(err.to_string().contains("recording"), "{err}");
        assert!(err.to_string().starts_with("unknown status"), "{err}");
    }

    #[test]
    fn metrics_insert_replaces_duplicates_and_keeps_order() {
        let m = Metrics::new()
            .with("cpu", 1.0)
            .with("mem", 2.0)
            .with("cpu", 3.0);
        assert_eq!(
            m.iter().collect::<Vec<_>>(),
            vec![("cpu", 3.0), ("mem", 2.0)]
        );
    }
}
