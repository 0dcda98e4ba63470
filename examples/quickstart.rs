//! Records one simulated incident into `./incidents.db` and prints its digest.
//!
//! ```sh
//! cargo run --example quickstart
//! sqlite3 incidents.db 'SELECT metric, max(value) FROM incident_samples GROUP BY metric'
//! ```
//!
//! A host whose CPU spikes is sampled every 5 s on a simulated clock (so the
//! example takes a moment, not fifteen minutes): five minutes of normal load
//! fill the pre-incident buffer, an alert fires, and the window records until
//! ten minutes after it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use incident_recorder::{
    IncidentRecorder, ManualClock, Metrics, MetricsProvider, ProviderError, RecorderConfig,
    Resource, Timestamp, Trigger,
};

/// One host. CPU idles around 20 % and climbs to ~95 % from sample 60 to 90.
struct SimulatedHost {
    sample: AtomicU64,
}

impl MetricsProvider for SimulatedHost {
    fn current_metrics(&self, _id: &str) -> Result<Metrics, ProviderError> {
        let n = self.sample.fetch_add(1, Ordering::Relaxed) as f64;
        let wobble = (n * 0.7).sin() * 3.0;
        let cpu = if (60.0..90.0).contains(&n) {
            92.0 + wobble
        } else {
            20.0 + wobble
        };
        Ok(Metrics::new()
            .with("cpu", cpu)
            .with("memory", 41.0 + n * 0.05)
            .with("load1", cpu / 25.0))
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        vec!["web-1".into()]
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = RecorderConfig::with_db_path("incidents.db");
    let interval = config.sample_interval;
    // Start the simulated day 20 minutes ago, so every sample is in the past.
    let clock = ManualClock::new(Timestamp::now().saturating_sub(Duration::from_secs(20 * 60)));
    let recorder = IncidentRecorder::open_with_clock(config, Arc::new(clock.clone()))?;
    recorder.set_metrics_provider(Arc::new(SimulatedHost {
        sample: AtomicU64::new(0),
    }));

    let tick = || -> Result<(), incident_recorder::Error> {
        recorder.record_sample()?;
        clock.advance(interval);
        Ok(())
    };
    for _ in 0..60 {
        tick()?; // five minutes of normal load fill the buffer
    }
    let id = recorder.start_recording(
        Resource::named("web-1", "web", "vm"),
        Trigger::alert("cpu>90"),
    )?;
    println!("alert fired: recording window {id}");
    while recorder.window(&id)?.is_some_and(|w| w.end_time.is_none()) {
        tick()?; // until ten minutes after the alert
    }
    let window = recorder.window(&id)?.expect("window exists");
    println!(
        "window {} is {} with {} points",
        window.id,
        window.status,
        window.data_points.len()
    );
    if let Some(text) = recorder.format_for_context(None, Some(&id))? {
        println!("{text}");
    }
    recorder.stop()?;
    Ok(())
}
