//! `unimem serve`: run the resolver service until SIGTERM or SIGINT.
//!
//! Must run as root (it reads PFNs and pins other processes' memory). Logs
//! to stderr through `env_logger`: one line per connection, refusals rate
//! limited per uid, `-v` one per request. On SIGTERM/SIGINT it ends every
//! connection (unpinning all they hold), removes its socket and exits 0.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use unimem::service::{self, Config, Limits, Policy, Service};
use unimem::{Error, ErrorKind};
use unimem_core::size::{human, ByteSize};

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Socket to listen on; its directory is created (mode 0755) if missing
    /// and must not be writable by anyone but its owner.
    #[arg(long, default_value = service::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Admit this user (name or number); repeatable. Root is always admitted.
    #[arg(long = "allow-uid", value_name = "UID")]
    pub allow_uid: Vec<String>,
    /// Admit members of this group (name like "video", or number); repeatable.
    #[arg(long = "allow-gid", value_name = "GID")]
    pub allow_gid: Vec<String>,
    /// Treat members of this group like root: admitted, free of the per-user
    /// limits, and served from the slots kept for administrators; repeatable.
    #[arg(long = "admin-gid", value_name = "GID")]
    pub admin_gid: Vec<String>,
    /// Largest range one prepare may ask for: 65536, 64K, 16M, 4G.
    #[arg(long, value_name = "SIZE")]
    pub max_bytes: Option<ByteSize>,
    /// Bytes one connection may hold prepared (pinned) at once.
    #[arg(long, value_name = "SIZE")]
    pub max_connection_bytes: Option<ByteSize>,
    /// Bytes all connections together may hold prepared (default: half of RAM).
    #[arg(long, value_name = "SIZE")]
    pub max_total_bytes: Option<ByteSize>,
    /// Connections served at once.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Prepared ranges one connection may hold at once.
    #[arg(long, value_name = "N")]
    pub max_handles: Option<usize>,
    /// Close a connection that holds nothing prepared and sends nothing for
    /// this many seconds (0: never). Connections holding prepared ranges
    /// are never timed out. Default 60.
    #[arg(long, value_name = "SECS")]
    pub idle_timeout: Option<u64>,
    /// Drop a client that does not take a reply within this many seconds.
    /// Default 10.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub reply_timeout: Option<u64>,
    /// Close a connection that has not completed the handshake this many
    /// seconds after connecting, whatever it sends. Default 5.
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..))]
    pub handshake_timeout: Option<u64>,
    /// Connections one user may hold at once (administrators excepted).
    /// Default 16.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_user_connections: Option<u64>,
    /// Bytes one user may hold prepared over all its connections
    /// (administrators excepted). Default: a quarter of --max-total-bytes.
    #[arg(long, value_name = "SIZE")]
    pub max_user_bytes: Option<ByteSize>,
    /// Connection slots of --max-connections kept for root and
    /// --admin-gid members. Default 8.
    #[arg(long, value_name = "N")]
    pub admin_connections: Option<usize>,
    /// Close a connection after this many bad requests in a row (malformed,
    /// out of protocol, or naming what it does not hold). Default 16.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_refusals: Option<u32>,
    /// Log every request, not just connections and refusals.
    #[arg(short, long)]
    pub verbose: bool,
}

/// The service's configuration from the arguments.
pub fn config(args: &ServeArgs) -> Result<Config, Error> {
    let mut limits = Limits::default();
    if let Some(n) = args.max_bytes.map(ByteSize::bytes) {
        limits.max_prepare_bytes = n;
        // A per-connection limit below the per-prepare one would make the
        // larger prepares impossible; raise it with --max-bytes.
        limits.max_connection_bytes = limits.max_connection_bytes.max(n);
    }
    if let Some(n) = args.max_connection_bytes.map(ByteSize::bytes) {
        limits.max_connection_bytes = n;
    }
    if let Some(n) = args.max_total_bytes.map(ByteSize::bytes) {
        limits.max_total_bytes = n;
        limits.max_user_bytes = n / 4;
    }
    if let Some(n) = args.max_user_bytes.map(ByteSize::bytes) {
        limits.max_user_bytes = n;
    }
    if let Some(n) = args.max_user_connections {
        limits.max_user_connections = n as usize;
    }
    if let Some(n) = args.admin_connections {
        limits.admin_connections = n;
    }
    if let Some(n) = args.max_refusals {
        limits.max_refusals = n;
    }
    if let Some(secs) = args.handshake_timeout {
        limits.handshake_timeout = Duration::from_secs(secs);
    }
    if let Some(n) = args.max_connections {
        limits.max_connections = n;
    }
    if let Some(n) = args.max_handles {
        limits.max_handles = n;
    }
    if let Some(secs) = args.idle_timeout {
        limits.idle_timeout = (secs > 0).then(|| Duration::from_secs(secs));
    }
    if let Some(secs) = args.reply_timeout {
        limits.reply_timeout = Duration::from_secs(secs);
    }
    let policy = Policy {
        allow_uids: args
            .allow_uid
            .iter()
            .map(|u| service::lookup_user(u))
            .collect::<Result<_, _>>()?,
        allow_gids: args
            .allow_gid
            .iter()
            .map(|g| service::lookup_group(g))
            .collect::<Result<_, _>>()?,
        admin_gids: args
            .admin_gid
            .iter()
            .map(|g| service::lookup_group(g))
            .collect::<Result<_, _>>()?,
    };
    let mut config = Config::new(&args.socket);
    config.policy = policy;
    config.limits = limits;
    config.verbose = args.verbose;
    Ok(config)
}

pub fn run(args: &ServeArgs) -> Result<ExitCode, Error> {
    if !service::running_as_root() {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            "`unimem serve` must run as root: it reads physical addresses (CAP_SYS_ADMIN) and \
             pins clients' memory (CAP_IPC_LOCK); run `sudo unimem serve`",
        ));
    }
    // Root without CAP_SYS_ADMIN (a container) would start, then refuse
    // every prepare: say so now.
    if !unimem::pagemap::can_see_pfns()? {
        return Err(Error::new(
            ErrorKind::PermissionDenied,
            "`unimem serve` runs as root but cannot see PFNs in pagemap: it lacks CAP_SYS_ADMIN \
             (a container or a dropped capability); run it with CAP_SYS_ADMIN",
        ));
    }
    let config = config(args)?;
    init_log(config.verbose);
    let limits = config.limits.clone();
    ensure_fd_limit(&limits)?;
    // Catch the signals before anything exists that a signal must clean up.
    let mut signals = Termination::install()?;
    let handle = Service::bind(config)?.spawn()?;
    log::info!(
        "limits: {} per prepare, {} per connection, {} in all, {} connections ({} kept for \
         administrators), {} ranges per connection; per user {} connections and {}; idle \
         timeout {}, reply timeout {} s, handshake timeout {} s, {} bad requests in a row close \
         a connection",
        human(limits.max_prepare_bytes),
        human(limits.max_connection_bytes),
        human(limits.max_total_bytes),
        limits.max_connections,
        limits.admin_connections,
        limits.max_handles,
        limits.max_user_connections,
        human(limits.max_user_bytes),
        limits
            .idle_timeout
            .map_or("none".to_string(), |d| format!("{} s", d.as_secs())),
        limits.reply_timeout.as_secs(),
        limits.handshake_timeout.as_secs(),
        limits.max_refusals
    );
    let sig = signals.wait();
    log::info!("signal {sig}: shutting down");
    handle.shutdown();
    Ok(ExitCode::SUCCESS)
}

/// Logs to stderr, one `unimem serve:` line per record: info and up, debug
/// too with `-v`. `RUST_LOG` overrides the level.
fn init_log(verbose: bool) {
    use std::io::Write;
    let level = if verbose {
        log::LevelFilter::Debug
    } else {
        log::LevelFilter::Info
    };
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .parse_env("RUST_LOG")
        .format(|buf, record| writeln!(buf, "unimem serve: {}", record.args()))
        .target(env_logger::Target::Stderr)
        .try_init();
}

/// Each connection holds its socket, and each prepared range an io_uring
/// fd and the client's file: raises the soft open-file limit to the hard
/// one, and refuses to start when even that cannot hold every connection
/// at its limits (one set of clients would otherwise starve the rest).
fn ensure_fd_limit(limits: &Limits) -> Result<(), Error> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let need = (limits.max_connections as u64) * (2 * limits.max_handles as u64 + 1) + 64;
    let mut lim = getrlimit(Resource::Nofile);
    if let (Some(cur), max) = (lim.current, lim.maximum) {
        if cur < need {
            lim.current = max;
            let _ = setrlimit(Resource::Nofile, lim);
        }
    }
    let have = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
    if have < need {
        return Err(Error::new(
            ErrorKind::Resources,
            format!(
                "the open-file limit is {have} but {} connections with {} ranges each need {need}: \
                 raise it (ulimit -n, or LimitNOFILE= in the unit) or lower --max-connections \
                 or --max-handles",
                limits.max_connections, limits.max_handles
            ),
        ));
    }
    Ok(())
}

/// SIGTERM and SIGINT, caught instead of ending the process, so the
/// service can shut down cleanly (unpin, remove its socket).
pub struct Termination(signal_hook::iterator::Signals);

impl Termination {
    /// Installs the handlers. Do this before binding, so a signal that
    /// arrives during start-up is not lost.
    pub fn install() -> Result<Termination, Error> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn limits(args: &[&str]) -> Limits {
        let cli = Cli::try_parse_from(std::iter::once("serve").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        config(&cli.serve).unwrap().limits
    }

    #[test]
    fn every_limit_has_a_default_and_a_flag() {
        let d = limits(&[]);
        assert_eq!(d, Limits::default());
        assert_eq!(d.max_prepare_bytes, 4 << 30);
        assert_eq!(d.max_connections, 64);
        assert_eq!(d.idle_timeout, Some(Duration::from_secs(60)));
        assert_eq!(d.reply_timeout, Duration::from_secs(10));
        assert_eq!(d.handshake_timeout, Duration::from_secs(5));
        assert_eq!(d.max_user_connections, 16);
        assert_eq!(d.admin_connections, 8);
        assert_eq!(d.max_refusals, 16);
        assert_eq!(d.max_user_bytes, d.max_total_bytes / 4);
        let l = limits(&[
            "--max-bytes=8M",
            "--max-connection-bytes=16M",
            "--max-total-bytes=1G",
            "--max-connections=3",
            "--max-handles=5",
            "--idle-timeout=7",
            "--reply-timeout=2",
            "--handshake-timeout=3",
            "--max-user-connections=4",
            "--max-user-bytes=64M",
            "--admin-connections=2",
            "--max-refusals=9",
        ]);
        assert_eq!(
            l,
            Limits {
                max_prepare_bytes: 8 << 20,
                max_connection_bytes: 16 << 20,
                max_total_bytes: 1 << 30,
                max_connections: 3,
                max_handles: 5,
                idle_timeout: Some(Duration::from_secs(7)),
                reply_timeout: Duration::from_secs(2),
                handshake_timeout: Duration::from_secs(3),
                max_user_connections: 4,
                max_user_bytes: 64 << 20,
                admin_connections: 2,
                max_refusals: 9,
            }
        );
        assert_eq!(limits(&["--idle-timeout=0"]).idle_timeout, None);
        assert!(Cli::try_parse_from(["serve", "--reply-timeout=0"]).is_err());
        assert!(Cli::try_parse_from(["serve", "--max-bytes=0"]).is_err());
    }
}
