//! A real `sqlite3` shell holding the write lock of a database
//! (`BEGIN IMMEDIATE`), as an operator's shell in a transaction does.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `sqlite3` in `BEGIN IMMEDIATE` on a database until released (or
/// dropped: killed, which rolls back).
pub struct LockHolder(Child);

impl LockHolder {
    /// Holds the lock of `db` once this returns; `None` (the test returns)
    /// if `sqlite3` is not installed.
    pub fn hold(db: &Path) -> Option<LockHolder> {
        let sqlite3 = crate::real::program(&["sqlite3"], "sqlite3")?;
        let mut child = Command::new(sqlite3)
            .arg(db)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.as_mut().unwrap();
        writeln!(stdin, ".timeout 5000\nBEGIN IMMEDIATE;\nSELECT 'locked';").unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "locked", "sqlite3 took the lock");
        Some(LockHolder(child))
    }

    /// Commits and quits.
    pub fn release(mut self) {
        let stdin = self.0.stdin.as_mut().unwrap();
        writeln!(stdin, "COMMIT;\n.quit").unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
