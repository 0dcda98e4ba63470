//! The Prometheus text exposition format, version 0.0.4.
//!
//! What an exporter's `/metrics` serves: one sample per line,
//! `name{label="value",...} value [timestamp]`, with `# HELP` and `# TYPE`
//! comments naming each family's type. [`parse`] reads a whole text into an
//! [`Exposition`] that borrows from it: names, label names and label values
//! without escapes are slices of the input, so a node_exporter text of about
//! 1,000 series costs three vectors, not thousands of strings.
//!
//! # What is accepted
//!
//! The format as specified (<https://prometheus.io/docs/instrumenting/exposition_formats/>)
//! and as `prometheus/common`'s parser reads it:
//!
//! - blank lines; leading spaces and tabs; `\r\n` line ends;
//! - comments: `# HELP name text` and `# TYPE name type` (`counter`,
//!   `gauge`, `histogram`, `summary`, `untyped`), at most one of each per
//!   name, a `TYPE` before the name's first sample; any other comment is
//!   ignored (so OpenMetrics' `# EOF` and `# UNIT` are too);
//! - label values with the escapes `\\`, `\"` and `\n`; a trailing comma
//!   in the label set; spaces around labels;
//! - values as Go's `ParseFloat` reads them (`1`, `-3.5e-7`, `NaN`,
//!   `+Inf`, `-Inf`), an optional integer timestamp in milliseconds;
//! - histogram and summary families recognized by their `TYPE`: samples
//!   `name_bucket` (with `le`), `name_sum`, `name_count`, and for summaries
//!   `name` (with `quantile`) are marked with their [`Component`].
//!
//! Anything else is refused: the whole text, with the line number and what
//! was expected ([`Error::InvalidExposition`]). That is what Prometheus does
//! with a scrape it cannot read, and it keeps a half-understood target from
//! recording half its series.
//!
//! # Bounds
//!
//! Cost is linear in the input: one pass, one hash lookup per new family
//! name, labels sorted only when they do not come sorted (they do from every
//! official client library). Memory is bounded by [`ParseLimits`]: lines
//! longer than [`ParseLimits::max_line_bytes`] (default 64 KiB) and texts
//! with more than [`ParseLimits::max_series`] samples (default 100,000) are
//! refused.
//!
//! # Label order
//!
//! A sample's labels are given sorted by name (byte order), the canonical
//! order of a Prometheus label set; two labels with the same name are an
//! error.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use crate::error::{Error, clip};

/// How much one text may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseLimits {
    /// Longest line, in bytes (without its line end). Default 64 KiB: far
    /// more than any series the recorder can store needs (a metric name is at
    /// most 256 bytes, a resource id 1,024).
    pub max_line_bytes: usize,
    /// Most samples in one text. Default 100,000.
    pub max_series: usize,
}

impl ParseLimits {
    /// The default longest line.
    pub const DEFAULT_MAX_LINE_BYTES: usize = 64 * 1024;
    /// The default most samples.
    pub const DEFAULT_MAX_SERIES: usize = 100_000;
}

impl Default for ParseLimits {
    fn default() -> ParseLimits {
        ParseLimits {
            max_line_bytes: Self::DEFAULT_MAX_LINE_BYTES,
            max_series: Self::DEFAULT_MAX_SERIES,
        }
    }
}

/// A metric family's type, from its `# TYPE` line (`Untyped` without one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricKind {
    /// A cumulative count that only goes up (or resets to zero).
    Counter,
    /// A value that goes up and down.
    Gauge,
    /// Buckets of observations, cumulative by upper bound `le`.
    Histogram,
    /// Quantiles of observations, plus their sum and count.
    Summary,
    /// No type given.
    Untyped,
}

impl MetricKind {
    fn from_word(word: &str) -> Option<MetricKind> {
        Some(match word {
            "counter" => MetricKind::Counter,
            "gauge" => MetricKind::Gauge,
            "histogram" => MetricKind::Histogram,
            "summary" => MetricKind::Summary,
            "untyped" => MetricKind::Untyped,
            _ => return None,
        })
    }

    /// The word used in `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
            MetricKind::Summary => "summary",
            MetricKind::Untyped => "untyped",
        }
    }
}

impl fmt::Display for MetricKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a sample is within its family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    /// The family's value (counter, gauge, untyped).
    Value,
    /// A histogram's `name_bucket{le="..."}`.
    Bucket,
    /// A summary's `name{quantile="..."}`.
    Quantile,
    /// A histogram's or summary's `name_sum`.
    Sum,
    /// A histogram's or summary's `name_count`.
    Count,
}

/// One label of a sample.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label<'a> {
    /// The label's name.
    pub name: &'a str,
    /// Its value, unescaped (borrowed unless it had escapes).
    pub value: Cow<'a, str>,
}

/// One sample line, as read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample<'e, 'a> {
    /// The series name as written (`http_requests_total`, `latency_bucket`).
    pub name: &'a str,
    /// The family it belongs to: `name` itself, or for histogram and
    /// summary components the name without `_bucket`/`_sum`/`_count`.
    pub family: &'a str,
    /// The family's type.
    pub kind: MetricKind,
    /// What the sample is within the family.
    pub component: Component,
    /// Labels, sorted by name.
    pub labels: &'e [Label<'a>],
    /// The value (may be NaN or infinite).
    pub value: f64,
    /// The timestamp written after the value, in ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The 1-based line it was on.
    pub line: usize,
}

impl Sample<'_, '_> {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_ref())
    }
}

/// A parsed text: its samples in the order they came.
#[derive(Clone, Debug, Default)]
pub struct Exposition<'a> {
    samples: Vec<RawSample<'a>>,
    labels: Vec<Label<'a>>,
}

#[derive(Clone, Debug)]
struct RawSample<'a> {
    name: &'a str,
    family: &'a str,
    kind: MetricKind,
    component: Component,
    labels: (u32, u32),
    value: f64,
    timestamp_ms: Option<i64>,
    line: u32,
}

impl<'a> Exposition<'a> {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// True if the text had no sample.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The samples, in input order.
    pub fn samples(&self) -> impl ExactSizeIterator<Item = Sample<'_, 'a>> + '_ {
        self.samples.iter().map(|s| Sample {
            name: s.name,
            family: s.family,
            kind: s.kind,
            component: s.component,
            labels: &self.labels[s.labels.0 as usize..s.labels.1 as usize],
            value: s.value,
            timestamp_ms: s.timestamp_ms,
            line: s.line as usize,
        })
    }
}

/// Parses `text` with the default [`ParseLimits`].
pub fn parse(text: &str) -> Result<Exposition<'_>, Error> {
    parse_with_limits(text, &ParseLimits::default())
}

/// Family names seen, hashed with foldhash (a scrape has hundreds of them;
/// SipHash was a tenth of the parse).
type Names<'a> = HashMap<&'a str, NameInfo, foldhash::fast::RandomState>;

/// What is known about a name, from `# TYPE`/`# HELP` lines and samples.
#[derive(Clone, Copy, Default)]
struct NameInfo {
    kind: Option<MetricKind>,
    help: bool,
    /// A sample of this family has been read (so a later TYPE is too late).
    sampled: bool,
}

/// Parses `text`, refusing it past `limits`.
pub fn parse_with_limits<'a>(text: &'a str, limits: &ParseLimits) -> Result<Exposition<'a>, Error> {
    let mut out = Exposition {
        samples: Vec::with_capacity(text.len() / 64),
        labels: Vec::with_capacity(text.len() / 32),
    };
    let mut names: Names<'a> = HashMap::default();
    // The last sample's name and how it resolved: consecutive samples of a
    // family (the usual layout) skip the lookup.
    let mut last: Option<(&'a str, &'a str, MetricKind, Component)> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.len() > limits.max_line_bytes {
            return Err(invalid(
                number,
                format!(
                    "the line is {} bytes long, over the limit of {}",
                    line.len(),
                    limits.max_line_bytes
                ),
            ));
        }
        let line = trim_blanks(line);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            comment_line(comment, number, &mut names)?;
            last = None;
            continue;
        }
        if out.samples.len() >= limits.max_series {
            return Err(invalid(
                number,
                format!("more than {} samples (the series limit)", limits.max_series),
            ));
        }
        let first_label = out.labels.len();
        let parsed = sample_line(line, number, &mut out.labels)?;
        let labels = &mut out.labels[first_label..];
        if !labels.windows(2).all(|w| w[0].name < w[1].name) {
            labels.sort_by(|a, b| a.name.cmp(b.name));
            if let Some(w) = labels.windows(2).find(|w| w[0].name == w[1].name) {
                return Err(invalid(
                    number,
                    format!("label {:?} appears twice", clip(w[0].name)),
                ));
            }
        }
        let (family, kind, component) = match last {
            Some((name, family, kind, component)) if name == parsed.name => {
                (family, kind, component)
            }
            _ => {
                let resolved = resolve(parsed.name, &mut names, number)?;
                last = Some((parsed.name, resolved.0, resolved.1, resolved.2));
                resolved
            }
        };
        let labels = &out.labels[first_label..];
        check_component(parsed.name, family, kind, component, labels, number)?;
        out.samples.push(RawSample {
            name: parsed.name,
            family,
            kind,
            component,
            labels: (first_label as u32, out.labels.len() as u32),
            value: parsed.value,
            timestamp_ms: parsed.timestamp_ms,
            line: number.min(u32::MAX as usize) as u32,
        });
    }
    Ok(out)
}

fn invalid(line: usize, reason: impl Into<String>) -> Error {
    Error::InvalidExposition {
        line,
        reason: reason.into(),
    }
}

/// Finds the family of a sample name: itself if it has a `TYPE` (or none at
/// all), else a histogram or summary it is the `_bucket`/`_sum`/`_count` of.
fn resolve<'a>(
    name: &'a str,
    names: &mut Names<'a>,
    line: usize,
) -> Result<(&'a str, MetricKind, Component), Error> {
    if let Some(info) = names.get_mut(name)
        && info.kind.is_some()
    {
        info.sampled = true;
        let kind = info.kind.unwrap_or(MetricKind::Untyped);
        let component = match kind {
            MetricKind::Summary => Component::Quantile,
            MetricKind::Histogram => {
                return Err(invalid(
                    line,
                    format!(
                        "{:?} is a histogram: its samples are {0}_bucket, {0}_sum and {0}_count",
                        clip(name)
                    ),
                ));
            }
            _ => Component::Value,
        };
        return Ok((name, kind, component));
    }
    for (suffix, component) in [
        ("_bucket", Component::Bucket),
        ("_sum", Component::Sum),
        ("_count", Component::Count),
    ] {
        let Some(base) = name.strip_suffix(suffix) else {
            continue;
        };
        if let Some(info) = names.get_mut(base) {
            let ok = match info.kind {
                Some(MetricKind::Histogram) => true,
                Some(MetricKind::Summary) => component != Component::Bucket,
                _ => false,
            };
            if ok {
                info.sampled = true;
                return Ok((base, info.kind.unwrap_or(MetricKind::Untyped), component));
            }
        }
    }
    names.entry(name).or_default().sampled = true;
    Ok((name, MetricKind::Untyped, Component::Value))
}

/// Checks the label a histogram bucket or summary quantile needs.
fn check_component(
    name: &str,
    family: &str,
    kind: MetricKind,
    component: Component,
    labels: &[Label<'_>],
    line: usize,
) -> Result<(), Error> {
    let needed = match component {
        Component::Bucket => "le",
        Component::Quantile => "quantile",
        _ => return Ok(()),
    };
    for l in labels {
        if l.name == needed {
            return match parse_float(&l.value) {
                Some(v) if !v.is_nan() => Ok(()),
                _ => Err(invalid(
                    line,
                    format!(
                        "label {needed}={:?} of {:?} is not a number",
                        clip(&l.value),
                        clip(name)
                    ),
                )),
            };
        }
    }
    Err(invalid(
        line,
        format!(
            "{:?} of {kind} {:?} has no {needed} label",
            clip(name),
            clip(family)
        ),
    ))
}

/// `# HELP` and `# TYPE`; other comments are ignored.
fn comment_line<'a>(comment: &'a str, line: usize, names: &mut Names<'a>) -> Result<(), Error> {
    let comment = trim_blanks(comment);
    let (keyword, rest) = split_token(comment);
    let is_type = match keyword {
        "TYPE" => true,
        "HELP" => false,
        _ => return Ok(()),
    };
    let (name, rest) = split_token(rest);
    if name.is_empty() {
        return Err(invalid(line, format!("# {keyword} without a metric name")));
    }
    if !is_metric_name(name) {
        return Err(invalid(
            line,
            format!("invalid metric name {:?} in # {keyword}", clip(name)),
        ));
    }
    let entry = match names.entry(name) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(e) => e.insert(NameInfo::default()),
    };
    if !is_type {
        if entry.help {
            return Err(invalid(
                line,
                format!("second # HELP line for {:?}", clip(name)),
            ));
        }
        entry.help = true;
        return Ok(());
    }
    let (word, rest) = split_token(rest);
    let kind = MetricKind::from_word(word).ok_or_else(|| {
        invalid(
            line,
            format!(
                "unknown metric type {:?} for {:?}; expected counter, gauge, histogram, summary or untyped",
                clip(word),
                clip(name)
            ),
        )
    })?;
    if !rest.trim_matches([' ', '\t']).is_empty() {
        return Err(invalid(
            line,
            format!("unexpected text after the type of {:?}", clip(name)),
        ));
    }
    if entry.kind.is_some() {
        return Err(invalid(
            line,
            format!("second # TYPE line for {:?}", clip(name)),
        ));
    }
    if entry.sampled {
        return Err(invalid(
            line,
            format!(
                "# TYPE for {:?} comes after its samples; it must come before them",
                clip(name)
            ),
        ));
    }
    entry.kind = Some(kind);
    Ok(())
}

/// The first token of `s` (up to a space or tab) and the rest after the blanks.
#[inline]
fn split_token(s: &str) -> (&str, &str) {
    let b = s.as_bytes();
    let end = b
        .iter()
        .position(|&c| c == b' ' || c == b'\t')
        .unwrap_or(b.len());
    // Both cuts are at ASCII bytes, so on char boundaries.
    (&s[..end], &s[skip_blanks(b, end)..])
}

/// `s` without its leading spaces and tabs.
#[inline]
fn trim_blanks(s: &str) -> &str {
    &s[skip_blanks(s.as_bytes(), 0)..]
}

struct Parsed<'a> {
    name: &'a str,
    value: f64,
    timestamp_ms: Option<i64>,
}

/// One sample line (no leading blanks, not a comment); its labels are
/// appended to `labels`.
fn sample_line<'a>(
    line: &'a str,
    number: usize,
    labels: &mut Vec<Label<'a>>,
) -> Result<Parsed<'a>, Error> {
    let bytes = line.as_bytes();
    let name_end = bytes
        .iter()
        .position(|&b| !is_name_byte(b, true))
        .unwrap_or(bytes.len());
    let name = &line[..name_end];
    if name.is_empty() || bytes[0].is_ascii_digit() {
        return Err(invalid(
            number,
            format!(
                "expected a metric name, found {:?}",
                clip(line.split([' ', '\t']).next().unwrap_or(line))
            ),
        ));
    }
    let mut at = skip_blanks(bytes, name_end);
    if bytes.get(at) == Some(&b'{') {
        at = label_set(line, at + 1, number, name, labels)?;
        at = skip_blanks(bytes, at);
    } else if at == name_end && at < bytes.len() {
        return Err(invalid(
            number,
            format!(
                "unexpected character {:?} in metric name {:?}",
                char_at(line, at),
                clip(name)
            ),
        ));
    }
    let rest = &line[at..];
    let (value_text, rest) = split_token(rest);
    if value_text.is_empty() {
        return Err(invalid(number, format!("{:?} has no value", clip(name))));
    }
    let value = parse_float(value_text).ok_or_else(|| {
        invalid(
            number,
            format!(
                "value {:?} of {:?} is not a number",
                clip(value_text),
                clip(name)
            ),
        )
    })?;
    let (ts_text, rest) = split_token(rest);
    let timestamp_ms = if ts_text.is_empty() {
        None
    } else {
        Some(ts_text.parse::<i64>().map_err(|_| {
            invalid(
                number,
                format!(
                    "timestamp {:?} of {:?} is not an integer (milliseconds)",
                    clip(ts_text),
                    clip(name)
                ),
            )
        })?)
    };
    if !rest.is_empty() {
        return Err(invalid(
            number,
            format!(
                "unexpected text {:?} after the sample of {:?}",
                clip(rest),
                clip(name)
            ),
        ));
    }
    Ok(Parsed {
        name,
        value,
        timestamp_ms,
    })
}

/// Reads labels from just after `{` to just after `}`; returns that position.
fn label_set<'a>(
    line: &'a str,
    mut at: usize,
    number: usize,
    metric: &str,
    labels: &mut Vec<Label<'a>>,
) -> Result<usize, Error> {
    let bytes = line.as_bytes();
    loop {
        at = skip_blanks(bytes, at);
        match bytes.get(at) {
            Some(b'}') => return Ok(at + 1),
            None => {
                return Err(invalid(
                    number,
                    format!("the labels of {:?} are not closed with }}", clip(metric)),
                ));
            }
            _ => {}
        }
        let start = at;
        while at < bytes.len() && is_name_byte(bytes[at], false) {
            at += 1;
        }
        let name = &line[start..at];
        if name.is_empty() || bytes[start].is_ascii_digit() {
            return Err(invalid(
                number,
                format!(
                    "expected a label name in {:?}, found {:?}",
                    clip(metric),
                    char_at(line, start)
                ),
            ));
        }
        if name == "__name__" {
            return Err(invalid(
                number,
                format!("label name __name__ is reserved (in {:?})", clip(metric)),
            ));
        }
        at = skip_blanks(bytes, at);
        if bytes.get(at) != Some(&b'=') {
            return Err(invalid(
                number,
                format!(
                    "expected = after label {:?} of {:?}",
                    clip(name),
                    clip(metric)
                ),
            ));
        }
        at = skip_blanks(bytes, at + 1);
        if bytes.get(at) != Some(&b'"') {
            return Err(invalid(
                number,
                format!(
                    "the value of label {:?} of {:?} must be in double quotes",
                    clip(name),
                    clip(metric)
                ),
            ));
        }
        let (value, next) = label_value(line, at + 1, number, name)?;
        labels.push(Label { name, value });
        at = skip_blanks(bytes, next);
        match bytes.get(at) {
            Some(b',') => at += 1,
            Some(b'}') => return Ok(at + 1),
            _ => {
                return Err(invalid(
                    number,
                    format!(
                        "expected , or }} after label {:?} of {:?}",
                        clip(name),
                        clip(metric)
                    ),
                ));
            }
        }
    }
}

/// Reads a quoted label value from just after the opening quote; returns
/// the value and the position after the closing quote.
fn label_value<'a>(
    line: &'a str,
    start: usize,
    number: usize,
    label: &str,
) -> Result<(Cow<'a, str>, usize), Error> {
    let bytes = line.as_bytes();
    let mut at = start;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => return Ok((Cow::Borrowed(&line[start..at]), at + 1)),
            b'\\' => break,
            _ => at += 1,
        }
    }
    if at >= bytes.len() {
        return Err(unclosed(number, label));
    }
    // Escapes: copy what came before, then unescape the rest.
    let mut value = String::with_capacity(at - start + 16);
    value.push_str(&line[start..at]);
    let mut run = at;
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                value.push_str(&line[run..at]);
                return Ok((Cow::Owned(value), at + 1));
            }
            b'\\' => {
                value.push_str(&line[run..at]);
                let unescaped = match bytes.get(at + 1) {
                    Some(b'\\') => '\\',
                    Some(b'"') => '"',
                    Some(b'n') => '\n',
                    Some(_) => {
                        return Err(invalid(
                            number,
                            format!(
                                "invalid escape \\{} in the value of label {:?} (only \\\\, \\\" and \\n)",
                                char_at(line, at + 1),
                                clip(label)
                            ),
                        ));
                    }
                    None => return Err(unclosed(number, label)),
                };
                value.push(unescaped);
                at += 2;
                run = at;
            }
            _ => at += 1,
        }
    }
    Err(unclosed(number, label))
}

fn unclosed(number: usize, label: &str) -> Error {
    invalid(
        number,
        format!("the value of label {:?} is not closed with \"", clip(label)),
    )
}

/// The character at byte `at` (which is on a char boundary), for messages.
fn char_at(s: &str, at: usize) -> char {
    s.get(at..).and_then(|r| r.chars().next()).unwrap_or(' ')
}

fn skip_blanks(bytes: &[u8], mut at: usize) -> usize {
    while at < bytes.len() && (bytes[at] == b' ' || bytes[at] == b'\t') {
        at += 1;
    }
    at
}

/// Bit 1: a byte of a label name (`[a-zA-Z0-9_]`); bit 2: of a metric name
/// (the same and `:`). A table, because these scans are most of a parse.
const NAME_BYTES: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        if b.is_ascii_alphanumeric() || b == b'_' {
            t[i] = 3;
        } else if b == b':' {
            t[i] = 2;
        }
        i += 1;
    }
    t
};

/// `[a-zA-Z0-9_]`, plus `:` in metric names.
#[inline]
fn is_name_byte(b: u8, metric: bool) -> bool {
    NAME_BYTES[b as usize] & if metric { 2 } else { 1 } != 0
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty() && !b[0].is_ascii_digit() && b.iter().all(|&c| is_name_byte(c, true))
}

/// A float as Go's `strconv.ParseFloat` reads the values exporters write:
/// decimal and exponent forms, `NaN`, `Inf`, `+Inf`, `-Inf` (any case).
fn parse_float(s: &str) -> Option<f64> {
    // Rust's parser reads the same decimal forms and the same special words
    // ("inf", "infinity", "nan", case-insensitive); it refuses hex floats and
    // digit separators, which no exporter writes.
    s.parse::<f64>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples<'a>(e: &'a Exposition<'a>) -> Vec<Sample<'a, 'a>> {
        e.samples().collect()
    }

    fn err(text: &str) -> (usize, String) {
        match parse(text) {
            Err(Error::InvalidExposition { line, reason }) => (line, reason),
            other => panic!("{text:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn samples_labels_values_and_timestamps() {
        let text = "# HELP http_requests_total The total.\n\
                    # TYPE http_requests_total counter\n\
                    http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000\n\
                    http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000\n\
                    \n\
                    metric_without_timestamp_and_labels 12.47\n\
                    something_weird{problem=\"division by zero\"} +Inf -3982045\n";
        let e = parse(text).unwrap();
        let s = samples(&e);
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].name, "http_requests_total");
        assert_eq!(s[0].kind, MetricKind::Counter);
        assert_eq!(s[0].component, Component::Value);
        // Sorted by name: code before method.
        let names: Vec<&str> = s[0].labels.iter().map(|l| l.name).collect();
        assert_eq!(names, ["code", "method"]);
        assert_eq!(s[0].label("method"), Some("post"));
        assert_eq!(s[0].value, 1027.0);
        assert_eq!(s[0].timestamp_ms, Some(1_395_066_363_000));
        assert_eq!(s[0].line, 3);
        assert_eq!(s[1].value, 3.0);
        assert_eq!(s[2].kind, MetricKind::Untyped);
        assert_eq!(s[2].timestamp_ms, None);
        assert!(s[2].labels.is_empty());
        assert_eq!(s[3].value, f64::INFINITY);
        assert_eq!(s[3].timestamp_ms, Some(-3_982_045));
        assert_eq!(s[3].line, 7);
    }

    #[test]
    fn escapes_in_label_values_are_unescaped() {
        let text = "msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9\n";
        let e = parse(text).unwrap();
        let s = samples(&e);
        assert_eq!(s[0].label("path"), Some("C:\\DIR\\FILE.TXT"));
        assert_eq!(s[0].label("error"), Some("Cannot find file:\n\"FILE.TXT\""));
        assert_eq!(s[0].value, 1.458255915e9);
        // Unescaped values are borrowed from the input.
        let plain = parse("a{b=\"c\"} 1").unwrap();
        assert!(matches!(
            plain.samples().next().unwrap().labels[0].value,
            Cow::Borrowed("c")
        ));
    }

    #[test]
    fn special_values_crlf_blanks_and_trailing_commas() {
        let text = "a NaN\r\nb +Inf\r\n  \t c -Inf\r\nd{x=\"1\",} 2\r\n\r\ne { x = \"1\" , y=\"2\" } 3\te4\n";
        let e = parse("").unwrap();
        assert!(e.is_empty());
        let e = parse(text);
        // "3\te4" is a value and a bad timestamp.
        assert!(e.is_err());
        let text = "a NaN\r\nb +Inf\r\n  \t c -Inf\r\nd{x=\"1\",} 2\r\n\r\ne { x = \"1\" , y=\"2\" } 3\t4\n";
        let e = parse(text).unwrap();
        let s = samples(&e);
        assert!(s[0].value.is_nan());
        assert_eq!(s[1].value, f64::INFINITY);
        assert_eq!(s[2].value, f64::NEG_INFINITY);
        assert_eq!(s[2].name, "c");
        assert_eq!(s[3].label("x"), Some("1"));
        assert_eq!(s[4].label("y"), Some("2"));
        assert_eq!(s[4].timestamp_ms, Some(4));
    }

    #[test]
    fn histograms_and_summaries_are_recognized_by_their_type() {
        let text = "# TYPE rpc summary\n\
                    rpc{quantile=\"0.5\"} 4773\n\
                    rpc{quantile=\"0.99\"} NaN\n\
                    rpc_sum 1.7560473e+07\n\
                    rpc_count 2693\n\
                    # TYPE lat histogram\n\
                    lat_bucket{le=\"0.05\"} 24054\n\
                    lat_bucket{le=\"+Inf\"} 144320\n\
                    lat_sum 53423\n\
                    lat_count 144320\n\
                    plain_sum 3\n\
                    # TYPE g_count gauge\n\
                    g_count 1\n";
        let e = parse(text).unwrap();
        let got: Vec<(&str, &str, MetricKind, Component)> = e
            .samples()
            .map(|s| (s.name, s.family, s.kind, s.component))
            .collect();
        use Component::*;
        use MetricKind::*;
        assert_eq!(
            got,
            vec![
                ("rpc", "rpc", Summary, Quantile),
                ("rpc", "rpc", Summary, Quantile),
                ("rpc_sum", "rpc", Summary, Sum),
                ("rpc_count", "rpc", Summary, Count),
                ("lat_bucket", "lat", Histogram, Bucket),
                ("lat_bucket", "lat", Histogram, Bucket),
                ("lat_sum", "lat", Histogram, Sum),
                ("lat_count", "lat", Histogram, Count),
                ("plain_sum", "plain_sum", Untyped, Value),
                ("g_count", "g_count", Gauge, Value),
            ]
        );
    }

    #[test]
    fn comments_other_than_help_and_type_are_ignored() {
        let e = parse("# a comment\n#HELP x text\n# EOF\n#\nx 1\n# UNIT x seconds\n").unwrap();
        assert_eq!(e.len(), 1);
        // Help text can hold anything, including a second "TYPE".
        assert!(parse("# HELP y has # TYPE y nonsense\ny 1\n").is_ok());
    }

    #[test]
    fn refusals_name_the_line_and_the_problem() {
        for (text, line, why) in [
            ("<html>\n", 1, "expected a metric name"),
            ("ok 1\n9lives 1\n", 2, "expected a metric name"),
            ("a-b 1\n", 1, "unexpected character '-'"),
            ("a\n", 1, "has no value"),
            ("a one\n", 1, "not a number"),
            ("a 1 2.5\n", 1, "not an integer"),
            ("a 1 2 3\n", 1, "unexpected text"),
            ("a{b=\"c\" 1\n", 1, "expected , or }"),
            ("a{b=\"c\n", 1, "not closed"),
            ("a{b=\"c\\\n", 1, "not closed"),
            ("a{b=c} 1\n", 1, "double quotes"),
            ("a{b} 1\n", 1, "expected = after label"),
            ("a{9=\"\"} 1\n", 1, "expected a label name"),
            ("a{b=\"\\t\"} 1\n", 1, "invalid escape \\t"),
            ("a{b=\"1\",b=\"2\"} 1\n", 1, "appears twice"),
            ("a{__name__=\"x\"} 1\n", 1, "reserved"),
            ("a{b=\"1\"\n", 1, "expected , or }"),
            ("a{\n", 1, "not closed with }"),
            (
                "# TYPE a gauge\n# TYPE a counter\na 1\n",
                2,
                "second # TYPE",
            ),
            ("# HELP a x\n# HELP a y\n", 2, "second # HELP"),
            ("a 1\n# TYPE a gauge\n", 2, "comes after its samples"),
            ("# TYPE a meter\n", 1, "unknown metric type \"meter\""),
            ("# TYPE a\n", 1, "unknown metric type \"\""),
            ("# TYPE a gauge extra\n", 1, "unexpected text"),
            ("# TYPE 1a gauge\n", 1, "invalid metric name"),
            ("# HELP\n", 1, "without a metric name"),
            ("# TYPE h histogram\nh 1\n", 2, "is a histogram"),
            ("# TYPE h histogram\nh_bucket 1\n", 2, "has no le label"),
            (
                "# TYPE h histogram\nh_bucket{le=\"x\"} 1\n",
                2,
                "not a number",
            ),
            ("# TYPE s summary\ns 1\n", 2, "has no quantile label"),
        ] {
            let (got_line, reason) = err(text);
            assert_eq!(got_line, line, "{text:?}: {reason}");
            assert!(reason.contains(why), "{text:?}: {reason:?} lacks {why:?}");
        }
        let message = parse("ok 1\n<html>").unwrap_err().to_string();
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn limits_are_enforced_with_the_line_number() {
        let limits = ParseLimits {
            max_line_bytes: 10,
            max_series: 2,
        };
        assert!(parse_with_limits("a 1\nb 2\n", &limits).is_ok());
        let Err(Error::InvalidExposition { line, reason }) =
            parse_with_limits("a 1\nb 2\nc 3\n", &limits)
        else {
            panic!("three samples over a limit of two");
        };
        assert_eq!(line, 3);
        assert!(reason.contains("more than 2 samples"), "{reason}");
        // Comments count towards the line limit too; \r does not.
        assert!(parse_with_limits("a 123456\r\n", &limits).is_ok());
        let Err(Error::InvalidExposition { line, reason }) =
            parse_with_limits("a 1\n# 345678901\n", &limits)
        else {
            panic!("an 11-byte line over a limit of 10");
        };
        assert_eq!(line, 2);
        assert!(reason.contains("over the limit of 10"), "{reason}");
    }

    #[test]
    fn unsorted_labels_are_sorted_and_multibyte_values_kept() {
        let e = parse("a{z=\"ü\",m=\"日本\",a=\"\\\"x\\\"\"} 1\n").unwrap();
        let s = e.samples().next().unwrap();
        let got: Vec<(&str, &str)> = s.labels.iter().map(|l| (l.name, &*l.value)).collect();
        assert_eq!(got, [("a", "\"x\""), ("m", "日本"), ("z", "ü")]);
    }
}
