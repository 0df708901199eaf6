//! `unimem`: which physical (or device) addresses back a shared buffer, and
//! is the data there the data the CPU wrote.
//!
//! Exit codes: 0 success; 1 verification failed (coverage or integrity);
//! 2 error (usage, permission, not found, resources). Errors are one line on
//! stderr, `unimem: ...`, saying what happened and what to do.

use clap::{Parser, Subcommand};
use std::io::Write;
use std::process::ExitCode;

#[cfg(target_os = "linux")]
mod info;
// Compiled with unimem_apple_check on Linux too, so CI checks it.
#[cfg(any(target_os = "macos", unimem_apple_check))]
#[cfg_attr(target_os = "linux", allow(dead_code))]
mod info_macos;
#[cfg(target_os = "linux")]
mod map;
mod output;
mod probe;
#[cfg(target_os = "linux")]
mod serve;
#[cfg(any(not(target_os = "linux"), unimem_apple_check))]
#[cfg_attr(target_os = "linux", allow(dead_code))]
mod unsupported;

#[cfg(target_os = "linux")]
use info::InfoArgs;
#[cfg(not(target_os = "linux"))]
use info_macos::InfoArgs;

/// Physical and device address maps of shared buffers, verified.
#[derive(Debug, Parser)]
#[command(name = "unimem", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the seed experiment: allocate a surface, write a test pattern,
    /// resolve it to address segments, print the map and verify it.
    Probe(probe::ProbeArgs),
    /// Map an existing range of another process (root), with page flags.
    #[cfg(target_os = "linux")]
    Map(map::MapArgs),
    /// Linux only.
    #[cfg(not(target_os = "linux"))]
    #[command(hide = true)]
    Map(unsupported::Rest),
    /// What this machine offers: page size, PFN visibility, huge pages, THP
    /// (Linux); page size and the DEXT (macOS).
    Info(InfoArgs),
    /// Run the resolver service (root): resolve and pin surfaces that
    /// admitted clients pass over a Unix socket.
    #[cfg(target_os = "linux")]
    Serve(Box<serve::ServeArgs>),
    /// Linux only.
    #[cfg(not(target_os = "linux"))]
    #[command(hide = true)]
    Serve(unsupported::Rest),
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
        Command::Probe(args) => probe::run(args),
        #[cfg(target_os = "linux")]
        Command::Map(args) => map::run(args),
        #[cfg(not(target_os = "linux"))]
        Command::Map(_) => unsupported::run(
            "map",
            "it reads another process's /proc/PID/pagemap, which only Linux has",
        ),
        #[cfg(target_os = "linux")]
        Command::Info(args) => info::run(args),
        #[cfg(not(target_os = "linux"))]
        Command::Info(args) => info_macos::run(args),
        #[cfg(target_os = "linux")]
        Command::Serve(args) => serve::run(args),
        #[cfg(not(target_os = "linux"))]
        Command::Serve(_) => unsupported::run(
            "serve",
            "the resolver service is Linux's counterpart of the CybMemDriver DEXT; \
             on macOS activate the DEXT instead (DEVELOPMENT.md)",
        ),
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
            let first = text.lines().next().unwrap_or("invalid usage");
            let first = first.strip_prefix("error: ").unwrap_or(first);
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
