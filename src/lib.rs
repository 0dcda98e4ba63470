//! # incident-recorder
//!
//! A flight recorder for metrics. It keeps the last few minutes of samples of
//! every monitored resource in memory and, when an incident is triggered (an
//! alert fires, an anomaly is seen, someone asks), records a *window*: the
//! buffered minutes before the trigger plus every sample until a deadline after
//! it, into an embedded SQLite database. Closed windows get a summary (peaks,
//! lows, averages, changes, percentiles). History survives restarts, answers
//! plain SQL (`sqlite3 incidents.db`), and formats as a compact digest for an
//! AI assistant.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use incident_recorder::{
//!     IncidentRecorder, ManualClock, Metrics, MetricsProvider, ProviderError,
//!     RecorderConfig, Timestamp, Trigger, WindowStatus,
//! };
//!
//! /// A provider with one host whose CPU climbs by 10 every sample.
//! struct Host(std::sync::atomic::AtomicU32);
//!
//! impl MetricsProvider for Host {
//!     fn current_metrics(&self, _id: &str) -> Result<Metrics, ProviderError> {
//!         let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
//!         Ok(Metrics::new().with("cpu", 10.0 * f64::from(n)).with("memory", 50.0))
//!     }
//!     fn monitored_resource_ids(&self) -> Vec<String> {
//!         vec!["web-1".into()]
//!     }
//! }
//!
//! let clock = ManualClock::new(Timestamp::from_unix_ms(1_764_000_000_000));
//! let config = RecorderConfig {
//!     post_incident_window: Duration::from_secs(30),
//!     ..RecorderConfig::default() // db_path: None keeps this example in memory
//! };
//! let recorder = IncidentRecorder::open_with_clock(config, Arc::new(clock.clone()))?;
//! recorder.set_metrics_provider(Arc::new(Host(Default::default())));
//!
//! for _ in 0..3 {                       // three samples before the incident...
//!     recorder.record_sample()?;        // (what the background thread runs)
//!     clock.advance(Duration::from_secs(5));
//! }
//! let id = recorder.start_recording("web-1", Trigger::alert("cpu>90"))?;
//! for _ in 0..8 {                       // ...and until 30 s after it
//!     recorder.record_sample()?;
//!     clock.advance(Duration::from_secs(5));
//! }
//!
//! let window = recorder.window(&id)?.unwrap();
//! assert_eq!(window.status, WindowStatus::Complete);
//! assert_eq!(window.data_points.len(), 3 + 7); // buffered + until the deadline
//! assert_eq!(window.summary.as_ref().unwrap().peaks["cpu"], 90.0);
//! println!("{}", recorder.format_for_context(None, Some(&id))?.unwrap());
//! # Ok::<(), incident_recorder::Error>(())
//! ```
//!
//! In production, call [`IncidentRecorder::start`] instead of ticking by hand,
//! and set [`RecorderConfig::db_path`] to keep history on disk.
//!
//! # Modules
//!
//! Data flows one way: [`MetricsProvider`] → recorder (buffers, windows) →
//! [`Store`] (SQLite) → queries, [`context`] digests, the CLI and the
//! [`fleet`] push to PostgreSQL. Only the store knows SQLite's SQL (the
//! schema is in `migrations/` and `docs/schema.md`); only [`fleet`] knows
//! PostgreSQL's.

#![deny(missing_docs)]

pub mod anomaly;
mod buffer;
pub mod change;
mod clock;
mod config;
pub mod context;
mod error;
pub mod files;
pub mod fleet;
pub mod listen;
mod model;
mod names;
pub mod processes;
pub mod provider;
mod recorder;
mod store;
pub mod summary;
mod validate;
pub mod web;
mod window_rules;

pub use anomaly::AnomalyConfig;
pub use clock::{Clock, InputClock, ManualClock, SystemClock};
pub use config::RecorderConfig;
pub use error::{DatabaseError, Error, ProviderError, Result, error_chain};
pub use model::{
    DataPoint, IncidentSummary, IncidentWindow, MetricAnomalies, MetricChange, Metrics, Resource,
    Timestamp, Trigger, TriggerType, WindowAnomaly, WindowId, WindowNote, WindowStatus,
    WindowTrigger,
};
pub use processes::{ProcessSample, ProcessSnapshot};
pub use provider::MetricsProvider;
pub use provider::process::ProcessProvider;
pub use recorder::{
    AlertAdjustment, AlertOutcome, AlertResolve, IncidentRecorder, PushReport, RecorderStats,
    Recovery, RejectedValue, Sample, TriggerAction, TriggerOutcome,
};
pub use store::{
    DeleteReport, DeleteSelection, ListingCursor, PruneReport, PushState, Store, StoreStats,
    TriggerRequestStatus, TriggerWords, WindowFilter,
};

/// The README's examples run as doctests, so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
