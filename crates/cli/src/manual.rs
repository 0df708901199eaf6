//! `unimem completions SHELL` and `unimem man`: shell completion scripts
//! (clap_complete) and the manual page (clap_mangen), both generated from
//! the same clap definitions as `--help`, so they never drift from it.

use crate::output::{self, io_error};
use crate::EXIT_OK;
use clap::{Args, ValueEnum};
use std::process::ExitCode;
use unimem::Result;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Shells with a completion script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Writes the completion script for `args.shell` to stdout.
pub fn completions(mut cmd: clap::Command, args: &CompletionsArgs) -> Result<ExitCode> {
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "unimem", &mut script);
    output::data(&String::from_utf8_lossy(&script)).map_err(io_error)?;
    Ok(ExitCode::from(EXIT_OK))
}

/// Writes the manual page (roff) to stdout: the command and, as sections,
/// each subcommand with its options.
pub fn man(cmd: clap::Command) -> Result<ExitCode> {
    let cmd = cmd.disable_help_subcommand(true);
    let mut main = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut main)
        .map_err(io_error)?;
    let main = String::from_utf8_lossy(&main);
    // The title line first, as man(7) expects; clap_mangen puts its string
    // definitions before it.
    let (title, rest): (Vec<&str>, Vec<&str>) = main.lines().partition(|l| l.starts_with(".TH "));
    let mut page = String::new();
    for line in title.iter().chain(&rest) {
        page.push_str(line);
        page.push('\n');
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("unimem {}", sub.get_name());
        page.push_str(&format!(".SH \"{}\"\n", name.to_uppercase()));
        let man = clap_mangen::Man::new(sub.clone().bin_name(name));
        let mut part = Vec::new();
        man.render_description_section(&mut part)
            .and_then(|_| man.render_synopsis_section(&mut part))
            .and_then(|_| man.render_options_section(&mut part))
            .map_err(io_error)?;
        // Each subcommand's own sections become subsections of its one;
        // the string definitions each part repeats are already made.
        for line in String::from_utf8_lossy(&part).lines() {
            if !line.starts_with(".ie \\n(.g .ds Aq") && !line.starts_with(".el .ds Aq") {
                page.push_str(&line.replace(".SH ", ".SS "));
                page.push('\n');
            }
        }
    }
    output::data(&page).map_err(io_error)?;
    Ok(ExitCode::from(EXIT_OK))
}
