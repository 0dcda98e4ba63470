//! The library's one error type.
//!
//! Variants say what went wrong in the user's terms (which file, which id, which
//! limit) and keep the underlying error as their `source`, so a caller printing
//! the chain gets both the explanation and the SQLite detail.

use std::path::PathBuf;

/// Everything that can go wrong in incident-recorder.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database file could not be opened or created.
    #[error("cannot open database {path}")]
    Open {
        /// The database path.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// The file exists but is not an SQLite database (or its header is damaged).
    #[error(
        "{path} is not an SQLite database (wrong file, or its header is damaged); it was not modified"
    )]
    NotADatabase {
        /// The file.
        path: PathBuf,
    },

    /// The database is damaged.
    #[error("database is corrupt: {detail}")]
    Corrupt {
        /// SQLite's message.
        detail: String,
    },

    /// An SQLite database that belongs to some other program.
    #[error(
        "{path} is an SQLite database of another program (it has tables but no incident-recorder schema); it was not modified"
    )]
    ForeignDatabase {
        /// The file.
        path: PathBuf,
    },

    /// The database was written by a newer incident-recorder.
    #[error(
        "{path} has schema version {found}, newer than the {supported} this build understands; upgrade incident-recorder (the file was not modified)"
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Schema version found in the file.
        found: i64,
        /// Newest schema version this build knows.
        supported: i64,
    },

    /// The database has an older schema and was opened read-only, so it
    /// cannot be upgraded.
    #[error(
        "{path} has schema version {found} but this build needs {supported}; open it once with write access to upgrade it"
    )]
    OlderSchema {
        /// The file.
        path: PathBuf,
        /// Schema version found in the file.
        found: i64,
        /// Schema version this build needs.
        supported: i64,
    },

    /// A path the recorder refuses to write or read (see [`crate::files`]):
    /// a link planted by someone else, a file another user owns, a FIFO or
    /// device.
    #[error("refusing to use {path}: {reason}")]
    UnsafeFile {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The file's schema differs from what its migrations make (edited by
    /// hand?) in a way that cannot be repaired.
    #[error("{path}: the schema is damaged: {detail}")]
    DamagedSchema {
        /// The database.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },

    /// The database (or its directory) cannot be written.
    #[error(
        "cannot write to {path}: the file or its directory is read-only (read commands such as `list` still work)"
    )]
    ReadOnly {
        /// The database.
        path: PathBuf,
    },

    /// A database opened for reading while nothing wrote it (read as one
    /// file, see [`crate::Store::open_read_only`]) is now being written.
    #[error(
        "{path} was opened for reading while no recorder wrote it, and one has started since; open it again to read on"
    )]
    WriterStarted {
        /// The database.
        path: PathBuf,
    },

    /// Another recorder is writing to this database.
    #[error("another recorder is already recording into {path} (lock file {lock})")]
    Locked {
        /// The database.
        path: PathBuf,
        /// The lock file held by the other recorder.
        lock: PathBuf,
    },

    /// Applying the schema migrations failed.
    #[error("cannot migrate the database schema")]
    Migration(#[source] DatabaseError),

    /// An SQLite error (corrupt-file codes become [`Error::Corrupt`] instead).
    #[error("database error")]
    Sqlite(#[source] DatabaseError),

    /// No connection could be taken from the pool in time.
    #[error("database connection pool")]
    Pool(#[source] DatabaseError),

    /// A file-system error, with the path it concerns.
    #[error("{path}")]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// A resource id the recorder refuses (empty, too long, control characters).
    #[error("invalid resource id {id:?}: {reason}")]
    InvalidResourceId {
        /// The id (cut to 64 characters).
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A timestamp outside what the recorder can store or order.
    #[error("invalid timestamp {input}: {reason}")]
    InvalidTimestamp {
        /// The input (cut to 64 characters).
        input: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An input time too far ahead of the wall clock (see
    /// [`InputClock`](crate::InputClock)).
    #[error(
        "timestamp {timestamp} is more than 10 minutes ahead of the wall clock ({wall}); nothing was moved to that time"
    )]
    AheadOfWallClock {
        /// The time refused.
        timestamp: crate::Timestamp,
        /// The wall clock then.
        wall: crate::Timestamp,
    },

    /// A sample older than the last one accepted for the same resource.
    #[error(
        "sample for {resource:?} at {timestamp} is older than the last accepted one ({last}); samples of a resource must not go back in time"
    )]
    OutOfOrder {
        /// The resource (cut to 64 characters).
        resource: String,
        /// The rejected sample's time.
        timestamp: crate::Timestamp,
        /// The newest accepted sample's time.
        last: crate::Timestamp,
    },

    /// A sample at a time its resource already has a recorded point for,
    /// with other values.
    #[error(
        "sample for {resource:?} at {timestamp} differs from the one already recorded at that time (a resource has one sample per timestamp)"
    )]
    ConflictingSample {
        /// The resource (cut to 64 characters).
        resource: String,
        /// The sample's time.
        timestamp: crate::Timestamp,
    },

    /// A trigger for a resource the recorder's provider does not monitor.
    #[error("resource {resource:?} is not monitored by this recorder; it monitors {}", monitored_list(.monitored, *.more))]
    NotMonitored {
        /// The resource asked for (cut to 64 characters).
        resource: String,
        /// Up to ten monitored resources, sorted.
        monitored: Vec<String>,
        /// How many more there are.
        more: usize,
    },

    /// A sample with more values than a sample may carry.
    #[error("sample for {resource:?} has {count} values, over the limit of {limit}")]
    TooManyValues {
        /// The resource (cut to 64 characters).
        resource: String,
        /// Values the sample had.
        count: usize,
        /// The limit.
        limit: usize,
    },

    /// A new resource while the recorder holds as many as it may.
    #[error(
        "resource {resource:?} refused: the recorder already holds {limit} resources (RecorderConfig::max_resources); resources no longer sampled are dropped after the pre-incident window"
    )]
    TooManyResources {
        /// The resource (cut to 64 characters).
        resource: String,
        /// The limit.
        limit: usize,
    },

    /// A resource's display name or type the recorder refuses (too long,
    /// control characters).
    #[error("invalid resource {what} {text:?}: {reason}")]
    InvalidLabel {
        /// `name` or `type`.
        what: &'static str,
        /// The text (cut to 64 characters).
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// A trigger id the recorder refuses (too long, control characters).
    #[error("invalid trigger id {id:?}: {reason}")]
    InvalidTriggerId {
        /// The id (cut to 64 characters).
        id: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// Sample metadata over the size or depth limit.
    #[error("metadata rejected: {reason}")]
    InvalidMetadata {
        /// What limit it broke.
        reason: String,
    },

    /// A trigger over `max_windows_per_resource_per_day`: recorded as
    /// suppressed in `window_triggers`, no window opened.
    #[error(
        "trigger suppressed: {resource:?} already opened {limit} windows in the last 24 hours (max_windows_per_resource_per_day)"
    )]
    Suppressed {
        /// The resource (cut to 64 characters).
        resource: String,
        /// The limit in effect.
        limit: usize,
    },

    /// A stored window that cannot be read back (a damaged row: text that
    /// is not UTF-8, a value of the wrong type...). Exports can skip such
    /// windows and go on with the rest.
    #[error("{path}: window {id} is damaged: {detail}")]
    DamagedWindow {
        /// The database.
        path: PathBuf,
        /// The window's public id, as far as it can be read.
        id: String,
        /// What is wrong.
        detail: String,
    },

    /// A window handed to [`Store::import_window`](crate::Store::import_window)
    /// that cannot be stored as it is.
    #[error("window {id:?} cannot be imported: {reason}")]
    InvalidWindow {
        /// The window's id (cut to 64 characters).
        id: String,
        /// What is wrong with it.
        reason: String,
    },

    /// An imported window whose id a different stored window has.
    #[error("window {id:?} cannot be imported: {detail}")]
    IdCollision {
        /// The id (cut to 64 characters).
        id: String,
        /// What the stored window is.
        detail: String,
    },

    /// Points that could not be written when the recorder stopped (the
    /// database stayed locked, or the disk full): they are lost.
    #[error("{points} points could not be written before the recorder stopped")]
    Unwritten {
        /// How many.
        points: usize,
        /// Why the last attempt failed.
        #[source]
        source: Box<Error>,
    },

    /// No window has this id.
    #[error("no incident window with id {0:?}")]
    WindowNotFound(String),

    /// A window a running recorder is still recording, asked to be deleted:
    /// the recorder holds its bookkeeping (deadline, journal ids) in memory
    /// and would go on writing into a window that no longer exists.
    #[error(
        "window {id:?} is still recording and a recorder is running on this database; delete it once it closes (or stop the recorder first)"
    )]
    StillRecording {
        /// The window (cut to 64 characters).
        id: String,
    },

    /// A note refused (empty, too long, control characters, a bad author).
    #[error("invalid note {what}: {reason}")]
    InvalidNote {
        /// `text` or `author`.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },

    /// A name that should be one of a fixed set (status, trigger type).
    #[error("unknown {kind} {input:?}; expected one of {expected:?}")]
    UnknownName {
        /// What was being parsed.
        kind: &'static str,
        /// The input (cut to 64 characters).
        input: String,
        /// The accepted names.
        expected: &'static [&'static str],
    },

    /// A text that is not valid Prometheus text exposition format (0.0.4),
    /// or is over one of its [`ParseLimits`](crate::provider::prometheus::ParseLimits).
    #[error("invalid Prometheus text exposition at line {line}: {reason}")]
    InvalidExposition {
        /// The 1-based line.
        line: usize,
        /// What is wrong there.
        reason: String,
    },

    /// A scrape target, option or listener setting that cannot work.
    #[error("{0}")]
    InvalidConfig(String),

    /// The HTTP listener could not bind or start.
    #[error("cannot listen on {addr}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The operation cannot be done now or by this handle; the message says
    /// why: the store was opened read-only, closing work waits for a database
    /// that is locked or full, the migration history cannot be read, or the
    /// fleet pusher hit an internal error (it retries).
    #[error("recorder is unavailable: {0}")]
    Unavailable(&'static str),
}

impl Error {
    /// True for a write that failed for want of disk space.
    pub(crate) fn is_disk_full(&self) -> bool {
        matches!(self, Error::Sqlite(e) if e.sqlite_code() == Some(rusqlite::ErrorCode::DiskFull))
    }

    /// True for a write that found the database locked by another
    /// connection past its wait.
    pub(crate) fn is_busy(&self) -> bool {
        self.is_locked()
    }

    /// True when the database was locked by another program (a `sqlite3`
    /// shell in a transaction, an import) for longer than the recorder
    /// waits: the same call may succeed once it lets go.
    pub fn is_locked(&self) -> bool {
        matches!(self, Error::Sqlite(e) if matches!(
            e.sqlite_code(),
            Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
        ))
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error from a [`MetricsProvider`](crate::MetricsProvider) for one resource.
///
/// The recorder logs it, counts it and skips that resource for the tick.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProviderError {
    message: String,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl ProviderError {
    /// An error with a message.
    pub fn new(message: impl Into<String>) -> ProviderError {
        ProviderError {
            message: message.into(),
            source: None,
        }
    }

    /// An error with a message and the error that caused it.
    pub fn with_source(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> ProviderError {
        ProviderError {
            message: message.into(),
            source: Some(Box::new(source)),
        }
    }
}

/// `"a", "b" and 3 more`, or `no resources` for an empty list.
fn monitored_list(ids: &[String], more: usize) -> String {
    if ids.is_empty() {
        return "no resources yet".into();
    }
    let quoted: Vec<String> = ids.iter().map(|id| format!("{id:?}")).collect();
    let mut out = quoted.join(", ");
    if more > 0 {
        out.push_str(&format!(" and {more} more"));
    }
    out
}

/// Cuts `s` to at most 64 characters for error messages.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

/// An error and its causes on one line: `cannot open database x: permission denied`.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

/// An error of the database engine (SQLite, its connection pool, the
/// migration runner), kept opaque: its message and its causes say what went
/// wrong, and no type of those crates is part of this crate's API, so they
/// can change without breaking callers.
#[derive(Debug)]
pub struct DatabaseError(Box<dyn std::error::Error + Send + Sync>);

impl DatabaseError {
    /// SQLite's error code, if SQLite gave one.
    pub(crate) fn sqlite_code(&self) -> Option<rusqlite::ErrorCode> {
        self.0
            .downcast_ref::<rusqlite::Error>()
            .and_then(rusqlite::Error::sqlite_error_code)
    }
}

impl std::fmt::Display for DatabaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for DatabaseError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

impl From<rusqlite::Error> for DatabaseError {
    fn from(e: rusqlite::Error) -> DatabaseError {
        DatabaseError(Box::new(e))
    }
}

impl From<r2d2::Error> for Error {
    fn from(e: r2d2::Error) -> Error {
        Error::Pool(DatabaseError(Box::new(e)))
    }
}

impl From<refinery::Error> for DatabaseError {
    fn from(e: refinery::Error) -> DatabaseError {
        DatabaseError(Box::new(e))
    }
}
