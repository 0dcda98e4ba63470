//! The `incident-recorder` command line, on top of the library.
//!
//! `main` parses the arguments (clap derive, [`args`]), sets up logging
//! ([`logging`]: tracing to stderr, `RUST_LOG` or `-v`, repeated warnings
//! rate-limited), runs one command and turns its
//! outcome into an exit code. Every failure is printed as one line,
//! `error: <what>: <why>`, from the error's cause chain ([`error`]).
//!
//! One module per command or per concern, each small enough to read whole:
//!
//! | module | holds |
//! |---|---|
//! | `args` | the grammar: commands, options, defaults |
//! | `config` | `--config FILE` (TOML) merged under the flags; `--print-config`; secret files |
//! | `watch`, `live` | recording this host; the status line and window events |
//! | `scrape`, `listen` | `watch --scrape` (exporters) and `watch --listen` (the HTTP listener) options |
//! | `rules` | threshold rules, their state machine, the provider wrapper |
//! | `ingest`, `ingest_line` | recording JSON lines on their own clock; the line format |
//! | `trigger` | asking a running recorder for a window |
//! | `history` | `list`, `show`, `context`, `stats`, `prune` |
//! | `delete`, `note` | deleting windows; notes on a window |
//! | `manual` | `completions SHELL` and `man`, from the grammar |
//! | `transfer`, `pulse` | `export` / `import`; Pulse's file shape |
//! | `demo`, `fleet` | the simulated incident; its simulated fleet |
//! | `push` | `push`, and `--push-to` for `watch` and `ingest` (the library's `fleet`) |
//! | `table`, `sparkline`, `format` | text output |
//! | `input` | files or stdin, with a progress bar for files |
//! | `duration`, `error` | human durations; the error type |
//! | `logging` | warnings on stderr, one line each, at most 10 a minute from one place |
//!
//! The library never depends on this module: everything here is reachable
//! from the library's public API, which is the point of having one.

mod args;
mod config;
mod csv;
mod delete;
mod demo;
mod duration;
mod error;
mod fleet;
mod format;
#[cfg(test)]
mod fuzz;
mod history;
mod ingest;
mod ingest_line;
mod input;
mod listen;
mod live;
mod logging;
mod manual;
mod note;
mod processes;
mod pulse;
mod push;
mod rules;
mod scrape;
mod secret;
mod serve;
mod sparkline;
mod table;
mod transfer;
mod trigger;
mod watch;

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use incident_recorder::Store;

use args::{Cli, Command};
use error::{Failure, Result};

/// Exit code: the command failed.
pub const EXIT_FAILURE: u8 = 1;
/// Exit code: the command line could not be parsed.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the command finished, but some input lines or windows were
/// rejected (`ingest`, `import`); the rest was recorded.
pub const EXIT_PARTIAL: u8 = 3;

/// Parses, runs, reports.
pub fn main() -> ExitCode {
    std::panic::set_hook(Box::new(|info| {
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        let place = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()));
        eprintln!(
            "error: internal error: {message}{} (this is a bug; please report it)",
            place.unwrap_or_default()
        );
    }));
    let cli = match config::parse(std::env::args_os().collect()) {
        Ok(config::Parsed {
            print: Some(text), ..
        }) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Ok(parsed) => parsed.cli,
        Err(config::Refusal::Usage(e)) => return usage_error(&e),
        Err(config::Refusal::Config(message)) => {
            eprintln!("error: {}", format::terminal_safe(&message));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    logging::init(cli.verbose);
    let db = cli.db.clone();
    let outcome = run(cli);
    // What the warning budget left out is counted before the outcome.
    logging::finish();
    match outcome {
        Ok(code) => code,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            let mut message = e.chain();
            // SQLite's own messages do not say which file they are about,
            // nor does a window missing from it.
            let about_the_file = matches!(
                e.downcast_ref::<incident_recorder::Error>(),
                Some(
                    incident_recorder::Error::Corrupt { .. }
                        | incident_recorder::Error::Sqlite(_)
                        | incident_recorder::Error::WindowNotFound(_)
                )
            );
            let shown = db.display().to_string();
            if about_the_file && !message.contains(&shown) {
                message = format!("{shown}: {message}");
            }
            // One line, and nothing from a damaged file drives the terminal.
            let line: String = message
                .split(['\n', '\r'])
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            eprintln!("error: {}", format::terminal_safe(&line));
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Prints clap's help and version as clap does, and usage errors on one line.
fn usage_error(e: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        let _ = e.print();
        return ExitCode::from(if e.use_stderr() { EXIT_USAGE } else { 0 });
    }
    eprintln!("{}", one_line(&e.render().to_string()));
    ExitCode::from(EXIT_USAGE)
}

/// clap's multi-line message as one line: the usage block and the pointer
/// to --help are dropped, the rest is joined.
fn one_line(rendered: &str) -> String {
    let mut out = String::new();
    for line in rendered.lines().map(str::trim) {
        if line.is_empty() || line.starts_with("Usage:") || line.starts_with("For more information")
        {
            continue;
        }
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(line);
    }
    if !out.starts_with("error:") {
        out.insert_str(0, "error: ");
    }
    out.push_str(" (see --help)");
    out
}

fn run(cli: Cli) -> Result<ExitCode> {
    let db = cli.db.as_path();
    match cli.command {
        Command::Watch(a) => watch::run(db, *a),
        Command::Ingest(a) => ingest::run(db, a),
        Command::Trigger(a) => trigger::run(db, a),
        Command::List(a) => history::list(db, a),
        Command::Show(a) => history::show(db, a),
        Command::Context(a) => history::context(db, a),
        Command::Export(a) => transfer::export(db, a),
        Command::Import(a) => transfer::import(db, a),
        Command::Prune(a) => history::prune(db, a),
        Command::Stats(a) => history::stats(db, a),
        Command::Demo(a) => demo::run(db, a),
        Command::Push(a) => push::run(db, a),
        Command::Delete(a) => delete::run(db, a),
        Command::Note(a) => note::run(db, a),
        Command::Serve(a) => serve::run(db, a),
        Command::Completions(a) => manual::completions(a),
        Command::Man(a) => manual::man(a),
    }
}

/// Fails with a helpful message if there is no database at `path`.
fn require_database(path: &Path) -> Result<()> {
    if path.exists() {
        Ok(())
    } else {
        Err(Failure::msg(format!(
            "no database at {}; record one with `incident-recorder watch` or `demo`",
            path.display()
        )))
    }
}

/// Opens an existing database for queries only (never writes, never trims).
fn open_read_only(path: &Path) -> Result<Store> {
    require_database(path)?;
    match Store::open_read_only(path) {
        // A file a recorder has just created and not yet migrated.
        Err(incident_recorder::Error::OlderSchema { found: 0, .. }) => Err(Failure::msg(format!(
            "{} holds no incident history yet (empty database); record into it with `incident-recorder watch` or `demo`",
            path.display()
        ))),
        other => Ok(other?),
    }
}

/// Opens an existing database for writing (never creates one).
fn open_existing(path: &Path) -> Result<Store> {
    require_database(path)?;
    Ok(Store::open(path)?)
}

/// Writes `value` as pretty JSON and a newline to stdout, with what could
/// act on a terminal escaped ([`format::SafeJson`]).
fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let mut json = serde_json::Serializer::with_formatter(&mut out, format::SafeJson::default());
    value.serialize(&mut json)?;
    writeln!(out)?;
    Ok(())
}

/// The exit code for a command that may have rejected some of its input.
fn partial_if(rejected: bool) -> ExitCode {
    if rejected {
        ExitCode::from(EXIT_PARTIAL)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn clap_errors_become_one_line() {
        let e = Cli::try_parse_from(["incident-recorder", "lst"]).unwrap_err();
        let line = one_line(&e.render().to_string());
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.starts_with("error: unrecognized subcommand 'lst'"),
            "{line}"
        );
        assert!(
            line.contains("tip: a similar subcommand exists: 'list'"),
            "{line}"
        );

        let e =
            Cli::try_parse_from(["incident-recorder", "watch", "--rule", "cpu>>9"]).unwrap_err();
        let line = one_line(&e.render().to_string());
        assert!(line.contains("invalid rule"), "{line}");
        assert!(!line.contains('\n'), "{line}");
    }

    #[test]
    fn the_grammar_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
