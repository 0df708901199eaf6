//! The machine's RAM ranges, from the "System RAM" lines of `/proc/iomem`.
//! Only root reads real addresses there; everyone else reads zeros.

use std::fs;

/// The kernel's map of physical address ranges.
pub const PATH: &str = "/proc/iomem";

/// The RAM ranges (half-open), or why they are unknown, in words a picture
/// can show.
pub fn system_ram() -> std::result::Result<Vec<(u64, u64)>, String> {
    let text = fs::read_to_string(PATH)
        .map_err(|e| format!("RAM ranges unknown: cannot read {PATH} ({e})"))?;
    let ranges = unimem_core::svg::system_ram(&text);
    if ranges.is_empty() {
        return Err(format!(
            "RAM ranges unknown: {PATH} shows real addresses to root only"
        ));
    }
    Ok(ranges)
}
