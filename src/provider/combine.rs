//! Several providers behind one.
//!
//! A recorder has one provider, but `watch` records this host *and* scrape
//! targets (and an embedder may have its own source besides). A
//! [`CombinedProvider`] lists the resources of all of them and sends each
//! resource's call to the provider that listed it; a tick's batch call asks
//! every provider at the same time, each on its own thread, so a slow
//! scrape target does not delay the host's sample (and the other way round).
//!
//! A resource listed by two providers belongs to the first (in the order
//! given); the other's is ignored, with a warning.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, RwLock};

use super::MetricsProvider;
use crate::error::{ProviderError, clip};
use crate::model::Metrics;

/// Providers behind one; see the [module docs](self).
pub struct CombinedProvider {
    providers: Vec<Arc<dyn MetricsProvider>>,
    /// Which provider listed each resource, from the last listing.
    owners: RwLock<HashMap<String, usize>>,
}

impl std::fmt::Debug for CombinedProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CombinedProvider")
            .field("providers", &self.providers.len())
            .finish_non_exhaustive()
    }
}

type Answers = Vec<(String, Result<Metrics, ProviderError>)>;

impl CombinedProvider {
    /// Combines `providers`; earlier ones win a resource listed twice.
    pub fn new(providers: Vec<Arc<dyn MetricsProvider>>) -> CombinedProvider {
        CombinedProvider {
            providers,
            owners: RwLock::new(HashMap::new()),
        }
    }

    fn owner(&self, id: &str) -> Option<usize> {
        let known = self
            .owners
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .copied();
        known.or_else(|| {
            self.providers
                .iter()
                .position(|p| p.monitored_resource_ids().iter().any(|r| r == id))
        })
    }
}

fn unknown(id: &str) -> ProviderError {
    ProviderError::new(format!("no provider lists resource {:?}", clip(id)))
}

fn panicked(ids: Vec<String>) -> Answers {
    ids.into_iter()
        .map(|id| (id, Err(ProviderError::new("provider panicked"))))
        .collect()
}

impl MetricsProvider for CombinedProvider {
    fn current_metrics(&self, resource_id: &str) -> Result<Metrics, ProviderError> {
        match self.owner(resource_id) {
            Some(i) => self.providers[i].current_metrics(resource_id),
            None => Err(unknown(resource_id)),
        }
    }

    fn monitored_resource_ids(&self) -> Vec<String> {
        let mut owners = HashMap::new();
        let mut ids = Vec::new();
        for (i, p) in self.providers.iter().enumerate() {
            for id in p.monitored_resource_ids() {
                match owners.get(&id) {
                    None => {
                        owners.insert(id.clone(), i);
                        ids.push(id);
                    }
                    Some(&first) if first != i => {
                        let before = self.owners.read().unwrap_or_else(|e| e.into_inner());
                        if before.get(&id) != Some(&first) {
                            tracing::warn!(resource = %clip(&id), "two providers list the same resource; the first one's samples are recorded");
                        }
                    }
                    Some(_) => {}
                }
            }
        }
        *self.owners.write().unwrap_or_else(|e| e.into_inner()) = owners;
        ids
    }

    fn current_metrics_batch(&self, resource_ids: &[String]) -> Answers {
        let mut per: Vec<Vec<String>> = vec![Vec::new(); self.providers.len()];
        let mut answers: Answers = Vec::with_capacity(resource_ids.len());
        {
            let owners = self.owners.read().unwrap_or_else(|e| e.into_inner());
            for id in resource_ids {
                match owners.get(id.as_str()) {
                    Some(&i) => per[i].push(id.clone()),
                    None => answers.push((id.clone(), Err(unknown(id)))),
                }
            }
        }
        let ask = |p: &Arc<dyn MetricsProvider>, ids: Vec<String>| match catch_unwind(
            AssertUnwindSafe(|| p.current_metrics_batch(&ids)),
        ) {
            Ok(a) => a,
            Err(_) => {
                tracing::error!("provider panicked; its resources are skipped this tick");
                panicked(ids)
            }
        };
        let mut jobs: Vec<(usize, Vec<String>)> = per
            .into_iter()
            .enumerate()
            .filter(|(_, ids)| !ids.is_empty())
            .collect();
        let Some((first, first_ids)) = jobs.pop() else {
            return answers;
        };
        std::thread::scope(|s| {
            let handles: Vec<_> = jobs
                .into_iter()
                .map(|(i, ids)| {
                    let p = &self.providers[i];
                    let fallback = ids.clone();
                    let spawned = std::thread::Builder::new()
                        .name("incident-recorder-provider-part".into())
                        .spawn_scoped(s, move || ask(p, ids));
                    (spawned, fallback, i)
                })
                .collect();
            answers.extend(ask(&self.providers[first], first_ids));
            for (spawned, ids, i) in handles {
                match spawned {
                    Ok(h) => answers.extend(h.join().unwrap_or_else(|_| panicked(Vec::new()))),
                    Err(_) => answers.extend(ask(&self.providers[i], ids)),
                }
            }
        });
        answers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(&'static [&'static str], f64);

    impl MetricsProvider for Fixed {
        fn current_metrics(&self, id: &str) -> Result<Metrics, ProviderError> {
            if self.0.contains(&id) {
                Ok(Metrics::new().with("v", self.1))
            } else {
                Err(ProviderError::new("not mine"))
            }
        }
        fn monitored_resource_ids(&self) -> Vec<String> {
            self.0.iter().map(|s| s.to_string()).collect()
        }
    }

    struct Panics;

    impl MetricsProvider for Panics {
        fn current_metrics(&self, _: &str) -> Result<Metrics, ProviderError> {
            panic!("boom")
        }
        fn monitored_resource_ids(&self) -> Vec<String> {
            vec!["p".into()]
        }
    }

    #[test]
    fn resources_go_to_the_provider_that_lists_them_first() {
        let c = CombinedProvider::new(vec![
            Arc::new(Fixed(&["a", "b"], 1.0)),
            Arc::new(Fixed(&["b", "c"], 2.0)),
            Arc::new(Panics),
        ]);
        assert_eq!(c.monitored_resource_ids(), ["a", "b", "c", "p"]);
        let ids: Vec<String> = ["a", "b", "c", "p", "zz"].map(String::from).to_vec();
        let mut got: Vec<(String, Option<f64>)> = c
            .current_metrics_batch(&ids)
            .into_iter()
            .map(|(id, r)| (id, r.ok().and_then(|m| m.get("v"))))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            got,
            vec![
                ("a".into(), Some(1.0)),
                ("b".into(), Some(1.0)),
                ("c".into(), Some(2.0)),
                ("p".into(), None),
                ("zz".into(), None),
            ]
        );
        assert_eq!(c.current_metrics("c").unwrap().get("v"), Some(2.0));
        assert!(
            c.current_metrics("zz")
                .unwrap_err()
                .to_string()
                .contains("zz")
        );
    }
}
