//! Failures of the macOS backend, one variant per thing a user does
//! something different about. Each message says what happened and what to
//! do; DEVELOPMENT.md shows each as the client prints it.

use unimem_core::iokit::IoReturn;
use unimem_core::wire::{selector, WireError};

/// The IOUserClass (and hence the service name) of the DEXT.
pub const DEXT_NAME: &str = "CybMemDriver";

/// What to do when the DEXT is not there, printed with [`AppleError::NotLoaded`].
pub const ACTIVATION_STEPS: &str = "\
activate it: (1) for unsigned development, disable SIP from Recovery \
(csrutil disable) and run `systemextensionsctl developer on`; \
(2) run `scripts/run_macos.sh` or open the CybMemHost app and click Activate, \
then allow the extension in System Settings > Privacy & Security; \
(3) check with `systemextensionsctl list` that org.unimem.CybMemDriver is \
[activated enabled]. See DEVELOPMENT.md.";

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppleError {
    /// No IOService named CybMemDriver: the DEXT is not loaded.
    #[error("the {DEXT_NAME} DEXT is not loaded (no IOService named \"{DEXT_NAME}\"); {ACTIVATION_STEPS}")]
    NotLoaded,

    /// kIOReturnNotPermitted from IOServiceOpen or a call.
    #[error(
        "{call} returned {status}: the DEXT refused this client. It admits \
         administrators only: run unimem as root (sudo). As root, check that the \
         DEXT's signature carries com.apple.developer.driverkit.allow-any-userclient-access, \
         and that an unsigned DEXT runs with SIP disabled and \
         `systemextensionsctl developer on`. See DEVELOPMENT.md"
    )]
    NotPermitted {
        call: &'static str,
        status: IoReturn,
    },

    /// IOServiceOpen failed for another reason.
    #[error("IOServiceOpen({DEXT_NAME}) returned {status}; check `log stream` for the DEXT (DEVELOPMENT.md)")]
    Open { status: IoReturn },

    /// The DEXT could not prepare the range (descriptor, wiring or DMA
    /// command failed), with the code the OS gave it.
    #[error("the DEXT could not prepare the buffer: {status}; its log has the failing call (DEVELOPMENT.md)")]
    PrepareFailed { status: IoReturn },

    /// IOConnectCallStructMethod itself failed: the call never reached the
    /// protocol (size mismatch with the DEXT's dispatch table, IPC error).
    #[error("IOConnectCallStructMethod({name}) returned {status}", name = selector::name(*selector))]
    Call { selector: u16, status: IoReturn },

    /// The DEXT answered a request with an error status.
    #[error("the DEXT rejected {name}: {status}", name = selector::name(*selector))]
    Rejected { selector: u16, status: IoReturn },

    /// The DEXT speaks another protocol version.
    #[error(
        "the loaded DEXT speaks protocol version {server}, this client {client}: \
         rebuild and reactivate the DEXT from this tree"
    )]
    Version { server: u16, client: u16 },

    /// A reply that breaks the wire format.
    #[error("malformed reply from the DEXT: {0}")]
    Protocol(#[from] WireError),

    /// Segments that do not form a map of the prepared range.
    #[error("segments from the DEXT do not form a map: {0}")]
    Map(#[from] unimem_core::map::MapError),

    /// A reply that decodes but does not answer what was asked.
    #[error("reply from the DEXT does not match the request: {0}")]
    Mismatch(&'static str),

    #[error("cannot make an IOSurface of {length} bytes: {reason}")]
    SurfaceSize { length: u64, reason: String },

    #[error("IOSurfaceCreate failed for {length} bytes")]
    SurfaceCreate { length: u64 },

    #[error("IOSurfaceLock returned {status}")]
    SurfaceLock { status: IoReturn },

    #[error("{what} failed: out of memory")]
    CoreFoundation { what: &'static str },

    #[error("invalid range: {0}")]
    InvalidRange(String),

    /// The buffer needs more prepared ranges than the DEXT holds for one
    /// client.
    #[error(
        "{length} bytes need {needed} prepares of at most {step} bytes, but the DEXT \
         holds at most {max_ranges} prepared ranges per client: ask for at most \
         {max} bytes",
        needed = length.div_ceil((*step).max(1)),
        max = step.saturating_mul(*max_ranges as u64)
    )]
    TooManyRanges {
        length: u64,
        step: u64,
        max_ranges: usize,
    },
}

impl AppleError {
    /// The IOReturn behind this error, if there is one.
    pub fn status(&self) -> Option<IoReturn> {
        match self {
            AppleError::NotPermitted { status, .. }
            | AppleError::Open { status }
            | AppleError::PrepareFailed { status }
            | AppleError::Call { status, .. }
            | AppleError::Rejected { status, .. }
            | AppleError::SurfaceLock { status } => Some(*status),
            _ => None,
        }
    }

    /// Classifies a failed `IOConnectCallStructMethod` for `sel`.
    pub(crate) fn from_call(sel: u16, status: IoReturn) -> Self {
        if status == IoReturn::NOT_PERMITTED {
            AppleError::NotPermitted {
                call: "IOConnectCallStructMethod",
                status,
            }
        } else {
            AppleError::Call {
                selector: sel,
                status,
            }
        }
    }

    /// Classifies an error reply (a bare header) for `sel`.
    pub(crate) fn from_reply(sel: u16, status: IoReturn) -> Self {
        if status == IoReturn::NOT_PERMITTED {
            AppleError::NotPermitted {
                call: selector::name(sel),
                status,
            }
        } else if sel == selector::PREPARE {
            AppleError::PrepareFailed { status }
        } else {
            AppleError::Rejected {
                selector: sel,
                status,
            }
        }
    }

    /// Classifies a failed `IOServiceOpen`.
    pub(crate) fn from_open(status: IoReturn) -> Self {
        if status == IoReturn::NOT_PERMITTED {
            AppleError::NotPermitted {
                call: "IOServiceOpen",
                status,
            }
        } else {
            AppleError::Open { status }
        }
    }
}

/// The library's error, with the kind a user acts on and this error's
/// message (which already says what to do).
impl From<AppleError> for crate::Error {
    fn from(e: AppleError) -> Self {
        use crate::ErrorKind as K;
        let kind = match &e {
            AppleError::NotLoaded => K::ResolverNotFound,
            AppleError::NotPermitted { .. } => K::PermissionDenied,
            AppleError::PrepareFailed { .. } => K::PrepareFailed,
            AppleError::SurfaceSize { .. }
            | AppleError::InvalidRange(_)
            | AppleError::TooManyRanges { .. } => K::InvalidRequest,
            AppleError::SurfaceCreate { .. } | AppleError::CoreFoundation { .. } => K::Resources,
            AppleError::Open { .. } | AppleError::SurfaceLock { .. } => K::Io,
            AppleError::Call { .. }
            | AppleError::Rejected { .. }
            | AppleError::Version { .. }
            | AppleError::Protocol(_)
            | AppleError::Map(_)
            | AppleError::Mismatch(_) => K::Protocol,
        };
        crate::Error::new(kind, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let s = AppleError::NotLoaded.to_string();
        assert!(s.contains("not loaded"));
        assert!(s.contains("systemextensionsctl developer on"));
        assert!(s.contains("systemextensionsctl list"));
        let e = AppleError::from_open(IoReturn::NOT_PERMITTED);
        assert!(e.to_string().contains("0xe00002e2"));
        assert!(e.to_string().contains("run unimem as root"));
        assert!(e.to_string().contains("allow-any-userclient-access"));
        assert!(e.to_string().contains("SIP"));
        let p = AppleError::from_reply(selector::PREPARE, IoReturn::CANNOT_WIRE);
        assert!(matches!(p, AppleError::PrepareFailed { .. }));
        assert!(p.to_string().contains("0xe00002de"));
        assert_eq!(p.status(), Some(IoReturn::CANNOT_WIRE));
        let r = AppleError::from_reply(selector::SEGMENTS, IoReturn::NOT_FOUND);
        assert!(r.to_string().contains("segments"));
        assert!(matches!(
            AppleError::from_call(selector::HANDSHAKE, IoReturn::BAD_ARGUMENT),
            AppleError::Call { .. }
        ));
    }

    #[test]
    fn library_errors_keep_the_kind_and_the_message() {
        let e = crate::Error::from(AppleError::NotLoaded);
        assert_eq!(e.kind(), crate::ErrorKind::ResolverNotFound);
        assert!(e.to_string().contains("not loaded"));
        let e = crate::Error::from(AppleError::from_open(IoReturn::NOT_PERMITTED));
        assert_eq!(e.kind(), crate::ErrorKind::PermissionDenied);
        assert!(e.to_string().contains("0xe00002e2"));
    }
}
