//! The simulated fleet of `demo`: a [`MetricsProvider`] whose values are a
//! pure function of (resource, simulated time), so a demo is reproducible.
//!
//! Resources are named by role (`web-01`, `api-01`, `db-01`, ...) and hum
//! along with slow waves and a little noise; the incident resource's CPU
//! ramps up to ~97 % for a while, dragging load and memory up and network
//! throughput down, then recovers.

use std::collections::HashMap;
use std::time::Duration;

use incident_recorder::{Clock, ManualClock, Metrics, MetricsProvider, ProviderError, Timestamp};

const ROLES: [&str; 6] = ["web", "api", "db", "cache", "queue", "worker"];

/// When and where the incident happens, relative to the fleet's start.
#[derive(Clone, Copy, Debug)]
pub struct Incident {
    pub resource: usize,
    pub from: Duration,
    pub until: Duration,
}

pub struct Fleet {
    ids: Vec<String>,
    index: HashMap<String, usize>,
    clock: ManualClock,
    start: Timestamp,
    incident: Incident,
}

impl Fleet {
    /// `n` resources; the incident hits `db-02` when there is one.
    pub fn new(n: usize, clock: ManualClock, from: Duration, until: Duration) -> Fleet {
        let ids: Vec<String> = (0..n)
            .map(|i| format!("{}-{:02}", ROLES[i % ROLES.len()], i / ROLES.len() + 1))
            .collect();
        let index: HashMap<String, usize> = ids.iter().cloned().zip(0..).collect();
        let resource = index.get("db-02").copied().unwrap_or(n - 1);
        Fleet {
            ids,
            index,
            start: clock.now(),
            clock,
            incident: Incident {
                resource,
                from,
                until,
            },
        }
    }

    pub fn incident(&self) -> Incident {
        self.incident
    }

    pub fn id(&self, i: usize) -> &str {
        &self.ids[i]
    }

    fn values(&self, i: usize, t: f64) -> Metrics {
        let phase = i as f64 * 1.7;
        let noise = |salt: u64| noise(i as u64, t as u64, salt);
        let cores = [4.0, 8.0, 16.0][i % 3];
        let mut cpu =
            22.0 + (i % 5) as f64 * 6.0 + 8.0 * (t / 300.0 + phase).sin() + 4.0 * noise(1);
        let mut memory =
            45.0 + (i % 7) as f64 * 4.0 + 2.0 * (t / 900.0 + phase).sin() + 0.5 * noise(2);
        let mut net_tx = 2.0e6 * (1.3 + 0.3 * (t / 200.0 + phase).sin()) * (1.0 + 0.1 * noise(3));
        let net_rx = 1.5e6 * (1.3 + 0.3 * (t / 250.0 + phase).cos()) * (1.0 + 0.1 * noise(4));
        let mut load_factor = 1.0;
        let Incident {
            resource,
            from,
            until,
        } = self.incident;
        if i == resource {
            let (from, until) = (from.as_secs_f64(), until.as_secs_f64());
            // Up over a minute, down over a minute.
            let p = ((t - from) / 60.0).min((until - t) / 60.0).clamp(0.0, 1.0);
            let progress = ((t - from) / (until - from)).clamp(0.0, 1.0);
            cpu += (96.5 - cpu) * p + 1.5 * noise(5) * p;
            memory += 15.0 * progress * p.max(0.3 * progress);
            net_tx *= 1.0 - 0.6 * p;
            load_factor += 0.8 * p;
        }
        let cpu = cpu.clamp(0.0, 100.0);
        Metrics::new()
            .with("cpu", cpu)
            .with("memory", memory.clamp(0.0, 100.0))
            .with("disk", 38.0 + (i % 4) as f64 * 9.0 + t / 36_000.0)
            .with(
                "load1",
                (cpu / 100.0 * cores * load_factor + 0.2 * noise(6)).max(0.0),
            )
            .with("net_rx_bytes_per_s", net_rx)
            .with("net_tx_bytes_per_s", net_tx)
    }
}

impl MetricsProvider for Fleet {
    fn current_metrics(&self, resource_id: &str) -> Result<Metrics, ProviderError> {
        let i = *self
            .index
            .get(resource_id)
            .ok_or_else(|| ProviderError::new(format!("no simulated resource {resource_id:?}")))?;
        let t = (self.clock.now().as_unix_ms() - self.start.as_unix_ms()) as f64 / 1000.0;
        Ok(self.values(i, t))
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        self.ids.clone()
    }
}

/// Deterministic noise in [-1, 1) from a SplitMix64 hash of its inputs.
fn noise(a: u64, b: u64, salt: u64) -> f64 {
    let mut z = a
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(b.wrapping_mul(0xBF58_476D_1CE4_E5B9))
        .wrapping_add(salt.wrapping_mul(0x94D0_49BB_1331_11EB));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_incident_resource_runs_hot_only_during_the_incident() {
        let clock = ManualClock::new(Timestamp::from_unix_ms(1_795_514_400_000));
        let fleet = Fleet::new(
            36,
            clock.clone(),
            Duration::from_secs(600),
            Duration::from_secs(840),
        );
        let db = fleet.id(fleet.incident().resource).to_owned();
        assert_eq!(db, "db-02");
        let cpu = |id: &str| fleet.current_metrics(id).unwrap().get("cpu").unwrap();
        assert!(cpu(&db) < 60.0);
        clock.advance(Duration::from_secs(720));
        assert!(cpu(&db) > 92.0, "{}", cpu(&db));
        assert!(cpu("web-01") < 60.0);
        clock.advance(Duration::from_secs(300));
        assert!(cpu(&db) < 60.0);
        // Same time, same values.
        assert_eq!(
            fleet.current_metrics("api-03").unwrap(),
            fleet.current_metrics("api-03").unwrap()
        );
        assert_eq!(fleet.monitored_resource_ids().len(), 36);
        assert!(fleet.current_metrics("nope").is_err());
    }
}
