//! Prometheus exporters as a [`MetricsProvider`](crate::MetricsProvider).
//!
//! Most hosts worth recording already run an exporter (node_exporter on
//! `:9100`, a database's, a hypervisor's). A central Prometheus scrapes them
//! every 15 to 60 s, too coarse for the minutes around an incident;
//! [`ScrapeProvider`] scrapes them at the recorder's own interval and keeps
//! the usual pre-incident buffer of each, so an alert (from Alertmanager, a
//! rule) finds the seconds-resolution history already there.
//!
//! - [`parse`]: the text exposition format 0.0.4, zero-copy and bounded;
//! - `series`: which series become which metrics (canonical names, counters
//!   as `_per_s` rates, histograms and summaries only when matched, a cap
//!   per target, a budget of distinct names per target, resources from a
//!   label);
//! - `node`: the host metrics of `watch` (`cpu`, `memory`, `disk`...)
//!   derived from node_exporter's series, so the same rules work on a
//!   scraped node;
//! - `scrape`: the provider: HTTP (`ureq`, plain HTTP only, no redirects
//!   followed), each target on a thread of its own, started by every tick
//!   and bounded by a timeout; a tick waits a bounded time and takes the
//!   scrapes done, so a slow target costs only its own sample.
//!
//! ```no_run
//! use std::sync::Arc;
//! use incident_recorder::{IncidentRecorder, RecorderConfig};
//! use incident_recorder::provider::prometheus::{ScrapeOptions, ScrapeProvider, ScrapeTarget};
//!
//! let targets = vec![
//!     "http://10.0.0.5:9100/metrics".parse::<ScrapeTarget>()?, // resource "10.0.0.5:9100"
//!     "db=http://10.0.0.6:9187/metrics".parse()?,               // resource "db"
//! ];
//! let recorder = IncidentRecorder::open(RecorderConfig::with_db_path("incidents.db"))?;
//! recorder.set_metrics_provider(Arc::new(ScrapeProvider::new(targets, ScrapeOptions::default())?));
//! recorder.start()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod parse;

mod node;
mod scrape;
mod series;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

pub use parse::{
    Component, Exposition, Label, MetricKind, ParseLimits, Sample, is_metric_name,
    parse as parse_text,
};
pub use scrape::{ScrapeProvider, TargetStatus};

use crate::error::{Error, clip};

/// Escapes a label value for the text format (for writers of it, `/metrics`).
pub(crate) use series::escape_label_value as escape;

/// Shortest time between the two scrapes a rate (or `cpu`) is computed
/// from. Closer scrapes give no rate and the next scrape is measured from
/// the older one: below this, the 10 ms granularity of Linux CPU counters
/// and the jitter of an HTTP round trip make a rate meaningless.
pub const MIN_RATE_INTERVAL: Duration = Duration::from_millis(100);

/// One exporter to scrape: `[NAME=]URL`.
///
/// Its resource id is `NAME`, else the URL's `host:port` (what Prometheus
/// puts in the `instance` label, so Alertmanager's alerts about it name the
/// same resource). The URL is plain HTTP; `host:port` alone means
/// `http://host:port/metrics`, and a URL without a path gets `/metrics`. A
/// URL without a port has port 80 (as Prometheus 2 writes `instance`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScrapeTarget {
    name: Option<String>,
    url: String,
    instance: String,
}

impl ScrapeTarget {
    /// Parses `[NAME=]URL`; see the type's docs.
    pub fn parse(spec: &str) -> Result<ScrapeTarget, Error> {
        let bad = |why: String| {
            Error::InvalidConfig(format!(
                "invalid scrape target {:?}: {why}; write [NAME=]URL, e.g. http://10.0.0.5:9100/metrics or web=http://web:9100/metrics",
                clip(spec)
            ))
        };
        let (name, url) = match spec.split_once('=') {
            Some((name, url)) if !name.contains([':', '/']) => (Some(name), url),
            _ => (None, spec),
        };
        if let Some(name) = name
            && !series::valid_resource_id(name)
        {
            return Err(bad(format!(
                "the name {:?} is not a valid resource id (empty, over 1024 bytes or with control characters)",
                clip(name)
            )));
        }
        if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                "the URL is empty or has spaces or control characters".into()
            ));
        }
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", url));
        match scheme.to_ascii_lowercase().as_str() {
            "http" => {}
            "https" => {
                return Err(bad(
                    "https is not supported (this build has no TLS); scrape the exporter over http, or through a local TLS-terminating proxy"
                        .into(),
                ));
            }
            other => return Err(bad(format!("unsupported scheme {:?}", clip(other)))),
        }
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err(bad("credentials in the URL are not supported".into()));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (addr, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in the address".into()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| bad("expected :PORT after ]".into()))?,
                ),
            };
            (format!("[{addr}]"), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_owned(), Some(p)),
                None => (authority.to_owned(), None),
            }
        };
        if host.is_empty() || host == "[]" {
            return Err(bad("the URL has no host".into()));
        }
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|&p| p > 0)
                .ok_or_else(|| bad(format!("invalid port {:?}", clip(p))))?,
            None => 80,
        };
        let path = if path.is_empty() { "/metrics" } else { path };
        Ok(ScrapeTarget {
            name: name.map(str::to_owned),
            url: format!("http://{authority}{path}"),
            instance: format!("{host}:{port}"),
        })
    }

    /// The URL scraped.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The resource the target is recorded as: its name, else `host:port`.
    pub fn resource_id(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.instance)
    }

    /// The URL's `host:port`, as Prometheus' `instance` label.
    pub fn instance(&self) -> &str {
        &self.instance
    }
}

impl FromStr for ScrapeTarget {
    type Err = Error;

    fn from_str(s: &str) -> Result<ScrapeTarget, Error> {
        ScrapeTarget::parse(s)
    }
}

impl fmt::Display for ScrapeTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "{n}={}", self.url),
            None => f.write_str(&self.url),
        }
    }
}

/// How a [`ScrapeProvider`] scrapes and what it keeps.
#[derive(Clone, Debug, PartialEq)]
pub struct ScrapeOptions {
    /// One resource per value of this label instead of one per target
    /// (`id` for a Proxmox exporter: one resource per VM). The label is
    /// left out of the stored names; series without it belong to the
    /// target's own resource. Resources are discovered by scrapes: one
    /// first seen in a scrape is recorded from the next tick on.
    pub resource_label: Option<String>,
    /// A regular expression (Rust `regex` syntax) over canonical series
    /// names: only matching series are kept, and histograms and summaries
    /// only with it. Unanchored. node_exporter's host metrics are derived
    /// whatever it matches.
    pub series_match: Option<String>,
    /// At most this many series per target (the first ones in the text);
    /// the rest are dropped with a warning. Default 2,000: all of
    /// node_exporter on a large host; at most
    /// [`MAX_SERIES_PER_TARGET`](Self::MAX_SERIES_PER_TARGET).
    pub max_series_per_target: usize,
    /// Longest one scrape may take, from connecting to the last byte.
    /// Keep it below the recorder's `provider_timeout`, so a slow target
    /// costs its own resources the tick and nothing else. Default 3 s.
    pub timeout: Duration,
    /// Largest response body accepted. Default 16 MiB.
    pub max_body_bytes: u64,
    /// Longest a batch call (one tick) waits for the scrapes it started.
    /// Every target is scraped on a thread of its own, so a scrape still
    /// running then costs only its own target's sample: the call answers
    /// the other targets, and that scrape, once done, is recorded by the
    /// next call (stamped with that call's time; a scrape whose result no
    /// call took by the end of the following one is dropped). Keep it well
    /// below the sample interval. Default 1 s.
    pub wait: Duration,
    /// At most this many distinct series names per target in
    /// [`name_memory`](Self::name_memory) (the *name budget*): a target
    /// whose names keep changing (a label holding a request id) would
    /// otherwise fill the recorder's table of 100,000 metric names and
    /// starve every other resource. Series with a new name past the budget
    /// are dropped (counted, logged once); series already known keep being
    /// recorded. Default 10,000 (5 × the default series cap).
    pub max_names_per_target: usize,
    /// A name a target has not served for this long leaves its budget.
    /// Default 10 minutes; `watch` uses its pre-incident window when longer
    /// (a name stays in the recorder's buffers that long).
    pub name_memory: Duration,
    /// Limits of the text parser.
    pub limits: ParseLimits,
}

impl ScrapeOptions {
    /// The default series cap per target.
    pub const DEFAULT_MAX_SERIES_PER_TARGET: usize = 2_000;
    /// The largest series cap: a sample carries at most 4,096 values (the
    /// recorder refuses more), and up to 10 are the derived host metrics.
    pub const MAX_SERIES_PER_TARGET: usize =
        crate::validate::MAX_VALUES_PER_SAMPLE - crate::provider::host::METRICS.len();
    /// The default scrape timeout.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);
    /// The default body limit.
    pub const DEFAULT_MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;
    /// The default wait of a batch call.
    pub const DEFAULT_WAIT: Duration = Duration::from_secs(1);
    /// The default name budget per target.
    pub const DEFAULT_MAX_NAMES_PER_TARGET: usize = 10_000;
    /// The default name memory.
    pub const DEFAULT_NAME_MEMORY: Duration = Duration::from_secs(600);
}

impl Default for ScrapeOptions {
    fn default() -> ScrapeOptions {
        ScrapeOptions {
            resource_label: None,
            series_match: None,
            max_series_per_target: Self::DEFAULT_MAX_SERIES_PER_TARGET,
            timeout: Self::DEFAULT_TIMEOUT,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            wait: Self::DEFAULT_WAIT,
            max_names_per_target: Self::DEFAULT_MAX_NAMES_PER_TARGET,
            name_memory: Self::DEFAULT_NAME_MEMORY,
            limits: ParseLimits::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_series_cap_leaves_room_for_the_host_metrics() {
        assert_eq!(ScrapeOptions::MAX_SERIES_PER_TARGET, 4_086);
    }

    #[test]
    fn targets_are_named_or_take_host_and_port() {
        let t: ScrapeTarget = "http://10.0.0.5:9100/metrics".parse().unwrap();
        assert_eq!(
            (t.resource_id(), t.url()),
            ("10.0.0.5:9100", "http://10.0.0.5:9100/metrics")
        );
        let t: ScrapeTarget = "db=http://db:9187/metrics?x=1".parse().unwrap();
        assert_eq!((t.resource_id(), t.instance()), ("db", "db:9187"));
        assert_eq!(t.url(), "http://db:9187/metrics?x=1");
        assert_eq!(t.to_string(), "db=http://db:9187/metrics?x=1");
        let t: ScrapeTarget = "node:9100".parse().unwrap();
        assert_eq!(
            (t.resource_id(), t.url()),
            ("node:9100", "http://node:9100/metrics")
        );
        let t: ScrapeTarget = "http://example.org".parse().unwrap();
        assert_eq!(
            (t.resource_id(), t.url()),
            ("example.org:80", "http://example.org/metrics")
        );
        let t: ScrapeTarget = "http://[::1]:9100/m".parse().unwrap();
        assert_eq!(t.resource_id(), "[::1]:9100");
        // An = after the scheme is part of the URL, not a name.
        let t: ScrapeTarget = "http://h:1/m?a=b".parse().unwrap();
        assert_eq!(t.resource_id(), "h:1");
    }

    #[test]
    fn bad_targets_say_why() {
        for (spec, why) in [
            ("https://h:9100/metrics", "no TLS"),
            ("ftp://h/x", "unsupported scheme"),
            ("http://user:pw@h:1/", "credentials"),
            ("http://h:x/", "invalid port"),
            ("http://h:70000/", "invalid port"),
            ("http:///metrics", "no host"),
            ("=http://h:1/", "not a valid resource id"),
            ("http://h:1/a b", "spaces"),
            ("http://[::1/", "unclosed ["),
        ] {
            let err = spec.parse::<ScrapeTarget>().unwrap_err().to_string();
            assert!(err.contains(why), "{spec:?}: {err}");
            assert!(err.contains("[NAME=]URL"), "{err}");
        }
    }
}
