//! `watch --listen`: the library's HTTP listener on the recorder `watch` runs.
//!
//! The listener itself (Alertmanager's webhook, triggers, queries,
//! `/metrics`) is [`incident_recorder::listen`], so embedders get the same
//! one; here are the options and the token file. By default every request
//! but `/healthz` needs a bearer token only the owner can read: generated
//! into `<db>.listen-token` (32 random bytes, mode 0600, created
//! exclusively and never through a link), reused while it is the user's own
//! file that no other user can read, refused otherwise. `--listen-token`
//! gives the token instead; `--listen-no-auth` goes without (loopback only).
//!
//! [`check`] runs before the database is opened, so bad options exit 2
//! having opened and printed nothing; [`prepare`] reads or writes the token
//! file once the database is open; [`start`] starts the listener after the
//! first tick and before the recorder stops, so no trigger arrives while
//! pending samples are saved.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Args;
use incident_recorder::listen::{ListenAuth, ListenConfig, Listener, MAX_TOKEN_BYTES};
use incident_recorder::{IncidentRecorder, RecorderConfig};

use super::error::{Context, Failure, Result};

/// The listener options of `watch`.
#[derive(Debug, Args)]
#[command(next_help_heading = "HTTP listener (Alertmanager, triggers, queries)")]
pub struct ListenArgs {
    /// Serve HTTP on ADDR (127.0.0.1:9465, or just a port for loopback):
    /// POST /alertmanager (Alertmanager's webhook: a firing alert opens or
    /// extends an `alert` window on the resource its instance label names,
    /// at startsAt; resolved resolves it at endsAt), POST /trigger
    /// ({"resource","type","id"}), GET /windows (paged: limit, before,
    /// points) and GET /windows/ID (the JSON of list --json and show
    /// --json), GET /metrics (the recorder's health, Prometheus format),
    /// GET /healthz, and pages for a browser: / and /w/ID (open
    /// /?token=TOKEN once). Off by default. Every request but /healthz needs
    /// `Authorization: Bearer TOKEN`, the token read from (or generated
    /// into) DB.listen-token, which only you can read; Alertmanager reads it
    /// with http_config.authorization.credentials_file.
    #[arg(long = "listen", value_name = "ADDR", value_parser = parse_addr)]
    pub addr: Option<SocketAddr>,
    /// The bearer token instead of the token file (at least 16 bytes).
    /// Prefer the environment variable: the command line is visible to
    /// other users.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "INCIDENT_RECORDER_LISTEN_TOKEN",
        hide_env_values = true,
        requires = "addr"
    )]
    pub listen_token: Option<String>,
    /// Read the bearer token from this file (its first line) instead of
    /// DB.listen-token; for a token the service's configuration manages.
    /// The file must not be readable by other users.
    #[arg(
        long,
        value_name = "FILE",
        requires = "addr",
        conflicts_with = "listen_token"
    )]
    pub listen_token_file: Option<PathBuf>,
    /// No token at all: every user of this host can read the history and
    /// open or resolve windows. Loopback addresses only.
    #[arg(long, requires = "addr", conflicts_with_all = ["listen_token", "listen_token_file"])]
    pub listen_no_auth: bool,
    /// The alert label that names the resource (matched against resource
    /// ids: a --scrape target's host:port or NAME, this host's name).
    #[arg(
        long,
        value_name = "LABEL",
        default_value = "instance",
        requires = "addr"
    )]
    pub alert_resource_label: String,
    /// How late Alertmanager's notification of an alert may come after its
    /// startsAt and still get the whole --pre before it: buffers keep --pre
    /// plus this. The default covers Alertmanager's group_wait (30s) with
    /// room for retries; raise it to your group_wait (or group_interval)
    /// plus a margin. An alert that started earlier still gets a window,
    /// with what the buffer holds. Buffers never hold more than 2 ×
    /// --max-points samples, whatever this says.
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "2m",
        value_parser = super::duration::parse,
        requires = "addr"
    )]
    pub alert_allowance: std::time::Duration,
}

pub fn parse_addr(s: &str) -> std::result::Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    if let Some(port) = s.strip_prefix("localhost:") {
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("invalid port in {s:?}"))?;
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    s.parse().map_err(|_| {
        format!("invalid address {s:?}: write IP:PORT (127.0.0.1:9465, [::1]:9465, 0.0.0.0:9465) or a port")
    })
}

/// Sets what the listener needs of the recorder: with `--listen`, buffers
/// long enough for late notifications (`--alert-allowance`).
pub fn configure(a: &ListenArgs, config: &mut RecorderConfig) {
    if a.addr.is_some() {
        config.notification_allowance = a.alert_allowance;
    }
}

/// Where the token comes from.
#[derive(Debug)]
enum Access {
    Token(String),
    /// `--listen-token-file`: a file the user names, read as a secret by
    /// [`read_named`] (the token then) before the database is opened.
    Named(PathBuf, Option<String>),
    File,
    NoAuth,
}

/// Checked listener options, before anything is opened.
#[derive(Debug)]
pub struct Plan {
    addr: SocketAddr,
    access: Access,
    label: String,
}

/// Checks the options (no file, no socket): `Err` is a usage error.
pub fn check(a: &ListenArgs) -> std::result::Result<Option<Plan>, String> {
    let Some(addr) = a.addr else { return Ok(None) };
    let (access, auth) = match (&a.listen_token, a.listen_no_auth) {
        (Some(t), _) => (Access::Token(t.clone()), ListenAuth::Bearer(t.clone())),
        (None, true) => (Access::NoAuth, ListenAuth::Unauthenticated),
        (None, false) if a.listen_token_file.is_some() => (
            Access::Named(a.listen_token_file.clone().unwrap_or_default(), None),
            ListenAuth::Bearer("x".repeat(32)),
        ),
        // Stands for the token file's, which is always valid.
        (None, false) => (Access::File, ListenAuth::Bearer("x".repeat(32))),
    };
    let config = ListenConfig {
        alert_resource_label: a.alert_resource_label.clone(),
        ..ListenConfig::new(addr, auth)
    };
    if let Err(e) = config.check() {
        let e = incident_recorder::error_chain(&e);
        return Err(if a.listen_no_auth {
            format!("--listen-no-auth: {e}")
        } else {
            e.replace("use a token", "use the token file (drop --listen-no-auth)")
        });
    }
    Ok(Some(Plan {
        addr,
        access,
        label: a.alert_resource_label.clone(),
    }))
}

/// The listener's settings with its token, and the token file if any.
#[derive(Debug)]
pub struct Prepared {
    config: ListenConfig,
    file: Option<PathBuf>,
}

/// Reads or creates the token file beside `db` when the token comes from
/// it; fails (before anything is printed) on a file that is not safe.
pub fn prepare(plan: Option<Plan>, db: &Path) -> Result<Option<Prepared>> {
    let Some(plan) = plan else { return Ok(None) };
    let (auth, file) = match plan.access {
        Access::Token(t) => (ListenAuth::Bearer(t), None),
        Access::NoAuth => (ListenAuth::Unauthenticated, None),
        Access::Named(path, token) => {
            let token = match token {
                Some(t) => t,
                None => named_token(&path)?,
            };
            (ListenAuth::Bearer(token), Some(path))
        }

        Access::File => {
            let path = token_path(db);
            (ListenAuth::Bearer(token_from_file(&path)?), Some(path))
        }
    };
    let config = ListenConfig {
        alert_resource_label: plan.label,
        ..ListenConfig::new(plan.addr, auth)
    };
    Ok(Some(Prepared { config, file }))
}

/// Reads the `--listen-token-file` token, if that is where it comes from:
/// before the database is opened, so a bad file changes nothing.
pub fn read_named(plan: &mut Option<Plan>) -> Result<()> {
    if let Some(Plan {
        access: Access::Named(path, token @ None),
        ..
    }) = plan
    {
        *token = Some(named_token(path)?);
    }
    Ok(())
}

/// The token of a `--listen-token-file`, checked.
fn named_token(path: &Path) -> Result<String> {
    let token = super::secret::read_secret(path, "the listener token file")?;
    ListenAuth::check_token(&token).map_err(|e| {
        Failure::msg(format!(
            "{}: refusing the listener token file: {e}",
            path.display()
        ))
    })?;
    Ok(token)
}

/// Starts the listener if `--listen` was given, with the line to print.
pub fn start(
    p: Option<Prepared>,
    recorder: &Arc<IncidentRecorder>,
) -> Result<Option<(Listener, String)>> {
    let Some(p) = p else { return Ok(None) };
    let access = match (&p.file, &p.config.auth) {
        (Some(f), _) => format!(
            "; bearer token in {} (Alertmanager: credentials_file; a browser: open /?token=TOKEN once)",
            f.display()
        ),
        (None, ListenAuth::Unauthenticated) => {
            "; without authentication (--listen-no-auth): every user of this host can read and steer it".to_owned()
        }
        (None, _) => "; bearer token from --listen-token".to_owned(),
    };
    let listener = Listener::start(Arc::clone(recorder), p.config)?;
    let banner = format!(
        "listening on http://{0}: POST /alertmanager, POST /trigger, GET /windows, GET /metrics, GET /healthz, pages at http://{0}/{access}",
        listener.local_addr()
    );
    Ok(Some((listener, banner)))
}

/// Starts `serve`'s listener on a store opened read-only, with the line
/// to print.
pub fn serve(
    p: Option<Prepared>,
    store: Arc<incident_recorder::Store>,
) -> Result<Option<(Listener, String)>> {
    let Some(p) = p else { return Ok(None) };
    let access = describe_access(&p);
    let listener = Listener::serve_store(store, p.config)?;
    let banner = format!(
        "serving the database read-only on http://{0}/ (pages: /, /w/ID; GET /windows, \
         GET /windows/ID){access}",
        listener.local_addr()
    );
    Ok(Some((listener, banner)))
}

fn describe_access(p: &Prepared) -> String {
    match (&p.file, &p.config.auth) {
        (Some(f), _) => format!(
            "; bearer token in {} (in a browser: open /?token=TOKEN once)",
            f.display()
        ),
        (None, ListenAuth::Unauthenticated) => {
            "; without authentication (--listen-no-auth): every user of this host can read it"
                .to_owned()
        }
        (None, _) => "; bearer token from --listen-token".to_owned(),
    }
}

/// `<db>.listen-token`, beside the database.
fn token_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".listen-token");
    PathBuf::from(name)
}

/// The token in `path`, or a new one written there (see the module docs).
fn token_from_file(path: &Path) -> Result<String> {
    for _ in 0..3 {
        match read_token(path)? {
            Some(t) => return Ok(t),
            None => match new_token(path) {
                Ok(t) => return Ok(t),
                // Another process created it meanwhile: read that one.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => {
                    return Err(e).context(format!(
                        "cannot create the listener token file {}",
                        path.display()
                    ));
                }
            },
        }
    }
    Err(Failure::msg(format!(
        "{}: the listener token file keeps changing",
        path.display()
    )))
}

/// The token of an existing file, `None` if there is none; refuses a link,
/// anything but a regular file, a file of another user's, or one that
/// others can read or write.
fn read_token(path: &Path) -> Result<Option<String>> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let refuse = |why: String| {
        Failure::msg(format!(
            "{}: refusing the listener token file: {why}",
            path.display()
        ))
    };
    let opened = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path);
    let mut file = match opened {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(refuse(
                "it is a symbolic link, which is never followed; remove it".into(),
            ));
        }
        Err(e) => {
            return Err(e).context(format!(
                "cannot read the listener token file {}",
                path.display()
            ));
        }
    };
    let meta = file.metadata().context(format!(
        "cannot read the listener token file {}",
        path.display()
    ))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if !meta.file_type().is_file() {
        return Err(refuse("it is not a regular file".into()));
    }
    if meta.uid() != me {
        return Err(refuse(format!(
            "it belongs to another user (uid {}), who knows the token; remove it and a new one is generated",
            meta.uid()
        )));
    }
    if meta.mode() & 0o037 != 0 {
        return Err(refuse(format!(
            "its mode {:04o} lets others read or change it, so the token may have leaked; \
             remove it (a new one is generated) or chmod 600 it",
            meta.mode() & 0o7777
        )));
    }
    let mut text = String::new();
    (&mut file)
        .take(MAX_TOKEN_BYTES as u64 + 2)
        .read_to_string(&mut text)
        .context(format!(
            "cannot read the listener token file {}",
            path.display()
        ))?;
    let token = text.trim().to_owned();
    ListenAuth::check_token(&token).map_err(|e| refuse(e.to_string()))?;
    Ok(Some(token))
}

/// Writes a new random token into `path` (exclusively, mode 0600, not
/// through a link) and returns it.
fn new_token(path: &Path) -> std::io::Result<String> {
    let mut random = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut random)?;
    let token: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = incident_recorder::files::create_new_private(path)?;
    let written = file
        .write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    Ok(token)
}

/// True for the trigger ids the listener gives Alertmanager's alerts.
pub fn is_alertmanager_id(id: &str) -> bool {
    incident_recorder::listen::is_alertmanager_id(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_options_need_listen() {
        use clap::Parser;
        #[derive(Debug, Parser)]
        struct Cli {
            #[command(flatten)]
            listen: ListenArgs,
        }
        for args in [
            vec!["x", "--listen-token", "t"],
            vec!["x", "--listen-no-auth"],
            vec!["x", "--alert-resource-label", "host"],
            vec!["x", "--alert-allowance", "5m"],
        ] {
            let err = Cli::try_parse_from(&args).unwrap_err().to_string();
            assert!(err.contains("--listen <ADDR>"), "{args:?}: {err}");
        }
        let cli = Cli::try_parse_from(["x", "--listen", "9465"]).unwrap();
        assert_eq!(cli.listen.alert_resource_label, "instance");
        assert_eq!(
            cli.listen.alert_allowance,
            RecorderConfig::ALERTMANAGER_NOTIFICATION_ALLOWANCE
        );
        let mut config = RecorderConfig::default();
        configure(&cli.listen, &mut config);
        assert_eq!(
            config.notification_allowance,
            RecorderConfig::ALERTMANAGER_NOTIFICATION_ALLOWANCE
        );
    }

    #[test]
    fn addresses_parse_and_a_port_means_loopback() {
        assert_eq!(parse_addr("9465").unwrap().to_string(), "127.0.0.1:9465");
        assert_eq!(
            parse_addr("localhost:1").unwrap().to_string(),
            "127.0.0.1:1"
        );
        assert_eq!(parse_addr("[::1]:2").unwrap().to_string(), "[::1]:2");
        assert!(
            parse_addr("example.org:80")
                .unwrap_err()
                .contains("IP:PORT")
        );
    }
}
