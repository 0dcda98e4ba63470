//! `export` and `import`: whole windows to and from JSON files.
//!
//! Three formats ([`Format`]):
//!
//! * `native`: `{"format":"incident-recorder","version":1,"windows":[...]}`
//!   with one window per line, every field the library has (triggers with
//!   their resolution times, metadata, percentiles). Lossless: exporting and
//!   importing into an empty database gives back the same windows.
//! * `pulse`: the seed's `incident_windows.json` (see `pulse`), so Pulse
//!   users can bring their history in, or take it back out. Pulse files only
//!   hold completed windows, so a pulse export leaves recording ones out.
//!   Pulse has no field for process snapshots: a pulse export leaves them
//!   out (a native one keeps them, in each window's `processes`).
//! * `csv` (export only, see `csv`): one row per value, for spreadsheets.
//! * `html` (export only): one window as a self-contained page
//!   (`incident_recorder::web::report`), what the listener's `/w/ID` shows.
//!
//! Both directions stream: export writes window by window as the store walks
//! them; import reads the file with a serde visitor that hands over one
//! window (as raw JSON) at a time, so a 100 MB file never sits in memory. A
//! window that cannot be read or stored is reported (`window N: <why>`) and
//! skipped; the exit code is then 3. Import is keyed on window ids: windows
//! already in the database are skipped, so importing twice adds nothing, and
//! it never trims history.

use std::cell::RefCell;
use std::fmt;
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;

use incident_recorder::files::AtomicFile;
use incident_recorder::{Error, IncidentWindow, Store, WindowFilter};
use serde::Serialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::args::{ExportArgs, Format, ImportArgs};
use super::error::{Context, Failure, Result};
use super::pulse::PulseWindow;

/// The native format's version; files with a newer one are refused.
const NATIVE_VERSION: u64 = 1;

pub fn export(db: &Path, a: ExportArgs) -> Result<ExitCode> {
    if a.format == Format::Html {
        return export_html(db, a);
    }
    if a.id.is_some() {
        return Err(Failure::msg(
            "a window ID is for --format html; the other formats export every window (or --resource's)",
        ));
    }
    let store = super::open_read_only(db)?;
    let mut sink = Sink::create(a.output.as_deref())?;
    let filter = WindowFilter {
        resource: a.resource,
        with_points: true,
        ..WindowFilter::default()
    };
    let (mut windows, mut points, mut skipped) = (0u64, 0u64, 0u64);
    let mut procs_left = 0u64;
    let mut damaged = Vec::new();
    let skip_damaged = a.skip_damaged;
    // Without --skip-damaged a damaged window stops the export (and says
    // how to save the rest); with it, it is skipped and counted.
    let walk =
        |f: &mut dyn FnMut(IncidentWindow) -> Result<()>, damaged: &mut Vec<Error>| -> Result<()> {
            if skip_damaged {
                store.for_each_readable_window(&filter, f, |e| damaged.push(e))
            } else {
                store
                    .for_each_window(&filter, f)
                    .map_err(|e| match e.downcast_ref::<Error>() {
                        Some(Error::DamagedWindow { .. }) => Failure::msg(format!(
                            "{}; `export --skip-damaged` exports the other windows",
                            e.chain()
                        )),
                        _ => e,
                    })
            }
        };
    let mut indented = Vec::new();
    let w = &mut sink.writer;
    match a.format {
        Format::Native => {
            write!(
                w,
                "{{\"format\":\"incident-recorder\",\"version\":{NATIVE_VERSION},\"windows\":["
            )?;
            walk(
                &mut |window| -> Result<()> {
                    w.write_all(if windows == 0 { b"\n" } else { b",\n" })?;
                    // Process snapshots ride along as a `processes` field
                    // (import reads it back); Pulse has no field for them.
                    let procs = store.window_processes(window.id.as_str())?;
                    if procs.is_empty() {
                        serde_json::to_writer(&mut *w, &window)?;
                    } else {
                        let mut value = serde_json::to_value(&window)?;
                        value["processes"] = serde_json::to_value(&procs)?;
                        serde_json::to_writer(&mut *w, &value)?;
                    }
                    windows += 1;
                    points += window.data_points.len() as u64;
                    Ok(())
                },
                &mut damaged,
            )?;
            w.write_all(b"\n]}\n")?;
        }
        Format::Pulse => {
            // Go's MarshalIndent("", "  "): each window is indented twice.
            w.write_all(b"{\n  \"completed_windows\": [")?;
            walk(
                &mut |window| -> Result<()> {
                    let Some(pulse) = PulseWindow::from_window(&window) else {
                        skipped += 1;
                        return Ok(());
                    };
                    if !store.window_processes(window.id.as_str())?.is_empty() {
                        procs_left += 1;
                    }
                    indented.clear();
                    serde_json::to_writer_pretty(&mut indented, &pulse)?;
                    w.write_all(if windows == 0 { b"\n    " } else { b",\n    " })?;
                    for (i, line) in indented.split(|b| *b == b'\n').enumerate() {
                        if i > 0 {
                            w.write_all(b"\n    ")?;
                        }
                        w.write_all(line)?;
                    }
                    windows += 1;
                    points += window.data_points.len() as u64;
                    Ok(())
                },
                &mut damaged,
            )?;
            w.write_all(if windows == 0 {
                b"]\n}\n"
            } else {
                b"\n  ]\n}\n"
            })?;
        }
        Format::Html => unreachable!("--format html is exported by export_html"),
        Format::Csv => {
            w.write_all(super::csv::HEADER.as_bytes())?;
            walk(
                &mut |window| -> Result<()> {
                    super::csv::write_window(&mut *w, &window)?;
                    windows += 1;
                    points += window.data_points.len() as u64;
                    Ok(())
                },
                &mut damaged,
            )?;
        }
    }
    let target = sink.finish()?;
    eprintln!("exported {windows} windows ({points} points) to {target}");
    if skipped > 0 {
        eprintln!("left out {skipped} recording windows: Pulse files hold completed windows only");
    }
    if procs_left > 0 {
        eprintln!(
            "left out the process snapshots of {procs_left} windows: Pulse files have no field for them (--format native keeps them)"
        );
    }
    for e in &damaged {
        let e = incident_recorder::error_chain(e);
        eprintln!("skipped {}", super::format::terminal_safe(&e));
    }
    if !damaged.is_empty() {
        eprintln!(
            "skipped {} damaged windows; the others are exported",
            damaged.len()
        );
    }
    Ok(super::partial_if(!damaged.is_empty()))
}

/// `export --format html`: the window `ID` (or the latest of `--resource`)
/// as one self-contained page.
fn export_html(db: &Path, a: ExportArgs) -> Result<ExitCode> {
    let store = super::open_read_only(db)?;
    let window = match (&a.id, &a.resource) {
        (Some(id), _) => store
            .window(id)?
            .ok_or_else(|| Failure::msg(Error::WindowNotFound(id.clone()).to_string()))?,
        (None, Some(r)) => {
            let filter = WindowFilter {
                resource: Some(r.clone()),
                limit: 1,
                ..WindowFilter::default()
            };
            let latest = store.windows(&filter)?.into_iter().next();
            let id = latest
                .ok_or_else(|| Failure::msg(format!("no window of resource {r:?}")))?
                .id;
            store
                .window(id.as_str())?
                .ok_or_else(|| Failure::msg(Error::WindowNotFound(id.to_string()).to_string()))?
        }
        (None, None) => {
            return Err(Failure::msg(
                "--format html exports one window: give its ID, or --resource R for R's latest",
            ));
        }
    };
    let page = incident_recorder::web::report(&window, incident_recorder::Timestamp::now());
    let mut sink = Sink::create(a.output.as_deref())?;
    sink.writer.write_all(page.as_bytes())?;
    let target = sink.finish()?;
    eprintln!(
        "exported window {} ({} points) as HTML to {target}: {} bytes, self-contained",
        window.id,
        window.data_points.len(),
        page.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// Where an export goes: stdout, a special file of the user's (a FIFO,
/// `/dev/stdout`), or a file written beside its final name and renamed into
/// place once complete (`files::AtomicFile`: an exclusive temporary of an
/// unpredictable name, mode 0600, never through a link). An export that
/// fails leaves no partial file behind.
struct Sink {
    writer: BufWriter<Out>,
    /// What is written to, for messages.
    name: String,
}

/// See [`Sink`].
enum Out {
    Stdout(std::io::StdoutLock<'static>),
    Special(std::fs::File),
    File(AtomicFile),
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Out::Stdout(w) => w.write(buf),
            Out::Special(w) => w.write(buf),
            Out::File(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::Stdout(w) => w.flush(),
            Out::Special(w) => w.flush(),
            Out::File(w) => w.flush(),
        }
    }
}

impl Sink {
    fn create(path: Option<&Path>) -> Result<Sink> {
        let Some(path) = path.filter(|p| p.as_os_str() != "-") else {
            return Ok(Sink {
                writer: BufWriter::new(Out::Stdout(std::io::stdout().lock())),
                name: "standard output".into(),
            });
        };
        let name = path.display().to_string();
        let cannot = || format!("cannot write {name}");
        let out = if special_of_user(path) {
            Out::Special(
                OpenOptions::new()
                    .write(true)
                    .open(path)
                    .context(cannot())?,
            )
        } else {
            Out::File(AtomicFile::create(path).context(cannot())?)
        };
        Ok(Sink {
            writer: BufWriter::new(out),
            name,
        })
    }

    /// Flushes and moves the file into place; returns what it was written to.
    fn finish(self) -> Result<String> {
        let cannot = format!("cannot write {}", self.name);
        let out = self
            .writer
            .into_inner()
            .map_err(|e| e.into_error())
            .context(cannot.clone())?;
        if let Out::File(file) = out {
            file.commit().context(cannot)?;
        }
        Ok(self.name)
    }
}

/// True for an existing file that is not a regular file (a FIFO, a
/// terminal, `/dev/stdout`) and belongs to the user: written in place.
fn special_of_user(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let me = unsafe { libc::geteuid() };
        let link_ok = std::fs::symlink_metadata(path)
            .is_ok_and(|m| !m.file_type().is_symlink() || m.uid() == me || m.uid() == 0);
        link_ok
            && std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir() && m.uid() == me)
    }
    #[cfg(not(unix))]
    {
        path.exists() && !path.is_file() && !path.is_dir()
    }
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
struct Counts {
    format: &'static str,
    imported: u64,
    points: u64,
    already_present: u64,
    rejected: u64,
}

pub fn import(db: &Path, a: ImportArgs) -> Result<ExitCode> {
    if let Some(f @ (Format::Csv | Format::Html)) = a.format {
        return Err(Failure::msg(format!(
            "--format {} is for export only: import reads native or pulse files",
            name(f)
        )));
    }
    let input = super::input::open(Some(&a.input))?;
    let store = Store::open(db)?;
    let importer = RefCell::new(Importer {
        store: &store,
        counts: Counts::default(),
        fatal: None,
    });
    if let Some(bar) = &input.progress {
        super::logging::attach_bar(bar);
    }
    let mut de = serde_json::Deserializer::from_reader(input.reader);
    let parsed = FileSeed {
        expected: a.format,
        importer: &importer,
    }
    .deserialize(&mut de)
    .and_then(|()| de.end());
    let Importer { counts, fatal, .. } = importer.into_inner();
    if let Some(bar) = &input.progress {
        super::logging::detach_bar();
        bar.finish_and_clear();
    }
    if let Some(failure) = fatal {
        return Err(failure);
    }
    parsed.context(format!("cannot read {} as an export file", input.name))?;
    if a.output.json {
        super::print_json(&counts)?;
    } else {
        writeln!(
            std::io::stdout().lock(),
            "imported {} windows ({} points) from {} ({} format) into {}; {} already present, {} rejected",
            counts.imported,
            counts.points,
            input.name,
            counts.format,
            db.display(),
            counts.already_present,
            counts.rejected
        )?;
    }
    Ok(super::partial_if(counts.rejected > 0))
}

/// A native window's process snapshots (absent: none).
#[derive(serde::Deserialize)]
struct WithProcesses {
    #[serde(default)]
    processes: Vec<incident_recorder::ProcessSnapshot>,
}

/// Stores windows as the visitor hands them over.
struct Importer<'a> {
    store: &'a Store,
    counts: Counts,
    /// A database failure that stopped the import (it ends the parse).
    fatal: Option<Failure>,
}

impl Importer<'_> {
    /// Reads and stores window number `index`; false stops the import.
    fn window(&mut self, format: Format, index: u64, raw: &RawValue) -> bool {
        let parsed: std::result::Result<IncidentWindow, String> = match format {
            Format::Native => serde_json::from_str(raw.get()).map_err(|e| e.to_string()),
            Format::Pulse => serde_json::from_str::<PulseWindow>(raw.get())
                .map_err(|e| e.to_string())
                .and_then(PulseWindow::into_window),
            Format::Csv | Format::Html => Err("CSV and HTML files cannot be imported".into()),
        };
        let procs = match format {
            Format::Native => serde_json::from_str::<WithProcesses>(raw.get())
                .map(|p| p.processes)
                .map_err(|e| format!("its processes: {e}")),
            _ => Ok(Vec::new()),
        };
        let (window, procs) = match parsed.and_then(|w| procs.map(|p| (w, p))) {
            Ok(w) => w,
            Err(why) => {
                self.reject(index, &why);
                return true;
            }
        };
        let imported = self.store.import_window(&window);
        if imported.is_ok()
            && !procs.is_empty()
            && let Err(e) = self.store.add_window_processes(window.id.as_str(), &procs)
        {
            self.fatal = Some(
                Err::<(), _>(e)
                    .context(format!(
                        "cannot import the processes of window {}",
                        window.id
                    ))
                    .unwrap_err(),
            );
            return false;
        }
        match imported {
            Ok(true) => {
                self.counts.imported += 1;
                self.counts.points += window.data_points.len() as u64;
            }
            Ok(false) => self.counts.already_present += 1,
            Err(e @ (Error::InvalidWindow { .. } | Error::IdCollision { .. })) => {
                self.reject(index, &e.to_string())
            }
            Err(e) => {
                self.fatal = Some(
                    Err::<(), _>(e)
                        .context(format!("cannot import window {}", window.id))
                        .unwrap_err(),
                );
                return false;
            }
        }
        true
    }

    fn reject(&mut self, index: u64, why: &str) {
        self.counts.rejected += 1;
        // Escaped here too: `-v`'s format prints messages as they are.
        let why = super::format::terminal_safe(why);
        tracing::warn!(target: super::logging::INPUT, "window {index}: {why}");
    }
}

/// The top-level object: finds the windows array and checks the format.
struct FileSeed<'a, 'b> {
    expected: Option<Format>,
    importer: &'a RefCell<Importer<'b>>,
}

impl<'de> DeserializeSeed<'de> for FileSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for FileSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an export: an object with a \"windows\" or \"completed_windows\" array")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            let format = match key.as_str() {
                "windows" => Format::Native,
                "completed_windows" => Format::Pulse,
                "version" => {
                    let v: u64 = map.next_value()?;
                    if v > NATIVE_VERSION {
                        return Err(de::Error::custom(format!(
                            "export version {v} is newer than this build reads ({NATIVE_VERSION}); upgrade incident-recorder"
                        )));
                    }
                    continue;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            if let Some(expected) = self.expected.filter(|e| *e != format) {
                return Err(de::Error::custom(format!(
                    "this is a {} export, not {}; drop --format or use --format {}",
                    name(format),
                    name(expected),
                    name(format)
                )));
            }
            self.importer.borrow_mut().counts.format = name(format);
            found = Some(format);
            map.next_value_seed(WindowsSeed {
                format,
                importer: self.importer,
            })?;
        }
        match found {
            Some(_) => Ok(()),
            None => Err(de::Error::custom(
                "no \"windows\" or \"completed_windows\" array: not an incident-recorder or Pulse export",
            )),
        }
    }
}

fn name(f: Format) -> &'static str {
    match f {
        Format::Native => "native",
        Format::Pulse => "pulse",
        Format::Csv => "csv",
        Format::Html => "html",
    }
}

/// The windows array, one raw window at a time (`null`: no windows).
struct WindowsSeed<'a, 'b> {
    format: Format,
    importer: &'a RefCell<Importer<'b>>,
}

impl<'de> DeserializeSeed<'de> for WindowsSeed<'_, '_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for WindowsSeed<'_, '_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of windows")
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        let mut index = 0;
        while let Some(raw) = seq.next_element::<Box<RawValue>>()? {
            index += 1;
            if !self.importer.borrow_mut().window(self.format, index, &raw) {
                return Err(de::Error::custom("import stopped"));
            }
        }
        Ok(())
    }
}
