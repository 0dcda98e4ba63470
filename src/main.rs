//! `incident-recorder`: the command line of the incident flight recorder.
//! Everything but parsing, running and reporting the outcome is in `cli/`.

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
