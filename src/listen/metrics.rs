//! `GET /metrics`: the recorder's own health in the Prometheus text format.
//!
//! A recorder that silently stopped recording is worse than none, so its
//! vital signs are scrapeable: ticks and their time, windows recording,
//! points written, values and samples refused, provider failures, failed
//! commits (from [`IncidentRecorder::stats`]), connections and requests
//! the listener refused, and what the database holds
//! (from [`Store::stats`](crate::Store::stats)), and for a database that
//! pushes to a fleet, the push backlog. Names are
//! `incident_recorder_*`; counters end in `_total`, as Prometheus' naming
//! rules (and `promtool check metrics`) want.
//!
//! The database counts scan tables, so they are refreshed at most once per
//! [`STORE_STATS_TTL`]; the recorder's own counters are read on every
//! request.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::provider::prometheus::escape;
use crate::recorder::IncidentRecorder;
use crate::store::StoreStats;

/// How long the database counts of `/metrics` are reused.
pub const STORE_STATS_TTL: Duration = Duration::from_secs(60);

/// The database counts of the last `/metrics`, and when they were read.
#[derive(Default)]
pub(super) struct StoreCache(Mutex<Option<(Instant, StoreStats)>>);

/// The text of `/metrics`.
pub(super) fn render(
    recorder: &IncidentRecorder,
    cache: &StoreCache,
    listener: &super::http::Counters,
) -> String {
    let s = recorder.stats();
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(out, "# HELP incident_recorder_{name} {help}");
        let _ = writeln!(out, "# TYPE incident_recorder_{name} {kind}");
        for (suffix, v) in samples {
            let _ = writeln!(out, "incident_recorder_{name}{suffix} {}", number(*v));
        }
    };
    let counter = |n: u64| n as f64;
    family(
        "ticks_total",
        "counter",
        "Ticks run (one sample of every resource each).",
        &[("", counter(s.ticks))],
    );
    family(
        "tick_seconds",
        "summary",
        "Time spent in ticks: provider calls, buffering, the commit.",
        &[("_sum", s.tick_seconds), ("_count", counter(s.ticks))],
    );
    family(
        "last_tick_timestamp_seconds",
        "gauge",
        "When the last tick ran, Unix time (0 before the first).",
        &[(
            "",
            s.last_tick.map_or(0.0, |t| t.as_unix_ms() as f64 / 1000.0),
        )],
    );
    family(
        "sample_interval_seconds",
        "gauge",
        "The configured time between ticks.",
        &[("", recorder.config().sample_interval.as_secs_f64())],
    );
    family(
        "samples_total",
        "counter",
        "Samples accepted.",
        &[("", counter(s.samples))],
    );
    family(
        "points_written_total",
        "counter",
        "Points committed to windows.",
        &[("", counter(s.points_written))],
    );
    family(
        "rejected_values_total",
        "counter",
        "Values refused: NaN, infinite, too large, or an invalid metric name.",
        &[("", counter(s.rejected_values))],
    );
    family(
        "metric_names_refused_total",
        "counter",
        "Values with a new metric name refused because the name table was full.",
        &[("", counter(s.names_refused))],
    );
    family(
        "out_of_order_samples_total",
        "counter",
        "Samples refused for being older than their resource's last one.",
        &[("", counter(s.out_of_order))],
    );
    family(
        "provider_errors_total",
        "counter",
        "Provider calls that failed (a scrape target down...).",
        &[("", counter(s.provider_errors))],
    );
    family(
        "provider_panics_total",
        "counter",
        "Provider calls that panicked.",
        &[("", counter(s.provider_panics))],
    );
    family(
        "provider_hangs_total",
        "counter",
        "Provider calls abandoned past the provider timeout.",
        &[("", counter(s.provider_hangs))],
    );
    family(
        "provider_skipped_total",
        "counter",
        "Samples not asked for because their resource's calls hung.",
        &[("", counter(s.provider_skipped))],
    );
    family(
        "stuck_provider_calls",
        "gauge",
        "Provider threads still stuck in a call the recorder gave up on.",
        &[("", s.stuck_provider_calls as f64)],
    );
    family(
        "failed_commits_total",
        "counter",
        "Commits that failed; their points stay queued and are retried.",
        &[("", counter(s.write_errors))],
    );
    family(
        "write_failing",
        "gauge",
        "1 while the last commit failed.",
        &[("", if s.last_error.is_some() { 1.0 } else { 0.0 })],
    );
    family(
        "resources",
        "gauge",
        "Resources with a pre-incident buffer.",
        &[("", s.resources as f64)],
    );
    family(
        "buffered_points",
        "gauge",
        "Samples held in pre-incident buffers.",
        &[("", s.buffered_points as f64)],
    );
    family(
        "buffer_bytes",
        "gauge",
        "Heap bytes held by the buffers.",
        &[("", s.buffer_bytes as f64)],
    );
    family(
        "windows_recording",
        "gauge",
        "Windows recording now.",
        &[("", s.active_windows as f64)],
    );
    family(
        "pending_points",
        "gauge",
        "Points waiting for a successful commit.",
        &[("", s.pending_points as f64)],
    );
    family(
        "listener_refused_connections_total",
        "counter",
        "Connections refused with 503 because the listener had its maximum open.",
        &[(
            "",
            counter(listener.refused_connections.load(Ordering::Relaxed)),
        )],
    );
    family(
        "listener_busy_requests_total",
        "counter",
        "Requests answered 503 because every handler stayed busy too long.",
        &[("", counter(listener.busy_requests.load(Ordering::Relaxed)))],
    );
    // The fleet push (issue 14): what waits for the central database, read
    // fresh on every request (one count over the windows' rows). Only for
    // a database that pushes.
    match recorder.store().push_state() {
        Ok(p) if p.enabled => {
            family(
                "push_backlog_windows",
                "gauge",
                "Closed windows the central database does not have yet.",
                &[("", p.backlog as f64)],
            );
            family(
                "push_pushed_windows",
                "gauge",
                "Closed windows still stored here that the central database has.",
                &[("", p.pushed as f64)],
            );
            family(
                "push_refused_windows",
                "gauge",
                "Closed windows the central database refused, tried again later (1 min, doubling to 1 h).",
                &[("", p.refused as f64)],
            );
            family(
                "push_dropped_unpushed_windows_total",
                "counter",
                "Windows trimming deleted before they could be pushed.",
                &[("", counter(p.dropped_unpushed))],
            );
            family(
                "push_dropped_refused_windows_total",
                "counter",
                "Of the windows trimming deleted unpushed, those the central database had refused.",
                &[("", counter(p.dropped_refused))],
            );
            if let Some(next) = p.next_retry {
                family(
                    "push_next_retry_timestamp_seconds",
                    "gauge",
                    "When the next refused window is tried again (Unix seconds).",
                    &[("", next.as_unix_ms() as f64 / 1000.0)],
                );
            }
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %crate::error_chain(&e), "cannot read the push backlog for /metrics")
        }
    }

    let stored = {
        let mut c = cache.0.lock().unwrap_or_else(|e| e.into_inner());
        let fresh = c
            .as_ref()
            .is_some_and(|(at, _)| at.elapsed() < STORE_STATS_TTL);
        if !fresh {
            match recorder.store().stats() {
                Ok(stats) => *c = Some((Instant::now(), stats)),
                Err(e) => {
                    tracing::warn!(error = %crate::error_chain(&e), "cannot read database counts for /metrics")
                }
            }
        }
        c.as_ref().map(|(_, s)| s.clone())
    };
    if let Some(d) = stored {
        let mut out2 = String::new();
        let _ = writeln!(
            out2,
            "# HELP incident_recorder_stored_windows Windows in the database, by status."
        );
        let _ = writeln!(out2, "# TYPE incident_recorder_stored_windows gauge");
        for (status, n) in &d.windows_by_status {
            let mut label = String::new();
            escape(status, &mut label);
            let _ = writeln!(
                out2,
                "incident_recorder_stored_windows{{status=\"{label}\"}} {n}"
            );
        }
        out.push_str(&out2);
        let mut family = |name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP incident_recorder_{name} {help}");
            let _ = writeln!(out, "# TYPE incident_recorder_{name} gauge");
            let _ = writeln!(out, "incident_recorder_{name} {v}");
        };
        family("stored_points", "Data points in the database.", d.points);
        family("stored_values", "Metric values in the database.", d.values);
        family(
            "stored_resources",
            "Resources with stored windows.",
            d.resources,
        );
        family(
            "stored_metrics",
            "Distinct metric names in the database.",
            d.metrics,
        );
        family(
            "stored_anomalies",
            "Anomalies found in closed windows.",
            d.anomalies,
        );
        family(
            "stored_suppressed_triggers",
            "Triggers suppressed by the daily window limit, still stored.",
            d.suppressed_triggers,
        );
        family(
            "database_bytes",
            "Size of the database file.",
            d.database_bytes,
        );
    }
    out
}

/// A value as the text format writes it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        v.to_string()
    }
}
