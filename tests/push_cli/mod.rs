//! The binary as the fleet tests run it (`tests/fleet.rs`,
//! `tests/fleet_marks.rs`): no password from the environment, every output
//! checked for the test cluster's password, `push --json` read back.
#![allow(dead_code)] // each test binary uses a different subset

use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use super::pg::PASSWORD;

const BIN: &str = env!("CARGO_BIN_EXE_incident-recorder");

/// `incident-recorder --db DB ARGS...`, without `RUST_LOG` or a password
/// from `PGPASSWORD`/`PGPASSFILE`, its output captured.
pub fn command(db: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--db")
        .arg(db)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// Runs to the end; fails the test if the password shows anywhere.
pub fn run(mut cmd: Command) -> Output {
    let out = cmd.output().expect("the binary runs");
    no_password(&out);
    out
}

/// Fails the test if the cluster's password is in `out`.
pub fn no_password(out: &Output) {
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(!text.contains(PASSWORD), "the password was printed: {text}");
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `push --json` with `extra` arguments, expecting exit code `code`.
pub fn push(db: &Path, url: &str, node: &str, extra: &[&str], code: i32) -> Value {
    let mut args = vec!["push", "--to", url, "--node", node, "--json"];
    args.extend_from_slice(extra);
    let out = run(command(db, &args));
    assert_eq!(
        out.status.code(),
        Some(code),
        "push {extra:?}: {}{}",
        text(&out.stderr),
        text(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report")
}
