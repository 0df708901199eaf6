//! The socket's directory: checked (owned by root or the service, writable
//! by nobody else, sticky or not), created when asked, and a private
//! staging directory beside the socket so it appears at its path only once
//! it is ready, with the mode the policy says.

use super::frame;
use crate::error::{Error, ErrorKind, Result};
use rustix::io::Errno;
use rustix::net;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A private directory beside the socket's path where the socket is bound
/// before it is renamed into place; removed on drop, with whatever is left
/// in it.
pub(super) struct Staging(PathBuf);

impl Staging {
    pub(super) fn create(socket: &Path) -> Result<Staging> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = match socket.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        // Short, so the staged path fits a Unix socket address wherever
        // the final one does (give or take a few bytes).
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let staging = dir.join(format!(".ub{}.{n}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&staging)
            .map_err(|e| Error::io(format!("cannot create '{}'", staging.display()), e))?;
        Ok(Staging(staging))
    }

    pub(super) fn socket(&self) -> PathBuf {
        self.0.join("s")
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(self.socket());
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Checks the socket's directory: created 0755 if missing (when allowed),
/// otherwise it must not be writable by anyone but its owner, who must be
/// root or this process's user, so nobody else can swap the socket.
pub(super) fn prepare_dir(path: &Path, create: bool) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() && create {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(|e| {
                Error::io(
                    format!("cannot create the directory '{}'", dir.display()),
                    e,
                )
            })?;
    }
    let meta = std::fs::metadata(dir).map_err(|e| {
        Error::io(
            format!("the socket's directory '{}' is not usable", dir.display()),
            e,
        )
    })?;
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != me {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "the socket's directory '{}' belongs to uid {}: use a directory owned by root \
                 (the default is /run/unimem)",
                dir.display(),
                meta.uid()
            ),
        ));
    }
    // Sticky or not: in a directory others may write, another user can
    // bind the socket's name while the service is stopped and pose as it.
    if meta.mode() & 0o022 != 0 {
        let sticky = if meta.mode() & 0o1000 != 0 {
            " (sticky or not: another user could bind the socket's name while the service is \
             stopped)"
        } else {
            ""
        };
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "the socket's directory '{}' is writable by others, who could replace the \
                 socket{sticky}: use a directory only its owner can write (the default is \
                 /run/unimem)",
                dir.display()
            ),
        ));
    }
    Ok(())
}

use std::os::unix::fs::DirBuilderExt;

/// Removes a socket file nobody listens on; refuses if a service answers.
pub(super) fn remove_stale(path: &Path) -> Result<()> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
        return Err(Error::new(
            ErrorKind::InvalidRequest,
            format!(
                "'{}' exists and is not a socket; remove it or choose another --socket",
                path.display()
            ),
        ));
    }
    let probe = frame::socket()?;
    let addr = frame::address(path)?;
    match net::connect(&probe, &addr) {
        Ok(()) => Err(Error::new(
            ErrorKind::InvalidRequest,
            format!(
                "a service is already listening on '{}'; stop it first or choose another --socket",
                path.display()
            ),
        )),
        // Only a refusal proves nobody listens: a full backlog (EAGAIN) or
        // a permission problem may hide a live service.
        Err(Errno::CONNREFUSED) => std::fs::remove_file(path).map_err(|e| {
            Error::io(
                format!("cannot remove the stale socket '{}'", path.display()),
                e,
            )
        }),
        Err(e) => Err(Error::with_source(
            ErrorKind::InvalidRequest,
            format!(
                "'{}' exists and may belong to a live service (connecting to it failed: {e}); \
                 stop that service or remove the socket yourself",
                path.display()
            ),
            e.into(),
        )),
    }
}
