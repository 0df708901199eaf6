//! `unimem serve`: the Linux resolver service, CybMemDriver's counterpart.
//!
//! A privileged process listens on a `SOCK_SEQPACKET` Unix socket and
//! speaks the wire format of `unimem_core::wire`. A client passes its
//! surface's fd with a prepare request; the service checks it, maps it,
//! pins it (FOLL_LONGTERM through io_uring) and reads the addresses of its
//! own mapping after pinning, then hands them out in 4096-byte replies.
//! The pages stay pinned until the client completes the handle or its
//! connection ends, however it ends.
//!
//! One thread per connection, under a cap on connections, so a stalled
//! client stalls only itself. Every frame is checked ([`conn`]); a bad one
//! gets an error reply whose `detail` names the refusing [`rule::Rule`] or
//! the errno, and the connection goes on. State lives in the connection's
//! thread and is dropped with it: nothing outlives a connection.
//!
//! [`Service::bind`] then [`Service::spawn`] runs it in-process (tests do);
//! [`ServiceHandle::stats`] tells connections, pinned bytes and mappings.

mod backing;
mod conn;
pub mod frame;
pub mod logbook;
pub mod policy;
mod prepared;
/// The refusal rules, part of the wire contract (`unimem_core::wire::refusal`).
pub use unimem_core::wire::refusal as rule;
#[doc(hidden)]
pub mod session;
pub(crate) mod sys;

pub use policy::{lookup_group, lookup_user, Peer, Policy};
pub use prepared::{HUGETLBFS_MAGIC, TMPFS_MAGIC};

use crate::error::{Error, ErrorKind, Result};
use crate::pagemap::Pagemap;
use rule::Rule;
use rustix::io::Errno;
use rustix::net::{self, SocketFlags};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;
use unimem_core::iokit::IoReturn;

/// Where the service listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/unimem/unimem.sock";

/// What the service refuses beyond the policy. Every limit is named in the
/// refusal it causes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest length one prepare may ask for.
    pub max_prepare_bytes: u64,
    /// Prepared (pinned) bytes one connection may hold at once.
    pub max_connection_bytes: u64,
    /// Prepared bytes all connections together may hold.
    pub max_total_bytes: u64,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
    /// Prepared ranges one connection may hold at once.
    pub max_handles: usize,
    /// A connection that holds nothing prepared and sends nothing for this
    /// long is closed, so it does not keep a connection slot forever. A
    /// connection holding prepared ranges is never timed out: a device may
    /// be using its addresses. `None`: no timeout.
    pub idle_timeout: Option<Duration>,
    /// A client that does not take a reply within this long is dropped, so
    /// it cannot hold a thread forever by never reading.
    pub reply_timeout: Duration,
    /// A connection that has not completed the handshake this long after
    /// it was accepted is closed, whatever it sends meanwhile.
    pub handshake_timeout: Duration,
    /// Connections one uid may hold at once (administrators excepted).
    pub max_user_connections: usize,
    /// Prepared bytes one uid may hold over all its connections
    /// (administrators excepted).
    pub max_user_bytes: u64,
    /// Connection slots of [`Limits::max_connections`] only administrators
    /// (root, the service's uid, `--admin-gid`) may take.
    pub admin_connections: usize,
    /// Bad frames ([`rule::Rule::is_bad_frame`]) in a row after which a
    /// connection is closed.
    pub max_refusals: u32,
}

/// The default of [`Limits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// The default of [`Limits::reply_timeout`].
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// The default of [`Limits::handshake_timeout`].
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

impl Default for Limits {
    /// 4 GiB per prepare and per connection, half of RAM in all, 64
    /// connections, 64 ranges per connection, 60 s idle, 10 s per reply,
    /// 5 s to handshake; per uid 16 connections and a quarter of the
    /// total bytes; 8 connections kept for administrators; 16 refusals in a
    /// row close a connection.
    fn default() -> Self {
        let half_ram = crate::system::meminfo_kb("MemTotal:").map_or(8 << 30, |kb| kb * 1024 / 2);
        Limits {
            max_prepare_bytes: 4 << 30,
            max_connection_bytes: 4 << 30,
            max_total_bytes: half_ram,
            max_connections: 64,
            max_handles: 64,
            idle_timeout: Some(DEFAULT_IDLE_TIMEOUT),
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            max_user_connections: 16,
            max_user_bytes: half_ram / 4,
            admin_connections: 8,
            max_refusals: 16,
        }
    }
}

/// Everything `unimem serve` is told.
#[derive(Debug, Clone)]
pub struct Config {
    pub socket: PathBuf,
    pub policy: Policy,
    pub limits: Limits,
    /// Log one line per request, not just per connection and refusal.
    pub verbose: bool,
    /// Create the socket's directory (mode 0755) if it is missing.
    pub create_dir: bool,
    /// Log nothing at all (for in-process harnesses that send millions of
    /// bad frames on purpose).
    pub quiet: bool,
}

impl Config {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Config {
            socket: socket.into(),
            policy: Policy::default(),
            limits: Limits::default(),
            verbose: false,
            create_dir: true,
            quiet: false,
        }
    }
}

/// A snapshot of what the service holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections being served now.
    pub connections: u64,
    /// Bytes pinned now.
    pub pinned_bytes: u64,
    /// Client memory mappings held now.
    pub mappings: u64,
    /// Prepared handles open now.
    pub handles: u64,
    /// Prepare requests being worked on now.
    pub preparing: u64,
    /// Checksum requests being worked on now.
    pub checksumming: u64,
    /// Connections accepted since start (admitted or not).
    pub accepted: u64,
    /// Connections and requests refused since start.
    pub refused: u64,
}

/// Shared counters, updated by the connection threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    connections: AtomicU64,
    pinned_bytes: AtomicU64,
    mappings: AtomicU64,
    handles: AtomicU64,
    preparing: AtomicU64,
    checksumming: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    reserved_bytes: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> Stats {
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Stats {
            connections: l(&self.connections),
            pinned_bytes: l(&self.pinned_bytes),
            mappings: l(&self.mappings),
            handles: l(&self.handles),
            preparing: l(&self.preparing),
            checksumming: l(&self.checksumming),
            accepted: l(&self.accepted),
            refused: l(&self.refused),
        }
    }

    /// Reserves `bytes` against `limit` for all connections.
    fn reserve(&self, bytes: u64, limit: u64) -> bool {
        self.reserved_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                r.checked_add(bytes).filter(|&t| t <= limit)
            })
            .is_ok()
    }
}

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
    pub fn stats(&self) -> Stats {
        self.service
            .as_ref()
            .map(|s| s.shared.counters.snapshot())
            .unwrap_or_default()
    }

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

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        conn::admit(shared, id, conn);
    }
}

/// A private directory beside the socket's path where the socket is bound
/// before it is renamed into place; removed on drop, with whatever is left
/// in it.
struct Staging(PathBuf);

impl Staging {
    fn create(socket: &Path) -> Result<Staging> {
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

    fn socket(&self) -> PathBuf {
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
fn prepare_dir(path: &Path, create: bool) -> Result<()> {
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
fn remove_stale(path: &Path) -> Result<()> {
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

/// SIGTERM and SIGINT, caught instead of ending the process, so the
/// service can shut down cleanly (unpin, remove its socket).
pub struct Termination(signal_hook::iterator::Signals);

impl Termination {
    /// Installs the handlers. Do this before binding, so a signal that
    /// arrives during start-up is not lost.
    pub fn install() -> Result<Termination> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        signal_hook::iterator::Signals::new([SIGTERM, SIGINT])
            .map(Termination)
            .map_err(|e| Error::io("cannot install the SIGTERM/SIGINT handlers", e))
    }

    /// Blocks until one of the signals arrives; returns its number.
    pub fn wait(&mut self) -> i32 {
        self.0
            .forever()
            .next()
            .unwrap_or(signal_hook::consts::SIGTERM)
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
