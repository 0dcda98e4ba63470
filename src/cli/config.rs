//! `--config FILE`: `watch`'s options from a TOML file, for a service.
//!
//! The file is flat: each key is one of `watch`'s long options with `_` for
//! `-` (`max_points = 500`, `scrape = ["node=http://127.0.0.1:9100/metrics"]`,
//! `listen_token_file = "/etc/incident-recorder/listen-token"`), plus `db`
//! and `rules` (the repeated `--rule`). A value means exactly what the flag's
//! text means: it is checked by the flag's own parser, so the file and the
//! command line can never disagree on what is valid. The one-off options
//! (`--for`, `--trigger-now`, `--print-config`) have no key.
//!
//! Precedence: a flag (or its environment variable) beats the file, the
//! file beats the defaults. clap's `value_source` tells a flag from a
//! default; for a list (`rules`, `scrape`) the flags replace the file's
//! whole list. The file's settings are turned into flags appended to the
//! command line and the result is parsed again, so one grammar decides
//! everything. Commands other than `watch` take only `db` from the file
//! (`incident-recorder --config FILE list` reads the service's database).
//!
//! An unknown key, a value of the wrong type or one its flag refuses is
//! refused with `FILE:LINE:COLUMN`, before anything is opened. There is no
//! implicit default file: a command's behaviour never depends on a file the
//! user did not name; the service's unit names
//! `/etc/incident-recorder/config.toml`.
//!
//! `watch --print-config` prints the effective settings as a file this
//! module reads back; secrets are never printed (`listen_token = "***"`, a
//! URL's password as `***`; a secret file is printed as its path).

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};
use toml::{Spanned, Value};

use super::args::Cli;

/// A config file larger than this is refused (reading stays bounded).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// `watch`'s options that act once and so have no key in the file.
const ONE_OFF: &[&str] = &["for", "trigger-now", "print-config", "help"];

/// Keys named differently from their flag.
const RENAMED: &[(&str, &str)] = &[("rules", "rule")];

/// Options that stand for each other: one of them given as a flag drops the
/// file's others (a `--listen-token` flag beats the file's token file).
const ALTERNATIVES: &[&[&str]] = &[&["listen-token", "listen-token-file", "listen-no-auth"]];

/// Options whose value is a secret: printed as `***`.
const SECRETS: &[&str] = &["listen-token"];

/// The command line, with the config file's settings merged in.
#[derive(Debug)]
pub struct Parsed {
    /// What the commands run on.
    pub cli: Cli,
    /// `watch --print-config`: the effective settings to print instead.
    pub print: Option<String>,
}

/// Why the command line and the config file give no command.
#[derive(Debug)]
pub enum Refusal {
    /// The command line itself (clap's help, version and errors).
    Usage(clap::Error),
    /// The config file: one line naming it (and the line in it).
    Config(String),
}

/// Parses `args` (the program name first), merging the `--config` file.
pub fn parse(args: Vec<OsString>) -> Result<Parsed, Refusal> {
    let command = Cli::command();
    let first = match command.clone().try_get_matches_from(&args) {
        Ok(m) => m,
        Err(e) => {
            // A relation between options may be completed by the file (a
            // `--listen-token` flag for the file's `listen`): look again,
            // leniently, and let the final parse decide.
            let lenient = command
                .clone()
                .ignore_errors(true)
                .try_get_matches_from(&args);
            match lenient {
                Ok(m) if m.get_one::<std::path::PathBuf>("config").is_some() => m,
                _ => return Err(Refusal::Usage(e)),
            }
        }
    };
    let Some(path) = first.get_one::<std::path::PathBuf>("config").cloned() else {
        return finish(&command, &first, None);
    };
    let file = File::read(&path)?;
    let mut merged = args;
    merged.extend(file.arguments(&command, &first)?);
    let matches = command.clone().try_get_matches_from(&merged).map_err(|e| {
        // Only a relation between options (one requires another) is left
        // to fail here: every value was checked on its own.
        Refusal::Config(format!(
            "{} (the flags with the settings of {})",
            super::one_line(&e.render().to_string())
                .trim_start_matches("error: ")
                .trim_end_matches(" (see --help)"),
            path.display()
        ))
    })?;
    finish(&command, &matches, Some(&path))
}

fn finish(command: &Command, m: &ArgMatches, file: Option<&Path>) -> Result<Parsed, Refusal> {
    let cli = Cli::from_arg_matches(m).map_err(Refusal::Usage)?;
    let print = match m.subcommand() {
        Some(("watch", w)) if w.get_flag("print_config") => Some(render(command, m, w, file)),
        _ => None,
    };
    Ok(Parsed { cli, print })
}

/// A read config file: its path, text and top-level keys in file order.
struct File {
    path: std::path::PathBuf,
    text: String,
    entries: Vec<(Spanned<String>, Spanned<Value>)>,
}

impl File {
    fn read(path: &Path) -> Result<File, Refusal> {
        let refuse = |why: String| Refusal::Config(format!("{}: {why}", path.display()));
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking: a FIFO named as the config is refused, never waited on.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| refuse(format!("cannot read the config file: {e}")))?;
        if !file.metadata().is_ok_and(|m| m.is_file()) {
            return Err(refuse("the config file is not a regular file".into()));
        }
        let mut bytes = Vec::new();
        file.take(MAX_CONFIG_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| refuse(format!("cannot read the config file: {e}")))?;
        if bytes.len() as u64 > MAX_CONFIG_BYTES {
            return Err(refuse(format!(
                "the config file is larger than {MAX_CONFIG_BYTES} bytes"
            )));
        }
        let text = String::from_utf8(bytes)
            .map_err(|_| refuse("the config file is not UTF-8 text".into()))?;
        let table: std::collections::BTreeMap<Spanned<String>, Spanned<Value>> =
            toml::from_str(&text).map_err(|e| {
                let why = e.message().trim().to_owned();
                match e.span() {
                    Some(s) => {
                        Refusal::Config(format!("{}:{}: {why}", path.display(), at(&text, s.start)))
                    }
                    None => refuse(why),
                }
            })?;
        let mut entries: Vec<_> = table.into_iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        Ok(File {
            path: path.to_owned(),
            text,
            entries,
        })
    }

    /// `FILE:LINE:COLUMN: ` for the byte offset `offset`.
    fn place(&self, offset: usize) -> String {
        format!("{}:{}", self.path.display(), at(&self.text, offset))
    }

    /// The file's settings as flags for what `first` lacks (see the module
    /// docs); every key and value checked.
    fn arguments(&self, command: &Command, first: &ArgMatches) -> Result<Vec<OsString>, Refusal> {
        let watch = command
            .find_subcommand("watch")
            .expect("the grammar has watch");
        let watching = match first.subcommand() {
            Some(("watch", m)) => Some(m),
            _ => None,
        };
        let mut out = Vec::new();
        for (key, value) in &self.entries {
            let refuse = |span: std::ops::Range<usize>, why: String| {
                Refusal::Config(format!(
                    "{}: {}: {why}",
                    self.place(span.start),
                    key.get_ref()
                ))
            };
            let (arg, scope) = match lookup(command, watch, key.get_ref()) {
                Some(found) => found,
                None if matches!(value.get_ref(), Value::Table(_)) => {
                    return Err(refuse(
                        key.span(),
                        "unknown key: the file has no sections, its keys go at the top".into(),
                    ));
                }
                None => {
                    return Err(refuse(
                        key.span(),
                        format!("unknown key; the keys are {}", keys(watch).join(", ")),
                    ));
                }
            };
            let tokens = tokens(arg, value.get_ref()).map_err(|why| refuse(value.span(), why))?;
            let given = match scope {
                Scope::Global => given(first, arg),
                Scope::Watch => match watching {
                    Some(m) => alternatives(arg.get_long().unwrap_or_default())
                        .iter()
                        .any(|a| {
                            watch
                                .get_arguments()
                                .find(|x| x.get_long() == Some(*a))
                                .is_some_and(|x| given(m, x))
                        }),
                    None => true, // not this command's: checked, not used
                },
            };
            if !given {
                out.extend(tokens);
            }
        }
        Ok(out)
    }
}

/// `LINE:COLUMN` (from 1) of byte `offset` in `text`.
fn at(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("{line}:{column}")
}

/// Where a key's option lives.
enum Scope {
    Global,
    Watch,
}

/// The option a key stands for.
fn lookup<'a>(command: &'a Command, watch: &'a Command, key: &str) -> Option<(&'a Arg, Scope)> {
    if key == "db" {
        let db = command.get_arguments().find(|a| a.get_id() == "db")?;
        return Some((db, Scope::Global));
    }
    let flag = match RENAMED.iter().find(|(k, _)| *k == key) {
        Some((_, flag)) => (*flag).to_owned(),
        // A dash, or the flag's own name of a renamed option: not a key.
        None if key.contains('-') || RENAMED.iter().any(|(_, f)| *f == key) => return None,
        None => key.replace('_', "-"),
    };
    if ONE_OFF.contains(&flag.as_str()) {
        return None;
    }
    watch
        .get_arguments()
        .filter(|a| !a.is_global_set())
        .find(|a| a.get_long() == Some(flag.as_str()))
        .map(|a| (a, Scope::Watch))
}

/// Every key the file takes, in `watch --help` order.
fn keys(watch: &Command) -> Vec<String> {
    let mut out = vec!["db".to_owned()];
    for a in watch.get_arguments().filter(|a| !a.is_global_set()) {
        let Some(long) = a.get_long() else { continue };
        if ONE_OFF.contains(&long) {
            continue;
        }
        out.push(key_of(long));
    }
    out
}

/// The key of a long option.
fn key_of(long: &str) -> String {
    match RENAMED.iter().find(|(_, f)| *f == long) {
        Some((k, _)) => (*k).to_owned(),
        None => long.replace('-', "_"),
    }
}

/// The long names `long` stands with (itself included).
fn alternatives(long: &str) -> Vec<&str> {
    match ALTERNATIVES.iter().find(|g| g.contains(&long)) {
        Some(group) => group.to_vec(),
        None => vec![long],
    }
}

/// True if the option was given as a flag or by its environment variable.
fn given(m: &ArgMatches, arg: &Arg) -> bool {
    matches!(
        m.value_source(arg.get_id().as_str()),
        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
    )
}

/// The flags that say what `value` says for `arg`, checked by its parser.
fn tokens(arg: &Arg, value: &Value) -> Result<Vec<OsString>, String> {
    let long = arg.get_long().unwrap_or_default();
    let flag = |text: &str| OsString::from(format!("--{long}={text}"));
    match arg.get_action() {
        ArgAction::SetTrue => match value {
            Value::Boolean(true) => Ok(vec![OsString::from(format!("--{long}"))]),
            Value::Boolean(false) => Ok(Vec::new()),
            _ => Err("expected true or false".into()),
        },
        ArgAction::Append => {
            let items: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                one => vec![one],
            };
            let mut out = Vec::new();
            for item in items {
                let text = scalar(item)?;
                check(arg, &text)?;
                out.push(flag(&text));
            }
            Ok(out)
        }
        _ => {
            if let Value::Array(_) = value {
                return Err("takes one value, not a list".into());
            }
            let text = scalar(value)?;
            check(arg, &text)?;
            Ok(vec![flag(&text)])
        }
    }
}

/// A string or number as the text a flag would get.
fn scalar(value: &Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Integer(i) => Ok(i.to_string()),
        Value::Float(f) => Ok(f.to_string()),
        Value::Boolean(_) => Err("expected a string or a number, not true/false".into()),
        Value::Datetime(_) => Err("expected a string (quote times and durations)".into()),
        Value::Array(_) => Err("expected a string or a number, not a list".into()),
        Value::Table(_) => Err("expected a string or a number, not a table".into()),
    }
}

/// Runs `arg`'s own value parser on `text`, alone (no other option needed).
fn check(arg: &Arg, text: &str) -> Result<(), String> {
    use std::error::Error;
    let probe = Arg::new("value")
        .value_parser(arg.get_value_parser().clone())
        .allow_hyphen_values(true)
        .required(true);
    let result = Command::new("probe")
        .no_binary_name(true)
        .arg(probe)
        .try_get_matches_from([text]);
    match result {
        Ok(_) => Ok(()),
        Err(e) => Err(match e.source() {
            Some(why) => format!("invalid value {text:?}: {why}"),
            None => super::one_line(&e.render().to_string())
                .trim_start_matches("error: ")
                .trim_end_matches(" (see --help)")
                .replace(" for '<value>'", "")
                .replace(" for '<value>...'", ""),
        }),
    }
}

/// The effective settings as a config file (`watch --print-config`).
fn render(command: &Command, m: &ArgMatches, w: &ArgMatches, file: Option<&Path>) -> String {
    let watch = command.find_subcommand("watch").expect("watch");
    let mut out = format!(
        "# incident-recorder watch: effective settings (flags > {} > defaults)\n",
        file.map_or("no config file".to_owned(), |p| p.display().to_string())
    );
    let db = m.get_raw("db").into_iter().flatten().next();
    out.push_str(&format!(
        "db = {}\n",
        quote(&db.unwrap_or_default().to_string_lossy())
    ));
    for a in watch.get_arguments().filter(|a| !a.is_global_set()) {
        let Some(long) = a.get_long() else { continue };
        if ONE_OFF.contains(&long) {
            continue;
        }
        let key = key_of(long);
        let id = a.get_id().as_str();
        // A default is shown commented out: reading the output back then
        // sets only what was set (a default may need an option not given).
        let lead = match w.value_source(id) {
            Some(ValueSource::DefaultValue) => "# ",
            _ => "",
        };
        if matches!(a.get_action(), ArgAction::SetTrue) {
            out.push_str(&format!("{lead}{key} = {}\n", w.get_flag(id)));
            continue;
        }
        let raw: Vec<String> = w
            .get_raw(id)
            .into_iter()
            .flatten()
            .map(|v| v.to_string_lossy().into_owned())
            .collect();
        let shown = |v: &str| -> String {
            if SECRETS.contains(&long) {
                quote("***")
            } else if long == "push-to" {
                quote(&redact_url(v))
            } else {
                literal(v)
            }
        };
        match (raw.as_slice(), a.get_action()) {
            ([], _) if long == "rule" => out.push_str(&format!(
                "# {key}: none given, so the defaults: {}\n",
                super::rules::default_rules()
                    .iter()
                    .map(|r| quote(&r.id()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            ([], _) => out.push_str(&format!("# {key}: not set\n")),
            (values, ArgAction::Append) => out.push_str(&format!(
                "{lead}{key} = [{}]\n",
                values
                    .iter()
                    .map(|v| shown(v))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            ([one, ..], _) => out.push_str(&format!("{lead}{key} = {}\n", shown(one))),
        }
    }
    out
}

/// A TOML string.
fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

/// A number as a TOML number, anything else as a string.
fn literal(s: &str) -> String {
    if s.parse::<i64>().is_ok() {
        return s.to_owned();
    }
    if s.contains('.') && s.parse::<f64>().is_ok_and(f64::is_finite) {
        return s.to_owned();
    }
    quote(s)
}

/// A PostgreSQL URL with its password (if any) as `***`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((creds, host)) => match creds.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// True if a PostgreSQL URL carries a password.
pub fn url_has_password(url: &str) -> bool {
    redact_url(url) != url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_count_lines_and_columns_from_one() {
        let text = "a = 1\nbb = \"x\"\n";
        assert_eq!(at(text, 0), "1:1");
        assert_eq!(at(text, 6), "2:1");
        assert_eq!(at(text, 11), "2:6");
    }

    #[test]
    fn passwords_are_cut_from_urls() {
        assert_eq!(
            redact_url("postgresql://rec:s3cret@central:5432/inc?sslmode=require"),
            "postgresql://rec:***@central:5432/inc?sslmode=require"
        );
        assert_eq!(
            redact_url("postgresql://rec@central/inc"),
            "postgresql://rec@central/inc"
        );
        assert_eq!(
            redact_url("postgresql://central/a@b"),
            "postgresql://central/a@b"
        );
    }

    #[test]
    fn every_key_names_an_option_and_one_offs_have_none() {
        let command = Cli::command();
        let watch = command.find_subcommand("watch").unwrap();
        let keys = keys(watch);
        for key in &keys {
            assert!(lookup(&command, watch, key).is_some(), "{key}");
        }
        for key in [
            "for",
            "trigger_now",
            "print_config",
            "rule",
            "max-points",
            "config",
        ] {
            assert!(lookup(&command, watch, key).is_none(), "{key}");
        }
        assert!(keys.contains(&"rules".to_owned()));
        assert!(keys.contains(&"listen_token_file".to_owned()));
        assert!(keys.contains(&"push_password_file".to_owned()));
    }
}
