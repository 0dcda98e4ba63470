//! Tests that cannot run on this machine (no second Unix user, no
//! PostgreSQL, not root) say so where a newcomer sees it: not in the
//! captured output of a test that then reports `ok`, but on the terminal
//! as the test skips, and once more after the binary's `test result:` line
//! with how many were skipped and why. Under `CI=true` a skip is a failure
//! instead (`.ci/run` installs everything).
//!
//! As root, a missing test user is created the way `.ci/run` creates it, so
//! `cargo test` as root runs those tests on a fresh machine too.
//!
//! Included by path (`#[path = "../common/skip.rs"]`) from helpers that do
//! not pull in the rest of `common`.
#![allow(dead_code)] // each test binary uses a different subset

use std::io::Write;
use std::process::Command;
use std::sync::Mutex;

/// The tests skipped in this binary, with why.
static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Skips the calling test: a failure under `CI=true`, otherwise a line on
/// the terminal now and in the binary's closing count.
pub fn skip(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{why}; under CI=true this is a failure (.ci/run installs what is needed)");
    }
    let test = std::thread::current().name().unwrap_or("a test").to_owned();
    // Straight to the terminal: libtest captures only `eprintln!`.
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    let mut skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    if skipped.is_empty() {
        // SAFETY: registering a plain `extern "C" fn` without arguments.
        unsafe { libc::atexit(report) };
    }
    skipped.push(format!("{test}: {why}"));
}

/// Runs at exit, after libtest's `test result:` line.
extern "C" fn report() {
    let skipped = SKIPPED.lock().unwrap_or_else(|e| e.into_inner());
    let mut text = format!(
        "\nSKIPPED: {} test(s) of this binary reported ok without running:\n",
        skipped.len()
    );
    for s in skipped.iter() {
        text.push_str(&format!("  {s}\n"));
    }
    text.push_str(
        "  (each says what it needs; as root, `bash .ci/run` installs and creates all of it)\n\n",
    );
    let _ = std::io::stderr().write_all(text.as_bytes());
}

/// Whether this process runs as root.
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The uid and gid of `user`, from /etc/passwd.
pub fn lookup_user(user: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() > 3 && f[0] == user).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

/// The uid and gid of the test user `user` (`irtest`, `ir-other`), created
/// as `.ci/run` creates it when running as root and it is missing; `Err`
/// says why it cannot be had (not root, or `useradd` failed).
pub fn test_user(user: &str) -> Result<(u32, u32), String> {
    static CREATING: Mutex<()> = Mutex::new(());
    let _one_at_a_time = CREATING.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(ids) = lookup_user(user) {
        return Ok(ids);
    }
    if !is_root() {
        return Err(format!(
            "needs the user {user} (run the tests as root, which creates it, or `useradd --system {user}`)"
        ));
    }
    let out = Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/usr/sbin/nologin",
            user,
        ])
        .output()
        .map_err(|e| format!("cannot run useradd to create the test user {user}: {e}"))?;
    // Another test binary may have created it meanwhile (exit code 9).
    if let Some(ids) = lookup_user(user) {
        return Ok(ids);
    }
    Err(format!(
        "useradd {user} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    ))
}

/// `ir-other`'s uid and gid, for a test that plays a second user of the
/// host: it needs root (the user is created if missing, see [`test_user`])
/// and, given `bin`, that `ir-other` can run `bin` through `runuser` (no
/// directory above it private to root). Otherwise the test is skipped
/// visibly with `what` (a failure under `CI=true`).
pub fn other_user(what: &str, bin: Option<&str>) -> Option<(u32, u32)> {
    let found = if !is_root() {
        Err("needs root, to act as a second user".to_owned())
    } else {
        test_user("ir-other").and_then(|ids| {
            let Some(bin) = bin else { return Ok(ids) };
            let runs = Command::new("runuser")
                .args(["-u", "ir-other", "--", bin, "--version"])
                .output()
                .is_ok_and(|o| o.status.success());
            runs.then_some(ids).ok_or_else(|| {
                format!(
                    "ir-other cannot run {bin} through runuser (util-linux missing, or a directory above it private to root?)"
                )
            })
        })
    };
    found
        .map_err(|why| skip(&format!("{what} cannot run: {why}")))
        .ok()
}
