//! Peak RSS growth of one resolution, measured in a fresh child process.
//!
//! The parent hands the child its memfd by path (`/proc/PID/fd/N`); the
//! child maps and populates it, resets its peak (`echo 5 >
//! /proc/self/clear_refs` sets VmHWM to the current RSS), notes VmRSS,
//! resolves once and reads VmHWM. The buffer's own pages are resident
//! before the baseline, so the difference is what resolving allocated, and
//! a fresh process has no allocator caches left over from earlier runs to
//! hide it.

use crate::Res;
use serde::{Deserialize, Serialize};
use std::os::fd::{AsRawFd, BorrowedFd};
use std::process::{Command, Stdio};
use unimem::core::pagemap::{PFN_MASK, PRESENT};
use unimem::core::{Coverage, VirtAddr};
use unimem::mapping::Mapping;
use unimem::pagemap::Pagemap;

/// Methods whose memory is measured.
pub const METHODS: [&str; 3] = ["direct", "limit", "procfs"];

/// One measurement, as the child reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RssResult {
    pub method: String,
    pub backing: String,
    pub size: u64,
    /// VmHWM after resolving minus VmRSS before, in bytes.
    pub peak_growth_bytes: u64,
    /// What the result itself takes: the segments (direct), the entries
    /// (limit) or the `PageInfo`s (procfs).
    pub result_bytes: u64,
    /// Segments in the map (direct only).
    pub segments: Option<usize>,
    /// Peak growth beyond the result itself.
    pub beyond_result_bytes: i64,
}

/// Runs the child for `method` on the memfd `fd` of `len` bytes.
pub fn measure(method: &str, backing: &str, fd: BorrowedFd<'_>, len: u64) -> Res<RssResult> {
    let path = format!("/proc/{}/fd/{}", std::process::id(), fd.as_raw_fd());
    let out = Command::new(std::env::current_exe()?)
        .args(["rss-child", "--path", &path, "--len", &len.to_string()])
        .args(["--method", method, "--backing", backing])
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .output()?;
    if !out.status.success() {
        return Err(format!("the RSS child for {method} failed ({})", out.status).into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn status_kb(field: &str) -> Res<u64> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let line = s
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| format!("no {field} in /proc/self/status"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("bad status line")?
        .parse()?)
}

/// The child's side: prints one [`RssResult`] as JSON on stdout.
pub fn child(path: &str, len: u64, method: &str, backing: &str) -> Res<()> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let mapping = Mapping::shared(&file, 0, len as usize)?;
    mapping
        .advise(unimem::mapping::Advice::PopulateWrite)
        .map_err(|e| format!("cannot populate: {e}"))?;
    let page = unimem::system::page_size();
    let va = mapping.addr();
    let pages = len >> page.shift();
    // Everything a method needs before it runs is opened first.
    let pagemap = Pagemap::open_self()?;
    let raw = std::fs::File::open("/proc/self/pagemap")?;
    let mut procfs = procfs::process::Process::myself()?.pagemap()?;
    std::fs::write("/proc/self/clear_refs", "5\n")?;
    let before = status_kb("VmRSS:")? * 1024;
    let (result_bytes, segments) = match method {
        "direct" => {
            let map = pagemap.resolve(va, len, page)?;
            if map.coverage() != Coverage::Full {
                return Err("direct: not fully covered".into());
            }
            (
                std::mem::size_of_val(map.segments()) as u64,
                Some(map.address_segment_count()),
            )
        }
        "limit" => {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; (pages * 8) as usize];
            raw.read_exact_at(&mut buf, (va.0 >> page.shift()) * 8)?;
            let ok = buf
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .all(|w| w & PRESENT != 0 && w & PFN_MASK != 0);
            if !ok {
                return Err("limit: a page is not present".into());
            }
            (buf.len() as u64, None)
        }
        "procfs" => {
            let first = (VirtAddr(va.0).0 >> page.shift()) as usize;
            let infos = procfs.get_range_info(first..first + pages as usize)?;
            (std::mem::size_of_val(infos.as_slice()) as u64, None)
        }
        other => return Err(format!("no RSS measurement for method {other}").into()),
    };
    let peak = status_kb("VmHWM:")? * 1024;
    let growth = peak.saturating_sub(before);
    let r = RssResult {
        method: method.into(),
        backing: backing.into(),
        size: len,
        peak_growth_bytes: growth,
        result_bytes,
        segments,
        beyond_result_bytes: growth as i64 - result_bytes as i64,
    };
    println!("{}", serde_json::to_string(&r)?);
    Ok(())
}
