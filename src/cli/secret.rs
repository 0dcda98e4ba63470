//! Secrets a configuration names by file (`listen_token_file`,
//! `push_password_file`): read once at start, checked before they are
//! trusted, never printed.

use std::io::Read;
use std::path::Path;

/// The longest secret file read.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// The first line of a secret file the configuration names (`what` says
/// which, for messages). Refused when other users may read it, or when it
/// belongs to a user other than root or this one (who could change it).
pub fn read_secret(path: &Path, what: &str) -> super::error::Result<String> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let refuse = |why: String| {
        super::error::Failure::msg(format!("{}: refusing {what}: {why}", path.display()))
    };
    // Non-blocking, as the listener's own token file is opened: a FIFO
    // named here is refused below instead of hanging `watch` at start.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| refuse(format!("cannot read it: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| refuse(format!("cannot read it: {e}")))?;
    if !meta.is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    if meta.mode() & 0o007 != 0 {
        return Err(refuse(format!(
            "its mode {:04o} lets other users read or change it (chmod o-rwx it)",
            meta.mode() & 0o7777
        )));
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != 0 && meta.uid() != me {
        return Err(refuse(format!(
            "it belongs to another user (uid {}), who could change it",
            meta.uid()
        )));
    }
    let mut text = String::new();
    file.take(MAX_SECRET_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| refuse(format!("cannot read it: {e}")))?;
    let secret = text.lines().next().unwrap_or_default().trim().to_owned();
    if secret.is_empty() {
        return Err(refuse("its first line is empty".into()));
    }
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fifo_named_as_a_secret_file_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("token");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let err = read_secret(&fifo, "the listener token")
            .unwrap_err()
            .chain();
        assert!(err.contains("not a regular file"), "{err}");
    }
}
