//! Reading an input file or standard input, with a progress bar for files.
//!
//! `ingest` and `import` read large files; on a terminal they show how far
//! they got (bytes read of the file's size). Pipes and stdin have no size,
//! and a bar on a non-terminal would only garble logs, so neither gets one.

use std::fs::File;
use std::io::{BufRead, BufReader, IsTerminal, Read};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use super::error::{Context, Result};

/// An opened input and its progress bar, if it has one.
pub struct Input {
    pub reader: Box<dyn BufRead>,
    pub progress: Option<ProgressBar>,
    /// `-` or the path, for messages.
    pub name: String,
}

impl Input {
    /// Prints a line on stderr without garbling the progress bar (and
    /// without control characters: it may quote the input).
    pub fn note(progress: Option<&ProgressBar>, line: &str) {
        let line = super::format::terminal_safe(line);
        match progress {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }
}

/// Opens `path`, or standard input when it is `-` or absent.
pub fn open(path: Option<&Path>) -> Result<Input> {
    let path = path.filter(|p| p.as_os_str() != "-");
    let Some(path) = path else {
        return Ok(Input {
            reader: Box::new(BufReader::with_capacity(1 << 16, std::io::stdin())),
            progress: None,
            name: "-".into(),
        });
    };
    let name = path.display().to_string();
    let file = File::open(path).context(format!("cannot read {name}"))?;
    let meta = file.metadata().context(format!("cannot read {name}"))?;
    if meta.is_dir() {
        return Err(super::error::Failure::msg(format!(
            "cannot read {name}: it is a directory"
        )));
    }
    let progress = (meta.is_file() && std::io::stderr().is_terminal()).then(|| {
        let bar = ProgressBar::new(meta.len());
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {bytes}/{total_bytes} {msg}")
                .expect("valid template"),
        );
        bar
    });
    let reader: Box<dyn Read> = match &progress {
        Some(bar) => Box::new(bar.wrap_read(file)),
        None => Box::new(file),
    };
    Ok(Input {
        reader: Box::new(BufReader::with_capacity(1 << 16, reader)),
        progress,
        name,
    })
}
