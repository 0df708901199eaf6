//! The library's one error type. Each kind is a failure a user can act on,
//! and each message says what happened and what to do next.

use std::fmt;
use std::io;

/// What went wrong, as a user would act on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// No resolver to ask: the DEXT is not loaded, the service not running.
    ResolverNotFound,
    /// PFNs hidden (no CAP_SYS_ADMIN), a missing entitlement, or a policy
    /// that does not admit the caller.
    PermissionDenied,
    /// The OS refused to prepare (pin or map) the memory.
    PrepareFailed,
    /// The request itself is wrong: a size, an address, a range, a flag.
    InvalidRequest,
    /// Something the request names does not exist (a process, a mapping).
    NotFound,
    /// Not enough of something: memory, huge pages, a limit.
    Resources,
    /// This system cannot do what was asked (a kernel feature is off).
    Unsupported,
    /// The resolver answered something that breaks the protocol.
    Protocol,
    /// The surface changed under a prepared range (pages punched out or
    /// replaced): the addresses are no longer the surface's. A failed
    /// verification, not a bad request; prepare again.
    SurfaceChanged,
    /// Any other I/O failure.
    Io,
}

/// An error with its kind, a message for the user, and the OS error behind
/// it, if any.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    source: Option<io::Error>,
}

/// `Result` with this crate's [`Error`] as the default error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with no OS error behind it. `message` is shown to
    /// the user as is: lowercase, saying what failed and what to do.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// An error of `kind` caused by the OS error `source`, which stays
    /// reachable through [`std::error::Error::source`] and [`Error::os_code`].
    pub fn with_source(kind: ErrorKind, message: impl Into<String>, source: io::Error) -> Self {
        Self {
            kind,
            message: message.into(),
            source: Some(source),
        }
    }

    /// An I/O error on `what`, classified by its errno.
    pub fn io(what: impl Into<String>, source: io::Error) -> Self {
        let kind = match source.kind() {
            io::ErrorKind::PermissionDenied => ErrorKind::PermissionDenied,
            io::ErrorKind::NotFound => ErrorKind::NotFound,
            io::ErrorKind::OutOfMemory => ErrorKind::Resources,
            _ => ErrorKind::Io,
        };
        Self::with_source(kind, what, source)
    }

    /// The same error with `hint` (what to do instead) appended.
    pub fn with_hint(mut self, hint: &str) -> Self {
        self.message = format!("{}; {hint}", self.message);
        self
    }

    /// The kind, for a caller that handles some failures itself (falling
    /// back to the service when reading pagemap is denied, say).
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message without the source's text; what [`Display`](fmt::Display)
    /// prints.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The errno behind this error, if the OS gave one.
    pub fn os_code(&self) -> Option<i32> {
        self.source.as_ref().and_then(io::Error::raw_os_error)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_ref().map(|e| e as _)
    }
}

#[cfg(target_os = "linux")]
impl From<rustix::io::Errno> for Error {
    fn from(e: rustix::io::Errno) -> Self {
        Error::io("system call failed", e.into())
    }
}
