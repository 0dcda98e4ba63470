//! `completions SHELL` and `man`: generated from the clap grammar itself
//! (`clap_complete`, `clap_mangen`), so they always match the commands.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use incident_recorder::files::AtomicFile;

use super::args::{Cli, CompletionsArgs, ManArgs};
use super::error::{Context, Result};

pub fn completions(a: CompletionsArgs) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(a.shell, &mut cmd, "incident-recorder", &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn man(a: ManArgs) -> Result<ExitCode> {
    let mut cmd = Cli::command();
    cmd.build();
    let Some(dir) = a.dir else {
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd).render(&mut page)?;
        let mut out = std::io::stdout().lock();
        out.write_all(&page)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    };
    // A missing directory is made private, like every one this program makes.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
        .create(&dir)
        .context(format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(&dir, &cmd, "", &mut written)?;
    eprintln!("wrote {} man pages to {}", written.len(), dir.display());
    Ok(ExitCode::SUCCESS)
}

/// The page of `cmd` (named `prefix-name`) and of each of its subcommands.
fn write_pages(
    dir: &Path,
    cmd: &clap::Command,
    prefix: &str,
    written: &mut Vec<PathBuf>,
) -> Result<()> {
    let name = if prefix.is_empty() {
        cmd.get_name().to_owned()
    } else {
        format!("{prefix}-{}", cmd.get_name())
    };
    // clap takes a `'static` name without its `string` feature; a few dozen
    // short names, in a process that exits when the pages are written.
    let page = cmd.clone().name(&*Box::leak(name.clone().into_boxed_str()));
    let path = dir.join(format!("{name}.1"));
    let mut file = AtomicFile::create(&path)?;
    clap_mangen::Man::new(page)
        .render(&mut file)
        .context(format!("cannot write {}", path.display()))?;
    written.push(file.commit()?);
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        if sub.get_name() == "help" {
            continue;
        }
        write_pages(dir, sub, &name, written)?;
    }
    Ok(())
}
