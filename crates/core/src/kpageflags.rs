//! Decoding of `/proc/kpageflags` words (one u64 per PFN), and the rows a
//! run of such words makes.
//!
//! Bit numbers from the kernel's `include/uapi/linux/kernel-page-flags.h`
//! (0–26, stable ABI) and the "kernel hacker" bits above 32 that
//! `tools/mm/page-types.c` names (`KPF_RESERVED` 32, `KPF_MLOCKED` 33, ...).
//! Names are page-types' long names, including how it names overloaded
//! bits by page kind (bit 34 of an anonymous page is `anon_exclusive`, the
//! `active`/`error` bits of a slab page are `slub_frozen`/`slub_debug`,
//! `reclaim` without `writeback` is `readahead`), so outputs can be
//! compared word for word.

use serde::Serialize;

/// (bit, name) for every flag we name, as page-types names it when the
/// bit is not overloaded.
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
    (25, "idle_page"),
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

/// Bit 0: the page is locked for exclusive access (I/O in flight).
pub const LOCKED: u64 = 1 << 0;
/// Bit 1: an I/O error occurred on the page.
pub const ERROR: u64 = 1 << 1;
/// Bit 2: referenced since the last LRU scan (ageing; volatile).
pub const REFERENCED: u64 = 1 << 2;
/// Bit 5: on an LRU list.
pub const LRU: u64 = 1 << 5;
/// Bit 6: on the active LRU list (ageing; volatile).
pub const ACTIVE: u64 = 1 << 6;
/// Bit 7: owned by the slab allocator.
pub const SLAB: u64 = 1 << 7;
/// Bit 8: being written back to storage.
pub const WRITEBACK: u64 = 1 << 8;
/// Bit 9: to be reclaimed soon (`readahead` when not under writeback).
pub const RECLAIM: u64 = 1 << 9;
/// Bit 11: mapped into some process.
pub const MMAP: u64 = 1 << 11;
/// Bit 12: anonymous memory (shmem and memfds are `swapbacked`, not anon, unless shared anon).
pub const ANON: u64 = 1 << 12;
/// Bit 14: backed by swap or shmem, not by a file.
pub const SWAPBACKED: u64 = 1 << 14;
/// Bit 15: the first page of a compound (huge) page.
pub const COMPOUND_HEAD: u64 = 1 << 15;
/// Bit 16: a later page of a compound (huge) page.
pub const COMPOUND_TAIL: u64 = 1 << 16;
/// Bit 17: part of a hugetlbfs page.
pub const HUGE: u64 = 1 << 17;
/// Bit 18: on the unevictable list (mlocked, ramfs, pinned).
pub const UNEVICTABLE: u64 = 1 << 18;
/// Bit 20: no page frame exists at this PFN.
pub const NOPAGE: u64 = 1 << 20;
/// Bit 22: part of a transparent huge page.
pub const THP: u64 = 1 << 22;
/// Bit 25 (`idle_page`): not accessed since marked idle (ageing; volatile).
pub const IDLE: u64 = 1 << 25;
/// Bit 33: mlocked.
pub const MLOCKED: u64 = 1 << 33;
/// Bit 34: `anon_exclusive` on anonymous pages, `owner_2` otherwise (overloaded).
pub const OWNER_2: u64 = 1 << 34;

/// Bits that change as the kernel ages pages (LRU referenced/active and
/// idle tracking): they say when a page was last used, not what it is, so
/// they do not split rows unless raw rows are asked for.
pub const VOLATILE: u64 = REFERENCED | ACTIVE | IDLE;

/// A kpageflags word.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct PageFlags(pub u64);

impl PageFlags {
    /// Whether every bit of `bits` is set.
    pub fn contains(self, bits: u64) -> bool {
        self.0 & bits == bits
    }

    /// The name of set bit `bit` in this word: page-types' name, with the
    /// overloaded bits named by the kind of page (`expand_overloaded_flags`
    /// in page-types.c); unnamed bits are `bitN`.
    fn bit_name(self, bit: u32) -> std::borrow::Cow<'static, str> {
        let w = self.0;
        let overloaded = match 1u64 << bit {
            OWNER_2 if w & ANON != 0 => Some("anon_exclusive"),
            ACTIVE if w & SLAB != 0 => Some("slub_frozen"),
            ERROR if w & SLAB != 0 => Some("slub_debug"),
            RECLAIM if w & WRITEBACK == 0 => Some("readahead"),
            _ => None,
        };
        match overloaded.or_else(|| FLAGS.iter().find(|(b, _)| *b == bit).map(|(_, n)| *n)) {
            Some(name) => std::borrow::Cow::Borrowed(name),
            None => std::borrow::Cow::Owned(format!("bit{bit}")),
        }
    }

    /// Names of the set bits, in bit order.
    pub fn names(self) -> Vec<String> {
        self.name_iter().map(|n| n.into_owned()).collect()
    }

    /// The names of the set flags, as [`PageFlags::names`] gives them,
    /// without allocating for the named ones.
    pub fn name_iter(self) -> impl Iterator<Item = std::borrow::Cow<'static, str>> {
        (0..64u32)
            .filter(move |b| self.0 & (1u64 << b) != 0)
            .map(move |b| self.bit_name(b))
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

    /// The word with a huge page's head/tail position folded away: the
    /// pages of one hugetlb page or THP differ only in `compound_head` /
    /// `compound_tail`, and the row they make says `huge` or `thp` instead.
    pub fn folded(self) -> PageFlags {
        if self.0 & (HUGE | THP) != 0 {
            PageFlags(self.0 & !(COMPOUND_HEAD | COMPOUND_TAIL))
        } else {
            self
        }
    }

    /// What decides whether two neighbouring pages share a row: every bit
    /// with `raw`; otherwise the folded word without [`VOLATILE`] bits.
    pub fn row_key(self, raw: bool) -> u64 {
        if raw {
            self.0
        } else {
            self.folded().0 & !VOLATILE
        }
    }
}

/// One row: `pages` neighbouring pages from page index `first`, and the
/// flags every one of them has (`None`: frames without a kpageflags word).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct FlagRow {
    /// Index of the row's first page in the sequence.
    pub first: u64,
    /// Pages in the row, at least 1.
    pub pages: u64,
    /// The flags every page of the row has; `None` for frames without a
    /// kpageflags word.
    pub flags: Option<PageFlags>,
}

/// Cuts a sequence of pages into rows: a new row starts where the row key
/// ([`PageFlags::row_key`]) changes, where a word is missing on one side
/// only, or where the caller says (a mapping or address boundary). A row's
/// flags are the bits all of its pages have, with a huge page's
/// head/tail position folded away.
#[derive(Debug)]
pub struct RowSplitter {
    raw: bool,
    current: Option<(FlagRow, Option<u64>)>,
}

impl RowSplitter {
    /// `raw`: split on every bit, report words as read.
    pub fn new(raw: bool) -> Self {
        Self { raw, current: None }
    }

    /// Adds page `index` (one past the previous page unless `boundary`),
    /// returning the row it finished, if any.
    pub fn push(
        &mut self,
        index: u64,
        flags: Option<PageFlags>,
        boundary: bool,
    ) -> Option<FlagRow> {
        let key = flags.map(|f| f.row_key(self.raw));
        let shown = flags.map(|f| if self.raw { f } else { f.folded() });
        if let Some((row, row_key)) = self.current.as_mut() {
            if !boundary && *row_key == key && row.first + row.pages == index {
                row.pages += 1;
                row.flags = row.flags.zip(shown).map(|(a, b)| PageFlags(a.0 & b.0));
                return None;
            }
        }
        let started = FlagRow {
            first: index,
            pages: 1,
            flags: shown,
        };
        self.current
            .replace((started, key))
            .map(|(finished, _)| finished)
    }

    /// The last row, if any page was pushed.
    pub fn finish(self) -> Option<FlagRow> {
        self.current.map(|(row, _)| row)
    }
}

/// The rows of consecutive pages with words `words`, from index 0.
pub fn split_rows(words: &[Option<PageFlags>], raw: bool) -> Vec<FlagRow> {
    let mut splitter = RowSplitter::new(raw);
    let mut rows: Vec<FlagRow> = words
        .iter()
        .enumerate()
        .filter_map(|(i, w)| splitter.push(i as u64, *w, false))
        .collect();
    rows.extend(splitter.finish());
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    // Words captured on this project's Linux 6.18 test machine (x86_64,
    // 4 KiB pages) by reading /proc/self/pagemap and /proc/kpageflags.
    /// Anonymous page of a private mapping, written once.
    const ANON_4K: u64 = 0x4_0000_5808;
    /// Shared memfd page, written once.
    const MEMFD_4K: u64 = 0x4838;
    /// Anonymous THP (madvise) head and tail.
    const THP_HEAD: u64 = 0x4_0040_d828;
    const THP_TAIL: u64 = 0x4_0041_5828;
    /// Anonymous hugetlb (MAP_HUGETLB, 2 MiB) head and tail.
    const HUGETLB_HEAD: u64 = 0x4_0002_9808;
    const HUGETLB_TAIL: u64 = 0x4_0003_1808;

    fn huge_page(head: u64, tail: u64) -> Vec<Option<PageFlags>> {
        let mut words = vec![Some(PageFlags(head))];
        words.extend(std::iter::repeat_n(Some(PageFlags(tail)), 511));
        words
    }

    #[test]
    fn names_memfd_page() {
        let f = PageFlags(MEMFD_4K);
        assert_eq!(
            f.names(),
            ["uptodate", "dirty", "lru", "mmap", "swapbacked"]
        );
        assert!(f.contains(SWAPBACKED | MMAP));
        assert!(!f.contains(ANON));
    }

    #[test]
    fn bit_34_of_an_anonymous_page_is_anon_exclusive() {
        assert_eq!(
            PageFlags(ANON_4K).names(),
            [
                "uptodate",
                "mmap",
                "anonymous",
                "swapbacked",
                "anon_exclusive"
            ]
        );
        assert!(PageFlags(HUGETLB_HEAD)
            .names()
            .contains(&"anon_exclusive".to_string()));
        // Not anonymous: page-types keeps the plain name.
        assert_eq!(PageFlags(OWNER_2).names(), ["owner_2"]);
    }

    #[test]
    fn bit_25_is_idle_page() {
        // No idle tracking on the capture machine: the captured anon word
        // with the idle bit set, as /sys/kernel/mm/page_idle would leave it.
        let names = PageFlags(ANON_4K | IDLE).names();
        assert!(names.contains(&"idle_page".to_string()), "{names:?}");
        assert!(!names.contains(&"idle".to_string()));
    }

    #[test]
    fn slab_and_readahead_overloads_are_named_by_kind() {
        assert_eq!(PageFlags(SLAB | ACTIVE).names(), ["slub_frozen", "slab"]);
        assert_eq!(PageFlags(SLAB | ERROR).names(), ["slub_debug", "slab"]);
        assert_eq!(PageFlags(ACTIVE).names(), ["active"]);
        assert_eq!(PageFlags(RECLAIM).names(), ["readahead"]);
        assert_eq!(
            PageFlags(RECLAIM | WRITEBACK).names(),
            ["writeback", "reclaim"]
        );
    }

    #[test]
    fn hacker_bits_and_unknown_bits() {
        let f = PageFlags(MLOCKED | (1 << 50));
        assert_eq!(f.names(), ["mlocked", "bit50"]);
        assert_eq!(PageFlags(0).describe(), "-");
    }

    #[test]
    fn a_hugetlb_page_is_one_row_that_says_huge() {
        let rows = split_rows(&huge_page(HUGETLB_HEAD, HUGETLB_TAIL), false);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0].pages, 512);
        let names = rows[0].flags.unwrap().names();
        assert!(names.contains(&"huge".to_string()), "{names:?}");
        assert!(
            !names.iter().any(|n| n.starts_with("compound")),
            "{names:?}"
        );
        // Raw rows keep the head apart from its tails, as read.
        let raw = split_rows(&huge_page(HUGETLB_HEAD, HUGETLB_TAIL), true);
        assert_eq!(raw.len(), 2);
        assert_eq!(raw[0].flags, Some(PageFlags(HUGETLB_HEAD)));
        assert_eq!((raw[1].first, raw[1].pages), (1, 511));
    }

    #[test]
    fn a_thp_is_one_row_that_says_thp() {
        let mut words = huge_page(THP_HEAD, THP_TAIL);
        words.extend(huge_page(THP_HEAD, THP_TAIL));
        words.push(Some(PageFlags(ANON_4K)));
        let rows = split_rows(&words, false);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].pages, 1024);
        let names = rows[0].flags.unwrap().names();
        assert!(names.contains(&"thp".to_string()), "{names:?}");
        assert!(names.contains(&"anon_exclusive".to_string()), "{names:?}");
        assert!(
            !names.iter().any(|n| n.starts_with("compound")),
            "{names:?}"
        );
        assert_eq!(rows[1].flags, Some(PageFlags(ANON_4K)));
        assert_eq!(split_rows(&words, true).len(), 5);
    }

    #[test]
    fn volatile_bits_split_rows_only_when_raw() {
        let words = [
            Some(PageFlags(MEMFD_4K)),
            Some(PageFlags(MEMFD_4K | REFERENCED)),
            Some(PageFlags(MEMFD_4K | REFERENCED | ACTIVE)),
            Some(PageFlags(MEMFD_4K | IDLE)),
        ];
        let rows = split_rows(&words, false);
        assert_eq!(rows.len(), 1);
        // What every page has: none of the ageing bits.
        assert_eq!(rows[0].flags, Some(PageFlags(MEMFD_4K)));
        let raw = split_rows(&words, true);
        assert_eq!(raw.len(), 4);
        assert_eq!(raw[3].flags.unwrap().names().last().unwrap(), "idle_page");
        // Every page referenced: the row says so.
        let all_ref = [Some(PageFlags(MEMFD_4K | REFERENCED)); 3];
        assert!(split_rows(&all_ref, false)[0]
            .flags
            .unwrap()
            .contains(REFERENCED));
    }

    #[test]
    fn other_bits_and_missing_words_split_rows() {
        let words = [
            Some(PageFlags(MEMFD_4K)),
            Some(PageFlags(ANON_4K)),
            None,
            None,
            Some(PageFlags(ANON_4K)),
        ];
        let rows = split_rows(&words, false);
        let shape: Vec<(u64, u64)> = rows.iter().map(|r| (r.first, r.pages)).collect();
        assert_eq!(shape, [(0, 1), (1, 1), (2, 2), (4, 1)]);
        assert_eq!(rows[2].flags, None);
    }

    #[test]
    fn a_boundary_or_a_gap_in_indices_starts_a_row() {
        let mut s = RowSplitter::new(false);
        let w = Some(PageFlags(MEMFD_4K));
        assert_eq!(s.push(0, w, false), None);
        assert_eq!(s.push(1, w, false), None);
        let done = s.push(2, w, true).unwrap();
        assert_eq!((done.first, done.pages), (0, 2));
        let done = s.push(7, w, false).unwrap();
        assert_eq!((done.first, done.pages), (2, 1));
        assert_eq!(s.finish().map(|r| (r.first, r.pages)), Some((7, 1)));
    }
}
