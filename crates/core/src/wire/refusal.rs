//! Which rule refused a request, carried in an error reply's `detail`: part
//! of the wire contract, mirrored as `UNIMEM_RULE_*` in the C header.
//!
//! An error reply is a bare header: an `IOReturn` status and a 32-bit
//! `detail`. For a failure of the OS, `detail` is its errno (always below
//! 4096). For a refusal by one of the resolver's own rules, `detail` is
//! [`RULE_BASE`] plus the rule's number, so the client can say which rule
//! refused without a free-text field in the wire format. Numbers are never
//! reused: a new rule takes the next one.

use crate::iokit::IoReturn;

/// `detail` values at or above this name a [`Rule`]; below it, an errno.
pub const RULE_BASE: u32 = 0x1_0000;

macro_rules! rules {
    ($($name:ident = $n:literal, $status:ident, $text:literal;)*) => {
        /// A rule of the service that can refuse a request.
        #[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
        #[allow(missing_docs)] // each rule is described by `describe`
        pub enum Rule { $($name = $n,)* }

        impl Rule {
            /// Every rule, in number order.
            pub const ALL: &'static [Rule] = &[$(Rule::$name,)*];

            /// The rule's name as in the source (`NotShrinkSealed`).
            pub fn name(self) -> &'static str {
                match self { $(Rule::$name => stringify!($name),)* }
            }

            /// The rule named by an error reply's `detail`, if it names one.
            pub fn from_detail(detail: u32) -> Option<Rule> {
                match detail.checked_sub(RULE_BASE)? {
                    $($n => Some(Rule::$name),)*
                    _ => None,
                }
            }

            /// The status an error reply carries for this rule.
            pub fn status(self) -> IoReturn {
                match self { $(Rule::$name => IoReturn::$status,)* }
            }

            /// What the rule is, in words (for messages on both sides).
            pub fn describe(self) -> &'static str {
                match self { $(Rule::$name => $text,)* }
            }
        }
    };
}

rules! {
    Policy = 1, NOT_PRIVILEGED,
        "the service's policy does not admit this user (see --allow-uid / --allow-gid)";
    Connections = 2, NO_RESOURCES, "the service has reached its limit of connections";
    PrepareBytes = 3, NO_RESOURCES, "the range exceeds the service's limit of bytes per prepare";
    ConnectionBytes = 4, NO_RESOURCES,
        "the range would exceed the service's limit of prepared bytes per connection";
    TotalBytes = 5, NO_RESOURCES,
        "the range would exceed the service's limit of prepared bytes for all clients";
    Handles = 6, NO_RESOURCES, "the connection has reached its limit of prepared ranges";
    FdKind = 7, UNSUPPORTED,
        "the fd is not a memfd, tmpfs or hugetlbfs file (only those can be pinned)";
    MissingFd = 8, BAD_ARGUMENT, "a prepare request must carry the surface's fd";
    ExtraFds = 9, BAD_ARGUMENT,
        "the message carries fds it must not (prepare takes exactly one, others none)";
    Range = 10, BAD_ARGUMENT, "the range is empty or runs past the end of the file";
    Alignment = 11, BAD_ARGUMENT, "the offset or length is not a multiple of the page size";
    UnknownHandle = 12, NOT_FOUND, "no prepared range has this handle on this connection";
    Continuation = 13, BAD_ARGUMENT,
        "the continuation is not a page-aligned offset within the prepared range";
    Oversized = 14, BAD_ARGUMENT, "the message is larger than any request (4096 bytes)";
    Malformed = 15, BAD_ARGUMENT,
        "the message is not a well-formed request (size, magic or reserved fields)";
    HandshakeFirst = 16, NOT_READY, "the first request on a connection must be the handshake";
    ChecksumRange = 17, BAD_ARGUMENT,
        "the checksum range is empty, not a multiple of 8 bytes, or past the prepared range";
    FdAccess = 18, NOT_PERMITTED, "the fd must be open for reading and writing";
    ClientVa = 19, BAD_ARGUMENT, "client_va must be 0 on Linux (the fd names the memory)";
    NotPresent = 20, CANNOT_WIRE, "some pages have no frame after pinning";
    IdleTimeout = 21, ABORTED,
        "the connection was closed after it sent nothing for --idle-timeout while holding \
         nothing prepared; connect again";
    NotShrinkSealed = 22, NOT_PERMITTED,
        "the memfd is not sealed against shrinking: create it with MFD_ALLOW_SEALING and seal it \
         with fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) before preparing";
    NotBacked = 23, NOT_READY,
        "part of the range has no memory yet (a hole): write or populate the surface first; \
         the service never allocates a client's memory";
    SurfaceChanged = 24, NOT_READY,
        "the surface changed since prepare (its pages were truncated, punched out or replaced); \
         prepare it again";
    WriteSealed = 25, NOT_PERMITTED,
        "the surface is sealed against writing (F_SEAL_WRITE or F_SEAL_FUTURE_WRITE); the \
         service resolves only surfaces a device may write";
    UserConnections = 26, NO_RESOURCES,
        "this user has reached the service's limit of connections per user \
         (--max-user-connections)";
    UserBytes = 27, NO_RESOURCES,
        "the range would exceed the service's limit of prepared bytes per user \
         (--max-user-bytes)";
    HandshakeTimeout = 28, ABORTED,
        "the connection was closed because it did not complete the handshake within \
         --handshake-timeout; connect again";
    TooManyRefusals = 29, ABORTED,
        "the connection was closed after too many bad requests in a row (--max-refusals); fix \
         the client and connect again";
}

impl Rule {
    /// Whether a request refused by this rule is a bad frame: malformed,
    /// out of protocol, or naming what the connection does not hold. Only
    /// those count towards closing a connection (`--max-refusals`); a
    /// well-formed request refused for a limit or for the state of the
    /// surface may be retried.
    pub fn is_bad_frame(self) -> bool {
        matches!(
            self,
            Rule::Oversized
                | Rule::Malformed
                | Rule::HandshakeFirst
                | Rule::ExtraFds
                | Rule::MissingFd
                | Rule::ClientVa
                | Rule::UnknownHandle
                | Rule::Continuation
                | Rule::ChecksumRange
                | Rule::Alignment
                | Rule::Range
                | Rule::FdKind
                | Rule::FdAccess
        )
    }

    /// The `detail` an error reply carries for this rule.
    pub fn detail(self) -> u32 {
        RULE_BASE + self as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_round_trip_and_never_look_like_errnos() {
        for &r in Rule::ALL {
            assert!(r.detail() > 4095);
            assert_eq!(Rule::from_detail(r.detail()), Some(r));
        }
        assert_eq!(Rule::from_detail(12), None);
        assert_eq!(Rule::from_detail(RULE_BASE + 999), None);
    }
}
