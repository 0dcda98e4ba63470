//! Where samples come from.
//!
//! A [`MetricsProvider`] answers "what are the metrics of resource X now?" and
//! "which resources exist?". The recorder asks once per resource per tick (the
//! seed asked twice for resources with an open window) and prefers the batch
//! call, which a provider backed by one API request per tick should override.
//!
//! [`host::HostProvider`] is a ready-made provider for the machine the
//! process runs on (what `incident-recorder watch` records).

pub mod host;

use crate::error::ProviderError;
use crate::model::Metrics;

/// A source of current metrics, polled by the recorder every tick.
///
/// Implementations are called from the recorder's sampling thread, never while
/// the recorder holds its internal lock, so a slow provider delays the tick but
/// never blocks queries. An error or a panic for one resource skips that
/// resource for that tick; the others are recorded.
pub trait MetricsProvider: Send + Sync {
    /// The current metrics of one resource.
    fn current_metrics(&self, resource_id: &str) -> Result<Metrics, ProviderError>;

    /// Every resource to keep a pre-incident buffer for.
    fn monitored_resource_ids(&self) -> Vec<String>;

    /// The current metrics of many resources at once.
    ///
    /// The default calls [`current_metrics`](MetricsProvider::current_metrics)
    /// for each id. Results may come in any order; an id missing from the result
    /// is looked up with `current_metrics` afterwards.
    fn current_metrics_batch(
        &self,
        resource_ids: &[String],
    ) -> Vec<(String, Result<Metrics, ProviderError>)> {
        resource_ids
            .iter()
            .map(|id| (id.clone(), self.current_metrics(id)))
            .collect()
    }
}
