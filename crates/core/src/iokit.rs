//! `IOReturn` status codes as a newtype with named constants.
//!
//! The wire format carries status as an `IOReturn` on both platforms, so the
//! Linux service and the DEXT report failures in one vocabulary. A newtype,
//! not an enum: an unknown value from the OS or a peer is still a value.
//! Values from xnu `iokit/IOKit/IOReturn.h` (`0xE0000000 | code`).

use std::fmt;

/// An `IOReturn`: 0 for success, otherwise `0xE0000000 | code` for the
/// codes below (`sys_iokit | sub_iokit_common`). Any value is
/// representable, known or not; [`IoReturn::name`] tells which are known.
#[derive(Copy, Clone, PartialEq, Eq, Hash)]
pub struct IoReturn(pub i32);

macro_rules! codes {
    ($($name:ident = $code:literal, $cname:literal, $text:literal;)*) => {
        impl IoReturn {
            $(
                #[doc = concat!("`", $cname, "`: ", $text, ".")]
                pub const $name: IoReturn = IoReturn((0xE000_0000u32 | $code) as i32);
            )*

            /// The constant's name, if the value is one we know.
            pub fn name(self) -> Option<&'static str> {
                match self {
                    IoReturn::SUCCESS => Some("kIOReturnSuccess"),
                    $(IoReturn::$name => Some($cname),)*
                    _ => None,
                }
            }

            /// What the code means, in words.
            pub fn describe(self) -> &'static str {
                match self {
                    IoReturn::SUCCESS => "success",
                    $(IoReturn::$name => $text,)*
                    _ => "unknown status",
                }
            }
        }
    };
}

impl IoReturn {
    /// `kIOReturnSuccess`: 0, the status of every request and every
    /// successful reply.
    pub const SUCCESS: IoReturn = IoReturn(0);

    /// Whether this is [`IoReturn::SUCCESS`]; every other value is a failure.
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }

    /// The value as the wire's unsigned `status` field carries it.
    pub const fn bits(self) -> u32 {
        self.0 as u32
    }

    /// The status a wire `status` field carries, known or not.
    pub const fn from_bits(bits: u32) -> Self {
        IoReturn(bits as i32)
    }
}

codes! {
    ERROR = 0x2BC, "kIOReturnError", "general error";
    NO_MEMORY = 0x2BD, "kIOReturnNoMemory", "cannot allocate memory";
    NO_RESOURCES = 0x2BE, "kIOReturnNoResources", "resource shortage";
    IPC_ERROR = 0x2BF, "kIOReturnIPCError", "error during IPC";
    NO_DEVICE = 0x2C0, "kIOReturnNoDevice", "no such device";
    NOT_PRIVILEGED = 0x2C1, "kIOReturnNotPrivileged", "privilege violation";
    BAD_ARGUMENT = 0x2C2, "kIOReturnBadArgument", "invalid argument";
    EXCLUSIVE_ACCESS = 0x2C5, "kIOReturnExclusiveAccess", "exclusive access and device already open";
    UNSUPPORTED = 0x2C7, "kIOReturnUnsupported", "unsupported function";
    VM_ERROR = 0x2C8, "kIOReturnVMError", "misc. VM failure";
    IO_ERROR = 0x2CA, "kIOReturnIOError", "general I/O error";
    CANNOT_LOCK = 0x2CC, "kIOReturnCannotLock", "cannot acquire lock";
    NOT_OPEN = 0x2CD, "kIOReturnNotOpen", "device not open";
    NOT_READY = 0x2D8, "kIOReturnNotReady", "not ready";
    NO_SPACE = 0x2DB, "kIOReturnNoSpace", "no space for data";
    CANNOT_WIRE = 0x2DE, "kIOReturnCannotWire", "cannot wire physical memory";
    NOT_PERMITTED = 0x2E2, "kIOReturnNotPermitted", "not permitted";
    NO_COMPLETION = 0x2EA, "kIOReturnNoCompletion", "no completion routine";
    ABORTED = 0x2EB, "kIOReturnAborted", "operation aborted";
    NOT_FOUND = 0x2F0, "kIOReturnNotFound", "data was not found";
}

impl fmt::Debug for IoReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({:#x})", self.bits()),
            None => write!(f, "IoReturn({:#x})", self.bits()),
        }
    }
}

impl fmt::Display for IoReturn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x} ({})", self.bits(), self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_match_iokit() {
        assert_eq!(IoReturn::NOT_PERMITTED.bits(), 0xE000_02E2);
        assert_eq!(IoReturn::BAD_ARGUMENT.bits(), 0xE000_02C2);
        assert_eq!(IoReturn::UNSUPPORTED.bits(), 0xE000_02C7);
        assert_eq!(IoReturn::NOT_FOUND.bits(), 0xE000_02F0);
        assert_eq!(
            IoReturn::NOT_PERMITTED.name(),
            Some("kIOReturnNotPermitted")
        );
        assert_eq!(
            format!("{}", IoReturn::NOT_PERMITTED),
            "0xe00002e2 (not permitted)"
        );
        assert_eq!(IoReturn::from_bits(0xE000_0123).name(), None);
    }
}
