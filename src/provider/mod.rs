//! Where samples come from.
//!
//! A [`MetricsProvider`] answers "what are the metrics of resource X now?" and
//! "which resources exist?". The recorder asks once per resource per tick (the
//! seed asked twice for resources with an open window) and prefers the batch
//! call, which a provider backed by one API request per tick should override.
//!
//! [`host::HostProvider`] is a ready-made provider for the machine the
//! process runs on (what `incident-recorder watch` records);
//! [`prometheus::ScrapeProvider`] reads Prometheus exporters; and
//! [`combine::CombinedProvider`] puts several providers behind one, which is
//! how `watch` samples the host and scrape targets together.
//! [`process::ProcessProvider`] is the other kind of source: snapshots of
//! the top processes, written with a resource's windows.

pub mod combine;
pub mod host;
pub mod process;
pub mod prometheus;

use std::cell::Cell;

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
        DEFAULT_BATCH.with(|c| c.set((self as *const Self).cast()));
        resource_ids
            .iter()
            .map(|id| (id.clone(), self.current_metrics(id)))
            .collect()
    }
}

/// A shared provider is a provider, so wrappers (a rule checker, a
/// [`combine::CombinedProvider`]) can hold one the embedder also keeps.
impl<P: MetricsProvider + ?Sized> MetricsProvider for std::sync::Arc<P> {
    fn current_metrics(&self, resource_id: &str) -> Result<Metrics, ProviderError> {
        (**self).current_metrics(resource_id)
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        (**self).monitored_resource_ids()
    }

    fn current_metrics_batch(
        &self,
        resource_ids: &[String],
    ) -> Vec<(String, Result<Metrics, ProviderError>)> {
        (**self).current_metrics_batch(resource_ids)
    }
}

thread_local! {
    /// The provider whose *default* `current_metrics_batch` ran last on this
    /// thread. The default is nothing but `current_metrics` per id, plus a
    /// clone of every id for the result; once the recorder has seen that a
    /// provider uses it, it calls `current_metrics` itself, which gives the same
    /// results without the clones (one allocation per resource per tick).
    static DEFAULT_BATCH: Cell<*const ()> = const { Cell::new(std::ptr::null()) };
}

/// Forgets which provider last ran the default batch on this thread.
pub(crate) fn reset_default_batch_mark() {
    DEFAULT_BATCH.with(|c| c.set(std::ptr::null()));
}

/// True if the last batch call on this thread ran the default implementation
/// on `provider` (rather than an override, or the default of a provider it
/// wraps).
pub(crate) fn ran_default_batch(provider: &dyn MetricsProvider) -> bool {
    let this: *const () = (provider as *const dyn MetricsProvider).cast();
    DEFAULT_BATCH.with(|c| c.get() == this)
}
