//! `--svg FILE`: the map drawn as one self-contained SVG (see
//! `unimem_core::svg`), with the machine's RAM ranges where this platform
//! and this user can read them.

use crate::output;
use std::path::Path;
use std::time::SystemTime;
use unimem::{Error, Result};
use unimem_core::size::human;
use unimem_core::svg::{self, Picture};
use unimem_core::PaMap;

/// Draws `map` as `subject` into `path`, and says so on stderr unless
/// `quiet`.
pub fn write(path: &Path, map: &PaMap, subject: String, quiet: bool) -> Result<()> {
    let (ram, ram_note) = ram_ranges();
    let text = svg::render(&Picture {
        map,
        subject,
        date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        ram,
        ram_note,
    });
    std::fs::write(path, &text).map_err(|e| {
        Error::io(
            format!(
                "cannot write the picture to '{}' (check that its directory exists and is writable)",
                path.display()
            ),
            e,
        )
    })?;
    if quiet {
        return Ok(());
    }
    output::note(&format!(
        "[+] Picture of the map written to {} ({})",
        path.display(),
        human(text.len() as u64)
    ));
    Ok(())
}

#[cfg(target_os = "linux")]
fn ram_ranges() -> (Option<Vec<(u64, u64)>>, String) {
    match unimem::iomem::system_ram() {
        Ok(r) => (Some(r), String::new()),
        Err(note) => (None, note),
    }
}

#[cfg(not(target_os = "linux"))]
fn ram_ranges() -> (Option<Vec<(u64, u64)>>, String) {
    (None, "RAM ranges are not read on this platform".to_string())
}
