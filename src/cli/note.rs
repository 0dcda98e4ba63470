//! `note`: a line on a window's timeline ("rebooted db-02 at 10:40"), with
//! its time and author, shown by `show` and `context`, exported and pushed
//! with the window.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use incident_recorder::{Timestamp, WindowNote};

use super::args::NoteArgs;
use super::error::{Failure, Result};

pub fn run(db: &Path, a: NoteArgs) -> Result<ExitCode> {
    let at = match &a.at {
        None => Timestamp::now(),
        Some(t) => Timestamp::parse_rfc3339(t).map_err(|_| {
            Failure::msg(format!(
                "invalid --at {t:?}: give an RFC 3339 time (2026-11-24T10:40:00Z)"
            ))
        })?,
    };
    let note = WindowNote {
        at,
        author: a.author.unwrap_or_else(user_name),
        text: a.text.join(" "),
    };
    let store = super::open_existing(db)?;
    let added = store.add_note(&a.id, &note)?;
    if a.output.json {
        super::print_json(&serde_json::json!({
            "window": a.id,
            "added": added,
            "note": note,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let line = if added {
        format!(
            "noted on {} at {} by {}\n",
            a.id,
            super::format::time(note.at),
            note.author
        )
    } else {
        format!("{} already has this note; nothing added\n", a.id)
    };
    super::format::write_text(&mut std::io::stdout().lock(), &line)?;
    std::io::stdout().flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The name of the user running this (the real user id's passwd entry),
/// else `$USER`, else `uid N`.
fn user_name() -> String {
    // SAFETY: getuid cannot fail; getpwuid_r writes only into the buffers
    // given, and `result` is either null or points at `pwd`, whose strings
    // live in `buf` until it is dropped below.
    let uid = unsafe { libc::getuid() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc == 0 && !result.is_null() && !pwd.pw_name.is_null() {
        let name = unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) };
        return name.to_string_lossy().into_owned();
    }
    std::env::var("USER")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| format!("uid {uid}"))
}
