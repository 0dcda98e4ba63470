//! Reading a database this user may not write (see [`Store::open_read_only`]).
//!
//! A read command must work for a user who may read the database but not
//! write it or its directory, while a recorder writes it and after it
//! stopped, and must create no file. SQLite offers two ways, and this
//! module picks one per open:
//!
//! - with a recorder running, its `-wal` and `-shm` are there: SQLite reads
//!   through them, mapping a `-shm` it may not write read-only. Such a
//!   reader cannot claim one of the log's read marks and must use one a
//!   writer set; when there is none (the recorder just created its index,
//!   or moved its only mark on between two looks), SQLite answers
//!   `SQLITE_READONLY_CANTINIT` at once. So every query of such a store
//!   runs in a read transaction begun by [`begin_read`], which waits for a
//!   mark as for a busy lock;
//! - with no recorder, no connection has the database open in WAL mode,
//!   so the file alone holds every commit: it is opened `immutable` (no
//!   locks, no `-shm` to create), and its queries fail with
//!   [`Error::WriterStarted`] once a writer appears.
//!
//! The recorder's side of the bargain is in [`crate::files`]: its `-wal`
//! and `-shm` take the database's read bits, so whoever may read the
//! database may read them.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, ErrorCode, OpenFlags};

use super::{
    BUSY_TIMEOUT, Store, check_header, classify, current_version, journal_path, lock_path,
    open_err, schema, schema_version, shm_path, wal_path,
};
use crate::error::{Error, Result};

/// A connection of a store's pool. One of a store reading through a
/// recorder's log (`pinned`) comes inside a read transaction begun by
/// [`begin_read`], ended when it goes back to the pool: one snapshot per
/// query, and no read of it can meet `SQLITE_READONLY_CANTINIT`.
pub(crate) struct Conn {
    inner: PooledConnection<SqliteConnectionManager>,
    pinned: bool,
}

impl Conn {
    /// `inner`, in a read transaction if `pinned`.
    pub(super) fn new(
        inner: PooledConnection<SqliteConnectionManager>,
        pinned: bool,
        path: &Path,
    ) -> Result<Conn> {
        if pinned {
            begin_read(&inner).map_err(|e| no_read_mark(path, e))?;
        }
        Ok(Conn { inner, pinned })
    }

    /// A transaction for reads that must see one snapshot: the one this
    /// connection is in already if it is pinned (`None`), else a new one.
    pub(crate) fn snapshot(&self) -> Result<Option<rusqlite::Transaction<'_>>> {
        if self.pinned {
            return Ok(None);
        }
        Ok(Some(self.inner.unchecked_transaction()?))
    }
}

impl std::ops::Deref for Conn {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        &self.inner
    }
}

impl std::ops::DerefMut for Conn {
    fn deref_mut(&mut self) -> &mut Connection {
        &mut self.inner
    }
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.pinned && !self.inner.is_autocommit() {
            // A read transaction: nothing to lose; a failure leaves it to
            // the next `begin_read`, which ends it first.
            let _ = self.inner.execute_batch("COMMIT");
        }
    }
}

/// Begins a read transaction on `conn` and reads, retrying (at most
/// [`BUSY_TIMEOUT`], as for a busy lock) while SQLite answers
/// `SQLITE_READONLY_CANTINIT`: see the module docs. Every statement until
/// the transaction ends reads the snapshot taken here.
fn begin_read(conn: &Connection) -> rusqlite::Result<()> {
    let start = Instant::now();
    loop {
        if !conn.is_autocommit() {
            conn.execute_batch("ROLLBACK")?;
        }
        conn.execute_batch("BEGIN")?;
        match conn.query_row("SELECT count(*) FROM sqlite_master", [], |_| Ok(())) {
            Ok(()) => return Ok(()),
            Err(e) if no_mark(&e) && start.elapsed() < BUSY_TIMEOUT => {
                conn.execute_batch("ROLLBACK")?;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                let _ = conn.execute_batch("ROLLBACK");
                return Err(e);
            }
        }
    }
}

/// True for `SQLITE_READONLY_CANTINIT`.
fn no_mark(e: &rusqlite::Error) -> bool {
    e.sqlite_error()
        .is_some_and(|s| s.extended_code == rusqlite::ffi::SQLITE_READONLY_CANTINIT)
}

/// [`begin_read`]'s error, saying what the wait was for.
fn no_read_mark(path: &Path, e: rusqlite::Error) -> Error {
    if !no_mark(&e) {
        return classify(path, e);
    }
    Error::Open {
        path: path.to_path_buf(),
        source: format!(
            "for {}s the recorder writing it left no read mark for readers who may not write its index {}; try again",
            BUSY_TIMEOUT.as_secs(),
            shm_path(path).display()
        )
        .into(),
    }
}

impl Store {
    /// Opens an existing database for queries only. Nothing is ever written
    /// and no file is created, so this works for a user who may read the
    /// database but not write it or its directory (a recorder running as
    /// root or a service user), while that recorder writes it or after it
    /// stopped; and on a read-only mount. The schema must be current.
    ///
    /// With a recorder running, its `-wal` and `-shm` are there and SQLite
    /// reads through them (a `-shm` this user cannot write is used
    /// read-only). Without them, no connection has the database open in WAL
    /// mode, so the file alone is the database and is opened `immutable`:
    /// no locks, no `-shm` to create. Such a store reads that file as it
    /// is; once a writer starts, its queries fail with
    /// [`Error::WriterStarted`] (open it again) rather than read a file
    /// that may be changing under them.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        crate::files::check_for_reading(&path)?;
        let owner = crate::files::owner(&path)?;
        for companion in [wal_path(&path), shm_path(&path), journal_path(&path)] {
            crate::files::check_companion_for_reading(&companion, owner)?;
        }
        check_header(&path)?;
        let mut flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut target = path.as_os_str().to_owned();
        let snapshot = reads_file_alone(&path);
        if snapshot {
            target = immutable_uri(&path)?.into();
            flags |= OpenFlags::SQLITE_OPEN_URI;
        }
        let probe = Connection::open_with_flags(&target, flags).map_err(|e| open_err(&path, e))?;
        probe
            .busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| classify(&path, e))?;
        begin_read(&probe).map_err(|e| unreadable_log(&path, no_read_mark(&path, e)))?;
        let found = schema_version(&probe, &path)
            .map_err(|e| unreadable_log(&path, e))?
            .unwrap_or(0);
        let supported = current_version();
        if found > supported {
            return Err(Error::NewerSchema {
                path,
                found,
                supported,
            });
        }
        if found < supported {
            return Err(Error::OlderSchema {
                path,
                found,
                supported,
            });
        }
        schema::verify(&probe, &path, false)?;
        drop(probe); // ends its read transaction
        let manager = SqliteConnectionManager::file(&target)
            .with_flags(flags)
            .with_init(|c| c.busy_timeout(BUSY_TIMEOUT));
        let mut store = Store::with_manager(manager, Some(path), true)?;
        store.snapshot = snapshot;
        // Through a running recorder's log, every query reads inside a
        // transaction begun as `begin_read` says.
        store.pin_reads = !snapshot;
        Ok(store)
    }

    /// True if a recorder currently holds this database's recording lock
    /// (so a [`Store::request_trigger`] will be picked up). Fails for a
    /// user who may not open the lock file: see [`Store::recorder_presence`].
    pub fn recorder_running(&self) -> Result<bool> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        recorder_presence(path)?.ok_or_else(|| Error::Io {
            path: lock_path(path),
            source: std::io::ErrorKind::PermissionDenied.into(),
        })
    }

    /// Whether a recorder holds this database's recording lock, if this
    /// user can tell: `None` when the lock file is private to the
    /// recorder's user (it stays 0600 whatever the database's mode: a user
    /// who could open it could hold it and keep the recorder from starting).
    pub fn recorder_presence(&self) -> Result<Option<bool>> {
        match &self.path {
            Some(path) => recorder_presence(path),
            None => Ok(Some(false)),
        }
    }
}

/// See [`Store::recorder_presence`].
fn recorder_presence(db: &Path) -> Result<Option<bool>> {
    let lock = lock_path(db);
    if std::fs::symlink_metadata(&lock).is_ok_and(|m| !m.file_type().is_file()) {
        return Err(Error::UnsafeFile {
            path: lock,
            reason: "it is not a plain file (a link?); no recorder made it".into(),
        });
    }
    let file = match File::open(&lock) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some(false)),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => return Ok(None),
        Err(source) => return Err(Error::Io { path: lock, source }),
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(false)),
        Err(std::fs::TryLockError::WouldBlock) => Ok(Some(true)),
        Err(std::fs::TryLockError::Error(source)) => Err(Error::Io { path: lock, source }),
    }
}

/// Whether a read-only open should read the database file alone, opened
/// `immutable` (no locks, no `-shm`). Only when that file holds every
/// committed transaction and nobody writes it:
///
/// - it is in WAL mode (a rollback-mode database is read with shared locks
///   alone, creating nothing) and no rollback `-journal` is beside it;
/// - its `-wal` is missing or empty: nothing committed waits in the log;
/// - not both `-wal` and `-shm` are there: every connection in WAL mode
///   keeps both while open, so a writer is running only when both are
///   (then SQLite reads through them, and sees the writer's commits).
///
/// The recorder's lock says nothing more: every writer of ours prepares
/// `-wal` and `-shm` before it takes the lock (and testing the lock takes
/// it for an instant, which would refuse a recorder starting then). A
/// writer that starts later is caught by `Store::conn`.
///
/// A `-wal` with content but no `-shm` (a copy, a crash) is left to SQLite,
/// which rebuilds the index if it may create the file.
fn reads_file_alone(db: &Path) -> bool {
    !(writer_may_run(db) || std::fs::symlink_metadata(journal_path(db)).is_ok() || !wal_format(db))
}

/// True if the database's `-wal` has content, or it and `-shm` are both
/// there: the file alone may not hold every commit, or a writer may run.
pub(super) fn writer_may_run(db: &Path) -> bool {
    let exists = |p: &Path| std::fs::symlink_metadata(p).is_ok();
    let wal = wal_path(db);
    std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0) || (exists(&wal) && exists(&shm_path(db)))
}

/// True if the file's header says WAL mode (read and write versions 2).
fn wal_format(db: &Path) -> bool {
    use std::io::Read;
    let mut header = [0u8; 20];
    File::open(db)
        .and_then(|mut f| f.read_exact(&mut header))
        .is_ok_and(|()| header[18] == 2 && header[19] == 2)
}

/// A read-only open that failed for want of the WAL index says so: the
/// log is there but its `-shm` is not, and this user may not create it.
fn unreadable_log(db: &Path, e: Error) -> Error {
    let cannot_open =
        matches!(&e, Error::Sqlite(s) if s.sqlite_code() == Some(ErrorCode::CannotOpen));
    let logged = std::fs::metadata(wal_path(db)).is_ok_and(|m| m.len() > 0);
    if !(cannot_open || matches!(e, Error::ReadOnly { .. })) || !logged {
        return e;
    }
    Error::Open {
        path: db.to_path_buf(),
        source: format!(
            "its write-ahead log {} holds commits not yet in the database, and its index {} is missing or unreadable and cannot be created by this user; open it once as its owner (`incident-recorder stats`) or start the recorder",
            wal_path(db).display(),
            shm_path(db).display()
        )
        .into(),
    }
}

/// An SQLite URI opening `path` read-only and immutable (no locking, no
/// `-shm`), with `%`, `?` and `#` escaped as the URI syntax requires.
fn immutable_uri(path: &Path) -> Result<String> {
    let absolute = std::path::absolute(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let text = absolute.to_str().ok_or_else(|| Error::Open {
        path: path.to_path_buf(),
        source: "the path is not valid UTF-8".into(),
    })?;
    let mut uri = String::from("file:");
    for c in text.chars() {
        match c {
            '%' => uri.push_str("%25"),
            '?' => uri.push_str("%3f"),
            '#' => uri.push_str("%23"),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro&immutable=1");
    Ok(uri)
}
