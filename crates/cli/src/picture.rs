//! `--svg FILE`: the map drawn as one self-contained SVG (see
//! `unimem_core::svg`), with the machine's RAM ranges where this platform
//! and this user can read them.

use crate::output;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;
use unimem::{Error, Result};
use unimem_core::size::human;
use unimem_core::svg::{self, Picture};
use unimem_core::PaMap;

/// The picture's file, created before the long work starts so a path that
/// cannot be written fails at once; removed again if no picture is
/// written into it.
pub struct SvgFile {
    path: PathBuf,
    file: Option<File>,
}

impl SvgFile {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path) -> Result<SvgFile> {
        let file = File::create(path).map_err(|e| {
            Error::io(
                format!(
                    "cannot write the picture to '{}' (check that its directory exists and is writable)",
                    path.display()
                ),
                e,
            )
        })?;
        Ok(SvgFile {
            path: path.to_path_buf(),
            file: Some(file),
        })
    }

    /// Draws `map` as `subject` into the file, and says so on stderr
    /// unless `quiet`.
    pub fn write(mut self, map: &PaMap, subject: String, quiet: bool) -> Result<()> {
        let (ram, ram_note) = ram_ranges();
        let text = svg::render(&Picture {
            map,
            subject,
            date: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            ram,
            ram_note,
        });
        let mut file = self.file.take().expect("written once");
        file.write_all(text.as_bytes()).map_err(|e| {
            Error::io(
                format!("cannot write the picture to '{}'", self.path.display()),
                e,
            )
        })?;
        if !quiet {
            output::note(&format!(
                "[+] Picture of the map written to {} ({})",
                self.path.display(),
                human(text.len() as u64)
            ));
        }
        Ok(())
    }
}

impl Drop for SvgFile {
    fn drop(&mut self) {
        // Still holding the file: nothing was drawn into it.
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
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
