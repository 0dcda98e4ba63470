//! Where to push: the central database URL, as libpq users know it, and the
//! node name windows are pushed under.
//!
//! The URL is parsed once, here. The PostgreSQL client understands most of
//! it; what it does not (`sslmode=verify-ca|verify-full`, `sslrootcert`,
//! `passfile`, and libpq's environment and `~/.pgpass`) is handled here, as
//! libpq does. The password, from wherever it came, is kept in a [`Secret`]
//! that every message leaving this module passes through, and the URL is
//! only ever shown rebuilt without it ([`Target::display`]).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use super::error::PushError;
use super::tls::SslMode;

/// The longest node name accepted: a DNS name's limit.
pub const MAX_NODE_LEN: usize = 253;

/// How long connecting may take unless the URL says (`connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Idle time before TCP keepalives probe a silent connection (the client's
/// default is 2 hours), so a vanished central server is noticed in minutes.
const KEEPALIVES_IDLE: Duration = Duration::from_secs(60);

/// A central database to push to, and the node this database pushes as.
///
/// ```
/// use incident_recorder::fleet::Target;
/// let t = Target::new("postgresql://pusher:s3cret@db.example:5433/fleet?sslmode=require", Some("web-1"))?;
/// assert_eq!(t.display(), "postgresql://pusher@db.example:5433/fleet");
/// assert!(!format!("{t:?}").contains("s3cret"));
/// # Ok::<(), incident_recorder::fleet::PushError>(())
/// ```
#[derive(Clone)]
pub struct Target {
    pub(super) config: postgres::Config,
    pub(super) ssl: SslMode,
    pub(super) root_cert: Option<PathBuf>,
    pub(super) secret: Secret,
    node: String,
    display: String,
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Target")
            .field("url", &self.display)
            .field("node", &self.node)
            .field("sslmode", &self.ssl)
            .finish_non_exhaustive()
    }
}

impl Target {
    /// Parses a `postgresql://` (or `postgres://`) URL and checks the node
    /// name (`None`: this host's name).
    ///
    /// Besides what the PostgreSQL client takes, the URL may carry
    /// `sslmode` (`disable`, `allow`, `prefer` (the default), `require`,
    /// `verify-ca`, `verify-full`), `sslrootcert` (a PEM file, or `system`)
    /// and `passfile`. Missing parts come from libpq's environment variables
    /// (`PGHOST`, `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSWORD`,
    /// `PGPASSFILE`, `PGSSLMODE`, `PGSSLROOTCERT`) and the password, lacking
    /// one, from `~/.pgpass`.
    pub fn new(url: &str, node: Option<&str>) -> Result<Target, PushError> {
        let node = match node {
            Some(n) => validate_node(n)?.to_owned(),
            None => default_node()?,
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let parsed = split_url(url)?;
        // The secret is known before the client parses, so even its parse
        // errors are redacted.
        let url_password = parsed.password.clone();
        let redact_early = Secret(url_password.clone());
        let mut config = postgres::Config::from_str(&parsed.rest).map_err(|e| PushError::Url {
            reason: redact_early.redact(&crate::error_chain(&e)),
        })?;
        if config.get_hosts().is_empty() {
            match env("PGHOST") {
                Some(h) if h.starts_with('/') => config.host_path(h),
                Some(h) => config.host(&h),
                None => config.host_path(DEFAULT_SOCKET_DIR),
            };
        }
        if config.get_ports().is_empty()
            && let Some(p) = env("PGPORT")
        {
            let port = p.parse().map_err(|_| PushError::Url {
                reason: "PGPORT is not a port number".into(),
            })?;
            config.port(port);
        }
        if config.get_user().is_none()
            && let Some(u) = env("PGUSER")
                .or_else(|| env("USER"))
                .or_else(|| env("LOGNAME"))
        {
            config.user(&u);
        }
        if config.get_dbname().is_none()
            && let Some(d) = env("PGDATABASE")
        {
            config.dbname(&d);
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        config.keepalives_idle(KEEPALIVES_IDLE);
        if config.get_application_name().is_none() {
            config.application_name("incident-recorder");
        }
        let ssl_text = parsed.sslmode.or_else(|| env("PGSSLMODE"));
        let ssl = match ssl_text.as_deref() {
            None => SslMode::Prefer,
            Some(s) => SslMode::parse(s).ok_or_else(|| PushError::Url {
                reason: format!(
                    "sslmode {:?} is not one of disable, allow, prefer, require, verify-ca, verify-full",
                    crate::error::clip(s)
                ),
            })?,
        };
        config.ssl_mode(ssl.client_mode());
        let root_cert = parsed
            .sslrootcert
            .or_else(|| env("PGSSLROOTCERT"))
            .map(PathBuf::from);
        let mut password = url_password.filter(|p| !p.is_empty());
        if password.is_none() {
            password = env("PGPASSWORD");
        }
        if password.is_none() {
            let file = parsed
                .passfile
                .map(PathBuf::from)
                .or_else(|| env("PGPASSFILE").map(PathBuf::from))
                .or_else(|| env("HOME").map(|h| Path::new(&h).join(".pgpass")));
            if let Some(file) = file {
                password = pgpass_lookup(&file, &config);
            }
        }
        if let Some(p) = &password {
            config.password(p.as_bytes());
        }
        let display = display(&config);
        Ok(Target {
            config,
            ssl,
            root_cert,
            secret: Secret(password),
            node,
            display,
        })
    }

    /// The node name windows are pushed under.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The central database as `postgresql://user@host:port/db`: the URL
    /// without its password and parameters, safe to print.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// This target with `password` rather than the one [`Target::new`]
    /// found: a password kept in a file a service's configuration names,
    /// out of the URL and the environment.
    pub fn with_password(mut self, password: &str) -> Target {
        self.config.password(password.as_bytes());
        self.secret = Secret(Some(password.to_owned()));
        self
    }
}

/// A password, and the one operation allowed on it: cutting it out of text.
#[derive(Clone, Default)]
pub(crate) struct Secret(Option<String>);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Secret {
    /// `text` with every occurrence of the password (as given, and
    /// percent-encoded as in a URL) replaced by `***`. Passwords shorter
    /// than 3 bytes are left alone: cutting every `a` out of a message would
    /// make it unreadable, and such a password protects nothing.
    pub(crate) fn redact(&self, text: &str) -> String {
        let Some(p) = self.0.as_deref().filter(|p| p.len() >= 3) else {
            return text.to_owned();
        };
        let mut out = text.replace(p, "***");
        let encoded = percent_encode(p);
        if encoded != p {
            out = out.replace(&encoded, "***");
        }
        out
    }
}

/// The default Unix socket directory of Debian's PostgreSQL (libpq's
/// compiled-in default there).
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";

/// The URL, split into what the client parses and what is handled here.
struct SplitUrl {
    /// The URL without the parameters taken out.
    rest: String,
    password: Option<String>,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    passfile: Option<String>,
}

fn split_url(url: &str) -> Result<SplitUrl, PushError> {
    let err = |reason: &str| PushError::Url {
        reason: reason.to_owned(),
    };
    let body = url
        .strip_prefix("postgresql://")
        .or_else(|| url.strip_prefix("postgres://"))
        .ok_or_else(|| err("expected postgresql://[user[:password]@]host[:port]/database"))?;
    let (base, query) = match body.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (body, None),
    };
    let authority = base.split('/').next().unwrap_or_default();
    let password = authority
        .rsplit_once('@')
        .and_then(|(creds, _)| creds.split_once(':'))
        .map(|(_, p)| percent_decode(p))
        .transpose()
        .map_err(|()| err("the password is not valid percent-encoded UTF-8"))?;
    let mut out = SplitUrl {
        rest: ["postgresql://", base].concat(),
        password,
        sslmode: None,
        sslrootcert: None,
        passfile: None,
    };
    let mut kept = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        if pair.is_empty() {
            continue;
        }
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded = || {
            percent_decode(value)
                .map_err(|()| err("a parameter is not valid percent-encoded UTF-8"))
        };
        match key {
            "sslmode" => out.sslmode = Some(decoded()?),
            "sslrootcert" => out.sslrootcert = Some(decoded()?),
            "passfile" => out.passfile = Some(decoded()?),
            "sslcert" | "sslkey" | "sslpassword" | "sslcrl" | "sslcrldir" => {
                return Err(PushError::Url {
                    reason: format!(
                        "parameter {key} is not supported (client certificates and CRLs)"
                    ),
                });
            }
            _ => kept.push(pair),
        }
    }
    if !kept.is_empty() {
        out.rest.push('?');
        out.rest.push_str(&kept.join("&"));
    }
    Ok(out)
}

/// Decodes `%XX` escapes; `Err` for a bad escape or invalid UTF-8.
fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// Percent-encodes everything but unreserved URL characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `postgresql://user@host:port/db`, from the parsed configuration.
fn display(config: &postgres::Config) -> String {
    use postgres::config::Host;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) if h.contains(':') => format!("[{h}]"),
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) => percent_encode(&p.to_string_lossy()),
        None => String::new(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config
        .get_user()
        .map(|u| [&percent_encode(u), "@"].concat());
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or_default();
    format!(
        "postgresql://{}{host}:{port}/{}",
        user.unwrap_or_default(),
        percent_encode(db)
    )
}

/// Checks a node name: 1 to 253 bytes of letters, digits, `.`, `-`, `_`
/// (a host name fits), so it reads the same in every query and log.
pub fn validate_node(name: &str) -> Result<&str, PushError> {
    let bad = |reason| PushError::Node {
        name: crate::error::clip(name),
        reason,
    };
    if name.is_empty() || name.len() > MAX_NODE_LEN {
        return Err(bad("it must be 1 to 253 bytes long"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return Err(bad("only letters, digits, '.', '-' and '_' are allowed"));
    }
    Ok(name)
}

/// This host's name, as `watch` names its resource.
fn default_node() -> Result<String, PushError> {
    let name = sysinfo::System::host_name()
        .map(|n| n.trim().to_owned())
        .unwrap_or_default();
    validate_node(&name)
        .map(str::to_owned)
        .map_err(|_| PushError::Node {
            name: crate::error::clip(&name),
            reason: "this host's name cannot be a node name; give one with --node",
        })
}

/// libpq's password file: the password of the first line matching
/// `host:port:database:user` (`*` matches anything, `\` escapes `:` and
/// `\`). Like libpq, a file that group or others can read is ignored, with
/// a warning.
fn pgpass_lookup(file: &Path, config: &postgres::Config) -> Option<String> {
    use postgres::config::Host;
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        return None;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(file = %file.display(), "password file has group or world access; ignored (chmod 0600 it)");
            return None;
        }
    }
    let text = std::fs::read_to_string(file).ok()?;
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(h)) => h.clone(),
        Some(Host::Unix(p)) if p == Path::new(DEFAULT_SOCKET_DIR) => "localhost".to_owned(),
        Some(Host::Unix(p)) => p.to_string_lossy().into_owned(),
        None => "localhost".to_owned(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user);
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#') && !l.trim().is_empty())
        .find_map(|line| pgpass_match(line, [&host, &port, db, user]))
}

/// The password of one password-file line if its four fields match.
fn pgpass_match(line: &str, want: [&str; 4]) -> Option<String> {
    let mut rest = line;
    for wanted in want {
        let (field, tail) = pgpass_field(rest)?;
        if field != "*" && field != wanted {
            return None;
        }
        rest = tail;
    }
    // The rest of the line is the password, with its escapes undone.
    let mut password = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => password.extend(chars.next()),
            c => password.push(c),
        }
    }
    Some(password)
}

/// The first `:`-terminated field of `s` (escapes undone) and what follows it.
fn pgpass_field(s: &str) -> Option<(String, &str)> {
    let mut field = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => field.extend(chars.next().map(|(_, c)| c)),
            ':' => return Some((field, &s[i + 1..])),
            c => field.push(c),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_cut_from_text_and_never_displayed() {
        let t = Target::new(
            "postgresql://pusher:p%40ss%3Aword@db.example:5433/fleet?sslmode=verify-full&connect_timeout=3",
            Some("web-1"),
        )
        .unwrap();
        assert_eq!(t.display(), "postgresql://pusher@db.example:5433/fleet");
        assert_eq!(t.ssl, SslMode::VerifyFull);
        let debug = format!("{t:?}");
        assert!(
            !debug.contains("ss:word") && !debug.contains("%40"),
            "{debug}"
        );
        assert_eq!(
            t.secret.redact("auth failed for p@ss:word (p%40ss%3Aword)"),
            "auth failed for *** (***)"
        );
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_them() {
        for (url, needle) in [
            ("mysql://u:topsecret@h/db", "expected postgresql://"),
            ("postgresql://u:topsecret@h/db?sslmode=verify", "sslmode"),
            (
                "postgresql://u:topsecret@h/db?sslkey=k.pem",
                "not supported",
            ),
            ("postgresql://u:topsecret@h:port/db", "invalid"),
            ("postgresql://u:topsecret@h/db?nonsense=1", "nonsense"),
        ] {
            let e = Target::new(url, Some("n")).unwrap_err();
            let text = crate::error_chain(&e);
            assert!(text.contains(needle), "{url}: {text}");
            assert!(!text.contains("topsecret"), "{url}: {text}");
        }
    }

    #[test]
    fn node_names_are_checked() {
        assert!(validate_node("web-1.eu_west").is_ok());
        for bad in ["", "a b", "x\n", "naïve", &"n".repeat(254)] {
            assert!(validate_node(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn password_file_lines_match_like_libpq() {
        let want = ["db.example", "5432", "fleet", "pusher"];
        assert_eq!(
            pgpass_match("db.example:5432:fleet:pusher:pw", want).as_deref(),
            Some("pw")
        );
        assert_eq!(
            pgpass_match("*:*:*:pusher:a:b\\\\c", want).as_deref(),
            Some("a:b\\c")
        );
        assert_eq!(
            pgpass_match(
                "db\\:x:5432:fleet:pusher:pw",
                ["db:x", "5432", "fleet", "pusher"]
            )
            .as_deref(),
            Some("pw")
        );
        assert_eq!(pgpass_match("other:*:*:*:pw", want), None);
        assert_eq!(pgpass_match("db.example:5432:fleet", want), None);
    }

    #[test]
    fn a_readable_password_file_is_ignored_and_a_private_one_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        std::fs::write(&file, "# comment\n\nh:5432:db:u:filepw\n").unwrap();
        let config = postgres::Config::from_str("postgresql://u@h/db").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(pgpass_lookup(&file, &config), None);
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(pgpass_lookup(&file, &config).as_deref(), Some("filepw"));
    }
}
