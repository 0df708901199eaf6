//! Decoding of `/proc/kpageflags` words (one u64 per PFN).
//!
//! Bit numbers from the kernel's `include/uapi/linux/kernel-page-flags.h`
//! (0–26, stable ABI) and the "kernel hacker" bits above 32 that
//! `tools/mm/page-types.c` names (`KPF_RESERVED` 32, `KPF_MLOCKED` 33, ...).
//! Names follow page-types' long names so outputs can be compared.

use serde::Serialize;

/// (bit, name) for every flag we name.
pub const FLAGS: &[(u32, &str)] = &[
    (0, "locked"),
    (1, "error"),
    (2, "referenced"),
    (3, "uptodate"),
    (4, "dirty"),
    (5, "lru"),
    (6, "active"),
    (7, "slab"),
    (8, "writeback"),
    (9, "reclaim"),
    (10, "buddy"),
    (11, "mmap"),
    (12, "anonymous"),
    (13, "swapcache"),
    (14, "swapbacked"),
    (15, "compound_head"),
    (16, "compound_tail"),
    (17, "huge"),
    (18, "unevictable"),
    (19, "hwpoison"),
    (20, "nopage"),
    (21, "ksm"),
    (22, "thp"),
    (23, "offline"),
    (24, "zero_page"),
    (25, "idle"),
    (26, "pgtable"),
    (32, "reserved"),
    (33, "mlocked"),
    (34, "owner_2"),
    (35, "private"),
    (36, "private_2"),
    (37, "owner_private"),
    (38, "arch"),
    (39, "uncached"),
    (40, "softdirty"),
    (41, "arch_2"),
];

pub const LOCKED: u64 = 1 << 0;
pub const LRU: u64 = 1 << 5;
pub const MMAP: u64 = 1 << 11;
pub const ANON: u64 = 1 << 12;
pub const SWAPBACKED: u64 = 1 << 14;
pub const COMPOUND_HEAD: u64 = 1 << 15;
pub const COMPOUND_TAIL: u64 = 1 << 16;
pub const HUGE: u64 = 1 << 17;
pub const UNEVICTABLE: u64 = 1 << 18;
pub const NOPAGE: u64 = 1 << 20;
pub const THP: u64 = 1 << 22;
pub const MLOCKED: u64 = 1 << 33;

/// A kpageflags word.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PageFlags(pub u64);

impl PageFlags {
    pub fn contains(self, bits: u64) -> bool {
        self.0 & bits == bits
    }

    /// Names of the set bits, in bit order; unnamed bits as `bitN`.
    pub fn names(self) -> Vec<String> {
        self.name_iter().map(|n| n.into_owned()).collect()
    }

    /// The names of the set flags, as [`PageFlags::names`] gives them,
    /// without allocating for the named ones.
    pub fn name_iter(self) -> impl Iterator<Item = std::borrow::Cow<'static, str>> {
        (0..64u32)
            .filter(move |b| self.0 & (1u64 << b) != 0)
            .map(|b| match FLAGS.iter().find(|(bit, _)| *bit == b) {
                Some((_, name)) => std::borrow::Cow::Borrowed(*name),
                None => std::borrow::Cow::Owned(format!("bit{b}")),
            })
    }

    /// Comma-separated names, or `-` for no flags.
    pub fn describe(self) -> String {
        let names = self.names();
        if names.is_empty() {
            "-".to_string()
        } else {
            names.join(",")
        }
    }

    /// Flags that may differ between the pages of one physically contiguous
    /// run without making them a different kind of memory: the compound
    /// head/tail split of a huge page, and the per-page LRU ageing bits.
    /// Runs are split on the rest.
    pub fn kind(self) -> PageFlags {
        const PER_PAGE: u64 = COMPOUND_HEAD | COMPOUND_TAIL | (1 << 2) | (1 << 6) | (1 << 25);
        PageFlags(self.0 & !PER_PAGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_memfd_page_seen_on_a_guest() {
        // 0x4838 read for a touched memfd page on Linux 6.18.
        let f = PageFlags(0x4838);
        assert_eq!(
            f.names(),
            ["uptodate", "dirty", "lru", "mmap", "swapbacked"]
        );
        assert!(f.contains(SWAPBACKED | MMAP));
        assert!(!f.contains(ANON));
    }

    #[test]
    fn names_hugetlb_head() {
        // 0x28818: uptodate|dirty|mmap|compound_head|huge
        let f = PageFlags(0x28818);
        assert_eq!(
            f.names(),
            ["uptodate", "dirty", "mmap", "compound_head", "huge"]
        );
        assert!(f.contains(HUGE | COMPOUND_HEAD));
    }

    #[test]
    fn hacker_bits_and_unknown_bits() {
        let f = PageFlags(MLOCKED | (1 << 50));
        assert_eq!(f.names(), ["mlocked", "bit50"]);
        assert_eq!(PageFlags(0).describe(), "-");
    }

    #[test]
    fn kind_ignores_compound_position() {
        let head = PageFlags(0x28818);
        let tail = PageFlags(0x28818 & !COMPOUND_HEAD | COMPOUND_TAIL);
        assert_eq!(head.kind(), tail.kind());
        assert_ne!(PageFlags(0x4838).kind(), PageFlags(0x4838 | ANON).kind());
    }
}
