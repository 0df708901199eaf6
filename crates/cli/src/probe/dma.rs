//! `unimem probe --dma-from FILE`: after prepare, a block device writes the
//! file into the pinned surface by DMA (`unimem::dma`), and the probe
//! proves it wrote where the map says: the addresses are re-resolved and
//! unchanged, the surface's bytes equal the file's (our checksum, and the
//! resolver's through its own mapping), and the bytes past the DMA still
//! hold the test pattern.

use serde::Serialize;
use std::fmt::Write;
use std::path::Path;
use unimem::dma::{DmaRun, DmaSource};
use unimem::probe::ProbeOutcome;
use unimem::resolve::Resolver;
use unimem::Result;
use unimem_core::checksum::checksum;
use unimem_core::pattern::Verification;
use unimem_core::size::human;

/// What the DMA did and what was verified after it, for the view.
#[derive(Debug, Serialize)]
pub struct DmaReport {
    pub ok: bool,
    pub file: String,
    pub device: String,
    #[serde(flatten)]
    pub run: DmaRun,
    /// The map re-resolved after the DMA is the map before it.
    pub addresses_unchanged: bool,
    /// Buffer offset of the first segment that differs, if any.
    pub first_changed_offset: Option<u64>,
    /// Checksum of the file's bytes (read normally) and the pattern past
    /// the DMA, over the whole surface.
    pub expected_checksum: u64,
    /// The same over this process's mapping of the surface.
    pub surface_checksum: u64,
    /// The resolver's checksums through its own mapping, after the DMA.
    pub resolver_checksums: Vec<ResolverSum>,
    /// Bytes past the DMA checked against the test pattern.
    pub uncovered: Verification,
}

#[derive(Debug, Serialize)]
pub struct ResolverSum {
    pub offset: u64,
    pub length: u64,
    pub resolver: u64,
    pub expected: u64,
}

impl ResolverSum {
    fn ok(&self) -> bool {
        self.resolver == self.expected
    }
}

/// Opens FILE before any surface is made, so a bad path costs nothing.
pub fn open(path: &Path) -> Result<DmaSource> {
    DmaSource::open(path)
}

/// DMAs `len` bytes (default: the whole surface) of `src` into the
/// prepared surface of `o`, then re-resolves and verifies.
pub fn run(
    src: &DmaSource,
    path: &Path,
    len: Option<u64>,
    o: &mut ProbeOutcome,
    resolver: &mut dyn Resolver,
) -> Result<DmaReport> {
    let total = o.surface.len();
    let len = len.unwrap_or(total);
    if len > total {
        return Err(unimem::Error::new(
            unimem::ErrorKind::InvalidRequest,
            format!("--dma-len {len} is larger than the {total}-byte surface"),
        ));
    }
    src.check_length(len, unimem::system::page_size().bytes())?;
    // The direct resolver's surface is this process's pinned mapping: the
    // read goes through an io_uring fixed buffer, as a driver uses a
    // prepared buffer. Through the service, an O_DIRECT read into the
    // client's mapping of the pages the service pinned.
    let run = if resolver.name() == "direct" {
        src.read_fixed(o.surface.as_mut_slice(), len)?
    } else {
        src.read_direct(o.surface.as_mut_slice(), len)?
    };
    let again = resolver.prepare(&o.surface)?;
    let before = o.prepared.map.segments();
    let after = again.map.segments();
    let first_changed_offset = before
        .iter()
        .zip(after)
        .find(|(a, b)| a != b)
        .map(|(a, _)| a.offset)
        .or_else(|| {
            (before.len() != after.len())
                .then(|| before.len().min(after.len()))
                .map(|i| before.get(i).or(after.get(i)).map_or(0, |s| s.offset))
        });
    let expected_checksum = src.expected_checksum(&o.pattern, len, 0, total)?;
    let surface_checksum = checksum(o.surface.as_slice());
    let mut resolver_checksums = Vec::new();
    for c in &again.checksums {
        resolver_checksums.push(ResolverSum {
            offset: c.offset,
            length: c.length,
            resolver: c.value,
            expected: src.expected_checksum(&o.pattern, len, c.offset, c.length)?,
        });
    }
    drop(again);
    let uncovered = o.pattern.verify(len, &o.surface.as_slice()[len as usize..]);
    let ok = first_changed_offset.is_none()
        && surface_checksum == expected_checksum
        && resolver_checksums.iter().all(ResolverSum::ok)
        && uncovered.ok();
    Ok(DmaReport {
        ok,
        file: path.display().to_string(),
        device: src.device.clone(),
        run,
        addresses_unchanged: first_changed_offset.is_none(),
        first_changed_offset,
        expected_checksum,
        surface_checksum,
        resolver_checksums,
        uncovered,
    })
}

impl DmaReport {
    /// The `[+]`/`[-]` lines of the table.
    pub fn lines(&self) -> String {
        let mut out = String::new();
        let mark = |ok: bool| if ok { '+' } else { '-' };
        let secs = self.run.elapsed.as_secs_f64();
        let _ = writeln!(
            out,
            "[+] DMA from {} ({}): {} bytes ({}) in {:.1} ms ({:.0} MiB/s), {}",
            self.file,
            self.device,
            self.run.bytes,
            human(self.run.bytes),
            secs * 1e3,
            self.run.bytes as f64 / (1 << 20) as f64 / secs.max(1e-9),
            self.run.method
        );
        match self.first_changed_offset {
            None => out.push_str("[+] Addresses unchanged after the DMA (re-resolved)\n"),
            Some(o) => {
                let _ = writeln!(
                    out,
                    "[-] Addresses CHANGED after the DMA: first at offset {o:#x}"
                );
            }
        }
        let ours = self.surface_checksum == self.expected_checksum;
        let _ = writeln!(
            out,
            "[{}] Surface bytes {} the file's{} ({:#018x}, expected {:#018x})",
            mark(ours),
            if ours { "equal" } else { "DIFFER from" },
            if self.uncovered.checked_bytes > 0 {
                ", then the pattern"
            } else {
                ""
            },
            self.surface_checksum,
            self.expected_checksum
        );
        for c in &self.resolver_checksums {
            let _ = writeln!(
                out,
                "[{}] Resolver checksum after the DMA {} over {} bytes at {:#x} ({:#018x})",
                mark(c.ok()),
                if c.ok() {
                    "matches the file"
                } else {
                    "MISMATCH"
                },
                c.length,
                c.offset,
                c.resolver
            );
        }
        let tail = self.uncovered.checked_bytes;
        if tail == 0 {
            out.push_str("[*] The DMA covered the whole surface (no pattern bytes left)\n");
        } else if self.uncovered.ok() {
            let _ = writeln!(
                out,
                "[+] The {tail} bytes past the DMA still hold the test pattern"
            );
        } else {
            let _ = writeln!(
                out,
                "[-] {} words past the DMA no longer hold the test pattern",
                self.uncovered.mismatched_words
            );
        }
        out
    }
}
