//! `unimem serve`: the Linux resolver service, CybMemDriver's counterpart.
//!
//! A privileged process listens on a `SOCK_SEQPACKET` Unix socket and
//! speaks the wire format of `unimem_core::wire`. A client passes its
//! surface's fd with a prepare request; the service checks it, maps it,
//! pins it (FOLL_LONGTERM, into slots of the buffer table of the one
//! io_uring each connection keeps) and reads the addresses of its
//! own mapping after pinning, then hands them out in 4096-byte replies.
//! The pages stay pinned until the client completes the handle or its
//! connection ends, however it ends.
//!
//! One thread per connection, under a cap on connections, so a stalled
//! client stalls only itself. Every frame is checked (`conn.rs`); a bad one
//! gets an error reply whose `detail` names the refusing [`rule::Rule`] or
//! the errno, and the connection goes on. State lives in the connection's
//! thread and is dropped with it: nothing outlives a connection.
//!
//! [`Service::bind`] then [`Service::spawn`] runs it in-process (tests do);
//! [`ServiceHandle::stats`] tells connections, pinned bytes and mappings.

mod admit;
mod backing;
mod config;
mod conn;
pub mod frame;
pub mod logbook;
pub mod policy;
mod prepared;
mod socket_dir;
pub(crate) use crate::lock::lock;
use socket_dir::{prepare_dir, remove_stale, Staging};
mod stats;
/// The refusal rules, part of the wire contract (`unimem_core::wire::refusal`).
pub use unimem_core::wire::refusal as rule;
// Only the fuzz targets (built with `--cfg fuzzing`) drive a connection
// without a socket; the unit tests in the module drive it too.
#[cfg(any(fuzzing, test))]
pub mod session;
pub(crate) mod sys;

pub use config::{
    Config, Limits, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_REPLY_TIMEOUT,
    DEFAULT_SOCKET,
};
pub use policy::{lookup_group, lookup_user, Peer, Policy};
pub use prepared::{HUGETLBFS_MAGIC, TMPFS_MAGIC};
pub(crate) use stats::Counters;
pub use stats::Stats;

use crate::error::{Error, ErrorKind, Result};
use crate::pagemap::Pagemap;
use rule::Rule;
use rustix::io::Errno;
use rustix::net::{self, SocketFlags};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use unimem_core::iokit::IoReturn;

/// Why a request was refused: the reply's status and detail, and a line
/// for the log.
#[derive(Debug, Clone)]
pub(crate) struct Refusal {
    status: IoReturn,
    detail: u32,
    log: String,
}

impl Refusal {
    fn rule(rule: Rule, what: impl Into<String>) -> Self {
        Refusal {
            status: rule.status(),
            detail: rule.detail(),
            log: format!("{} ({})", rule.describe(), what.into()),
        }
    }

    fn from_errno(doing: &str, errno: i32, message: String) -> Self {
        Refusal {
            status: prepared::status_for_errno(errno),
            detail: errno as u32,
            log: format!("cannot {doing}: {message} (errno {errno})"),
        }
    }

    fn os(doing: &str, e: Errno) -> Self {
        Self::from_errno(doing, e.raw_os_error(), std::io::Error::from(e).to_string())
    }
}

/// State shared by the accept loop and the connection threads.
struct Shared {
    config: Config,
    counters: Arc<Counters>,
    pagemap: Pagemap,
    page_size: u64,
    stopping: AtomicBool,
    /// Connection sockets by id, to wake their threads on shutdown.
    conns: Mutex<HashMap<u64, Arc<OwnedFd>>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    /// Connections and prepared bytes per uid.
    users: Mutex<HashMap<u32, Usage>>,
    /// Refusal lines, rate limited per uid.
    refusals: logbook::RateLimitedLog,
    /// "connected" and "closed" lines, rate limited per uid, so a client
    /// that connects and hangs up in a loop cannot flood the log either.
    connection_lines: logbook::RateLimitedLog,
}

/// What one uid holds now.
#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    connections: usize,
    bytes: u64,
}

impl Shared {
    fn new(config: Config) -> Result<Arc<Shared>> {
        let refusals = logbook::RateLimitedLog::new(
            logbook::BURST,
            logbook::PERIOD,
            !config.quiet,
            "refusals",
        );
        let connection_lines = logbook::RateLimitedLog::new(
            logbook::BURST,
            logbook::PERIOD,
            !config.quiet,
            "connection lines",
        );
        Ok(Arc::new(Shared {
            config,
            refusals,
            connection_lines,
            users: Mutex::default(),
            counters: Arc::default(),
            pagemap: Pagemap::open_self()?,
            page_size: crate::system::page_size().bytes(),
            stopping: AtomicBool::new(false),
            conns: Mutex::default(),
            threads: Mutex::default(),
        }))
    }

    fn log(&self, msg: impl AsRef<str>) {
        if self.config.quiet {
            return;
        }
        log::info!(target: "unimem::service", "{}", msg.as_ref());
    }

    fn debug(&self, msg: impl AsRef<str>) {
        if self.config.verbose && !self.config.quiet {
            log::debug!(target: "unimem::service", "{}", msg.as_ref());
        }
    }

    /// Counts a new connection of `uid`; refuses (false) when the uid holds
    /// its limit already, unless `admin`.
    fn user_connect(&self, uid: u32, admin: bool) -> bool {
        let mut users = lock(&self.users);
        let u = users.entry(uid).or_default();
        if !admin && u.connections >= self.config.limits.max_user_connections {
            if u.connections == 0 && u.bytes == 0 {
                users.remove(&uid);
            }
            return false;
        }
        u.connections += 1;
        true
    }

    /// Uncounts a connection of `uid` that held `bytes` still.
    fn user_disconnect(&self, uid: u32, bytes: u64) {
        let mut users = lock(&self.users);
        if let Some(u) = users.get_mut(&uid) {
            u.connections = u.connections.saturating_sub(1);
            u.bytes = u.bytes.saturating_sub(bytes);
            if u.connections == 0 && u.bytes == 0 {
                users.remove(&uid);
            }
        }
    }

    /// Reserves `bytes` for `uid`; refuses with what the uid holds when
    /// that would pass its limit, unless `admin`.
    fn user_reserve(&self, uid: u32, admin: bool, bytes: u64) -> Result<(), u64> {
        let mut users = lock(&self.users);
        let u = users.entry(uid).or_default();
        let total = u.bytes.saturating_add(bytes);
        if !admin && total > self.config.limits.max_user_bytes {
            return Err(u.bytes);
        }
        u.bytes = total;
        Ok(())
    }

    /// Returns `bytes` reserved for `uid`.
    fn user_release(&self, uid: u32, bytes: u64) {
        if let Some(u) = lock(&self.users).get_mut(&uid) {
            u.bytes = u.bytes.saturating_sub(bytes);
        }
    }
}

/// A bound, listening service that has not started accepting yet.
pub struct Service {
    listener: Arc<OwnedFd>,
    shared: Arc<Shared>,
}

impl Service {
    /// Creates the socket (its directory too, if allowed and missing),
    /// sets its mode per policy and listens. Refuses to replace a socket a
    /// live service is listening on; a stale one is removed.
    pub fn bind(config: Config) -> Result<Service> {
        let path = config.socket.clone();
        // Everything that can fail without touching the file system first,
        // so a failure leaves no socket behind.
        let (mode, group) = config.policy.socket_mode();
        let create_dir = config.create_dir;
        let shared = Shared::new(config)?;
        prepare_dir(&path, create_dir)?;
        remove_stale(&path)?;
        let listener = frame::socket()?;
        // Bind inside a private (0700) staging directory beside the final
        // path, give the socket its group and mode there, then rename it into
        // place: the socket is never reachable with a wider mode than the
        // policy's, and no process-wide umask change races other threads.
        let staging = Staging::create(&path)?;
        let staged = staging.socket();
        let addr = frame::address(&staged)?;
        net::bind(&listener, &addr).map_err(|e| {
            Error::with_source(
                ErrorKind::Io,
                format!("cannot bind the socket '{}'", path.display()),
                e.into(),
            )
        })?;
        if let Some(gid) = group {
            rustix::fs::chown(&staged, None, Some(rustix::fs::Gid::from_raw(gid))).map_err(
                |e| {
                    Error::with_source(
                        ErrorKind::PermissionDenied,
                        format!("cannot give the socket '{}' to group {gid}", path.display()),
                        e.into(),
                    )
                },
            )?;
        }
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))
            .map_err(|e| Error::io(format!("cannot set the mode of '{}'", path.display()), e))?;
        // Listen before the socket appears at its path, so a client that
        // sees the path never finds nobody listening there.
        net::listen(&listener, 128)
            .map_err(|e| Error::with_source(ErrorKind::Io, "cannot listen", e.into()))?;
        std::fs::rename(&staged, &path)
            .map_err(|e| Error::io(format!("cannot move the socket to '{}'", path.display()), e))?;
        drop(staging);
        shared.log(format!(
            "listening on {} (mode {mode:o}); admits {}",
            path.display(),
            shared.config.policy.describe()
        ));
        Ok(Service {
            listener: Arc::new(listener),
            shared,
        })
    }

    /// Where the service will listen once spawned.
    pub fn socket_path(&self) -> &Path {
        &self.shared.config.socket
    }

    /// Starts accepting on a thread of its own.
    pub fn spawn(self) -> Result<ServiceHandle> {
        let shared = Arc::clone(&self.shared);
        let listener = Arc::clone(&self.listener);
        let accept = std::thread::Builder::new()
            .name("unimem-accept".into())
            .spawn(move || accept_loop(&shared, &listener))
            .map_err(|e| Error::io("cannot start the accept thread", e))?;
        let shared = Arc::clone(&self.shared);
        let flusher = std::thread::Builder::new()
            .name("unimem-log".into())
            .spawn(move || {
                // Wakes often enough to stop promptly; writes the
                // "suppressed" lines once each uid's period is over.
                while !shared.stopping.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(200));
                    shared.refusals.flush_due(false);
                    shared.connection_lines.flush_due(false);
                }
            })
            .map_err(|e| Error::io("cannot start the log thread", e))?;

        Ok(ServiceHandle {
            service: Some(self),
            accept: Some(accept),
            flusher: Some(flusher),
        })
    }
}

/// A running service. Dropping it shuts the service down.
pub struct ServiceHandle {
    service: Option<Service>,
    accept: Option<JoinHandle<()>>,
    flusher: Option<JoinHandle<()>>,
}

impl ServiceHandle {
    /// A snapshot of what the running service holds.
    pub fn stats(&self) -> Stats {
        self.service
            .as_ref()
            .map(|s| s.shared.counters.snapshot())
            .unwrap_or_default()
    }

    /// Where the service listens; `None` once it has shut down.
    pub fn socket_path(&self) -> Option<&Path> {
        self.service.as_ref().map(Service::socket_path)
    }

    /// Stops accepting, ends every connection (releasing everything they
    /// hold), waits for their threads and removes the socket file.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let Some(service) = self.service.take() else {
            return;
        };
        let shared = &service.shared;
        shared.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocked accept (it fails with EINVAL on Linux).
        let _ = net::shutdown(&*service.listener, net::Shutdown::Both);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        for sock in lock(&shared.conns).values() {
            let _ = net::shutdown(&**sock, net::Shutdown::Both);
        }
        let threads = std::mem::take(&mut *lock(&shared.threads));
        for t in threads {
            let _ = t.join();
        }
        if let Some(t) = self.flusher.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&shared.config.socket);
        shared.refusals.flush_due(true);
        shared.connection_lines.flush_due(true);
        shared.log("stopped");
    }
}

impl Drop for ServiceHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(shared: &Arc<Shared>, listener: &Arc<OwnedFd>) {
    let mut next_id = 1u64;
    loop {
        let conn = match net::accept_with(&**listener, SocketFlags::CLOEXEC) {
            Ok(c) => c,
            Err(_) if shared.stopping.load(Ordering::SeqCst) => return,
            Err(Errno::INTR | Errno::CONNABORTED | Errno::AGAIN) => continue,
            Err(e @ (Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM)) => {
                shared.log(format!("cannot accept: {e}; retrying in 100 ms"));
                std::thread::sleep(std::time::Duration::from_millis(100));
                continue;
            }
            Err(e) => {
                shared.log(format!("cannot accept: {e}; the service stops accepting"));
                return;
            }
        };
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        shared.counters.accepted.fetch_add(1, Ordering::SeqCst);
        let id = next_id;
        next_id += 1;
        lock(&shared.threads).retain(|t| !t.is_finished());
        admit::admit(shared, id, conn);
    }
}

/// Whether this process runs with effective uid 0.
pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The file system magic of `fd`, to report what kind of file it is.
pub fn fs_magic(fd: impl AsFd) -> Result<u32> {
    Ok(rustix::fs::fstatfs(fd)?.f_type as u32)
}
