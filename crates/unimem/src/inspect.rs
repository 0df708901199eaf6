//! The map of an existing range of any process (root): which VMAs cover
//! it, which frames back each page, and the kernel's flags for those
//! frames — what `page-types -p PID -a START,END -l` lists, as segments.
//!
//! A row is a run of pages with contiguous addresses, one mapping and
//! identical flags, so one row says one thing; a whole huge page is one row
//! (its head/tail position folded into `huge`/`thp`), and the ageing bits
//! (`referenced`, `active`, `idle_page`) do not split rows unless raw rows
//! are asked for (see [`RowSplitter`]). Holes are explicit: unmapped (no
//! VMA), not present, swapped.

use crate::error::{Error, ErrorKind, Result};
use crate::kpageflags::KPageFlags;
use crate::pagemap::{check_range, Pagemap};
use crate::system;
use std::fs;
use unimem_core::kpageflags::{FlagRow, PageFlags, RowSplitter};
use unimem_core::maps;
use unimem_core::{AddressKind, PaMap, Pfn, Target, VirtAddr};

/// One row: a run of pages with one target, one mapping and one set of
/// flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlaggedSegment {
    /// Byte offset from the start of the range (`va`).
    pub offset: u64,
    /// Length in bytes: a whole number of base pages.
    pub length: u64,
    /// The physical address of the row's first byte, or which kind of hole
    /// it is: [`Target::Unmapped`] (no VMA), [`Target::NotPresent`] or
    /// [`Target::Swapped`].
    pub target: Target,
    /// The flags every page of the row has (a huge page's
    /// `compound_head`/`compound_tail` folded away unless raw): `None` for
    /// holes, and for frames kpageflags does not cover (device memory).
    pub flags: Option<PageFlags>,
    /// Path of the VMA (`/memfd:... (deleted)`, `[heap]`, ...), if mapped.
    pub mapping: Option<String>,
}

/// The map of `[va, va + len)` in process `pid`.
#[derive(Debug, Clone)]
pub struct ProcessMap {
    /// The process whose range this is.
    pub pid: u32,
    /// Start of the range in that process's address space; page-aligned.
    pub va: VirtAddr,
    /// Physical map of the range, in base pages, offsets relative to `va`.
    pub map: PaMap,
    /// The same range as rows split by mapping and page flags, in offset
    /// order, covering it without gaps.
    pub rows: Vec<FlaggedSegment>,
}

/// Resolves `[va, va + len)` of process `pid`, with page flags. With `raw`,
/// rows split on every flag bit and carry the words as read.
pub fn map_process(pid: u32, va: VirtAddr, len: u64, raw: bool) -> Result<ProcessMap> {
    let base = system::page_size();
    check_range(base, va, len)?;
    let maps_path = format!("/proc/{pid}/maps");
    let text = fs::read_to_string(&maps_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::with_source(
            ErrorKind::NotFound,
            format!("process {pid} does not exist (has it exited?)"),
            e,
        ),
        _ => Error::io(format!("cannot read {maps_path}"), e),
    })?;
    let vmas = maps::parse(&text);
    let pieces = maps::cover(&vmas, va.0, va.0 + len);
    if pieces.iter().all(|(_, _, vma)| vma.is_none()) {
        return Err(Error::new(
            ErrorKind::NotFound,
            format!(
                "no mapping of process {pid} covers {va}..{:#x} (see {maps_path})",
                va.0 + len
            ),
        ));
    }
    let pagemap = Pagemap::open_pid(pid)?;
    let mut map = PaMap::new(AddressKind::Physical, base, len);
    let mut paths = Vec::new();
    for (start, end, vma) in &pieces {
        match vma {
            Some(_) => pagemap
                .resolve_into(&mut map, VirtAddr(*start), end - start)
                .map_err(|e| match e.kind() {
                    ErrorKind::PermissionDenied => Error::new(
                        ErrorKind::PermissionDenied,
                        format!(
                            "physical addresses of process {pid} are hidden: reading them needs \
                             CAP_SYS_ADMIN; run `unimem map` as root"
                        ),
                    ),
                    _ => e,
                })?,
            None => map
                .push(end - start, Target::Unmapped)
                .map_err(|e| Error::new(ErrorKind::Io, e.to_string()))?,
        }
        paths.push((start - va.0, end - va.0, vma.map(|v| v.path.clone())));
    }
    let rows = split_by_flags(&map, base.bytes(), &paths, raw)?;
    Ok(ProcessMap { pid, va, map, rows })
}

fn split_by_flags(
    map: &PaMap,
    base: u64,
    paths: &[(u64, u64, Option<String>)],
    raw: bool,
) -> Result<Vec<FlaggedSegment>> {
    let path_at = |offset: u64| {
        paths
            .iter()
            .find(|(s, e, _)| (*s..*e).contains(&offset))
            .and_then(|(_, _, p)| p.clone())
    };
    let needs_flags = map.segments().iter().any(|s| s.address().is_some());
    let kpf = if needs_flags {
        Some(KPageFlags::open()?)
    } else {
        None
    };
    let mut rows: Vec<FlaggedSegment> = Vec::new();
    for seg in map.segments() {
        let (Target::Address(start), Some(kpf)) = (seg.target, kpf.as_ref()) else {
            rows.push(FlaggedSegment {
                offset: seg.offset,
                length: seg.length,
                target: seg.target,
                flags: None,
                mapping: path_at(seg.offset),
            });
            continue;
        };
        // Page indices count from the segment's start; a mapping boundary
        // inside the segment starts a new row.
        let row_of = |r: FlagRow| FlaggedSegment {
            offset: seg.offset + r.first * base,
            length: r.pages * base,
            target: Target::Address(start.checked_add(r.first * base).unwrap_or(start)),
            flags: r.flags,
            mapping: path_at(seg.offset + r.first * base),
        };
        let mut splitter = RowSplitter::new(raw);
        let mut last_mapping = None;
        kpf.for_each(Pfn(start.get() / base), seg.length / base, |i, flags| {
            let mapping = path_at(seg.offset + i * base);
            let boundary = i > 0 && last_mapping != Some(mapping.clone());
            last_mapping = Some(mapping);
            if let Some(done) = splitter.push(i, flags, boundary) {
                rows.push(row_of(done));
            }
        })?;
        rows.extend(splitter.finish().map(row_of));
    }
    Ok(rows)
}
