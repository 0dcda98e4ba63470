//! What a listener serves: a recorder (`watch --listen`, every route) or
//! a store opened read-only (`serve`: the read routes; the routes that
//! would record answer 409).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::http::Response;
use crate::error::{Error, Result};
use crate::recorder::IncidentRecorder;
use crate::store::Store;

#[derive(Clone)]
pub(super) enum Source {
    Recorder(Arc<IncidentRecorder>),
    Store(Arc<Served>),
}

/// A store served read-only. One that read its file alone (no recorder
/// was running when it was opened) fails with [`Error::WriterStarted`]
/// once a recorder starts on the file; it is then opened again, through
/// that recorder's log, so `serve` keeps serving.
pub(super) struct Served {
    path: Option<PathBuf>,
    store: Mutex<Arc<Store>>,
}

impl Source {
    /// A store opened with [`Store::open_read_only`] (or any store).
    pub(super) fn served(store: Arc<Store>) -> Source {
        Source::Store(Arc::new(Served {
            path: store.path().map(|p| p.to_path_buf()),
            store: Mutex::new(store),
        }))
    }

    /// `f` on the store; once more on the store opened again if a writer
    /// started since a read-only store was opened.
    pub(super) fn read<T>(&self, mut f: impl FnMut(&Store) -> Result<T>) -> Result<T> {
        let served = match self {
            Source::Recorder(r) => return f(r.store()),
            Source::Store(s) => s,
        };
        let current = Arc::clone(&served.store.lock().unwrap_or_else(|e| e.into_inner()));
        match f(&current) {
            Err(Error::WriterStarted { .. }) if served.path.is_some() => {
                let path = served.path.as_deref().unwrap_or(std::path::Path::new(""));
                let fresh = Arc::new(Store::open_read_only(path)?);
                *served.store.lock().unwrap_or_else(|e| e.into_inner()) = Arc::clone(&fresh);
                tracing::info!(path = %path.display(), "a recorder started on the database: opened it again");
                f(&fresh)
            }
            other => other,
        }
    }

    /// The recorder, or the 409 of a listener that records nothing.
    pub(super) fn recorder(&self, what: &str) -> std::result::Result<&IncidentRecorder, Response> {
        match self {
            Source::Recorder(r) => Ok(r),
            Source::Store(_) => Err(Response::error(
                409,
                format!(
                    "{what}: this listener serves a database read-only (`serve`) and records \
                     nothing; send it to the recorder's listener (`watch --listen`)"
                ),
            )),
        }
    }
}
