//! The CLI's error type: any error, with context, printed as one line.
//!
//! Commands fail with a [`Failure`] that wraps the underlying error (the
//! library's, an I/O error...) under a sentence saying what was being done,
//! so `main` can print `error: <what>: <why>: <detail>` with
//! [`incident_recorder::error_chain`] and nothing else: no backtrace, no
//! debug formatting.

use std::fmt;

type Boxed = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A command's failure: an error and its causes.
#[derive(Debug)]
pub struct Failure(Boxed);

/// `Result` with a [`Failure`].
pub type Result<T, E = Failure> = std::result::Result<T, E>;

impl Failure {
    /// A failure with just a message.
    pub fn msg(message: impl Into<String>) -> Failure {
        Failure(Box::new(Message(message.into())))
    }

    /// The whole chain on one line.
    pub fn chain(&self) -> String {
        incident_recorder::error_chain(self.0.as_ref())
    }

    /// The library error in this failure's chain, if there is one.
    pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
        let mut e: Option<&(dyn std::error::Error + 'static)> = Some(self.0.as_ref());
        while let Some(err) = e {
            if let Some(found) = err.downcast_ref::<E>() {
                return Some(found);
            }
            e = err.source();
        }
        None
    }

    /// True if the root cause is a closed output pipe (`... | head`), which
    /// is not worth an error message.
    pub fn is_broken_pipe(&self) -> bool {
        let mut e: Option<&(dyn std::error::Error + 'static)> = Some(self.0.as_ref());
        while let Some(err) = e {
            let kind = match (
                err.downcast_ref::<std::io::Error>(),
                err.downcast_ref::<serde_json::Error>(),
            ) {
                (Some(io), _) => Some(io.kind()),
                (None, Some(json)) => json.io_error_kind(),
                (None, None) => None,
            };
            if kind == Some(std::io::ErrorKind::BrokenPipe) {
                return true;
            }
            e = err.source();
        }
        false
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Failure {
        Failure(Box::new(e))
    }
}

/// Adds what was being done to an error.
pub trait Context<T> {
    /// Wraps the error under `what` (e.g. `cannot read events.jsonl`).
    fn context(self, what: impl fmt::Display) -> Result<T>;
}

impl<T, E: Into<Failure>> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T> {
        self.map_err(|e| {
            Failure(Box::new(WithContext {
                what: what.to_string(),
                source: e.into().0,
            }))
        })
    }
}

#[derive(Debug)]
struct Message(String);

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Message {}

#[derive(Debug)]
struct WithContext {
    what: String,
    source: Boxed,
}

impl fmt::Display for WithContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.what)
    }
}

impl std::error::Error for WithContext {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_and_causes_print_on_one_line() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let failure = Err::<(), _>(io).context("cannot read x.jsonl").unwrap_err();
        assert_eq!(failure.chain(), "cannot read x.jsonl: no such file");
        assert!(!failure.is_broken_pipe());
        let pipe = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert!(
            Err::<(), _>(pipe)
                .context("writing")
                .unwrap_err()
                .is_broken_pipe()
        );
    }
}
