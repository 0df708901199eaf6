//! Subcommands that exist only on Linux, as they answer elsewhere: one
//! clear error instead of clap's "unrecognized subcommand".

use clap::Args;
use std::process::ExitCode;
use unimem::{Error, ErrorKind, Result};

/// Whatever follows the subcommand; it is not looked at.
#[derive(Debug, Args)]
pub struct Rest {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    pub rest: Vec<String>,
}

pub fn run(command: &str, why: &str) -> Result<ExitCode> {
    Err(Error::new(
        ErrorKind::Unsupported,
        format!("`unimem {command}` is not available on this OS: {why}"),
    ))
}
