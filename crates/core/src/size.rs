//! Parsing and printing of sizes and addresses as users type them:
//! `65536`, `64K`, `16M`, `1G`, `2MiB`, `0x7f12a0000000`.

/// Why a size or address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Not a whole number with an optional K, M, G or T suffix.
    #[error("invalid size '{0}': expected a number with an optional K, M, G or T suffix (e.g. 65536, 64K, 16M, 1G)")]
    Size(String),
    /// A size of 0 bytes where a positive size is needed ([`ByteSize`]).
    #[error("size '{0}' is 0: give a size of at least one byte")]
    Zero(String),
    /// A size of 2^64 bytes or more.
    #[error("size '{0}' does not fit 64 bits")]
    SizeOverflow(String),
    /// Neither `0x`-prefixed hexadecimal nor decimal, or beyond 64 bits.
    #[error("invalid address '{0}': expected hexadecimal (0x7f12a0000000) or decimal")]
    Address(String),
}

/// A positive byte count as users type it (`65536`, `64K`, `16M`, `1G`,
/// `2MiB`): the one parser behind every size flag.
///
/// ```
/// use unimem_core::size::ByteSize;
/// let s: ByteSize = "64K".parse().unwrap();
/// assert_eq!(s.bytes(), 65536);
/// assert!("0".parse::<ByteSize>().is_err());
/// assert!("1.5G".parse::<ByteSize>().is_err());
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(u64);

impl ByteSize {
    /// `bytes`, if it is not 0.
    pub const fn new(bytes: u64) -> Option<Self> {
        if bytes == 0 {
            None
        } else {
            Some(Self(bytes))
        }
    }

    /// The count of bytes, never 0.
    pub const fn bytes(self) -> u64 {
        self.0
    }
}

impl std::str::FromStr for ByteSize {
    type Err = ParseError;

    /// Parses as [`parse_size`] does, and refuses 0: no flag of unimem
    /// takes an empty size.
    fn from_str(text: &str) -> Result<Self, ParseError> {
        Self::new(parse_size(text)?).ok_or_else(|| ParseError::Zero(text.to_string()))
    }
}

impl std::fmt::Display for ByteSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&human(self.0))
    }
}

impl From<ByteSize> for u64 {
    fn from(s: ByteSize) -> u64 {
        s.0
    }
}

/// Parses a byte count with an optional binary suffix (K, M, G, T; an
/// optional trailing `B` or `iB` is accepted). Zero parses; callers that
/// need a positive size say so themselves.
pub fn parse_size(text: &str) -> Result<u64, ParseError> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, suffix) = t.split_at(digits_end);
    if digits.is_empty() {
        return Err(ParseError::Size(text.to_string()));
    }
    let shift = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(ParseError::Size(text.to_string())),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| ParseError::SizeOverflow(text.to_string()))?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| ParseError::SizeOverflow(text.to_string()))
}

/// Parses an address: `0x`-prefixed hexadecimal, or decimal.
pub fn parse_address(text: &str) -> Result<u64, ParseError> {
    let t = text.trim();
    let parsed = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(&hex.replace('_', ""), 16),
        None => t.parse(),
    };
    parsed.map_err(|_| ParseError::Address(text.to_string()))
}

/// A byte count for humans: `64 KiB`, `1.5 GiB`, `4096 B`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut unit = 0;
    let mut value = bytes as f64;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else if value.fract() == 0.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64k"), Ok(65536));
        assert_eq!(parse_size("16M"), Ok(16 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("4GB"), Ok(4 << 30));
        assert_eq!(parse_size("0"), Ok(0));
    }

    #[test]
    fn bad_sizes() {
        assert!(matches!(parse_size("abc"), Err(ParseError::Size(_))));
        assert!(matches!(parse_size(""), Err(ParseError::Size(_))));
        assert!(matches!(parse_size("-1"), Err(ParseError::Size(_))));
        assert!(matches!(parse_size("1.5G"), Err(ParseError::Size(_))));
        assert!(matches!(parse_size("12Q"), Err(ParseError::Size(_))));
        assert!(matches!(
            parse_size("99999999999999999999"),
            Err(ParseError::SizeOverflow(_))
        ));
        assert!(matches!(
            parse_size("17000000T"),
            Err(ParseError::SizeOverflow(_))
        ));
    }

    #[test]
    fn byte_sizes_refuse_zero_and_keep_the_parse() {
        assert_eq!("16M".parse::<ByteSize>().map(ByteSize::bytes), Ok(16 << 20));
        assert_eq!("0".parse::<ByteSize>(), Err(ParseError::Zero("0".into())));
        assert_eq!("0K".parse::<ByteSize>(), Err(ParseError::Zero("0K".into())));
        assert!(matches!("x".parse::<ByteSize>(), Err(ParseError::Size(_))));
        assert_eq!(ByteSize::new(3 << 29).unwrap().to_string(), "1.5 GiB");
    }

    #[test]
    fn addresses() {
        assert_eq!(parse_address("0x7f12a0000000"), Ok(0x7f12a0000000));
        assert_eq!(parse_address("0X10"), Ok(16));
        assert_eq!(parse_address("4096"), Ok(4096));
        assert!(parse_address("0xzz").is_err());
        assert!(parse_address("").is_err());
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human(4096), "4 KiB");
        assert_eq!(human(100), "100 B");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
