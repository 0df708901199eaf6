//! What every probe checks, whatever the platform: a checksum the resolver
//! computed through its own mapping, compared with ours over the same
//! bytes, and the salt that makes each run's pattern differ from the last.

use unimem_core::checksum::checksum;

/// One resolver checksum, compared with ours over the same bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ChecksumCheck {
    /// Byte offset of the checked range from the start of the surface.
    pub offset: u64,
    /// Length of the checked range in bytes.
    pub length: u64,
    /// The checksum the resolver computed through its own mapping.
    pub resolver: u64,
    /// The checksum this process computed over the same bytes.
    pub local: u64,
}

impl ChecksumCheck {
    /// Compares the resolver's `value` over `[offset, offset + length)` with
    /// our checksum of the same bytes of `surface`. A range outside the
    /// surface cannot match: `local` is then the complement of `value`.
    pub fn against(surface: &[u8], offset: u64, length: u64, value: u64) -> Self {
        let local = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(offset.saturating_add(length)).ok())
            .and_then(|(s, e)| surface.get(s..e))
            .map_or(!value, checksum);
        ChecksumCheck {
            offset,
            length,
            resolver: value,
            local,
        }
    }

    /// Whether the two checksums agree, i.e. the resolver's mapping shows
    /// the bytes this process wrote.
    pub fn ok(&self) -> bool {
        self.resolver == self.local
    }
}

/// A salt that differs between runs and between calls, so stale bytes
/// never verify: the clock and the process id tell runs apart, a counter
/// tells calls apart when the clock does not move between them.
pub fn fresh_salt() -> u64 {
    static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    // An odd multiplier is a bijection on u64, so distinct counters stay
    // distinct after mixing.
    let mixed = (t ^ (u64::from(std::process::id()) << 32)).rotate_left(17)
        ^ n.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mixed | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_bytes_match_and_outside_ranges_never_do() {
        let bytes: Vec<u8> = (0..64u8).collect();
        let good = checksum(&bytes[8..40]);
        assert!(ChecksumCheck::against(&bytes, 8, 32, good).ok());
        assert!(!ChecksumCheck::against(&bytes, 8, 32, good ^ 1).ok());
        assert!(!ChecksumCheck::against(&bytes, 48, 32, good).ok());
        assert!(!ChecksumCheck::against(&bytes, u64::MAX, 2, good).ok());
    }

    #[test]
    fn successive_salts_differ() {
        let salts: std::collections::HashSet<u64> = (0..10_000).map(|_| fresh_salt()).collect();
        assert_eq!(salts.len(), 10_000, "two calls gave the same salt");
    }
}
