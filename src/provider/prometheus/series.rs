//! From a parsed text to the recorder's metrics: which series are kept, what
//! they are called, counters as rates, resources by label.
//!
//! Pure (a text and the target's memory in, metrics out), so every rule here
//! is tested without a network.
//!
//! # Names
//!
//! A series is stored under its *canonical name*: the metric name, then its
//! labels sorted by label name (byte order, the order of a Prometheus label
//! set), values escaped as in the exposition format (`\\`, `\"`, `\n`),
//! without the resource label: `node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"}`.
//! A series without labels is just its name (`node_load15`). A counter is
//! stored as its per-second rate under `<name>_per_s{labels}`
//! (`node_network_receive_bytes_total_per_s{device="eth0"}`).
//!
//! # What is kept
//!
//! - gauges and untyped series: their value;
//! - counters: the rate since the last scrape that was at least
//!   [`MIN_RATE_INTERVAL`](super::MIN_RATE_INTERVAL) before (none on the
//!   first scrape; none when the counter went down, which is a reset);
//!   the times are the samples' own timestamps when both have one, else
//!   the scrape times;
//! - histograms and summaries only when the series match: quantiles as
//!   gauges, `_bucket`, `_sum` and `_count` as counters (rates);
//! - with a match pattern, only series whose canonical name (before
//!   `_per_s`) it matches, anywhere in the name (anchor with `^...$`).
//!
//! Series are counted in the order they come; past the target's cap the
//! rest are dropped (and counted). So are series whose name the recorder
//! would refuse (over 256 bytes, control characters), whose resource label
//! value is not a valid resource id, repeats of a series already read, and
//! NaN or infinite values (Prometheus' "no value"). node_exporter's host
//! metrics ([`super::node`]) are derived from the whole text, kept or not,
//! and replace a scraped series of the same name.

use std::borrow::Cow;
use std::collections::HashMap;

use regex::Regex;

use super::node::{self, NodeInputs, NodeMemory};
use super::parse::{Component, Exposition, MetricKind, Sample};
use crate::model::Metrics;
use crate::validate::{MAX_METRIC_NAME_BYTES, validate_resource_id};

/// What to keep from a target's text.
#[derive(Debug)]
pub(super) struct Selection {
    /// One resource per value of this label (else one per target).
    pub(super) resource_label: Option<String>,
    /// Only series whose canonical name this matches; histograms and
    /// summaries only with it.
    pub(super) matcher: Option<Regex>,
    /// At most this many series per target.
    pub(super) max_series: usize,
    /// At most this many distinct names per target in its name memory.
    pub(super) max_names: usize,
    /// Seconds a name unseen stays in a target's budget.
    pub(super) name_memory_s: f64,
}

impl Default for Selection {
    fn default() -> Selection {
        Selection {
            resource_label: None,
            matcher: None,
            max_series: super::ScrapeOptions::DEFAULT_MAX_SERIES_PER_TARGET,
            max_names: super::ScrapeOptions::DEFAULT_MAX_NAMES_PER_TARGET,
            name_memory_s: super::ScrapeOptions::DEFAULT_NAME_MEMORY.as_secs_f64(),
        }
    }
}

/// What a target remembers between scrapes.
#[derive(Default)]
pub(super) struct TargetMemory {
    /// Per series (canonical name, then NUL and the resource when resources
    /// come from a label): the scrape that last saw it, and for counters the
    /// reading rates start from.
    series: HashMap<Box<str>, Seen, foldhash::fast::RandomState>,
    /// Per resource: node_exporter counters.
    node: HashMap<String, NodeMemory>,
    scrape: u64,
    /// The name budget: every name (same key as `series`) the target served
    /// within the name memory, and when it last did (seconds, monotonic).
    names: HashMap<Box<str>, f64, foldhash::fast::RandomState>,
    /// The scrape that last forgot old names (once per scrape at most).
    forgot: u64,
}

impl TargetMemory {
    /// Distinct names in the target's budget.
    pub(super) fn names(&self) -> usize {
        self.names.len()
    }

    /// True if the series `key` may be kept: a name in the budget, or a new
    /// one while the budget has room (names unseen for the name memory are
    /// forgotten first when it has none).
    fn admit(&mut self, key: &str, at_s: f64, selection: &Selection) -> bool {
        if let Some(seen) = self.names.get_mut(key) {
            *seen = at_s;
            return true;
        }
        if self.names.len() >= selection.max_names && self.forgot != self.scrape {
            self.forgot = self.scrape;
            let horizon = at_s - selection.name_memory_s;
            self.names.retain(|_, seen| *seen >= horizon);
        }
        if self.names.len() >= selection.max_names {
            return false;
        }
        self.names.insert(key.into(), at_s);
        true
    }
}

struct Seen {
    scrape: u64,
    reading: Option<Reading>,
}

#[derive(Clone, Copy)]
struct Reading {
    value: f64,
    /// Seconds: the sample's own timestamp, or the scrape's monotonic time.
    at_s: f64,
    explicit: bool,
}

/// One scrape's result.
#[derive(Debug, Default)]
pub(super) struct Converted {
    /// Metrics per resource, the target's own resource first when present.
    pub(super) resources: Vec<(String, Metrics)>,
    /// Series kept (values and counters still without a rate).
    pub(super) series: usize,
    /// Series past the cap.
    pub(super) over_cap: usize,
    /// Series with a new name past the target's name budget.
    pub(super) over_budget: usize,
    /// Series whose name or resource the recorder would refuse.
    pub(super) invalid: usize,
    /// Repeats of a series already read in the same text.
    pub(super) duplicates: usize,
    /// NaN or infinite values.
    pub(super) non_finite: usize,
    /// The host metrics the node_exporter series allow (see [`super::node`]).
    pub(super) derivable: Vec<&'static str>,
}

/// Converts one parsed text of a target whose own resource is `target`,
/// scraped at `at_s` (seconds, monotonic).
pub(super) fn convert(
    text: &Exposition<'_>,
    selection: &Selection,
    memory: &mut TargetMemory,
    target: &str,
    at_s: f64,
) -> Converted {
    memory.scrape += 1;
    let scrape = memory.scrape;
    let mut out = Converted::default();
    // Resources of this scrape: (id, metrics, node inputs).
    let mut resources: Vec<(String, Metrics, Option<NodeInputs>)> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut name = String::with_capacity(256);
    let mut kept = 0usize;
    let label = selection.resource_label.as_deref();
    if label.is_none() {
        resources.push((target.to_owned(), Metrics::new(), None));
    }
    // The last resource looked up: series of one resource usually come together.
    let mut last: Option<usize> = None;
    for s in text.samples() {
        let resource = match label.map(|l| s.label(l)) {
            None | Some(None) => target,
            Some(Some(v)) if valid_resource_id(v) => v,
            Some(Some(_)) => {
                out.invalid += 1;
                continue;
            }
        };
        let slot = if label.is_none() {
            0
        } else {
            // A resource holds at least one series, so the series cap
            // bounds the resources too (a label with a new value on every
            // line must not make thousands of them).
            match resource_slot(
                &mut resources,
                &mut index,
                &mut last,
                resource,
                selection.max_series,
            ) {
                Some(slot) => slot,
                None => {
                    out.over_cap += 1;
                    continue;
                }
            }
        };
        if node::is_input(s.name) {
            resources[slot]
                .2
                .get_or_insert_with(NodeInputs::default)
                .observe(&s);
        }
        let rate = match (s.kind, s.component) {
            (MetricKind::Histogram | MetricKind::Summary, _) if selection.matcher.is_none() => {
                continue;
            }
            (MetricKind::Counter, _)
            | (_, Component::Bucket | Component::Sum | Component::Count) => true,
            _ => false,
        };
        let clean = canonical_name(&s, label, &mut name);
        if let Some(m) = &selection.matcher
            && !m.is_match(&name)
        {
            continue;
        }
        kept += 1;
        if kept > selection.max_series {
            out.over_cap += 1;
            continue;
        }
        if rate {
            name.insert_str(s.name.len(), "_per_s");
        }
        if name.len() > MAX_METRIC_NAME_BYTES || !clean {
            out.invalid += 1;
            continue;
        }
        // The table's key: the stored name, and the resource when there are many.
        let stored_len = name.len();
        if label.is_some() {
            name.push('\0');
            name.push_str(resource);
        }
        if !memory.admit(name.as_str(), at_s, selection) {
            name.truncate(stored_len);
            out.over_budget += 1;
            continue;
        }
        let seen = match memory.series.get_mut(name.as_str()) {
            Some(seen) => seen,
            None => memory.series.entry(name.as_str().into()).or_insert(Seen {
                scrape: 0,
                reading: None,
            }),
        };
        name.truncate(stored_len);
        if seen.scrape == scrape {
            out.duplicates += 1;
            continue;
        }
        seen.scrape = scrape;
        if !s.value.is_finite() {
            // A NaN is "no value": a counter keeps its reading for the next one.
            out.non_finite += 1;
            continue;
        }
        out.series += 1;
        let metrics = &mut resources[slot].1;
        if !rate {
            metrics.push_distinct(Cow::Owned(name.clone()), s.value);
            continue;
        }
        let now = match s.timestamp_ms {
            Some(ms) => Reading {
                value: s.value,
                at_s: ms as f64 / 1000.0,
                explicit: true,
            },
            None => Reading {
                value: s.value,
                at_s,
                explicit: false,
            },
        };
        let (value, keep) = match seen.reading {
            Some(before) if before.explicit == now.explicit => {
                let elapsed = now.at_s - before.at_s;
                if now.value < before.value {
                    (None, now) // a reset
                } else if elapsed < super::MIN_RATE_INTERVAL.as_secs_f64() {
                    (None, before) // too soon (or the same sample again)
                } else {
                    (Some((now.value - before.value) / elapsed), now)
                }
            }
            _ => (None, now),
        };
        seen.reading = Some(keep);
        if let Some(v) = value {
            metrics.push_distinct(Cow::Owned(name.clone()), v);
        }
    }
    memory.series.retain(|_, seen| seen.scrape == scrape);
    let mut node_memory = std::mem::take(&mut memory.node);
    for (id, metrics, inputs) in &mut resources {
        if let Some(inputs) = inputs.take() {
            out.derivable.extend(inputs.derivable());
            let m = node_memory.remove(id.as_str()).unwrap_or_default();
            let m = memory.node.entry(id.clone()).or_insert(m);
            inputs.derive(m, at_s, metrics);
        }
    }
    out.derivable.sort_unstable();
    out.derivable.dedup();
    // The target's own resource first: it is the one listed when the target
    // is down.
    if let Some(i) = resources.iter().position(|r| r.0 == target) {
        resources[..=i].rotate_right(1);
    }
    // Resources whose series were all left out (histograms only...) are not
    // reported; the target's own stays, as the one listed when it is down.
    out.resources = resources
        .into_iter()
        .filter(|(id, m, _)| !m.is_empty() || id == target)
        .map(|(id, m, _)| (id, m))
        .collect();
    out
}

/// The index of `id` in `resources`, added if new and fewer than `max`.
fn resource_slot(
    resources: &mut Vec<(String, Metrics, Option<NodeInputs>)>,
    index: &mut HashMap<String, usize>,
    last: &mut Option<usize>,
    id: &str,
    max: usize,
) -> Option<usize> {
    if let Some(slot) = *last
        && resources[slot].0 == id
    {
        return Some(slot);
    }
    let slot = match index.get(id) {
        Some(&slot) => slot,
        None if resources.len() >= max => return None,
        None => {
            index.insert(id.to_owned(), resources.len());
            resources.push((id.to_owned(), Metrics::new(), None));
            resources.len() - 1
        }
    };
    *last = Some(slot);
    Some(slot)
}

/// Writes the canonical name of `s` (see the module docs) into `out`,
/// leaving out the label `skip`. Returns false if a label value holds a
/// control character the name cannot (a newline is escaped, so it can).
pub(super) fn canonical_name(s: &Sample<'_, '_>, skip: Option<&str>, out: &mut String) -> bool {
    out.clear();
    out.push_str(s.name);
    let mut first = true;
    let mut clean = true;
    for l in s.labels {
        if Some(l.name) == skip {
            continue;
        }
        out.push(if first { '{' } else { ',' });
        first = false;
        out.push_str(l.name);
        out.push_str("=\"");
        clean &= escape_label_value(&l.value, out);
        out.push('"');
    }
    if !first {
        out.push('}');
    }
    clean
}

/// Appends `value` escaped as in the exposition format; returns false if
/// it holds a control character other than a newline (C0, DEL, or C1,
/// which UTF-8 writes as 0xC2 0x80..0x9F: checked on the bytes, in the
/// same pass as the escapes).
pub(crate) fn escape_label_value(value: &str, out: &mut String) -> bool {
    let b = value.as_bytes();
    let mut plain = true;
    let mut clean = true;
    for (i, &c) in b.iter().enumerate() {
        match c {
            b'\\' | b'"' | b'\n' => plain = false,
            0..0x20 | 0x7f => clean = false,
            0xc2 if b.get(i + 1).is_some_and(|n| (0x80..0xa0).contains(n)) => clean = false,
            _ => {}
        }
    }
    if plain {
        out.push_str(value);
        return clean;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    clean
}

/// The recorder's rule for resource ids (a label value becomes one).
pub(super) fn valid_resource_id(id: &str) -> bool {
    validate_resource_id(id).is_ok()
}

#[cfg(test)]
mod tests {
    use super::super::parse::parse;
    use super::*;

    fn run(text: &str, selection: &Selection, memory: &mut TargetMemory, at_s: f64) -> Converted {
        convert(&parse(text).unwrap(), selection, memory, "t:9100", at_s)
    }

    fn all() -> Selection {
        Selection {
            max_series: 1000,
            ..Selection::default()
        }
    }

    fn names(m: &Metrics) -> Vec<&str> {
        m.iter().map(|(n, _)| n).collect()
    }

    const TEXT: &str = "# TYPE fs_avail gauge\n\
        fs_avail{mountpoint=\"/\",device=\"/dev/sda1\"} 10\n\
        fs_avail{mountpoint=\"/a \\\"b\\\"\",device=\"x\"} 20\n\
        up 1\n\
        # TYPE req_total counter\n\
        req_total{code=\"200\"} 100\n\
        # TYPE lat histogram\n\
        lat_bucket{le=\"1\"} 3\n\
        lat_bucket{le=\"+Inf\"} 4\n\
        lat_sum 2.5\n\
        lat_count 4\n\
        # TYPE rpc summary\n\
        rpc{quantile=\"0.5\"} 0.2\n\
        rpc_sum 9\n\
        rpc_count 3\n";

    #[test]
    fn gauges_by_canonical_name_counters_as_rates_from_the_second_scrape() {
        let mut memory = TargetMemory::default();
        let first = run(TEXT, &all(), &mut memory, 0.0);
        assert_eq!(first.resources.len(), 1);
        let (id, m) = &first.resources[0];
        assert_eq!(id, "t:9100");
        assert_eq!(
            names(m),
            [
                "fs_avail{device=\"/dev/sda1\",mountpoint=\"/\"}",
                "fs_avail{device=\"x\",mountpoint=\"/a \\\"b\\\"\"}",
                "up",
            ],
            "labels sorted, escapes kept, no counter rate yet, no histogram or summary"
        );
        assert_eq!(first.series, 4);
        let second = run(
            &TEXT.replace("req_total{code=\"200\"} 100", "req_total{code=\"200\"} 150"),
            &all(),
            &mut memory,
            10.0,
        );
        let m = &second.resources[0].1;
        assert_eq!(m.get("req_total_per_s{code=\"200\"}"), Some(5.0));
        assert_eq!(m.len(), 4);
        // A counter that goes down is a reset: no rate, and the next one
        // starts from the reset value.
        let third = run(
            &TEXT.replace("req_total{code=\"200\"} 100", "req_total{code=\"200\"} 3"),
            &all(),
            &mut memory,
            20.0,
        );
        assert_eq!(
            third.resources[0].1.get("req_total_per_s{code=\"200\"}"),
            None
        );
        let fourth = run(
            &TEXT.replace("req_total{code=\"200\"} 100", "req_total{code=\"200\"} 23"),
            &all(),
            &mut memory,
            30.0,
        );
        assert_eq!(
            fourth.resources[0].1.get("req_total_per_s{code=\"200\"}"),
            Some(2.0)
        );
    }

    #[test]
    fn a_match_selects_series_and_lets_histograms_and_summaries_in() {
        let selection = Selection {
            matcher: Some(Regex::new("^(lat|rpc)").unwrap()),
            max_series: 1000,
            ..Selection::default()
        };
        let mut memory = TargetMemory::default();
        run(TEXT, &selection, &mut memory, 0.0);
        let next = TEXT
            .replace("lat_bucket{le=\"1\"} 3", "lat_bucket{le=\"1\"} 13")
            .replace("rpc_count 3", "rpc_count 5");
        let c = run(&next, &selection, &mut memory, 2.0);
        let m = &c.resources[0].1;
        assert_eq!(
            names(m),
            [
                "lat_bucket_per_s{le=\"1\"}",
                "lat_bucket_per_s{le=\"+Inf\"}",
                "lat_sum_per_s",
                "lat_count_per_s",
                "rpc{quantile=\"0.5\"}",
                "rpc_sum_per_s",
                "rpc_count_per_s",
            ]
        );
        assert_eq!(m.get("lat_bucket_per_s{le=\"1\"}"), Some(5.0));
        assert_eq!(m.get("rpc_count_per_s"), Some(1.0));
        // The pattern sees labels too.
        let by_label = Selection {
            matcher: Some(Regex::new("mountpoint=\"/\"").unwrap()),
            max_series: 1000,
            ..Selection::default()
        };
        let c = run(TEXT, &by_label, &mut TargetMemory::default(), 0.0);
        assert_eq!(
            names(&c.resources[0].1),
            ["fs_avail{device=\"/dev/sda1\",mountpoint=\"/\"}"]
        );
    }

    #[test]
    fn the_cap_keeps_the_first_series_and_counts_the_rest() {
        let selection = Selection {
            max_series: 2,
            ..Selection::default()
        };
        let c = run(TEXT, &selection, &mut TargetMemory::default(), 0.0);
        assert_eq!(c.resources[0].1.len(), 2);
        assert_eq!(c.over_cap, 2, "up and req_total are past the cap");
    }

    #[test]
    fn one_resource_per_label_value_the_label_left_out_of_names() {
        let text = "vm_cpu{id=\"qemu/100\",node=\"pve\"} 1\n\
                    vm_cpu{id=\"qemu/101\",node=\"pve\"} 2\n\
                    vm_mem{id=\"qemu/100\"} 3\n\
                    pve_up 1\n\
                    vm_cpu{id=\"\"} 9\n\
                    vm_cpu{id=\"bad\\nid\"} 9\n";
        let selection = Selection {
            resource_label: Some("id".into()),
            max_series: 1000,
            ..Selection::default()
        };
        let c = run(text, &selection, &mut TargetMemory::default(), 0.0);
        let got: Vec<(&str, Vec<&str>)> = c
            .resources
            .iter()
            .map(|(id, m)| (id.as_str(), names(m)))
            .collect();
        assert_eq!(
            got,
            vec![
                ("t:9100", vec!["pve_up"]),
                ("qemu/100", vec!["vm_cpu{node=\"pve\"}", "vm_mem"]),
                ("qemu/101", vec!["vm_cpu{node=\"pve\"}"]),
            ]
        );
        assert_eq!(c.invalid, 2, "an empty id and one with a newline");
    }

    #[test]
    fn the_cap_bounds_resources_from_a_label_too() {
        let text: String = (0..50).map(|i| format!("x{{id=\"vm{i}\"}} 1\n")).collect();
        let selection = Selection {
            resource_label: Some("id".into()),
            max_series: 10,
            ..Selection::default()
        };
        let c = run(&text, &selection, &mut TargetMemory::default(), 0.0);
        assert_eq!(c.resources.len(), 10);
        assert_eq!(c.over_cap, 40);
    }

    #[test]
    fn repeats_bad_names_and_non_finite_values_are_dropped_and_counted() {
        let long = format!("{} 1\n", "x".repeat(257));
        let text = format!("a 1\na 2\nb NaN\nc{{l=\"\u{1}\"}} 1\n{long}");
        let c = run(&text, &all(), &mut TargetMemory::default(), 0.0);
        let m = &c.resources[0].1;
        assert_eq!(names(m), ["a"]);
        assert_eq!(m.get("a"), Some(1.0), "the first of two repeats");
        assert_eq!((c.duplicates, c.non_finite, c.invalid), (1, 1, 2));
    }

    #[test]
    fn a_target_whose_names_keep_changing_spends_only_its_name_budget() {
        let selection = Selection {
            max_names: 5,
            name_memory_s: 60.0,
            ..Selection::default()
        };
        let mut memory = TargetMemory::default();
        // `up` every scrape, plus two series named by a request id.
        let scrape = |n: usize| {
            format!(
                "up 1\nreq{{id=\"{}\"}} 1\nreq{{id=\"{}\"}} 1\n",
                2 * n,
                2 * n + 1
            )
        };
        let c = run(&scrape(0), &selection, &mut memory, 0.0);
        assert_eq!((c.series, c.over_budget), (3, 0));
        let c = run(&scrape(1), &selection, &mut memory, 1.0);
        assert_eq!((c.series, c.over_budget), (3, 0), "5 names: up and 4 ids");
        for n in 2..10 {
            let c = run(&scrape(n), &selection, &mut memory, n as f64);
            assert_eq!((c.series, c.over_budget), (1, 2), "scrape {n}");
            assert_eq!(names(&c.resources[0].1), ["up"], "the known series stays");
        }
        assert_eq!(memory.names(), 5);
        // Names unseen for the name memory leave the budget: new ones fit again.
        let c = run(&scrape(10), &selection, &mut memory, 62.0);
        assert_eq!((c.series, c.over_budget), (3, 0));
        assert_eq!(memory.names(), 3);
    }

    #[test]
    fn explicit_timestamps_time_the_rate_and_a_repeat_gives_none() {
        let mut memory = TargetMemory::default();
        let sel = all();
        run("# TYPE c counter\nc 10 1000\n", &sel, &mut memory, 0.0);
        // Scraped 50 s later, but the exporter says 2 s passed.
        let c = run("# TYPE c counter\nc 14 3000\n", &sel, &mut memory, 50.0);
        assert_eq!(c.resources[0].1.get("c_per_s"), Some(2.0));
        // The same sample again (an exporter that did not refresh): no rate.
        let c = run("# TYPE c counter\nc 14 3000\n", &sel, &mut memory, 60.0);
        assert_eq!(c.resources[0].1.get("c_per_s"), None);
    }

    #[test]
    fn control_characters_are_found_on_the_bytes_as_char_is_control_would() {
        for c in (0u32..0x3000).filter_map(char::from_u32) {
            let v = format!("a{c}b");
            let mut out = String::new();
            let clean = escape_label_value(&v, &mut out);
            assert_eq!(clean, c == '\n' || !c.is_control(), "{c:?}");
            assert!(!out.contains('\n'));
        }
    }

    #[test]
    fn derived_host_metrics_replace_a_series_of_the_same_name() {
        let text = "memory 1\nnode_memory_MemTotal_bytes 200\nnode_memory_MemAvailable_bytes 50\n";
        let c = run(text, &all(), &mut TargetMemory::default(), 0.0);
        let m = &c.resources[0].1;
        assert_eq!(m.get("memory"), Some(75.0));
        assert_eq!(c.derivable, ["memory"]);
    }
}
