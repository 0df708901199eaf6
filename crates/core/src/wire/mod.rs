//! The wire format shared by the client, the Linux resolver service and the
//! CybMemDriver DEXT (`dext/include/unimem_wire.h` is its C twin; a test
//! compiles that header and proves every size and offset agrees).
//!
//! Every message is one fixed-size, little-endian, `#[repr(C)]` struct that
//! starts with a [`Header`]. On macOS a request is the input struct of
//! `IOConnectCallStructMethod(selector)` and the reply its output struct; on
//! Linux each is one `SOCK_SEQPACKET` message, the surface's fd riding with
//! the prepare request as `SCM_RIGHTS`. A reply is either the selector's
//! reply struct or, on failure, a bare header whose `status` is a non-zero
//! `IOReturn` and whose `detail` carries the OS's own code (an errno on
//! Linux) where there is one.
//!
//! Protocol: `HANDSHAKE` first (the client checks the version); `PREPARE`
//! maps and pins `[offset, offset+length)` of the surface and returns a
//! handle and the first segments; `SEGMENTS` returns more from a
//! continuation (a byte offset into the prepared range); `COMPLETE` releases
//! the handle; `CHECKSUM` hashes a range through the resolver's own mapping.
//! A segments reply carries up to [`SEGMENTS_PER_REPLY`] segments so it fits
//! the 4096 bytes IOKit passes inband.
//!
//! Fields are zerocopy little-endian integers (alignment 1), so any byte
//! slice of the right length decodes without undefined behaviour; the layout
//! keeps every field at its natural alignment so the C header, with plain
//! `uint64_t` fields, has identical offsets.

mod layout;
pub mod refusal;
mod reply;
mod request;

pub use layout::*;
pub use refusal::{Rule, RULE_BASE};
pub use reply::Reply;
pub use request::Request;
/// The little-endian integers of every wire field: `.get()` reads one,
/// `new` makes one.
pub use zerocopy::little_endian::{U16, U32, U64};

use crate::iokit::IoReturn;
use zerocopy::{FromBytes, Immutable, KnownLayout};

/// "UNMM" as little-endian bytes.
pub const MAGIC: u32 = 0x4D4D_4E55;
/// The protocol version this build speaks.
pub const VERSION: u16 = 1;
/// Largest message either side sends: IOKit's inband struct limit.
pub const MAX_MESSAGE: usize = 4096;
/// Segments carried by one [`SegmentsReply`].
pub const SEGMENTS_PER_REPLY: usize = 252;
/// Length of the server version string field, NUL-padded.
pub const SERVER_VERSION_LEN: usize = 32;

/// Selector numbers (the `IOConnectCallStructMethod` selector on macOS).
pub mod selector {
    /// Negotiates the protocol version; must come first on a connection.
    pub const HANDSHAKE: u16 = 0;
    /// Resolves and pins a range of the surface; returns a handle and the
    /// first segments.
    pub const PREPARE: u16 = 1;
    /// Returns the segments of a prepared handle from a continuation on.
    pub const SEGMENTS: u16 = 2;
    /// Releases a prepared handle and its pin.
    pub const COMPLETE: u16 = 3;
    /// Checksums part of a prepared range through the resolver's mapping.
    pub const CHECKSUM: u16 = 4;
    /// One past the last selector.
    pub const COUNT: u16 = 5;

    /// The selector's name in messages ("prepare"), or "unknown" for a
    /// number at or beyond [`COUNT`].
    pub fn name(selector: u16) -> &'static str {
        match selector {
            HANDSHAKE => "handshake",
            PREPARE => "prepare",
            SEGMENTS => "segments",
            COMPLETE => "complete",
            CHECKSUM => "checksum",
            _ => "unknown",
        }
    }
}

/// Size of the request struct for `selector`.
pub fn request_size(selector: u16) -> Option<usize> {
    Some(match selector {
        selector::HANDSHAKE => size_of::<HandshakeRequest>(),
        selector::PREPARE => size_of::<PrepareRequest>(),
        selector::SEGMENTS => size_of::<SegmentsRequest>(),
        selector::COMPLETE => size_of::<CompleteRequest>(),
        selector::CHECKSUM => size_of::<ChecksumRequest>(),
        _ => return None,
    })
}

/// Size of the successful reply struct for `selector`.
pub fn reply_size(selector: u16) -> Option<usize> {
    Some(match selector {
        selector::HANDSHAKE => size_of::<HandshakeReply>(),
        selector::PREPARE | selector::SEGMENTS => size_of::<SegmentsReply>(),
        selector::COMPLETE => size_of::<CompleteReply>(),
        selector::CHECKSUM => size_of::<ChecksumReply>(),
        _ => return None,
    })
}

/// Why a message did not decode. Each maps to the status an error reply
/// carries ([`WireError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The message, of this many bytes, cannot even hold a [`Header`].
    #[error("message of {0} bytes is shorter than the 16-byte header")]
    Truncated(usize),
    /// The header's `magic` (shown) is not [`MAGIC`].
    #[error("bad magic {0:#010x} (expected {MAGIC:#010x}): not a unimem message")]
    BadMagic(u32),
    /// A message other than a handshake carries a version this side does
    /// not speak.
    #[error("protocol version {got} is not supported (this side speaks {VERSION})")]
    BadVersion {
        /// The version in the message's header.
        got: u16,
    },
    /// The header's selector (shown) is at or beyond [`selector::COUNT`].
    #[error("unknown selector {0}")]
    UnknownSelector(u16),
    /// The message is not exactly the size of its selector's struct.
    #[error("{name} message is {got} bytes, expected {expected}")]
    BadLength {
        /// What the message was meant to be ("prepare", "error reply").
        name: &'static str,
        /// Its length in bytes.
        got: usize,
        /// The size of the struct it must be, in bytes.
        expected: usize,
    },
    /// A reply answers a different selector than the request asked.
    #[error("reply is for selector {got}, expected {expected}")]
    WrongSelector {
        /// The selector in the reply's header.
        got: u16,
        /// The selector of the request it should answer.
        expected: u16,
    },
    /// The named reserved field (or a request header's status or detail)
    /// is not zero.
    #[error("reserved field {0} is not zero")]
    Reserved(&'static str),
    /// A field holds a value the protocol forbids; says which and why.
    #[error("invalid field: {0}")]
    Invalid(&'static str),
}

impl WireError {
    /// The `IOReturn` an error reply carries for this failure.
    pub fn status(&self) -> IoReturn {
        match self {
            WireError::BadVersion { .. } | WireError::UnknownSelector(_) => IoReturn::UNSUPPORTED,
            _ => IoReturn::BAD_ARGUMENT,
        }
    }
}

impl Header {
    /// A header of this build's [`MAGIC`] and [`VERSION`] for `selector`;
    /// requests and successful replies pass [`IoReturn::SUCCESS`] and 0.
    pub const fn new(selector: u16, status: IoReturn, detail: u32) -> Self {
        Header {
            magic: U32::new(MAGIC),
            version: U16::new(VERSION),
            selector: U16::new(selector),
            status: U32::new(status.bits()),
            detail: U32::new(detail),
        }
    }

    /// The `status` field as an [`IoReturn`]; non-zero marks an error reply.
    pub fn status(&self) -> IoReturn {
        IoReturn::from_bits(self.status.get())
    }

    /// Reads and checks the header at the start of `message`: size and magic.
    pub fn parse(message: &[u8]) -> Result<Header, WireError> {
        let (header, _) =
            Header::read_from_prefix(message).map_err(|_| WireError::Truncated(message.len()))?;
        if header.magic.get() != MAGIC {
            return Err(WireError::BadMagic(header.magic.get()));
        }
        Ok(header)
    }
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Header")
            .field("magic", &format_args!("{:#010x}", self.magic.get()))
            .field("version", &self.version.get())
            .field(
                "selector",
                &format_args!(
                    "{} ({})",
                    self.selector.get(),
                    selector::name(self.selector.get())
                ),
            )
            .field("status", &self.status())
            .field("detail", &self.detail.get())
            .finish()
    }
}

/// Reads `message` as exactly one `T`, or says which size was expected.
fn exact<T: FromBytes + KnownLayout + Immutable>(
    message: &[u8],
    selector: u16,
) -> Result<T, WireError> {
    T::read_from_bytes(message).map_err(|_| WireError::BadLength {
        name: selector::name(selector),
        got: message.len(),
        expected: size_of::<T>(),
    })
}

/// Refuses a reserved field that is not zero.
fn zero(value: u64, name: &'static str) -> Result<(), WireError> {
    if value == 0 {
        Ok(())
    } else {
        Err(WireError::Reserved(name))
    }
}

#[cfg(test)]
mod tests;
