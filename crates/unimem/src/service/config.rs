//! What `unimem serve` is told: where it listens, whom it admits, and the
//! limits it enforces, each with its default.

use super::Policy;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Bad frames ([`unimem_core::wire::Rule::is_bad_frame`]) in a row after which a
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
    /// The socket to listen on.
    pub socket: PathBuf,
    /// Who is admitted.
    pub policy: Policy,
    /// What the service refuses beyond the policy.
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
    /// A service on `socket` with the default policy (root only) and limits.
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
