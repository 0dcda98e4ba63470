//! `watch --scrape`: Prometheus exporters recorded next to (or instead of)
//! this host.
//!
//! The options are parsed here and become the library's
//! [`ScrapeProvider`]; `watch` puts it behind one [`CombinedProvider`] with
//! the host's provider, so rules, anomalies and triggers see one set of
//! resources. Each target is scraped on a thread of its own; each scrape
//! gets 3/4 of the recorder's provider timeout (the sample interval, at
//! least 1 s) and a tick waits for the scrapes it started for half the
//! interval: a slow target costs its own resources the tick, never the tick
//! itself, and its scrape, once done, is recorded by the next tick.
//!
//! Rules name metrics, and a metric no provider reports would never fire,
//! so `watch` checks them before it starts: against the host's metrics and
//! what two quick scrapes of every target report (two, so counters' rates
//! and node_exporter's `cpu` are there). A rule on a metric nobody reports
//! is refused with the names that come close; if a target did not answer,
//! the rule is kept with a warning (the target may come up later). The
//! default rules (`cpu`, `memory`, `disk`), which the user did not ask for,
//! are left out where nothing reports their metric (a `--no-host` watch of
//! an application's exporter).

use std::collections::BTreeSet;
use std::sync::Arc;

use clap::Args;
use incident_recorder::provider::combine::CombinedProvider;
use incident_recorder::provider::host::{self, HostProvider};
use incident_recorder::provider::prometheus::{
    MIN_RATE_INTERVAL, ScrapeOptions, ScrapeProvider, ScrapeTarget,
};
use incident_recorder::{MetricsProvider, RecorderConfig};

use super::error::{Context, Failure, Result};
use super::rules::Rule;

/// The scrape options of `watch`.
#[derive(Debug, Args)]
#[command(next_help_heading = "Prometheus exporters")]
pub struct ScrapeArgs {
    /// Also record a Prometheus exporter every interval: [NAME=]URL, e.g.
    /// http://10.0.0.5:9100/metrics (plain HTTP). Its resource is NAME, else
    /// the URL's host:port (Prometheus' `instance` label, which Alertmanager
    /// alerts carry). Gauges are stored by series name with labels
    /// (node_load1, node_filesystem_avail_bytes{device="/dev/sda1",fstype="ext4",mountpoint="/"}),
    /// counters as per-second rates (<name>_per_s{...}). node_exporter
    /// targets also get this host's metrics (cpu, memory, swap, disk, load1,
    /// load5, net/disk byte rates), so the same rules apply to them.
    /// Repeatable.
    #[arg(long = "scrape", value_name = "[NAME=]URL", value_parser = parse_target)]
    pub targets: Vec<ScrapeTarget>,
    /// Keep only series whose name (with its labels, before _per_s) matches
    /// this regular expression, anywhere (anchor with ^...$); histograms and
    /// summaries are kept only when matched. node_exporter's host metrics
    /// are derived whatever it matches.
    #[arg(long, value_name = "REGEX", requires = "targets")]
    pub scrape_match: Option<String>,
    /// One resource per value of this label instead of one per target (e.g.
    /// `id` for one resource per VM of a Proxmox exporter). The label is left
    /// out of the series names; series without it stay on the target's
    /// resource. New values are recorded from the tick after they appear.
    #[arg(long, value_name = "LABEL", requires = "targets")]
    pub scrape_resource_label: Option<String>,
    /// At most N series per target (the first ones it serves; at most 4086);
    /// the rest are dropped with a warning.
    #[arg(long, value_name = "N", default_value_t = ScrapeOptions::DEFAULT_MAX_SERIES_PER_TARGET as u32, value_parser = clap::value_parser!(u32).range(1..=ScrapeOptions::MAX_SERIES_PER_TARGET as i64), requires = "targets")]
    pub scrape_max_series: u32,
    /// At most N distinct series names per target within the pre-incident
    /// window (at least 10 minutes): a target whose names keep changing (a
    /// label holding a request id) would fill the recorder's 100,000 names.
    /// Series with new names past it are dropped (logged once); known ones
    /// are still recorded.
    #[arg(long, value_name = "N", default_value_t = ScrapeOptions::DEFAULT_MAX_NAMES_PER_TARGET as u32, value_parser = clap::value_parser!(u32).range(1..=100_000), requires = "targets")]
    pub scrape_max_names: u32,
    /// Do not sample this host: record only the --scrape targets
    /// (--trigger-now then opens its window on the first target).
    #[arg(long, requires = "targets")]
    pub no_host: bool,
}

fn parse_target(s: &str) -> std::result::Result<ScrapeTarget, String> {
    s.parse()
        .map_err(|e: incident_recorder::Error| e.to_string())
}

/// What `watch` samples: the provider, and how to name it on screen.
pub struct Sources {
    /// Everything behind one provider.
    pub provider: Arc<dyn MetricsProvider>,
    /// The resource `--trigger-now` opens a window on.
    pub first: String,
    /// For the status line: "web-1", "web-1 and 2 scrape targets"...
    pub label: String,
    /// The scrape provider, if any.
    pub scrape: Option<Arc<ScrapeProvider>>,
    /// True when this host is sampled.
    pub host: bool,
}

/// Builds the host provider and the scrape provider the options ask for.
pub fn sources(a: &ScrapeArgs, config: &RecorderConfig) -> Result<Sources> {
    let host = if a.no_host {
        None
    } else {
        Some(HostProvider::new().context("cannot read this host's metrics")?)
    };
    let scrape = if a.targets.is_empty() {
        None
    } else {
        let normalized = config.clone().normalized();
        let timeout = normalized.provider_timeout * 3 / 4;
        let options = ScrapeOptions {
            resource_label: a.scrape_resource_label.clone(),
            series_match: a.scrape_match.clone(),
            max_series_per_target: a.scrape_max_series as usize,
            max_names_per_target: a.scrape_max_names as usize,
            timeout,
            wait: normalized.sample_interval.min(normalized.provider_timeout) / 2,
            name_memory: (normalized.pre_incident_window + normalized.sample_interval)
                .max(ScrapeOptions::DEFAULT_NAME_MEMORY),
            ..ScrapeOptions::default()
        };
        Some(Arc::new(ScrapeProvider::new(a.targets.clone(), options)?))
    };
    let n = a.targets.len();
    let targets = format!("{n} scrape target{}", if n == 1 { "" } else { "s" });
    Ok(match (host, scrape) {
        (Some(h), None) => {
            let id = h.resource_id().to_owned();
            Sources {
                provider: Arc::new(h),
                first: id.clone(),
                label: id,
                scrape: None,
                host: true,
            }
        }
        (Some(h), Some(s)) => {
            let id = h.resource_id().to_owned();
            let parts: Vec<Arc<dyn MetricsProvider>> = vec![Arc::new(h), s.clone()];
            Sources {
                provider: Arc::new(CombinedProvider::new(parts)),
                label: format!("{id} and {targets}"),
                first: id,
                scrape: Some(s),
                host: true,
            }
        }
        (None, Some(s)) => Sources {
            provider: s.clone(),
            first: a.targets[0].resource_id().to_owned(),
            label: targets,
            scrape: Some(s),
            host: false,
        },
        (None, None) => unreachable!("clap requires --scrape with --no-host"),
    })
}

/// Refuses rules on metrics that neither the host nor any target reports;
/// see the module docs. The default rules (no `--rule` given) are not the
/// user's: those on metrics nobody reports are dropped instead. Returns the
/// rules to check and warnings to show.
pub fn check_rules(rules: Vec<Rule>, sources: &Sources) -> Result<(Vec<Rule>, Vec<String>)> {
    let defaults = rules == super::rules::default_rules();
    let mut known: BTreeSet<String> = BTreeSet::new();
    if sources.host {
        known.extend(host::METRICS.iter().map(|m| m.to_string()));
    }
    let mut down = Vec::new();
    if let Some(scrape) = &sources.scrape {
        let needed = rules.iter().any(|r| !known.contains(&r.metric));
        if needed {
            for round in 0..2 {
                if round == 1 {
                    std::thread::sleep(MIN_RATE_INTERVAL);
                }
                for resources in scrape.scrape_all().into_iter().flatten() {
                    for (_, metrics) in resources {
                        known.extend(metrics.iter().map(|(n, _)| n.to_owned()));
                    }
                }
            }
            for status in scrape.status() {
                known.extend(status.derived.iter().cloned());
                if let Some(e) = &status.last_error {
                    down.push(format!("{} ({e})", status.url));
                }
            }
        }
    }
    let mut warnings = Vec::new();
    let (rules, unknown): (Vec<Rule>, Vec<Rule>) = rules
        .into_iter()
        .partition(|r| known.contains(&r.metric) || (defaults && !down.is_empty()));
    let mut kept = rules;
    for r in &unknown {
        if defaults {
            continue; // not asked for: dropped
        }
        let base = r.metric.split('{').next().unwrap_or(&r.metric);
        let close: Vec<&String> = known
            .iter()
            .filter(|n| n.starts_with(base) || base.starts_with(n.split('{').next().unwrap_or(n)))
            .take(5)
            .collect();
        let hint = if close.is_empty() {
            String::new()
        } else {
            let names: Vec<String> = close.iter().map(|n| format!("{n:?}")).collect();
            format!("; close names: {}", names.join(", "))
        };
        if !down.is_empty() {
            warnings.push(format!(
                "rule {:?} uses metric {:?}, which no answering target reports yet; kept, since {} did not answer",
                r.id(),
                r.metric,
                down.join(", ")
            ));
            kept.push(r.clone());
            continue;
        }
        let what = match (&sources.scrape, sources.host) {
            (Some(_), true) => "neither this host nor any scrape target reports",
            (Some(_), false) => "no scrape target reports",
            (None, _) => "this host does not report",
        };
        return Err(Failure::msg(format!(
            "rule {:?} uses metric {:?}, which {what}; host metrics are {}{}",
            r.id(),
            r.metric,
            host::METRICS.join(", "),
            hint
        )));
    }
    Ok((kept, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        scrape: ScrapeArgs,
    }

    #[test]
    fn scrape_options_need_a_target_and_targets_parse() {
        for args in [
            vec!["x", "--scrape-match", "node_"],
            vec!["x", "--scrape-resource-label", "id"],
            vec!["x", "--no-host"],
            vec!["x", "--scrape-max-series", "5"],
        ] {
            let err = Cli::try_parse_from(&args).unwrap_err().to_string();
            assert!(err.contains("--scrape <[NAME=]URL>"), "{args:?}: {err}");
        }
        let cli =
            Cli::try_parse_from(["x", "--scrape", "a=http://h:1/m", "--scrape", "h:2"]).unwrap();
        let ids: Vec<&str> = cli.scrape.targets.iter().map(|t| t.resource_id()).collect();
        assert_eq!(ids, ["a", "h:2"]);
        assert_eq!(cli.scrape.scrape_max_series, 2000);
        let err = Cli::try_parse_from(["x", "--scrape", "h:1", "--scrape-max-series", "5000"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("1..=4086"), "{err}");
        let err = Cli::try_parse_from(["x", "--scrape", "https://h:1/"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("no TLS"), "{err}");
    }

    #[test]
    fn a_host_only_watch_refuses_unknown_metrics() {
        let cli = Cli::try_parse_from(["x"]).unwrap();
        let sources = sources(&cli.scrape, &RecorderConfig::default()).unwrap();
        let ok: Vec<Rule> = vec!["cpu>90".parse().unwrap()];
        let (kept, warnings) = check_rules(ok.clone(), &sources).unwrap();
        assert_eq!((kept, warnings.len()), (ok, 0));
        let bad: Vec<Rule> = vec!["node_load1>3".parse().unwrap()];
        let err = check_rules(bad, &sources).unwrap_err().chain();
        assert!(err.contains("this host does not report"), "{err}");
    }
}
