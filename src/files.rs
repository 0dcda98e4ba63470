//! Files on hosts where other users write the same directories.
//!
//! The recorder often runs as root and keeps sensitive history, so every
//! file it creates is created exclusively (`O_EXCL`), without following a
//! symbolic link (`O_NOFOLLOW`), with mode 0600; and an existing file it is
//! to write must be what it looks like:
//!
//! - a symbolic link is followed only if the user running the recorder owns
//!   it (a link planted by someone else is never written through);
//! - the file (after the link) must be a regular file: a FIFO would block a
//!   reader forever, a device would swallow the history;
//! - it must belong to the user running the recorder. A file someone else
//!   owns is refused: its owner could read the history, or swap it.
//!
//! Modes: nothing the recorder writes is ever writable by group or other.
//! Whether others may *read* the history is the owner's choice, made on the
//! database file (`chmod 640 incidents.db` lets a group run `list`):
//!
//! - the database keeps its group/other read bits; their write and execute
//!   bits (and set-id bits) are removed ([`check_database`]);
//! - its companions (`-wal`, `-shm`, `-journal`) hold the same history, so
//!   they take exactly the database's read bits, looser or tighter: mode
//!   0600 plus the database's group/other read bits ([`check_companion`]);
//! - everything else (the lock, export output, temporary files) is 0600.
//!   The lock especially: whoever can open it can hold it, and a recorder
//!   that finds it held does not start.
//!
//! Output files (`export -o`) are written through [`AtomicFile`]: a fresh
//! temporary file of an unpredictable name beside the target, renamed over
//! it once complete, so a failed write leaves nothing and a planted
//! `.partial` file or link changes nothing.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// What a path holds, once checked for writing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// Nothing (a missing file, or a dangling link owned by the user).
    Missing,
    /// A regular file owned by the user, now with the mode its role allows
    /// (see the module docs).
    File,
}

/// The group/other bits a file of the database may keep: read only.
const SHARED_READ: u32 = 0o044;

/// The mode a database file may keep: the owner's bits but execute, and
/// group/other read (see the module docs).
const DATABASE_MODE: u32 = 0o600 | SHARED_READ;

/// Who besides its owner may read a database, as its mode and group say;
/// its companions follow (see the module docs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Sharing {
    /// The database's group/other read bits.
    read: u32,
    /// The database's group, which its group read bit is for.
    gid: Option<u32>,
}

impl Sharing {
    /// The mode of a companion in group `gid`: 0600, plus the database's
    /// other read bit, plus its group read bit if the companion is in the
    /// database's group (in another group, that bit would let the wrong
    /// people read).
    fn companion_mode(self, gid: Option<u32>) -> u32 {
        let group = if gid.is_some() && gid == self.gid {
            self.read & 0o040
        } else {
            0
        };
        0o600 | (self.read & 0o004) | group
    }
}

fn refuse(path: &Path, reason: impl Into<String>) -> Error {
    Error::UnsafeFile {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

#[cfg(unix)]
fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// Checks `path` before the recorder writes it (see the module docs):
/// refuses links and files owned by others and anything but a regular
/// file, and tightens a file's mode to 0600.
pub(crate) fn check_for_writing(path: &Path) -> Result<Found> {
    check_owned(path, |_| 0o600)
}

/// Checks the database file as [`check_for_writing`] does, but keeps its
/// group/other read bits (the owner's choice) while removing every other
/// group/other bit. Returns who may read it (nobody else for a missing
/// file, which the recorder creates 0600).
pub(crate) fn check_database(path: &Path) -> Result<(Found, Sharing)> {
    let found = check_owned(path, |meta| mode_of(meta) & DATABASE_MODE)?;
    let mut sharing = Sharing::default();
    #[cfg(unix)]
    if found == Found::File {
        use std::os::unix::fs::MetadataExt;
        if let Ok(meta) = std::fs::metadata(path) {
            sharing = Sharing {
                read: mode_of(&meta) & SHARED_READ,
                gid: Some(meta.gid()),
            };
        }
    }
    Ok((found, sharing))
}

/// The permission bits (with set-id and sticky) of a file.
fn mode_of(meta: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o7777
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        0o600
    }
}

/// Checks `path` (see the module docs) and sets its mode to `mode(its
/// metadata)` where they differ.
fn check_owned(path: &Path, mode: impl FnOnce(&std::fs::Metadata) -> u32) -> Result<Found> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let link = match std::fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Missing),
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        if link.file_type().is_symlink() && link.uid() != euid() {
            return Err(refuse(
                path,
                format!(
                    "it is a symbolic link owned by another user (uid {}); it is not followed",
                    link.uid()
                ),
            ));
        }
        let meta = match std::fs::metadata(path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(refuse(
                    path,
                    "it is a symbolic link to a missing file; nothing is created through it",
                ));
            }
            Err(source) => {
                return Err(Error::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        not_regular(path, &meta)?;
        if meta.uid() != euid() {
            return Err(refuse(
                path,
                format!(
                    "it belongs to another user (uid {}), who could read or replace what is written into it",
                    meta.uid()
                ),
            ));
        }
        let (now, wanted) = (mode_of(&meta), mode(&meta));
        if now != wanted {
            match std::fs::set_permissions(path, std::fs::Permissions::from_mode(wanted)) {
                Ok(()) => {
                    tracing::info!(path = %path.display(), "file permissions changed from {now:04o} to {wanted:04o}")
                }
                // Nothing can be written there anyway; opening says so.
                Err(e) if e.kind() == io::ErrorKind::ReadOnlyFilesystem => {}
                Err(source) => {
                    return Err(Error::Io {
                        path: path.to_path_buf(),
                        source,
                    });
                }
            }
        }
        Ok(Found::File)
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        Ok(if path.exists() {
            Found::File
        } else {
            Found::Missing
        })
    }
}

/// Checks a file SQLite keeps beside a database (`-wal`, `-shm`,
/// `-journal`): as [`check_for_writing`], but it takes the database's
/// group (where this user may give it) and the mode
/// [`Sharing::companion_mode`] says; and it must not be a link at all
/// (SQLite would follow it, or fail with a bare "unable to open database
/// file").
pub(crate) fn check_companion(path: &Path, sharing: Sharing) -> Result<Found> {
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(refuse(
            path,
            "it is a symbolic link; the database's companion files must be plain files",
        ));
    }
    check_owned(path, |meta| {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let mut gid = meta.gid();
            if let Some(want) = sharing.gid.filter(|&g| g != gid)
                && std::os::unix::fs::lchown(path, None, Some(want)).is_ok()
            {
                gid = want;
            }
            sharing.companion_mode(Some(gid))
        }
        #[cfg(not(unix))]
        {
            let _ = meta;
            sharing.companion_mode(None)
        }
    })
}

/// Creates the companion `path` of a database shared as `sharing`:
/// exclusively, not through a link, then given (on the open file, whatever
/// the umask) the database's group where this user may, and the mode
/// [`Sharing::companion_mode`] says.
pub(crate) fn create_companion(path: &Path, sharing: Sharing) -> io::Result<File> {
    let file = create_new_private(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let mut gid = file.metadata()?.gid();
        if let Some(want) = sharing.gid.filter(|&g| g != gid)
            && std::os::unix::fs::fchown(&file, None, Some(want)).is_ok()
        {
            gid = want;
        }
        let mode = sharing.companion_mode(Some(gid));
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = sharing;
    Ok(file)
}

/// Checks `path` before the recorder reads it: it must be a regular file,
/// so that opening it never blocks (a FIFO) or reads a device; and this
/// user must be allowed to read it (said plainly, where SQLite would only
/// say "unable to open database file").
pub(crate) fn check_for_reading(path: &Path) -> Result<()> {
    let open_err = |source: io::Error| Error::Open {
        path: path.to_path_buf(),
        source: Box::new(source),
    };
    let meta = std::fs::metadata(path).map_err(open_err)?;
    not_regular(path, &meta)?;
    File::open(path).map(drop).map_err(open_err)
}

/// Checks a companion (`-wal`, `-shm`, `-journal`) of a database owned by
/// `owner` before a reader lets SQLite use it: if present, it must be a
/// regular file (not a link, FIFO or device) of the database's owner. A
/// log planted by someone else would feed the reader false history.
pub(crate) fn check_companion_for_reading(path: &Path, owner: u32) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if meta.file_type().is_symlink() {
        return Err(refuse(
            path,
            "it is a symbolic link; the database's companion files must be plain files",
        ));
    }
    not_regular(path, &meta)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.uid() != owner {
            return Err(refuse(
                path,
                format!(
                    "it belongs to another user (uid {}) than the database (uid {owner}); its content would be read as history",
                    meta.uid()
                ),
            ));
        }
    }
    #[cfg(not(unix))]
    let _ = owner;
    Ok(())
}

/// The owner of the file at `path` (0 where there is no such notion).
pub(crate) fn owner(path: &Path) -> Result<u32> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        Ok(meta.uid())
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        Ok(0)
    }
}

/// Refuses anything but a regular file, saying what it is.
fn not_regular(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    let ft = meta.file_type();
    if ft.is_file() {
        return Ok(());
    }
    #[cfg(unix)]
    let what = {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else {
            "something else"
        }
    };
    #[cfg(not(unix))]
    let what = if ft.is_dir() {
        "a directory"
    } else {
        "something else"
    };
    Err(refuse(path, format!("it is {what}, not a regular file")))
}

/// Options for a file created exclusively, not through a link, mode 0600.
fn private_options() -> OpenOptions {
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    opts
}

/// Creates `path`, which must not exist (not even as a link), mode 0600.
pub fn create_new_private(path: &Path) -> io::Result<File> {
    private_options().open(path)
}

/// Opens `path` for writing without following a link, creating it (mode
/// 0600) if missing; an existing file is checked as [`check_for_writing`]
/// says. Used for the lock file.
pub(crate) fn open_private(path: &Path) -> Result<File> {
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600).custom_flags(libc::O_NOFOLLOW);
    }
    if check_for_writing(path)? == Found::File {
        opts.create(false);
    }
    opts.open(path).map_err(|source| {
        if source.raw_os_error() == Some(libc_eloop()) {
            return refuse(path, "it is a symbolic link; it is not followed");
        }
        Error::Open {
            path: path.to_path_buf(),
            source: Box::new(source),
        }
    })
}

#[cfg(unix)]
fn libc_eloop() -> i32 {
    libc::ELOOP
}

#[cfg(not(unix))]
fn libc_eloop() -> i32 {
    -1
}

/// A file written beside its final name and renamed into place when
/// complete (see the module docs). Dropped without [`AtomicFile::commit`],
/// it leaves nothing behind.
#[derive(Debug)]
pub struct AtomicFile {
    file: Option<File>,
    temp: PathBuf,
    target: PathBuf,
}

impl AtomicFile {
    /// Starts writing `target`: a new private temporary file beside it.
    /// Fails if `target` is a link or a file the user does not own, or is
    /// not a regular file.
    pub fn create(target: &Path) -> Result<AtomicFile> {
        check_for_writing(target)?;
        let name = target
            .file_name()
            .ok_or_else(|| refuse(target, "it names no file"))?
            .to_string_lossy()
            .into_owned();
        let dir = target.parent().filter(|d| !d.as_os_str().is_empty());
        let mut last = None;
        for _ in 0..16 {
            let temp_name = format!(".{name}.{:016x}.partial", random_u64());
            let temp = dir.map_or_else(|| PathBuf::from(&temp_name), |d| d.join(&temp_name));
            match create_new_private(&temp) {
                Ok(file) => {
                    return Ok(AtomicFile {
                        file: Some(file),
                        temp,
                        target: target.to_path_buf(),
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
                Err(source) => {
                    return Err(Error::Io { path: temp, source });
                }
            }
        }
        Err(Error::Io {
            path: target.to_path_buf(),
            source: last.unwrap_or_else(|| io::Error::other("no free temporary name")),
        })
    }

    /// The file being written.
    pub fn file(&mut self) -> &mut File {
        self.file.as_mut().expect("present until committed")
    }

    /// Flushes the data to disk and renames the file over its target.
    pub fn commit(mut self) -> Result<PathBuf> {
        let file = self.file.take().expect("present until committed");
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        file.sync_all().map_err(io(&self.temp))?;
        drop(file);
        std::fs::rename(&self.temp, &self.target).map_err(io(&self.target))?;
        Ok(std::mem::take(&mut self.target))
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file().write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file().flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// 64 unpredictable bits, from the standard library's randomly seeded
/// hasher (no extra dependency for temporary names and id tags).
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn an_atomic_file_replaces_its_target_and_leaves_nothing_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.json");
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"done").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"done");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let mut f = AtomicFile::create(&target).unwrap();
        f.write_all(b"half").unwrap();
        drop(f);
        assert_eq!(std::fs::read(&target).unwrap(), b"done");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_database_keeps_its_read_bits_and_its_companions_take_them() {
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o7777;
        let chmod = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        let (db, wal, shm) = (
            dir.path().join("i.db"),
            dir.path().join("i.db-wal"),
            dir.path().join("i.db-shm"),
        );
        std::fs::write(&db, b"").unwrap();
        std::fs::write(&wal, b"").unwrap();
        // Writable by all, executable, set-gid: only the read bits stay.
        chmod(&db, 0o2777);
        chmod(&wal, 0o600);
        let (found, sharing) = check_database(&db).unwrap();
        assert_eq!((found, mode(&db)), (Found::File, 0o644));
        assert_eq!(check_companion(&wal, sharing).unwrap(), Found::File);
        assert_eq!(
            mode(&wal),
            0o644,
            "a companion is as readable as the database"
        );
        create_companion(&shm, sharing).unwrap();
        assert_eq!(mode(&shm), 0o644);
        // Shared with the group only (issue 22's service database).
        chmod(&db, 0o640);
        chmod(&wal, 0o666);
        let (_, sharing) = check_database(&db).unwrap();
        check_companion(&wal, sharing).unwrap();
        assert_eq!((mode(&db), mode(&wal)), (0o640, 0o640));
        // Private again: a companion left readable is tightened with it.
        chmod(&db, 0o600);
        let (_, sharing) = check_database(&db).unwrap();
        check_companion(&wal, sharing).unwrap();
        assert_eq!(mode(&wal), 0o600);
        // A companion in another group than the database's never gets its
        // group read bit: that group is not the one the owner chose.
        let group = Sharing {
            read: 0o044,
            gid: Some(7),
        };
        assert_eq!(group.companion_mode(Some(7)), 0o644);
        assert_eq!(group.companion_mode(Some(8)), 0o604);
        assert_eq!(Sharing::default().companion_mode(Some(0)), 0o600);
    }

    #[test]
    fn fifos_directories_and_loose_modes_are_refused_or_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo.db");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = check_for_writing(&fifo).unwrap_err();
        assert!(
            err.to_string().contains("it is a FIFO, not a regular file"),
            "{err}"
        );
        assert!(check_for_reading(&fifo).is_err());
        assert!(check_for_writing(dir.path()).is_err());
        let loose = dir.path().join("loose.db");
        std::fs::write(&loose, b"").unwrap();
        std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert_eq!(check_for_writing(&loose).unwrap(), Found::File);
        let mode = std::fs::metadata(&loose).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
