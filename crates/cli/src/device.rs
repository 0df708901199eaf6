//! The device flags shared by `probe` and `map`: a device's DMA limits, as
//! a driver declares them, turned into a verdict on the map
//! (`unimem_core::device`).

use clap::Args;
use unimem::{Error, ErrorKind, Result};
use unimem_core::device::{self, DeviceConstraints, DeviceVerdict};
use unimem_core::size::parse_size;
use unimem_core::PaMap;

/// A device's DMA limits. With none given, no verdict is printed.
#[derive(Debug, Clone, Default, Args)]
pub struct DeviceArgs {
    /// The device drives N address bits (1..=64): it reaches [0, 2^N).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub dma_bits: Option<u32>,
    /// Longest scatter-gather entry the device takes: 64K, 65535, 4M.
    #[arg(long, value_name = "SIZE", value_parser = parse_positive)]
    pub max_segment_size: Option<u64>,
    /// No entry may cross a multiple of this power of two: 4K, 4G.
    #[arg(long, value_name = "SIZE", value_parser = parse_power_of_two)]
    pub segment_boundary: Option<u64>,
    /// Most scatter-gather entries the device takes for the buffer.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_segments: Option<u64>,
    /// Every entry must start on a multiple of this power of two.
    #[arg(long, value_name = "SIZE", value_parser = parse_power_of_two)]
    pub align: Option<u64>,
}

fn parse_positive(text: &str) -> std::result::Result<u64, String> {
    match parse_size(text) {
        Ok(0) => Err(format!("'{text}' is 0: give a size of at least one page")),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn parse_power_of_two(text: &str) -> std::result::Result<u64, String> {
    let n = parse_size(text).map_err(|e| e.to_string())?;
    if n.is_power_of_two() {
        Ok(n)
    } else {
        Err(format!(
            "'{text}' ({n} bytes) is not a power of two: give e.g. 4K, 64K or 4G"
        ))
    }
}

impl DeviceArgs {
    pub fn constraints(&self) -> DeviceConstraints {
        DeviceConstraints {
            dma_bits: self.dma_bits,
            max_segment_size: self.max_segment_size,
            segment_boundary: self.segment_boundary,
            max_segments: self.max_segments,
            align: self.align,
        }
    }

    /// Refuses values no driver could declare, before any work is done.
    pub fn validate(&self) -> Result<()> {
        let page = rustix::param::page_size() as u64;
        self.constraints()
            .validate(page)
            .map_err(|e| Error::new(ErrorKind::InvalidRequest, e.to_string()))
    }

    /// The verdict on `map`, or `None` when no limit was given.
    pub fn verdict(&self, map: &PaMap) -> Option<DeviceVerdict> {
        let c = self.constraints();
        c.any().then(|| device::verdict(map, &c))
    }
}
