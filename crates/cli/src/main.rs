//! `unimem`: which physical (or device) addresses back a shared buffer, and
//! is the data there the data the CPU wrote.
//!
//! Exit codes: 0 success; 1 verification failed (coverage or integrity);
//! 2 error (usage, permission, not found, resources). Errors are one line on
//! stderr, `unimem: ...`, saying what happened and what to do.

use clap::{CommandFactory, Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

// The platform is chosen once, here; everything else is shared.
#[cfg_attr(target_os = "linux", path = "linux/mod.rs")]
#[cfg_attr(target_os = "macos", path = "macos/mod.rs")]
mod platform;

mod device;
mod manual;
mod output;
mod picture;
mod probe;
mod progress;

use platform::{info, map, serve, watch};

/// Physical and device address maps of shared buffers, verified.
#[derive(Debug, Parser)]
#[command(name = "unimem", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Whether the Linux-only commands are hidden from help here.
const LINUX_ONLY_HIDDEN: bool = !cfg!(target_os = "linux");

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the seed experiment: allocate a surface, write a test pattern,
    /// resolve it to address segments, print the map and verify it.
    Probe(probe::ProbeArgs),
    /// Map an existing range of another process (root), with page flags.
    /// Linux only.
    #[command(hide = LINUX_ONLY_HIDDEN)]
    Map(map::MapArgs),
    /// What this machine offers: page size, PFN visibility, huge pages, THP
    /// (Linux); page size and the DEXT (macOS).
    Info(info::InfoArgs),
    /// Run the resolver service (root): resolve and pin surfaces that
    /// admitted clients pass over a Unix socket. Linux only.
    #[command(hide = LINUX_ONLY_HIDDEN)]
    Serve(Box<serve::ServeArgs>),
    /// Print a shell completion script: bash, zsh or fish (see dist/README.md).
    Completions(manual::CompletionsArgs),
    /// Print the manual page (roff), generated from the same definitions
    /// as --help.
    Man,
    /// Re-resolve a range of a process periodically (root) and print every
    /// page whose physical address changed, with the kernel's migration
    /// counters meanwhile. Linux only.
    #[command(hide = LINUX_ONLY_HIDDEN)]
    Watch(watch::WatchArgs),
}

pub const EXIT_OK: u8 = 0;
pub const EXIT_VERIFY_FAILED: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let result = match &cli.command {
        Command::Completions(args) => manual::completions(Cli::command(), args),
        Command::Man => manual::man(Cli::command()),
        Command::Probe(args) => probe::run(args),
        Command::Map(args) => map::run(args),
        Command::Info(args) => info::run(args),
        Command::Serve(args) => serve::run(args),
        Command::Watch(args) => watch::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            ExitCode::from(exit_status(&e))
        }
    }
}

/// The exit status of a command that failed with `e`: a surface that
/// changed under its prepared range is a failed verification (what was
/// resolved is not the surface), anything else an error.
fn exit_status(e: &unimem::Error) -> u8 {
    if e.kind() == unimem::ErrorKind::SurfaceChanged {
        EXIT_VERIFY_FAILED
    } else {
        EXIT_ERROR
    }
}

/// Prints an error and its causes on one line.
fn report(e: &dyn std::error::Error) {
    let mut line = format!("unimem: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        line.push_str(&format!(": {s}"));
        source = s.source();
    }
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// clap's help and version go to stdout with status 0; its errors become
/// one `unimem:` line with status 2.
fn usage_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                ExitCode::from(EXIT_ERROR)
            } else {
                ExitCode::SUCCESS
            }
        }
        _ => {
            let text = e.render().to_string();
            let mut lines = text.lines();
            let first = lines.next().unwrap_or("invalid usage");
            let first = first.strip_prefix("error: ").unwrap_or(first);
            // "required arguments were not provided:" lists them on the
            // next line; keep them on the one line printed.
            let detail = match first.ends_with(':') {
                true => lines.next().map_or("", str::trim),
                false => "",
            };
            let first = format!("{first} {detail}");
            let first = first.trim_end();
            let _ = writeln!(std::io::stderr(), "unimem: {first} (see unimem --help)");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

#[cfg(test)]
mod exit_tests {
    use super::*;

    #[test]
    fn a_changed_surface_is_a_failed_verification() {
        let changed = unimem::Error::new(
            unimem::ErrorKind::SurfaceChanged,
            "the surface changed since prepare; prepare it again",
        );
        assert_eq!(exit_status(&changed), EXIT_VERIFY_FAILED);
        let other = unimem::Error::new(unimem::ErrorKind::Resources, "limit");
        assert_eq!(exit_status(&other), EXIT_ERROR);
    }
}
