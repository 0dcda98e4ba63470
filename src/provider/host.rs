//! The machine this process runs on, as a [`MetricsProvider`].
//!
//! [`HostProvider`] reads the host's counters through `sysinfo` and reports
//! one resource, named after the host. It is what `incident-recorder watch`
//! records, and embedders can use it the same way:
//!
//! ```no_run
//! use std::sync::Arc;
//! use incident_recorder::{IncidentRecorder, RecorderConfig};
//! use incident_recorder::provider::host::HostProvider;
//!
//! let recorder = IncidentRecorder::open(RecorderConfig::with_db_path("incidents.db"))?;
//! recorder.set_metrics_provider(Arc::new(HostProvider::new()?));
//! recorder.start()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Metrics
//!
//! | name | meaning |
//! |---|---|
//! | `cpu` | CPU busy, % of all cores |
//! | `memory` | memory in use, % of total |
//! | `swap` | swap in use, % of total (absent on hosts without swap) |
//! | `disk` | space used on the fullest writable file system, % |
//! | `load1`, `load5` | load averages over 1 and 5 minutes (absent where the OS has none) |
//! | `net_rx_bytes_per_s`, `net_tx_bytes_per_s` | bytes received and sent per second, all interfaces but loopback |
//! | `disk_read_bytes_per_s`, `disk_write_bytes_per_s` | bytes read from and written to disks per second |
//!
//! Rates and `cpu` are differences between two readings, so the first sample
//! after construction has none of them, and neither has a sample taken less
//! than [`MIN_RATE_INTERVAL`] after the previous one (too short to measure).
//! Counters that go backwards (an interface that went away, a counter reset)
//! are left out of that sample's rate rather than reported as a spike.

use std::collections::HashMap;
use std::ffi::OsString;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sysinfo::{CpuRefreshKind, Disks, MemoryRefreshKind, Networks, RefreshKind, System};

use super::MetricsProvider;
use crate::error::ProviderError;
use crate::model::Metrics;

/// Every metric [`HostProvider`] can report, in the order it reports them.
pub const METRICS: &[&str] = &[
    "cpu",
    "memory",
    "swap",
    "disk",
    "load1",
    "load5",
    "net_rx_bytes_per_s",
    "net_tx_bytes_per_s",
    "disk_read_bytes_per_s",
    "disk_write_bytes_per_s",
];

/// Shortest time between two readings for `cpu` and the rates to be reported
/// (`sysinfo`'s minimum for CPU usage).
pub const MIN_RATE_INTERVAL: Duration = sysinfo::MINIMUM_CPU_UPDATE_INTERVAL;

/// This host, as one resource named after its host name.
///
/// Every [`current_metrics`](MetricsProvider::current_metrics) call takes a
/// fresh reading; the recorder makes one per tick.
pub struct HostProvider {
    resource_id: String,
    state: Mutex<Readings>,
}

impl std::fmt::Debug for HostProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostProvider")
            .field("resource_id", &self.resource_id)
            .finish_non_exhaustive()
    }
}

/// The `sysinfo` handles and the previous counters, for rates.
struct Readings {
    system: System,
    disks: Disks,
    networks: Networks,
    previous: Counters,
}

/// Cumulative counters at one instant.
struct Counters {
    at: Instant,
    /// Bytes (received, sent) per network interface.
    net: HashMap<OsString, (u64, u64)>,
    /// Bytes (read, written) per disk device.
    disk: HashMap<OsString, (u64, u64)>,
}

impl HostProvider {
    /// A provider for this host, named by its host name (`localhost` if the
    /// host has none). Takes a first reading, so rates can start with the
    /// next one.
    pub fn new() -> Result<HostProvider, ProviderError> {
        let name = System::host_name()
            .ok()
            .map(|n| n.trim().to_owned())
            .filter(|n| crate::validate::validate_resource_id(n).is_ok())
            .unwrap_or_else(|| "localhost".to_owned());
        HostProvider::with_resource_id(name)
    }

    /// A provider for this host that reports it as `resource_id`.
    pub fn with_resource_id(resource_id: impl Into<String>) -> Result<HostProvider, ProviderError> {
        let err = |what: &str| {
            let what = what.to_owned();
            move |e: sysinfo::Error| ProviderError::with_source(format!("cannot read {what}"), e)
        };
        let mut system = System::new_with_specifics(
            RefreshKind::nothing()
                .with_cpu(CpuRefreshKind::nothing().with_usage())
                .with_memory(MemoryRefreshKind::everything()),
        )
        .map_err(err("system counters"))?;
        system.refresh_cpu_usage();
        let disks = Disks::new_with_refreshed_list().map_err(err("disks"))?;
        let networks = Networks::new_with_refreshed_list().map_err(err("network interfaces"))?;
        let previous = Counters::read(&disks, &networks);
        Ok(HostProvider {
            resource_id: resource_id.into(),
            state: Mutex::new(Readings {
                system,
                disks,
                networks,
                previous,
            }),
        })
    }

    /// The resource id this host is reported as.
    pub fn resource_id(&self) -> &str {
        &self.resource_id
    }

    /// Takes a reading now.
    pub fn sample(&self) -> Metrics {
        let mut r = self.state.lock().unwrap_or_else(|e| e.into_inner());
        r.sample()
    }
}

impl MetricsProvider for HostProvider {
    fn current_metrics(&self, resource_id: &str) -> Result<Metrics, ProviderError> {
        if resource_id != self.resource_id {
            return Err(ProviderError::new(format!(
                "unknown resource {resource_id:?}: this provider reports only the host {:?}",
                self.resource_id
            )));
        }
        Ok(self.sample())
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        vec![self.resource_id.clone()]
    }
}

impl Readings {
    fn sample(&mut self) -> Metrics {
        let mut m = Metrics::with_capacity(METRICS.len());
        // CPU usage is measured since its last refresh, so refresh it only
        // when the reading is due, like the rates.
        let rates = self.previous.at.elapsed() >= MIN_RATE_INTERVAL;
        if rates {
            self.system.refresh_cpu_usage();
        }
        self.system.refresh_memory();
        self.disks.refresh(true);
        self.networks.refresh(true);
        let now = Counters::read(&self.disks, &self.networks);
        let elapsed = now.at.duration_since(self.previous.at);

        if rates {
            m.insert("cpu", f64::from(self.system.global_cpu_usage()));
        }
        if let Some(p) = percent(self.system.used_memory(), self.system.total_memory()) {
            m.insert("memory", p);
        }
        if let Some(p) = percent(self.system.used_swap(), self.system.total_swap()) {
            m.insert("swap", p);
        }
        let fullest = self
            .disks
            .iter()
            .filter(|d| !d.is_read_only())
            .filter_map(|d| {
                let used = d.total_space().saturating_sub(d.available_space());
                percent(used, d.total_space())
            })
            .reduce(f64::max);
        if let Some(p) = fullest {
            m.insert("disk", p);
        }
        if let Ok(load) = System::load_average() {
            m.insert("load1", load.one);
            m.insert("load5", load.five);
        }
        if rates {
            let secs = elapsed.as_secs_f64();
            let (rx, tx) = delta(&self.previous.net, &now.net);
            m.insert("net_rx_bytes_per_s", rx as f64 / secs);
            m.insert("net_tx_bytes_per_s", tx as f64 / secs);
            let (read, written) = delta(&self.previous.disk, &now.disk);
            m.insert("disk_read_bytes_per_s", read as f64 / secs);
            m.insert("disk_write_bytes_per_s", written as f64 / secs);
            self.previous = now;
        }
        m
    }
}

impl Counters {
    fn read(disks: &Disks, networks: &Networks) -> Counters {
        let net = networks
            .iter()
            .filter(|(name, _)| !is_loopback(name))
            .map(|(name, n)| (name.clone(), (n.total_received(), n.total_transmitted())))
            .collect();
        // Keyed by device, so a device mounted twice is counted once.
        let disk = disks
            .iter()
            .map(|d| {
                let u = d.usage();
                (
                    d.name().to_owned(),
                    (u.total_read_bytes, u.total_written_bytes),
                )
            })
            .collect();
        Counters {
            at: Instant::now(),
            net,
            disk,
        }
    }
}

fn is_loopback(interface: &OsString) -> bool {
    let name = interface.to_string_lossy();
    name == "lo" || name.starts_with("lo0") || name.starts_with("Loopback")
}

/// `part / total` in percent; `None` when `total` is zero.
fn percent(part: u64, total: u64) -> Option<f64> {
    (total > 0).then(|| part as f64 * 100.0 / total as f64)
}

/// The summed growth of two counters between readings, over the keys present
/// in both; a counter that went backwards (reset) contributes nothing.
fn delta(
    before: &HashMap<OsString, (u64, u64)>,
    after: &HashMap<OsString, (u64, u64)>,
) -> (u64, u64) {
    let mut sum = (0u64, 0u64);
    for (key, &(a1, b1)) in after {
        if let Some(&(a0, b0)) = before.get(key) {
            sum.0 = sum.0.saturating_add(a1.saturating_sub(a0));
            sum.1 = sum.1.saturating_add(b1.saturating_sub(b0));
        }
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_skip_resets_and_new_keys() {
        let before = HashMap::from([
            (OsString::from("eth0"), (100, 10)),
            (OsString::from("eth1"), (500, 50)),
        ]);
        let after = HashMap::from([
            (OsString::from("eth0"), (160, 30)),
            (OsString::from("eth1"), (20, 60)), // rx counter reset
            (OsString::from("wlan0"), (9_999, 9_999)), // new interface
        ]);
        assert_eq!(delta(&before, &after), (60, 30));
    }

    #[test]
    fn percent_of_nothing_is_absent() {
        assert_eq!(percent(1, 0), None);
        assert_eq!(percent(25, 200), Some(12.5));
    }

    #[test]
    fn the_host_reports_itself_and_refuses_other_ids() {
        let host = HostProvider::with_resource_id("this-host").unwrap();
        assert_eq!(host.monitored_resource_ids(), vec!["this-host".to_owned()]);
        let m = host.current_metrics("this-host").unwrap();
        assert!(m.get("memory").is_some_and(|v| (0.0..=100.0).contains(&v)));
        // cpu and the rates come together, or (too soon after construction) not at all.
        assert_eq!(
            m.get("cpu").is_some(),
            m.get("net_rx_bytes_per_s").is_some()
        );
        assert!(
            m.iter()
                .all(|(name, v)| METRICS.contains(&name) && v.is_finite())
        );
        let err = host.current_metrics("other").unwrap_err();
        assert!(err.to_string().contains("other"), "{err}");
    }
}
