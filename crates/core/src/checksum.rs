//! The checksum both ends of the wire compute over a prepared range, so a
//! client can prove the resolver resolved the very bytes the client wrote.
//!
//! FNV-1a over 64-bit little-endian words (`h = (h ^ word) * prime`, with
//! the 64-bit FNV offset basis and prime). Word-wise so it runs at memory
//! speed, simple enough that the DEXT's C++ computes the same value from the
//! same definition. Lengths must be multiples of 8: ranges are page-aligned.

/// The wire's `algorithm` value for this checksum (the only one defined;
/// 0 is never valid).
pub const ALGORITHM_FNV1A64_WORDS: u32 = 1;
/// The 64-bit FNV offset basis: the checksum of zero bytes.
pub const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// The 64-bit FNV prime each word's mix is multiplied by.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Running checksum, fed in pieces of whole words. Feeding a range in
/// pieces gives the same value as feeding it at once, so a large surface can
/// be hashed in chunks.
///
/// ```
/// use unimem_core::checksum::{checksum, Checksum};
/// let bytes: Vec<u8> = (0..64).collect();
/// let mut running = Checksum::default();
/// running.update(&bytes[..16]);
/// running.update(&bytes[16..]);
/// assert_eq!(running.value(), checksum(&bytes));
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Checksum(u64);

impl Default for Checksum {
    fn default() -> Self {
        Self(FNV_OFFSET_BASIS)
    }
}

impl Checksum {
    /// Feeds `bytes`, whose length must be a multiple of 8 (a trailing
    /// partial word is ignored; callers check lengths first).
    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for w in bytes.chunks_exact(8) {
            let word = u64::from_le_bytes(w.try_into().expect("chunks_exact yields 8 bytes"));
            h = (h ^ word).wrapping_mul(FNV_PRIME);
        }
        self.0 = h;
    }

    /// The checksum of every word fed so far: what a checksum reply
    /// carries in its `checksum` field.
    pub fn value(self) -> u64 {
        self.0
    }
}

/// Checksum of `bytes` in one go.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut c = Checksum::default();
    c.update(bytes);
    c.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        // Computed independently from the definition (Python big integers
        // mod 2^64); the DEXT's host test checks the same vectors.
        assert_eq!(checksum(&[]), FNV_OFFSET_BASIS);
        assert_eq!(checksum(&[0; 8]), 0xaf63_bd4c_8601_b7df);
        let bytes: Vec<u8> = (0..32).collect();
        assert_eq!(checksum(&bytes), 0x052d_c82d_2f43_6945);
    }

    #[test]
    fn pieces_equal_whole_and_order_matters() {
        let data: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();
        let mut c = Checksum::default();
        c.update(&data[..1024]);
        c.update(&data[1024..]);
        assert_eq!(c.value(), checksum(&data));
        let mut swapped = data.clone();
        swapped[..8].copy_from_slice(&data[8..16]);
        swapped[8..16].copy_from_slice(&data[..8]);
        assert_ne!(checksum(&swapped), checksum(&data));
    }
}
