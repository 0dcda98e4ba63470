//! The SQLite store: the only module that knows SQLite's SQL (PostgreSQL's is in `fleet`).
//!
//! # Design
//!
//! History lives in normalized tables (see `docs/schema.md` and
//! `migrations/`): every row names what it belongs to by a key that cascades
//! from `windows`. A window's points are written twice, each time in the
//! order that suits the writer of the moment (see migrations/V11): the tick
//! appends them to a journal (`recent_points`, `recent_values`), touching
//! only the tails of two tables; the closer, off the tick, seals the journal
//! every few seconds into `series` (one metric of one window over one
//! stretch) and `samples` (keyed by series and time), which is what readers
//! want. A closed window is sealed, with its summary, in the transaction
//! that closes it.
//!
//! Modules by job: [`writer`] (the recorder's connection: a tick's commit,
//! opening windows), [`points`] (appending to the journal), [`close`]
//! (where a window closes: the seal, summaries computed and written),
//! [`series`] (reading a window's points from both halves), [`retention`] (trimming and `delete`),
//! [`notes`] (notes on windows), [`requests`] (trigger requests), [`read`]
//! (queries), [`reading`] (read-only opens, for users who may read the
//! database but not write it), [`replay`], [`saved`],
//! [`transfer`], [`push`], [`schema`]. Row ids are typed ([`ids`]).
//!
//! ## Locking
//!
//! The database runs in WAL mode, so readers never block the writer and see
//! only committed transactions: a tick's points, a window and its summary
//! appear together or not at all. Every write transaction is `BEGIN IMMEDIATE`,
//! taking SQLite's write lock up front, so a transaction never fails half way
//! because another process (an `import`, a `prune`) wrote in between; waiting
//! for the lock is bounded by `busy_timeout`. Inside the process, writers
//! take turns through a [`gate::WriteGate`], the tick first. A recorder also
//! holds an exclusive advisory lock on `<db>.lock` for its lifetime: two
//! recorders would both believe they own the windows found `recording`.
//!
//! ## Compatibility
//!
//! The schema is versioned by refinery (`refinery_schema_history`). Opening
//! checks the file before touching it: a file that is not SQLite, an SQLite
//! database of another program, or one written by a newer schema version is
//! refused with a clear error and left byte-for-byte unchanged. Older versions
//! are migrated forward in one transaction. Read-only opens never migrate.
//!
//! ## Performance
//!
//! A tick's points go in as multi-row `INSERT`s through cached statements
//! (`prepare_cached`) in one transaction; journal point ids are assigned in
//! memory from the journal's high mark read inside that transaction (never
//! reused, even once the journal is sealed empty), and metric names are
//! mapped to ids through an in-memory cache, so the hot path does no lookups
//! by name. `synchronous=NORMAL` in WAL mode makes a commit durable against
//! process crashes without an fsync per transaction (the WAL is synced at
//! checkpoints); checkpoints run every 10,000 WAL pages rather than SQLite's
//! 1,000 (see [`WAL_AUTOCHECKPOINT`]) and `journal_size_limit` keeps the WAL
//! from growing without bound. The journal has no index by window (each tick
//! would dirty one index page per recording window): it holds seconds of
//! points, and a seal reads it whole, once. Sealed values are found through
//! `series_by_window` and `samples`' key, and deleted (trimmed) the same way,
//! freeing whole pages.

mod close;
mod gate;
mod ids;
mod notes;
mod points;
mod processes;
mod push;
mod read;
mod reading;
mod replay;
mod requests;
mod retention;
mod saved;
mod schema;
mod series;
mod transfer;
mod words;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use r2d2::Pool;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use crate::error::{Error, Result};

pub(crate) use close::{CloseWork, Closing, SealItem};
pub(crate) use gate::WriteGate;
pub(crate) use push::{PushDetails, PushKey, PushTarget};
pub use push::{PushState, RETRY_FIRST, RETRY_MAX};
// (CloserConn is defined below.)
pub(crate) use ids::{PointId, WindowRow};
pub(crate) use points::{PointBatch, Samples};
pub use read::{ListingCursor, StoreStats, WindowFilter};
pub(crate) use replay::Recorded;
pub use requests::TriggerRequestStatus;
pub use retention::{DeleteReport, DeleteSelection, PruneReport};
pub(crate) use retention::{RECLAIM_NAMES_AFTER, Trim};
pub use words::TriggerWords;
pub(crate) use writer::{Handoff, NewWindow, Writer};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// How long a statement waits for another connection's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// Upper bound on the WAL file kept after a checkpoint.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;
/// WAL pages that trigger a checkpoint (SQLite's default is 1,000).
///
/// Each commit rewrites the last, partly filled pages of the tables it
/// appends to; between two checkpoints a page is copied into the database
/// once however often it was rewritten, so rarer checkpoints copy less:
/// every tick rewrites the journal's tail pages, and a closer's seal the
/// tail pages of the value table. Ten thousand pages (~40 MiB, under `JOURNAL_SIZE_LIMIT`); on a nearly
/// full disk the writer lowers it (`Writer::bound_wal`).
const WAL_AUTOCHECKPOINT: i64 = 10_000;

/// Free bytes for an unprivileged writer on the file system holding `path`
/// (its directory), if known.
fn free_bytes(path: &Path) -> Option<u64> {
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
        let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
        // SAFETY: a valid NUL-terminated path and a buffer for the result.
        if unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) } != 0 {
            return None;
        }
        // SAFETY: statvfs succeeded, so it filled the buffer.
        let st = unsafe { st.assume_init() };
        // The field types differ between platforms (u64 on Linux).
        #[allow(clippy::unnecessary_cast)]
        Some(st.f_bavail as u64 * st.f_frsize as u64)
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

use reading::Conn;

/// How long the closer waits for another program's write lock per try.
const CLOSER_BUSY_TIMEOUT: Duration = Duration::from_millis(20);

/// The closer's connection: its transactions take the write gate patiently.
pub(crate) struct CloserConn {
    conn: Conn,
    /// The database file, whose free space bounds the WAL.
    path: Option<PathBuf>,
    gate: std::sync::Arc<WriteGate>,
    pins: std::sync::Arc<points::MetricPins>,
}

impl CloserConn {
    /// Runs `f` in one immediate transaction, after any waiting tick.
    fn transaction<T>(&mut self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let _turn = self.gate.patient();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let v = f(&tx)?;
        tx.commit()?;
        Ok(v)
    }

    /// Trims history a bounded step at a time (see [`retention::trim`]),
    /// after any waiting tick; true if more is due.
    pub(crate) fn trim(&mut self, t: Trim) -> Result<(PruneReport, bool)> {
        let _turn = self.gate.patient();
        retention::trim(&self.conn, t, retention::TRIM_STEP)
    }

    /// The highest `metrics` row id (0 for none): how many names were ever
    /// stored, to decide when a reclaim is due.
    pub(crate) fn metric_high(&mut self) -> Result<i64> {
        retention::metric_high(&self.conn)
    }

    /// Deletes the `metrics` rows nothing uses (see
    /// [`retention::reclaim_metric_names`]), after any waiting tick.
    pub(crate) fn reclaim_metric_names(&mut self) -> Result<usize> {
        let _turn = self.gate.patient();
        retention::reclaim_metric_names(&self.conn, &self.pins)
    }
}

/// A handle on an incident database: queries, statistics and maintenance.
///
/// A recorder owns one; the CLI's read commands open one read-only with
/// [`Store::open_read_only`], which never writes to the file.
pub struct Store {
    pool: Pool<SqliteConnectionManager>,
    path: Option<PathBuf>,
    read_only: bool,
    /// Opened `immutable` (see [`Store::open_read_only`]): queries fail
    /// once a writer appears, rather than read a file being checkpointed.
    snapshot: bool,
    /// Read-only through a recorder's log: every query in a read
    /// transaction (see [`reading`]).
    pin_reads: bool,
    /// Write turns of this process's writers (see [`gate`]).
    gate: std::sync::Arc<WriteGate>,
    /// `metrics` rows this process's writer may still write (kept by
    /// [`retention::reclaim_metric_names`]).
    pins: std::sync::Arc<points::MetricPins>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path` for reading and
    /// writing, migrating its schema to the current version.
    ///
    /// A missing parent directory is created with mode 0700 and a new database
    /// file with mode 0600, as are its `-wal` and `-shm` files, never through
    /// a link; existing ones must be regular files of the user running the
    /// recorder (see [`crate::files`]).
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let created = prepare_files(&path)?;
        let opened = Store::open_prepared(path);
        if opened.is_err() {
            // A refused file gets nothing left beside it: the companions
            // made for it go, if still empty.
            for f in created {
                if std::fs::metadata(&f).is_ok_and(|m| m.len() == 0) {
                    let _ = std::fs::remove_file(&f);
                }
            }
        }
        opened
    }

    /// [`Store::open`] once the files are prepared.
    fn open_prepared(path: PathBuf) -> Result<Store> {
        check_header(&path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut probe =
            Connection::open_with_flags(&path, flags).map_err(|e| open_err(&path, e))?;
        // SQLite silently falls back to read-only for a file it cannot write.
        if probe.is_readonly(rusqlite::MAIN_DB).unwrap_or(false) {
            return Err(Error::ReadOnly { path });
        }
        probe
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| classify(&path, e))?;
        match schema_version(&probe, &path)? {
            Some(found) if found > current_version() => {
                return Err(Error::NewerSchema {
                    path,
                    found,
                    supported: current_version(),
                });
            }
            _ => {}
        }
        let mode: String = probe
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(|e| classify(&path, e))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "database is not in WAL mode; readers may block the writer");
        }
        schema::check_history(&probe, &path, true)?;
        migrate(&mut probe)?;
        schema::verify(&probe, &path, true)?;
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(flags)
            .with_init(init_connection);
        let store = Store::with_manager(manager, Some(path.clone()), false)?;
        // The probe stays open until a pooled connection has the log open:
        // the last connection to close deletes `-wal` and `-shm`, and the
        // next would create them itself (not exclusively) instead of using
        // the files prepared above.
        store
            .conn()?
            .query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(()))
            .map_err(|e| classify(&path, e))?;
        // What the migrations wrote (the schema, the database's tag) goes
        // into the file itself now: the pool's connections close a moment
        // after the store is dropped, on r2d2's thread, and a process that
        // exits first leaves it only in the `-wal` (a copy of the file
        // alone would be another database).
        probe
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            .map_err(|e| classify(&path, e))?;
        drop(probe);
        Ok(store)
    }

    /// A fresh private in-memory database (SQLite's `memdb` VFS, shared by this
    /// store's connections and freed with the last of them).
    pub fn open_in_memory() -> Result<Store> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "file:/incident-recorder-{}-{}?vfs=memdb",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let manager = SqliteConnectionManager::file(&name)
            .with_flags(flags)
            .with_init(init_connection);
        let store = Store::with_manager(manager, None, false)?;
        migrate(&mut *store.conn()?)?;
        Ok(store)
    }

    fn with_manager(
        manager: SqliteConnectionManager,
        path: Option<PathBuf>,
        read_only: bool,
    ) -> Result<Store> {
        // No idle timeout or maximum lifetime: r2d2 enforces them with a job
        // that reschedules itself every 30 s and keeps the pool's three threads
        // alive that long after the pool is dropped, so a process that opens
        // stores repeatedly piled up thousands of threads (the `open` bench
        // ran out of memory). Idle SQLite connections cost little to keep.
        let pool = Pool::builder()
            .max_size(8)
            // No idle connection kept in reserve: r2d2 opens reserve
            // connections on its own thread, which holds the pool alive
            // while it connects, so a store dropped then closed its
            // connections late, after a short process had exited (its
            // `-wal` and `-shm` left behind). A connection is opened when
            // asked for and kept idle after.
            .min_idle(Some(0))
            .idle_timeout(None)
            .max_lifetime(None)
            .connection_timeout(BUSY_TIMEOUT)
            .build(manager)
            .map_err(|e| match &path {
                Some(p) => Error::Open {
                    path: p.clone(),
                    source: Box::new(e),
                },
                None => Error::from(e),
            })?;
        Ok(Store {
            pool,
            path,
            read_only,
            snapshot: false,
            pin_reads: false,
            gate: Default::default(),
            pins: Default::default(),
        })
    }

    /// The database file, or `None` for an in-memory store.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The newest schema version this build knows.
    pub fn schema_version() -> i64 {
        current_version()
    }

    fn conn(&self) -> Result<Conn> {
        let path = self.path.as_deref().unwrap_or(Path::new(":memory:"));
        if self.snapshot && reading::writer_may_run(path) {
            return Err(Error::WriterStarted {
                path: path.to_path_buf(),
            });
        }
        Conn::new(self.pool.get()?, self.pin_reads, path)
    }

    /// A dedicated connection for the recorder's writes.
    pub(crate) fn writer(&self) -> Result<Writer> {
        if self.read_only {
            return Err(Error::Unavailable("the store was opened read-only"));
        }
        Writer::new(
            self.conn()?,
            self.gate.clone(),
            self.pins.clone(),
            self.path.as_deref(),
        )
    }

    /// A dedicated connection for the recorder's closing work, with the
    /// write gate (taken patiently).
    pub(crate) fn closer(&self) -> Result<CloserConn> {
        if self.read_only {
            return Err(Error::Unavailable("the store was opened read-only"));
        }
        let conn = self.conn()?;
        conn.pragma_update(None, "cache_size", -writer::WRITER_CACHE_KIB)?;
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // It holds the write gate while it waits for SQLite's lock, and a
        // tick may be waiting for the gate: it gives up quickly and retries
        // without the gate (see `recorder/closer.rs`).
        conn.busy_timeout(CLOSER_BUSY_TIMEOUT)?;
        bound_wal(&conn, self.path.as_deref())?;
        Ok(CloserConn {
            conn,
            gate: self.gate.clone(),
            pins: self.pins.clone(),
            path: self.path.clone(),
        })
    }

    /// Takes the advisory lock that makes a recorder the only writer of
    /// windows in this database; held until the returned file is dropped.
    /// In-memory stores need none.
    pub(crate) fn lock_for_recording(&self) -> Result<Option<File>> {
        let Some(path) = &self.path else {
            return Ok(None);
        };
        let lock = lock_path(path);
        let file = match crate::files::open_private(&lock) {
            Err(Error::Open { source, .. })
                if source.downcast_ref::<std::io::Error>().is_some_and(|e| {
                    matches!(
                        e.kind(),
                        std::io::ErrorKind::ReadOnlyFilesystem
                            | std::io::ErrorKind::PermissionDenied
                    )
                }) =>
            {
                return Err(Error::ReadOnly { path: path.clone() });
            }
            other => other?,
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(file)),
            Err(std::fs::TryLockError::WouldBlock) => Err(Error::Locked {
                path: path.clone(),
                lock,
            }),
            Err(std::fs::TryLockError::Error(source)) => Err(Error::Io { path: lock, source }),
        }
    }
}

/// Refuses a file whose SQLite header promises more pages than the file
/// holds: a truncated copy. SQLite itself would only notice when a query
/// reaches a missing page, possibly long after opening. Files that are not
/// SQLite at all are left for SQLite to refuse.
///
/// Only a file without WAL content is judged: a checkpoint interrupted by a
/// crash can leave the main file shorter than its header says, with the
/// missing pages still in the `-wal` file, from which SQLite recovers.
fn check_header(path: &Path) -> Result<()> {
    use std::io::Read;
    if std::fs::metadata(wal_path(path)).is_ok_and(|m| m.len() > 0) {
        return Ok(());
    }
    let Ok(file) = File::open(path) else {
        return Ok(()); // SQLite reports unreadable files itself
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut header = Vec::with_capacity(100);
    if file.take(100).read_to_end(&mut header).is_err() {
        return Ok(());
    }
    const MAGIC: &[u8] = b"SQLite format 3\0";
    if header.is_empty() || !MAGIC.starts_with(&header[..header.len().min(16)]) {
        return Ok(());
    }
    let corrupt = |detail: String| Err(Error::Corrupt { detail });
    if header.len() < 100 {
        return corrupt(format!(
            "{} is truncated: {len} bytes, shorter than an SQLite header",
            path.display()
        ));
    }
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let page_size = match u16::from_be_bytes([header[16], header[17]]) {
        1 => 65_536,
        n => u64::from(n),
    };
    let pages = u64::from(be32(28));
    // The page count is only authoritative when these two counters match.
    let counted = be32(24) == be32(92) && pages > 0;
    if counted && len < pages * page_size {
        return corrupt(format!(
            "{} is truncated: its header counts {pages} pages of {page_size} bytes but the file has {len} bytes",
            path.display()
        ));
    }
    Ok(())
}

/// `<db>-wal`, SQLite's write-ahead log beside the database.
fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// `<db>.lock`, beside the database.
fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// Gets the database's files ready before SQLite opens them: the directory
/// (created 0700 if missing), the database file (created 0600 if missing;
/// checked, and stripped of group/other bits but read, if present) and its
/// `-wal` and `-shm` (created exclusively and not through a link if
/// missing, checked if present; either way with the database's read bits,
/// see [`crate::files`]). SQLite finds its companions already there, so it
/// never creates one through a link planted between a check and its open.
///
/// Returns the companions it created.
fn prepare_files(path: &Path) -> Result<Vec<PathBuf>> {
    use crate::files::{
        Found, check_companion, check_database, create_companion, create_new_private,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && !dir.exists()
    {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let (found, sharing) = check_database(path)?;
    let create = |file: &Path, required: bool| -> Result<()> {
        let made = if required {
            create_new_private(file)
        } else {
            create_companion(file, sharing)
        };
        match made {
            Ok(_) => Ok(()),
            // Created meanwhile by another recorder: checked like any other.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                check_companion(file, sharing).map(drop)
            }
            // A read-only place: SQLite says so when it opens the database.
            Err(e)
                if !required
                    && matches!(
                        e.kind(),
                        std::io::ErrorKind::ReadOnlyFilesystem
                            | std::io::ErrorKind::PermissionDenied
                    ) =>
            {
                Ok(())
            }
            Err(source) => Err(Error::Open {
                path: file.to_path_buf(),
                source: Box::new(source),
            }),
        }
    };
    if found == Found::Missing {
        create(path, true)?;
    }
    let mut created = Vec::new();
    for companion in [wal_path(path), shm_path(path)] {
        if check_companion(&companion, sharing)? == Found::Missing {
            create(&companion, false)?;
            created.push(companion);
        }
    }
    check_companion(&journal_path(path), sharing)?;
    Ok(created)
}

/// `<db>-shm`, the WAL's index.
fn shm_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-shm");
    PathBuf::from(name)
}

/// `<db>-journal`, SQLite's rollback journal (only outside WAL mode).
fn journal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-journal");
    PathBuf::from(name)
}

/// Pragmas every connection needs. `journal_mode=WAL` is not here: it is a
/// property of the file, set once by [`Store::open`].
fn init_connection(c: &mut Connection) -> rusqlite::Result<()> {
    c.busy_timeout(BUSY_TIMEOUT)?;
    c.pragma_update(None, "foreign_keys", true)?;
    c.pragma_update(None, "synchronous", "NORMAL")?;
    c.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    c.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT)?;
    c.set_prepared_statement_cache_capacity(64);
    Ok(())
}

fn migrate(conn: &mut Connection) -> Result<()> {
    // refinery unwraps what it reads from its history table; a row edited
    // by hand must give an error, never take the process down.
    let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        embedded::migrations::runner().set_grouped(true).run(conn)
    }));
    match ran {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) => Err(Error::Migration(e.into())),
        Err(_) => Err(Error::Unavailable(
            "the schema's migration history is damaged (the migration tool could not read it)",
        )),
    }
}

/// The schema version recorded in the file: `None` for an empty database.
/// Fails for a non-SQLite file and for an SQLite database of another program.
fn schema_version(conn: &Connection, path: &Path) -> Result<Option<i64>> {
    let count = |sql: &str| -> Result<i64> {
        conn.query_row(sql, [], |r| r.get(0))
            .map_err(|e| classify(path, e))
    };
    let tables = count(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table'
           AND name NOT LIKE 'sqlite_%' AND name <> 'refinery_schema_history'",
    )?;
    let has_history = count(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'refinery_schema_history'",
    )? > 0;
    let foreign = || Error::ForeignDatabase {
        path: path.to_path_buf(),
    };
    if !has_history {
        return if tables == 0 {
            Ok(None)
        } else {
            Err(foreign())
        };
    }
    let version: Option<i64> = conn
        .query_row(
            "SELECT max(version) FROM refinery_schema_history",
            [],
            |r| r.get(0),
        )
        .map_err(|e| classify(path, e))?;
    match version {
        // refinery creates its table before migrating; a crash in between
        // leaves it empty, which is still a new database.
        None if tables == 0 => Ok(None),
        Some(v) if has_our_tables(conn, path)? => Ok(Some(v)),
        _ => Err(foreign()),
    }
}

fn has_our_tables(conn: &Connection, path: &Path) -> Result<bool> {
    conn.query_row(
        "SELECT count(*) = 2 FROM sqlite_master WHERE type = 'table' AND name IN ('windows', 'metrics')",
        [],
        |r| r.get(0),
    )
    .map_err(|e| classify(path, e))
}

/// The newest migration version embedded in this build.
fn current_version() -> i64 {
    static V: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *V.get_or_init(|| {
        embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| i64::from(m.version()))
            .max()
            .unwrap_or(0)
    })
}

fn open_err(path: &Path, e: rusqlite::Error) -> Error {
    match classify(path, e) {
        Error::Sqlite(e) => Error::Open {
            path: path.to_path_buf(),
            source: Box::new(e),
        },
        other => other,
    }
}

/// Turns SQLite's "not a database" and "corrupt" codes into errors that say so.
pub(crate) fn classify(path: &Path, e: rusqlite::Error) -> Error {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Error::NotADatabase {
            path: path.to_path_buf(),
        },
        Some(ErrorCode::ReadOnly) => Error::ReadOnly {
            path: path.to_path_buf(),
        },
        _ => Error::from(e),
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Error {
        match e.sqlite_error_code() {
            Some(ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase) => Error::Corrupt {
                detail: e.to_string(),
            },
            _ => Error::Sqlite(e.into()),
        }
    }
}

/// Sets `conn`'s checkpoint interval and WAL size limit from the free space
/// of the file system holding `path` (see [`Writer::bound_wal`]): every
/// connection that commits (the writer, the closer) checkpoints and
/// truncates the WAL by the same bound.
fn bound_wal(conn: &Connection, path: Option<&std::path::Path>) -> Result<()> {
    let page: i64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    let free = path.and_then(free_bytes);
    let pages = free.map_or(WAL_AUTOCHECKPOINT, |free| {
        (free as i64 / 8 / page).clamp(64, WAL_AUTOCHECKPOINT)
    });
    conn.pragma_update(None, "wal_autocheckpoint", pages)?;
    conn.pragma_update(None, "journal_size_limit", pages * page)?;
    Ok(())
}
