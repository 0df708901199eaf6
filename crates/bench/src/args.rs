//! The benchmark's command line: what to measure, and the internal
//! subcommands it runs in child processes of itself.

use crate::anchors::Condition;
use clap::{Parser, Subcommand};
use unimem::core::size::parse_size;

/// Times unimem's address resolution against raw pread, DPDK-style
/// per-page reads, the procfs crate, the service and the pin alone.
/// Needs root (PFNs, pinning, the hugetlb pool).
#[derive(Parser, Debug)]
#[command(name = "unimem-bench", version, args_conflicts_with_subcommands = true)]
pub(crate) struct Args {
    /// Sizes of the 4 KiB memfd buffers (K, M, G suffixes).
    #[arg(long, value_delimiter = ',', default_value = "64K,16M,1G,4G", value_parser = size)]
    pub(crate) sizes: Vec<u64>,
    /// Timed repetitions per method and buffer (after one warm-up).
    #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) reps: u32,
    /// Memory conditions of the 4 KiB buffers.
    #[arg(long, value_delimiter = ',', default_value = "fresh,fragmented", value_parser = Condition::parse)]
    pub(crate) conditions: Vec<Condition>,
    /// Size of the hugetlb buffer; 0 for none.
    #[arg(long, default_value = "1G", value_parser = size)]
    pub(crate) hugetlb: u64,
    /// Size of the shmem THP buffer (collapsed with MADV_COLLAPSE); 0 for none.
    #[arg(long, default_value = "1G", value_parser = size)]
    pub(crate) thp: u64,
    /// The largest 4 KiB buffer the memory anchors (memset, fill,
    /// readsum, verify, populate, probe) and `unimem map` run on.
    #[arg(long, default_value = "1G", value_parser = size)]
    pub(crate) anchors_max: u64,
    /// Skip the peak-RSS measurements.
    #[arg(long)]
    pub(crate) no_rss: bool,
    /// One JSON document on stdout instead of the table.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) child: Option<Child>,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Child {
    /// (internal) one RSS measurement in a fresh process.
    #[command(hide = true, name = "rss-child")]
    Rss {
        #[arg(long)]
        path: String,
        #[arg(long)]
        len: u64,
        #[arg(long)]
        method: String,
        #[arg(long)]
        backing: String,
    },
    /// Size and drawing time of `--svg` pictures.
    Svg {
        /// Sizes of the 4 KiB memfd surfaces to draw.
        #[arg(long, value_delimiter = ',', default_value = "64K,1G,4G", value_parser = size)]
        sizes: Vec<u64>,
        /// Timed drawings per map (after one warm-up).
        #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(1..))]
        reps: u32,
    },
    /// (internal) hold a populated buffer until stdin closes.
    #[command(hide = true)]
    Hold {
        #[arg(long)]
        len: u64,
    },
}

fn size(s: &str) -> Result<u64, String> {
    parse_size(s).map_err(|e| e.to_string())
}
