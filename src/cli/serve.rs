//! `serve`: the listener's pages and queries on a database opened
//! read-only, without recording: for a copied file, or for a user of the
//! database's group on a machine where `watch` runs as another user.
//!
//! The token rules are `watch --listen`'s (see [`super::listen`]): a
//! bearer token from `--listen-token`, `--listen-token-file` or the
//! owner's `DB.listen-token`, or `--listen-no-auth` on loopback. The store
//! is opened with `Store::open_read_only`, so nothing is ever written;
//! the routes that would record answer 409.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;

use super::args::ServeArgs;
use super::error::{Context, Result};

pub fn run(db: &Path, a: ServeArgs) -> Result<ExitCode> {
    let listen = a.listen_args();
    let mut plan = match super::listen::check(&listen) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("error: {e} (see --help)");
            return Ok(ExitCode::from(super::EXIT_USAGE));
        }
    };
    super::listen::read_named(&mut plan)?;
    let store = Arc::new(super::open_read_only(db)?);
    let prepared = super::listen::prepare(plan, db)?;
    let Some((listener, banner)) = super::listen::serve(prepared, store)? else {
        return Ok(ExitCode::SUCCESS); // not reached: serve always listens
    };
    println!("{banner}");
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        let _ = tx.send(());
    })
    .context("cannot install the signal handler")?;
    let _ = rx.recv();
    drop(listener);
    Ok(ExitCode::SUCCESS)
}
