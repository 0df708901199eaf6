//! Helpers shared by the service tests: start a real service in-process in
//! a fresh root-owned directory, read pagemap independently of the code
//! under test, and run the `service-client` helper as a child process
//! (under another uid) to act as a client.

use std::os::unix::fs::{FileExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use unimem::service::{Config, Limits, Policy, Service, ServiceHandle};
pub use unimem_service_tests::connect::raw_connect;
pub use unimem_service_tests::env::socket_env;
pub use unimem_service_tests::memfd::{memfd, populate, unsealed_memfd};
pub use unimem_service_tests::role::Role;
pub use unimem_service_tests::talk::ChildClient;

/// Fails (never skips) when not root: the service must read PFNs.
pub fn require_root() {
    unimem_testkit::require_root("the service reads PFNs from pagemap and pins memory");
}

/// A fresh directory for a socket, owned by root, mode 0755, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "unimem-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running in-process service and its directory.
pub struct Running {
    pub handle: ServiceHandle,
    pub socket: PathBuf,
    _dir: TempDir,
    // Last: the service is gone before the suite lock is let go.
    _beside: Beside,
}

/// The suite's tests share one process, so the ones that read process-wide
/// counters (`VmPin`, open fds) must run alone: they hold the lock
/// exclusively ([`alone`]), every running service holds it shared.
static SUITE: std::sync::RwLock<()> = std::sync::RwLock::new(());

thread_local! {
    /// Whether this thread runs a test that holds the lock exclusively.
    static ALONE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// This thread's shared hold, taken once however many services it
    /// starts (a second read lock behind a waiting writer would deadlock).
    static SHARED: std::cell::RefCell<(usize, Option<std::sync::RwLockReadGuard<'static, ()>>)> =
        const { std::cell::RefCell::new((0, None)) };
}

/// Held by a test that reads process-wide counters: no other test of the
/// suite runs a service meanwhile.
pub struct Alone(#[allow(dead_code)] std::sync::RwLockWriteGuard<'static, ()>);

/// Runs the calling test alone in the suite (see [`SUITE`]).
pub fn alone() -> Alone {
    let guard = SUITE.write().unwrap_or_else(|e| e.into_inner());
    ALONE.with(|a| a.set(true));
    Alone(guard)
}

impl Drop for Alone {
    fn drop(&mut self) {
        ALONE.with(|a| a.set(false));
    }
}

/// A service's share of the suite lock (nothing when its test runs alone).
struct Beside;

impl Beside {
    fn take() -> Beside {
        if !ALONE.with(|a| a.get()) {
            SHARED.with(|s| {
                let mut s = s.borrow_mut();
                if s.0 == 0 {
                    s.1 = Some(SUITE.read().unwrap_or_else(|e| e.into_inner()));
                }
                s.0 += 1;
            });
        }
        Beside
    }
}

impl Drop for Beside {
    fn drop(&mut self) {
        if !ALONE.with(|a| a.get()) {
            SHARED.with(|s| {
                let mut s = s.borrow_mut();
                s.0 = s.0.saturating_sub(1);
                if s.0 == 0 {
                    s.1 = None;
                }
            });
        }
    }
}

/// A policy that admits `uid` besides root, and nothing else.
pub fn admitting(uid: u32) -> Policy {
    Policy {
        allow_uids: vec![uid],
        ..Policy::default()
    }
}

pub fn start(policy: Policy, limits: Limits) -> Running {
    require_root();
    let beside = Beside::take();
    let dir = TempDir::new("svc");
    let socket = dir.0.join("unimem.sock");
    let mut config = Config::new(&socket);
    config.policy = policy;
    config.limits = limits;
    config.verbose = std::env::var_os("UNIMEM_TEST_VERBOSE").is_some();
    let handle = Service::bind(config)
        .expect("bind the service")
        .spawn()
        .expect("spawn");
    Running {
        handle,
        socket,
        _dir: dir,
        _beside: beside,
    }
}

/// Raw pagemap words of `pages` base pages of process `pid` from `va`,
/// read here with a plain `pread`, independent of the library.
pub fn pagemap_words(pid: u32, va: u64, pages: usize) -> Vec<u64> {
    let f = std::fs::File::open(format!("/proc/{pid}/pagemap")).unwrap();
    let page = rustix::param::page_size() as u64;
    let mut bytes = vec![0u8; pages * 8];
    f.read_exact_at(&mut bytes, va / page * 8).unwrap();
    bytes
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
        .collect()
}

/// Physical address of each page (None where not present or hidden).
pub fn physical_addresses(pid: u32, va: u64, len: u64) -> Vec<Option<u64>> {
    let page = rustix::param::page_size() as u64;
    pagemap_words(pid, va, (len / page) as usize)
        .into_iter()
        .map(|w| {
            let pfn = w & ((1 << 55) - 1);
            (w >> 63 == 1 && pfn != 0).then_some(pfn * page)
        })
        .collect()
}

/// Stable reading: the same twice in a row (pages can move between reads
/// when they are not pinned; pinned ones never do).
pub fn stable_addresses(pid: u32, va: u64, len: u64) -> Vec<Option<u64>> {
    for _ in 0..5 {
        let a = physical_addresses(pid, va, len);
        let b = physical_addresses(pid, va, len);
        if a == b {
            return a;
        }
    }
    panic!("pagemap of process {pid} kept changing between reads");
}

/// The map the service returned equals root's own pagemap reading of
/// process `pid`'s mapping of the same memfd at `va`, page by page.
pub fn assert_map_matches(pid: u32, va: u64, map: &unimem::core::PaMap) {
    let page = rustix::param::page_size() as u64;
    let own = stable_addresses(pid, va, map.total_length());
    for (i, addr) in own.iter().enumerate() {
        let off = i as u64 * page;
        assert_eq!(
            map.lookup(off).map(|x| x.get()),
            *addr,
            "page {i} (offset {off:#x}): service says {:?}, pagemap of pid {pid} says {addr:?}",
            map.lookup(off)
        );
    }
}

/// The helper program playing `role`, as `uid` when given, with `env`
/// set. Another user runs a copy in a directory anyone may enter: the
/// build directory may sit under a private one (a 0700 checkout).
pub fn child_client(role: Role, uid: Option<u32>, env: &[(&str, String)]) -> ChildClient {
    let exe = Path::new(env!("CARGO_BIN_EXE_service-client"));
    let exe = match uid {
        Some(_) => unimem_testkit::world_executable_copy(exe),
        None => exe.to_path_buf(),
    };
    ChildClient::spawn(&exe, role, uid, env)
}

/// Polls `f` until it is true or `secs` pass.
pub fn wait_until(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    f()
}

/// A small deterministic generator (SplitMix64) for the randomized tests:
/// the seed is printed, so a failure can be replayed.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// Fds open in this process (the in-process service's included).
/// Open fds of the kinds the service holds: sockets, io_uring instances
/// and memfds. Other fds (a file another test has open while one runs
/// `alone`) are not the service's and are not counted.
pub fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| {
            let t = target.to_string_lossy();
            t.starts_with("socket:") || t.contains("io_uring") || t.starts_with("/memfd:")
        })
        .count()
}

/// The kernel's count of this process's long-term pinned memory
/// (`VmPin`, KiB): the in-process service's pins.
pub fn vm_pin_kb() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    let l = s
        .lines()
        .find(|l| l.starts_with("VmPin:"))
        .expect("VmPin in /proc/self/status");
    l.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// What a leak check compares against.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    pub fds: usize,
    pub pin_kb: u64,
}

impl Baseline {
    pub fn now() -> Baseline {
        Baseline {
            fds: fd_count(),
            pin_kb: vm_pin_kb(),
        }
    }
}

/// Waits until the service holds no connections, then asserts that it
/// holds nothing at all: no pinned bytes, mappings, handles or requests in
/// flight (its counters), no pins the kernel counts (`VmPin`), no fds
/// beyond `base`.
pub fn assert_nothing_held(svc: &ServiceHandle, base: Baseline, what: &str) {
    assert!(
        wait_until(15, || svc.stats().connections == 0),
        "{what}: connections did not end: {:?}",
        svc.stats()
    );
    let s = svc.stats();
    assert_eq!(
        (
            s.pinned_bytes,
            s.mappings,
            s.handles,
            s.preparing,
            s.checksumming
        ),
        (0, 0, 0, 0, 0),
        "{what}: the service still holds something: {s:?}"
    );
    assert!(
        wait_until(5, || vm_pin_kb() == base.pin_kb),
        "{what}: the kernel still counts pinned pages: VmPin {} KiB, {} before",
        vm_pin_kb(),
        base.pin_kb
    );
    assert!(
        wait_until(5, || fd_count() <= base.fds),
        "{what}: {} fds open, {} before",
        fd_count(),
        base.fds
    );
}

/// The wall clock budget of a bounded test loop.
pub fn deadline(secs: u64) -> std::time::Instant {
    std::time::Instant::now() + std::time::Duration::from_secs(secs)
}
