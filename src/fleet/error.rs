//! The fleet push's error type.
//!
//! Errors from the PostgreSQL client are kept as text, with the password cut
//! out (see [`super::target::Secret`]), never as the client's own error
//! values: those are third-party types, and their messages are the only
//! place a password could slip into a log line.

/// What can go wrong pushing to the central database.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PushError {
    /// The central database URL cannot be used.
    #[error("invalid central database URL: {reason}")]
    Url {
        /// What is wrong with it (never the URL itself, which may hold a password).
        reason: String,
    },

    /// An invalid node name.
    #[error("invalid node name {name:?}: {reason}")]
    Node {
        /// The name (cut to 64 characters).
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// The central database could not be reached or refused the login.
    #[error("cannot connect to the central database {target}: {detail}")]
    Connect {
        /// The database, as `postgresql://user@host:port/db` (no password).
        target: String,
        /// Why (redacted).
        detail: String,
    },

    /// The central database failed a statement.
    #[error("central database {target}: {what}: {detail}")]
    Central {
        /// The database (no password).
        target: String,
        /// What was being done.
        what: &'static str,
        /// The server's or the client's message (redacted).
        detail: String,
        /// The SQLSTATE, when the server sent one.
        code: Option<String>,
    },

    /// The central schema was written by a pusher this one cannot write for.
    #[error(
        "central database {target} needs pushers of schema version {needed} or newer, this build has {supported}; upgrade incident-recorder on this node (its windows wait locally)"
    )]
    CentralTooNew {
        /// The database (no password).
        target: String,
        /// The oldest schema version it accepts writers of.
        needed: i64,
        /// This build's central schema version.
        supported: i64,
    },

    /// The local database failed.
    #[error("local database")]
    Local(#[from] crate::Error),
}

impl PushError {
    /// True for an error about the data of one window (SQLSTATE class 22,
    /// data exception, a value the server cannot store; and 23502 / 23514, a
    /// null or a value a CHECK refuses): the central database would refuse
    /// that window every time, so it is refused and counted instead of
    /// blocking the windows after it. A foreign key violation is not one: it
    /// means the central rows this session knew of are gone (someone reset
    /// the database), which a new session repairs.
    pub(crate) fn is_about_data(&self) -> bool {
        matches!(self, PushError::Central { code: Some(c), .. }
            if c.starts_with("22") || c == "23502" || c == "23514")
    }
}
