//! Physically ordered surfaces: a hugetlb surface's huge pages mapped into
//! one virtual range in the order of their physical addresses, so that
//! physically adjacent huge pages become adjacent in the buffer and
//! coalesce into longer contiguous runs — for devices without an IOMMU that
//! need large contiguous runs. DPDK's legacy memory mode sorts its hugepage
//! files the same way; here the pieces are offsets of one memfd.
//!
//! Only hugetlb pages can be arranged: they are not migrated or split, so
//! the order read before remapping still holds after it.

use super::{Backing, Surface};
use crate::error::{Error, ErrorKind, Result};
use crate::mapping::Mapping;
use crate::pagemap::{Pagemap, HIDDEN_PFNS};
use unimem_core::pagemap::{Entry, PageState};
use unimem_core::VirtAddr;

/// What arranging changed: physically contiguous runs before and after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Arrangement {
    /// Huge pages in the surface, all of which were remapped.
    pub huge_pages: u64,
    /// Physically contiguous runs of huge pages in buffer order before
    /// arranging.
    pub runs_before: u64,
    /// The same count after arranging; at most `runs_before`.
    pub runs_after: u64,
    /// Length of the longest run before arranging, in bytes.
    pub largest_run_before: u64,
    /// Length of the longest run after arranging, in bytes.
    pub largest_run_after: u64,
}

/// Contiguous runs of `addresses` (each one `piece` long, in buffer
/// order): how many, and the longest in bytes.
fn runs(addresses: &[u64], piece: u64) -> (u64, u64) {
    let (mut count, mut largest, mut current) = (0u64, 0u64, 0u64);
    for (i, &a) in addresses.iter().enumerate() {
        let continues = i > 0 && addresses[i - 1].checked_add(piece) == Some(a);
        if continues {
            current += piece;
        } else {
            count += 1;
            current = piece;
        }
        largest = largest.max(current);
    }
    (count, largest)
}

impl Surface {
    /// Remaps the surface's huge pages in the order of their physical
    /// addresses (read from this process's pagemap, so it needs the PFNs
    /// root sees). The bytes at a buffer offset change with the order:
    /// write the surface's contents after arranging it.
    pub fn arrange_physical(&mut self) -> Result<Arrangement> {
        if self.backing != Backing::Hugetlb {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                "--arrange physical needs --backing hugetlb: only huge pages stay where they are \
                 once ordered",
            ));
        }
        let huge = self.page_size.bytes();
        let count = self.len() / huge;
        let pagemap = Pagemap::open_self()?;
        let mut addresses = Vec::with_capacity(count as usize);
        let mut word = [0u64; 1];
        for i in 0..count {
            pagemap.read(VirtAddr(self.addr().0 + i * huge), &mut word)?;
            match Entry(word[0]).state() {
                PageState::Present(pfn) => addresses.push(pfn.0 * pagemap.base_page().bytes()),
                PageState::Hidden => {
                    return Err(Error::new(ErrorKind::PermissionDenied, HIDDEN_PFNS))
                }
                _ => {
                    return Err(Error::new(
                        ErrorKind::PrepareFailed,
                        format!("huge page {i} of the surface is not present"),
                    ))
                }
            }
        }
        let (runs_before, largest_run_before) = runs(&addresses, huge);
        let mut order: Vec<(u64, u64)> = addresses
            .iter()
            .enumerate()
            .map(|(i, &a)| (a, i as u64 * huge))
            .collect();
        order.sort_unstable();
        let offsets: Vec<u64> = order.iter().map(|&(_, o)| o).collect();
        let sorted: Vec<u64> = order.iter().map(|&(a, _)| a).collect();
        let (runs_after, largest_run_after) = runs(&sorted, huge);
        self.mapping = Mapping::pieces(&self.fd, &offsets, huge as usize, huge as usize)?;
        self.populate()?;
        Ok(Arrangement {
            huge_pages: count,
            runs_before,
            runs_after,
            largest_run_before,
            largest_run_after,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_count_contiguous_pieces() {
        let h = 2 << 20;
        assert_eq!(runs(&[0, h, 5 * h, 6 * h, 7 * h, 3 * h], h), (3, 3 * h));
        assert_eq!(runs(&[4 * h, 3 * h, 2 * h], h), (3, h));
        assert_eq!(runs(&[], h), (0, 0));
        assert_eq!(runs(&[u64::MAX - h + 1, 0], h), (2, h));
    }
}
