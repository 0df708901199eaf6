//! unimem: the I/O half.
