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
    pub salt: u64,
}

/// One word that differs from the pattern.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Mismatch {
    /// Byte offset of the word in the buffer.
    pub offset: u64,
    pub expected: [u8; 8],
    pub actual: [u8; 8],
    /// Buffer offset the actual bytes belong at, if they are pattern bytes
    /// of another place of this buffer.
    pub belongs_at: Option<u64>,
}

/// Result of a verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Verification {
    pub checked_bytes: u64,
    pub mismatched_words: u64,
    pub first: Vec<Mismatch>,
}

impl Verification {
    pub fn ok(&self) -> bool {
        self.mismatched_words == 0
    }
}

impl Pattern {
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
    pub fn fill(&self, base: u64, buf: &mut [u8]) {
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
    pub fn verify_into(&self, base: u64, buf: &[u8], v: &mut Verification) {
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

impl Verification {
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
}
