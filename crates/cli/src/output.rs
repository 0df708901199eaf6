//! stdout carries data (the table or one JSON document); stderr carries
//! diagnostics. A closed stdout (`unimem probe | head`) is not an error.

use std::io::{self, Write};
use std::path::PathBuf;

/// How a map is shown: the flags `probe` and `map` share.
#[derive(Debug, clap::Args)]
pub struct MapOutput {
    /// Print one JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Indent the JSON document (compact by default).
    #[arg(long, requires = "json")]
    pub pretty: bool,
    /// Print every row of a large map.
    #[arg(long)]
    pub all: bool,
    /// Also draw the map as an SVG picture into FILE.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

impl MapOutput {
    /// The `--svg` file, created before any work is done, so a path that
    /// cannot be written fails at once.
    pub fn svg_file(&self) -> unimem::Result<Option<crate::picture::SvgFile>> {
        self.svg
            .as_deref()
            .map(crate::picture::SvgFile::create)
            .transpose()
    }
}

/// Writes `text` to stdout; a broken pipe is silently the end of output.
pub fn data(text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Writes one JSON document and a newline to stdout: compact, or indented
/// with `pretty`. The document is streamed through a buffer, never built
/// as one string first: a map with a row per page is tens of megabytes.
pub fn json<T: serde::Serialize>(value: &T, pretty: bool) -> io::Result<()> {
    let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
    let written = if pretty {
        serde_json::to_writer_pretty(&mut out, value)
    } else {
        serde_json::to_writer(&mut out, value)
    }
    .map_err(io::Error::from)
    .and_then(|_| out.write_all(b"\n"))
    .and_then(|_| out.flush());
    match written {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// The command's one document on stdout: `value` as JSON, or the table
/// `table` renders from it.
pub fn document<T: serde::Serialize>(
    as_json: bool,
    value: &T,
    table: impl FnOnce(&T) -> String,
) -> Result<(), unimem::Error> {
    if as_json {
        json(value, true)
    } else {
        data(&table(value))
    }
    .map_err(io_error)
}

/// A progress or diagnostic line on stderr.
pub fn note(text: &str) {
    let _ = writeln!(io::stderr(), "{text}");
}

/// Turns an output failure into the library's error type.
pub fn io_error(e: io::Error) -> unimem::Error {
    unimem::Error::io("cannot write the output", e)
}
