//! The page-indexed test pattern.
//!
//! Every 8-byte little-endian word of the buffer encodes where it belongs:
//! `((offset / page) << 32 | offset % page) ^ salt`. Both the page index and
//! the offset within the page are recoverable from the bytes, so a page that
//! landed in another page's place, a zeroed page and a stale page from an
//! earlier run (another salt) are all caught, and a mismatch can say which
//! page the bytes it found came from.

use crate::addr::PageSize;
use serde::Serialize;

/// How many mismatches are described in full; the rest are only counted.
pub const MAX_REPORTED: usize = 8;

/// The pattern for one buffer: its page size and salt.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pattern {
    #[serde(skip)]
    page: PageSize,
    /// XORed into every word, so bytes of a run with another salt (a stale
    /// page) do not pass. Any value; pick a new one per run (the `unimem`
    /// crate's `fresh_salt`).
    pub salt: u64,
}

/// One word that differs from the pattern.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// Byte offset of the word in the buffer.
    pub offset: u64,
    /// The pattern word that belongs there, little-endian.
    pub expected: [u8; 8],
    /// The bytes found there. For a trailing partial word only the first
    /// bytes up to the buffer's end were read; the rest are zero.
    pub actual: [u8; 8],
    /// Buffer offset the actual bytes belong at, if they are pattern bytes
    /// of another place of this buffer.
    pub belongs_at: Option<u64>,
}

/// Result of a verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// Bytes compared against the pattern.
    pub checked_bytes: u64,
    /// 8-byte words (a trailing partial word counts as one) that differ.
    pub mismatched_words: u64,
    /// The first mismatches in buffer order, at most [`MAX_REPORTED`].
    pub first: Vec<Mismatch>,
}

impl Verification {
    /// No word differs.
    pub fn ok(&self) -> bool {
        self.mismatched_words == 0
    }
}

impl Pattern {
    /// The pattern for a buffer in pages of `page` bytes: the page index
    /// goes into the high 32 bits of each word, the offset within the page
    /// into the low 32.
    pub fn new(page: PageSize, salt: u64) -> Self {
        Self { page, salt }
    }

    /// The word that belongs at byte offset `offset` (a multiple of 8).
    pub fn word(&self, offset: u64) -> u64 {
        let index = offset >> self.page.shift();
        let within = offset & (self.page.bytes() - 1);
        ((index << 32) | within) ^ self.salt
    }

    /// Where `word` belongs, if it is a word of this pattern.
    pub fn origin(&self, word: u64) -> Option<u64> {
        let plain = word ^ self.salt;
        let within = plain & 0xffff_ffff;
        if within >= self.page.bytes() || !within.is_multiple_of(8) {
            return None;
        }
        (plain >> 32)
            .checked_mul(self.page.bytes())?
            .checked_add(within)
    }

    /// Writes the pattern into `buf`, which starts at buffer offset `base`.
    /// A trailing partial word is written with the bytes of its full word.
    ///
    /// Large buffers are split at page boundaries over the machine's cores.
    pub fn fill(&self, base: u64, buf: &mut [u8]) {
        if buf.len() < PARALLEL_MIN_BYTES || !base.is_multiple_of(8) {
            return self.fill_serial(base, buf);
        }
        let parts = split_points(base, buf.len(), self.page.bytes(), workers());
        std::thread::scope(|s| {
            let mut rest = buf;
            let mut at = 0usize;
            for &end in &parts[1..] {
                let (piece, tail) = rest.split_at_mut(end - at);
                let piece_base = base + at as u64;
                s.spawn(move || self.fill_serial(piece_base, piece));
                rest = tail;
                at = end;
            }
        });
    }

    /// [`Pattern::fill`] on this thread alone: one page piece at a time,
    /// each word computed from the piece's constant high half and a running
    /// offset, so the loop is a store per word.
    fn fill_serial(&self, base: u64, buf: &mut [u8]) {
        if !base.is_multiple_of(8) {
            return self.fill_words(base, buf);
        }
        let mut offset = base;
        let mut rest = buf;
        while !rest.is_empty() {
            let n = self.piece_len(offset, rest.len());
            let (piece, tail) = rest.split_at_mut(n);
            let high = self.high(offset);
            let mut within = offset & (self.page.bytes() - 1);
            let mut words = piece.chunks_exact_mut(8);
            for w in &mut words {
                w.copy_from_slice(&(high ^ within).to_le_bytes());
                within += 8;
            }
            let partial = words.into_remainder();
            let k = partial.len();
            partial.copy_from_slice(&(high ^ within).to_le_bytes()[..k]);
            offset += n as u64;
            rest = tail;
        }
    }

    /// The plain word-by-word fill, for a base that is not word-aligned.
    fn fill_words(&self, base: u64, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        let mut offset = base;
        for chunk in &mut chunks {
            chunk.copy_from_slice(&self.word(offset).to_le_bytes());
            offset += 8;
        }
        let rest = chunks.into_remainder();
        let n = rest.len();
        rest.copy_from_slice(&self.word(offset).to_le_bytes()[..n]);
    }

    /// The bits of every word of the page holding `offset` but its offset
    /// within the page: `word(o) == high(o) ^ (o % page)`, since the page
    /// offset occupies only the low 32 bits the index leaves clear.
    fn high(&self, offset: u64) -> u64 {
        ((offset >> self.page.shift()) << 32) ^ self.salt
    }

    /// Bytes from `offset` to the end of its page, at most `left`.
    fn piece_len(&self, offset: u64, left: usize) -> usize {
        let to_page_end = self.page.bytes() - (offset & (self.page.bytes() - 1));
        (to_page_end.min(left as u64)) as usize
    }

    /// Checks `buf` (starting at buffer offset `base`) against the pattern.
    pub fn verify(&self, base: u64, buf: &[u8]) -> Verification {
        let mut v = Verification {
            checked_bytes: buf.len() as u64,
            mismatched_words: 0,
            first: Vec::new(),
        };
        self.verify_into(base, buf, &mut v);
        v
    }

    /// Like `verify`, accumulating into `v` so a large buffer can be checked
    /// in pieces.
    ///
    /// Each page piece is compared in one pass that computes the expected
    /// words as it reads; only a piece that differs is walked again word by
    /// word to describe its mismatches. Large buffers are split at page
    /// boundaries over the machine's cores and their reports joined in
    /// buffer order, so the report is the same as from one thread.
    pub fn verify_into(&self, base: u64, buf: &[u8], v: &mut Verification) {
        if buf.len() < PARALLEL_MIN_BYTES || !base.is_multiple_of(8) {
            return self.verify_serial(base, buf, v);
        }
        let parts = split_points(base, buf.len(), self.page.bytes(), workers());
        let found: Vec<Verification> = std::thread::scope(|s| {
            let handles: Vec<_> = parts
                .windows(2)
                .map(|w| {
                    let piece = &buf[w[0]..w[1]];
                    let piece_base = base + w[0] as u64;
                    s.spawn(move || {
                        let mut part = Verification::empty();
                        self.verify_serial(piece_base, piece, &mut part);
                        part
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        for part in found {
            v.mismatched_words += part.mismatched_words;
            let room = MAX_REPORTED.saturating_sub(v.first.len());
            v.first.extend(part.first.into_iter().take(room));
        }
    }

    /// [`Pattern::verify_into`] on this thread alone.
    fn verify_serial(&self, base: u64, buf: &[u8], v: &mut Verification) {
        if !base.is_multiple_of(8) {
            return self.verify_words(base, buf, v);
        }
        let mut offset = base;
        let mut rest = buf;
        while !rest.is_empty() {
            let n = self.piece_len(offset, rest.len());
            let (piece, tail) = rest.split_at(n);
            let high = self.high(offset);
            let mut within = offset & (self.page.bytes() - 1);
            let mut diff = 0u64;
            let mut words = piece.chunks_exact(8);
            for w in &mut words {
                let got = u64::from_le_bytes(w.try_into().expect("8-byte chunk"));
                diff |= got ^ high ^ within;
                within += 8;
            }
            if diff != 0 || !words.remainder().is_empty() {
                self.verify_words(offset, piece, v);
            }
            offset += n as u64;
            rest = tail;
        }
    }

    /// The word-by-word check that describes each mismatch.
    fn verify_words(&self, base: u64, buf: &[u8], v: &mut Verification) {
        let mut offset = base;
        for chunk in buf.chunks(8) {
            let expected = self.word(offset).to_le_bytes();
            if chunk != &expected[..chunk.len()] {
                v.mismatched_words += 1;
                if v.first.len() < MAX_REPORTED {
                    let mut actual = [0u8; 8];
                    actual[..chunk.len()].copy_from_slice(chunk);
                    let belongs_at = (chunk.len() == 8)
                        .then(|| self.origin(u64::from_le_bytes(actual)))
                        .flatten();
                    v.first.push(Mismatch {
                        offset,
                        expected,
                        actual,
                        belongs_at,
                    });
                }
            }
            offset += 8;
        }
    }
}

/// Below this many bytes a fill or verify stays on the calling thread: a
/// thread costs tens of microseconds to start, what 16 MiB takes to write.
pub const PARALLEL_MIN_BYTES: usize = 16 << 20;

/// How many threads a large fill or verify uses.
fn workers() -> usize {
    static WORKERS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *WORKERS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Splits `[0, len)` of a buffer that starts at pattern offset `base` into
/// `n` parts that end on page boundaries (but the last): the returned
/// points start with 0 and end with `len`.
fn split_points(base: u64, len: usize, page: u64, n: usize) -> Vec<usize> {
    let mut points = vec![0usize];
    let share = (len / n.max(1)) as u64;
    for k in 1..n {
        let want = base + share * k as u64;
        let aligned = want.next_multiple_of(page) - base;
        let last = *points.last().expect("starts with 0") as u64;
        if aligned > last && aligned < len as u64 {
            points.push(aligned as usize);
        }
    }
    points.push(len);
    points
}

impl Verification {
    /// A verification of zero bytes, to accumulate pieces into with
    /// [`Pattern::verify_into`].
    pub fn empty() -> Self {
        Self {
            checked_bytes: 0,
            mismatched_words: 0,
            first: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern() -> Pattern {
        Pattern::new(PageSize::new(4096).unwrap(), 0x5eed_0000_0000_5eed)
    }

    #[test]
    fn page_index_and_offset_are_recoverable() {
        let p = pattern();
        for off in [0u64, 8, 4088, 4096, 4096 * 7 + 40, (1 << 30) + 8] {
            assert_eq!(p.origin(p.word(off)), Some(off));
        }
        // A zero word is not a pattern word of this salt.
        assert_eq!(p.origin(0), None);
    }

    #[test]
    fn fill_then_verify_is_clean() {
        let p = pattern();
        let mut buf = vec![0u8; 3 * 4096 + 5];
        p.fill(0, &mut buf);
        let v = p.verify(0, &buf);
        assert!(v.ok());
        assert_eq!(v.checked_bytes, buf.len() as u64);
    }

    #[test]
    fn swapped_pages_are_caught_and_located() {
        let p = pattern();
        let mut buf = vec![0u8; 4 * 4096];
        p.fill(0, &mut buf);
        let (a, b) = buf.split_at_mut(2 * 4096);
        a[4096..8192].swap_with_slice(&mut b[..4096]);
        let v = p.verify(0, &buf);
        assert_eq!(v.mismatched_words, 2 * 512);
        assert_eq!(v.first.len(), MAX_REPORTED);
        assert_eq!(v.first[0].offset, 4096);
        assert_eq!(v.first[0].belongs_at, Some(2 * 4096));
        assert_eq!(v.first[0].expected, p.word(4096).to_le_bytes());
    }

    #[test]
    fn a_zeroed_page_is_caught() {
        let p = pattern();
        let mut buf = vec![0u8; 2 * 4096];
        p.fill(0, &mut buf);
        buf[4096..].fill(0);
        let v = p.verify(0, &buf);
        assert_eq!(v.mismatched_words, 512);
        assert_eq!(v.first[0].belongs_at, None);
    }

    #[test]
    fn another_salt_does_not_verify() {
        let mut buf = vec![0u8; 4096];
        Pattern::new(PageSize::new(4096).unwrap(), 1).fill(0, &mut buf);
        assert_eq!(pattern().verify(0, &buf).mismatched_words, 512);
    }

    #[test]
    fn pieces_verify_like_the_whole() {
        let p = pattern();
        let mut buf = vec![0u8; 8 * 4096];
        p.fill(0, &mut buf);
        buf[5 * 4096 + 16] ^= 1;
        let mut v = Verification::empty();
        for (i, piece) in buf.chunks(4096).enumerate() {
            p.verify_into(i as u64 * 4096, piece, &mut v);
        }
        assert_eq!(v.mismatched_words, 1);
        assert_eq!(v.first[0].offset, 5 * 4096 + 16);
    }

    /// The fast paths (one-pass check, threads over large buffers,
    /// unaligned bases and partial words) report exactly what the plain
    /// word-by-word check reports.
    #[test]
    fn fast_paths_report_like_the_word_check() {
        let p = pattern();
        let len = PARALLEL_MIN_BYTES + 3 * 4096 + 13;
        let mut buf = vec![0u8; len];
        p.fill(0, &mut buf);
        let mut plain = vec![0u8; len];
        p.fill_words(0, &mut plain);
        assert!(buf == plain, "threaded fill differs from the plain fill");
        // Damage spread over both halves, a swapped page and the tail.
        buf[100] ^= 0x40;
        buf[len / 2 + 4096 + 8] = 0;
        let (a, b) = buf.split_at_mut(len - 3 * 4096);
        a[4096..8192].swap_with_slice(&mut b[..4096]);
        buf[len - 1] ^= 1;
        for base in [0u64, 4096 * 5, 8 * 3] {
            let mut want = Verification::empty();
            p.verify_words(base, &buf, &mut want);
            let got = p.verify(base, &buf);
            assert_eq!(got.mismatched_words, want.mismatched_words, "base {base}");
            assert_eq!(got.first, want.first, "base {base}");
        }
        let v = p.verify(0, &buf);
        assert_eq!(v.first[0].offset, 96);
        assert_eq!(v.first[1].offset, 4096);
        assert!(v.mismatched_words >= 515);
    }

    #[test]
    fn unaligned_bases_fill_and_verify_like_words() {
        let p = pattern();
        let mut a = vec![0u8; 3 * 4096 + 3];
        let mut b = a.clone();
        p.fill(4093, &mut a);
        p.fill_words(4093, &mut b);
        assert_eq!(a, b);
        assert!(p.verify(4093, &a).ok());
        let mut c = vec![0u8; 2 * 4096 + 5];
        p.fill(4096 - 16, &mut c);
        assert!(p.verify(4096 - 16, &c).ok());
        c[20] ^= 2;
        let v = p.verify(4096 - 16, &c);
        assert_eq!(v.mismatched_words, 1);
        assert_eq!(v.first[0].offset, 4096 - 16 + 16);
    }
}
