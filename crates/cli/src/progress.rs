//! Progress bars on stderr for the long phases of a large probe: filling
//! and verifying (bytes, rate, ETA), and spinners with bytes and elapsed
//! time for creating (and populating) the surface and for the resolver's
//! pin-and-resolve, which report no partial progress. Only for surfaces of [`MIN_BYTES`] or more, only when stderr
//! is a terminal, never with `--json` or `--quiet`. Step lines and bars
//! take turns: a bar is finished before the next line is printed.

use crate::output;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::time::Duration;
use unimem_core::size::human;

/// Smallest surface that gets progress bars.
pub const MIN_BYTES: u64 = 256 << 20;

/// Step lines and, when enabled, the bar of the phase in progress.
pub struct Progress {
    bars: bool,
    quiet: bool,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Bars for `size` bytes unless `json` or `quiet`, or stderr is not a
    /// terminal; step lines unless `quiet`.
    pub fn new(size: u64, json: bool, quiet: bool) -> Self {
        let bars = size >= MIN_BYTES && !json && !quiet && std::io::stderr().is_terminal();
        Self {
            bars,
            quiet,
            bar: None,
        }
    }

    /// A step line on stderr (finishing the bar before it).
    pub fn line(&mut self, text: &str) {
        self.finish();
        if !self.quiet {
            output::note(text);
        }
    }

    /// `done` of `total` bytes of phase `what`.
    pub fn bytes(&mut self, what: &str, done: u64, total: u64) {
        if !self.bars {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg:>9} [{bar:40.cyan/blue}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} ETA {eta}",
                )
                .expect("a valid template")
                .progress_chars("=> "),
            );
            bar.set_message(what.to_string());
            bar
        });
        bar.set_position(done);
    }

    /// A spinner for work that reports no partial progress.
    pub fn waiting(&mut self, what: &str, bytes: u64) {
        self.finish();
        if !self.bars {
            return;
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{msg:>9} {spinner} {prefix} {elapsed}")
                .expect("a valid template"),
        );
        bar.set_message(what.to_string());
        bar.set_prefix(human(bytes));
        bar.enable_steady_tick(Duration::from_millis(100));
        self.bar = Some(bar);
    }

    /// Leaves the finished bar on screen, with its final figures.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
