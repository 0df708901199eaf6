//! One benchmark run: every buffer in every memory state, each method
//! warmed up then repeated in rotating order, peak RSS in fresh children,
//! and the report.

use crate::anchors::{self, Condition, Held, MmLock, ShmemAdvise};
use crate::args::{Args, Child};
use crate::hugetlb::PoolGuard;
use crate::methods::{find_page_types, Fixture, Method, Sample};
use crate::report::{Machine, Report, Row, Skipped, SAMPLE};
use crate::{rss, Res};
use clap::Parser;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use unimem::core::size::human;
use unimem::resolve::service::ServiceClient;
use unimem::service::{Config, Limits, Service, ServiceHandle};
use unimem::surface::{Backing, Surface};

/// Today's date (UTC), from `date`, for the report.
fn today() -> String {
    std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(String::new, |s| s.trim().to_string())
}

/// The in-process service, in a directory of its own.
struct Svc {
    handle: Option<ServiceHandle>,
    dir: PathBuf,
}

impl Drop for Svc {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn start_service(max: u64) -> Res<(Svc, ServiceClient)> {
    let dir = std::env::temp_dir().join(format!("unimem-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
    let socket = dir.join("unimem.sock");
    let mut config = Config::new(&socket);
    config.limits = Limits {
        max_prepare_bytes: max,
        max_connection_bytes: max,
        max_total_bytes: max,
        ..Limits::default()
    };
    let mut svc = Svc { handle: None, dir };
    svc.handle = Some(Service::bind(config)?.spawn()?);
    let client = ServiceClient::connect(&socket)?;
    Ok((svc, client))
}

/// A child process of the benchmark, told what to do by an internal
/// subcommand.
fn run_child(child: &Child) -> Res<()> {
    match child {
        Child::Rss {
            path,
            len,
            method,
            backing,
        } => rss::child(path, *len, method, backing),
        Child::Svg { sizes, reps } => crate::svg::run(sizes, *reps),
        Child::Hold { len } => anchors::hold(*len),
    }
}

/// The resolvers and anchors measured on every buffer, given which of the
/// optional ones are available.
fn base_methods(page_types: bool, service: bool) -> Vec<Method> {
    let mut methods = vec![
        Method::Limit,
        Method::Direct,
        Method::PerPage,
        Method::Procfs,
    ];
    if page_types {
        methods.push(Method::PageTypes);
    }
    if service {
        methods.push(Method::Service);
    }
    methods.push(Method::Pin);
    if service {
        methods.push(Method::Map);
    }
    methods.push(Method::Roundtrip);
    methods
}

/// The memory anchors, measured on 4 KiB buffers up to `--anchors-max`.
const MEMORY_METHODS: [Method; 6] = [
    Method::Memset,
    Method::Fill,
    Method::Readsum,
    Method::Verify,
    Method::Populate,
    Method::Probe,
];

/// Every buffer to measure: each size in each memory condition, then the
/// hugetlb and THP buffers (fresh).
fn cases(args: &Args) -> Vec<(Backing, u64, Condition)> {
    let mut cases = Vec::new();
    for &s in &args.sizes {
        for &c in &args.conditions {
            cases.push((Backing::Memfd, s, c));
        }
    }
    if args.hugetlb > 0 {
        cases.push((Backing::Hugetlb, args.hugetlb, Condition::Fresh));
    }
    if args.thp > 0 {
        cases.push((Backing::Thp, args.thp, Condition::Fresh));
    }
    cases
}

/// The buffer of one case, allocated in its memory state (under the
/// project's memory lock; measuring needs no lock), and for small memfd
/// buffers a holder process for `unimem map`. `None` when the case cannot
/// run here, with the reason added to `skipped`.
fn allocate(
    backing: Backing,
    size: u64,
    condition: Condition,
    holder: Option<&std::path::Path>,
    what: &str,
    skipped: &mut Vec<Skipped>,
) -> Res<Option<(Surface, Option<Held>)>> {
    Ok(Some(match backing {
        Backing::Memfd => {
            let extra = if holder.is_some() { size } else { 0 };
            let state = anchors::prepare(condition, size + extra)?;
            let held = match holder {
                Some(bin) => Some(Held::start(size, bin)?),
                None => None,
            };
            let surface = Surface::create(size, backing)?;
            drop(state);
            (surface, held)
        }
        Backing::Thp => {
            let _lock = MmLock::take()?;
            let mode = ShmemAdvise::set()?;
            if mode.changed() {
                eprintln!(
                    "unimem-bench: {what}: shmem_enabled is never; advise while the surface is \
                     collapsed"
                );
            }
            let created = Surface::create(size, backing);
            drop(mode);
            match created {
                Ok(s) => (s, None),
                Err(e) => {
                    skipped.push(Skipped {
                        what: format!("thp {}", human(size)),
                        reason: e.to_string(),
                    });
                    return Ok(None);
                }
            }
        }
        Backing::Hugetlb => (Surface::create(size, backing)?, None),
    }))
}

/// Runs every method once to warm up, then `reps` times in rotating order
/// (so no method always runs after the same one); the timed samples.
fn repeat(
    fixture: &mut Fixture<'_>,
    surface: &Surface,
    methods: &[Method],
    reps: u32,
    stop: &AtomicBool,
    service: &mut Option<(Svc, ServiceClient)>,
    what: &str,
) -> Res<BTreeMap<Method, Vec<Sample>>> {
    let mut samples: BTreeMap<Method, Vec<Sample>> = BTreeMap::new();
    for rep in 0..=reps {
        if stop.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        eprintln!(
            "unimem-bench: {what}: repetition {rep}/{reps}{}",
            if rep == 0 { " (warm-up)" } else { "" }
        );
        let n = methods.len();
        for k in 0..n {
            let m = methods[(k + rep as usize) % n];
            let client = service.as_mut().map(|s| &mut s.1);
            let s = match fixture.run(m, client) {
                Ok(s) => s,
                // Memory pressure from other processes may have swapped a
                // page out: fault everything back in and run once more
                // before giving up.
                Err(_) => {
                    surface
                        .mapping()
                        .advise(unimem::mapping::Advice::PopulateWrite)
                        .map_err(|e| format!("cannot populate {what} again: {e}"))?;
                    fixture.repopulate()?;
                    let client = service.as_mut().map(|s| &mut s.1);
                    fixture
                        .run(m, client)
                        .map_err(|e| format!("{} on {what}: {e}", m.name()))?
                }
            };
            if rep > 0 {
                samples.entry(m).or_default().push(s);
            }
        }
    }
    Ok(samples)
}

/// Runs the benchmark the command line asks for and prints its report.
pub fn run() -> Res<()> {
    let args = Args::parse();
    if let Some(child) = &args.child {
        return run_child(child);
    }
    if !unimem::pagemap::can_see_pfns()? {
        return Err(unimem::pagemap::HIDDEN_PFNS.into());
    }
    // An interrupt stops the run between measurements, so the hugetlb
    // pool and the service are restored on the way out.
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    let mut skipped = Vec::new();
    let largest = args
        .sizes
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(args.hugetlb)
        .max(args.thp);
    let mut service = match start_service(largest.max(1 << 20)) {
        Ok(s) => Some(s),
        Err(e) => {
            skipped.push(Skipped {
                what: "service".into(),
                reason: format!("cannot start the in-process service: {e}"),
            });
            None
        }
    };
    let page_types = find_page_types();
    if page_types.is_none() {
        skipped.push(Skipped {
            what: "page_types".into(),
            reason: "the kernel's tools/mm/page-types is not on PATH; Debian ships it in no \
                     package (linux-perf has perf only), build it from the kernel tree to add it"
                .into(),
        });
    }
    let unimem_bin = anchors::find_unimem();
    if unimem_bin.is_none() {
        skipped.push(Skipped {
            what: "map_json, map_table".into(),
            reason: "no `unimem` binary next to this one: build it first with \
                     `cargo build --release -p unimem-cli`"
                .into(),
        });
    }
    let base_methods = base_methods(page_types.is_some(), service.is_some());

    let base = unimem::system::page_size().bytes();
    let mut results = Vec::new();
    let mut rss_results = Vec::new();
    let mut all_methods: Vec<Method> = Vec::new();
    for (backing, size, condition) in cases(&args) {
        if stop.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        let what = format!("{} {} {}", backing, human(size), condition.name());
        let mut methods = base_methods.clone();
        let small_memfd = backing == Backing::Memfd && size <= args.anchors_max;
        if small_memfd {
            methods.extend(MEMORY_METHODS);
        }
        let holder = unimem_bin.as_deref().filter(|_| small_memfd);
        if holder.is_some() {
            methods.extend([Method::MapJson, Method::MapTable]);
        }
        for m in &methods {
            if !all_methods.contains(m) {
                all_methods.push(*m);
            }
        }
        let _pool = if backing == Backing::Hugetlb {
            let page = unimem::system::default_huge_page_size().unwrap_or(2 << 20);
            match PoolGuard::reserve(size.div_ceil(page)) {
                Ok(g) => Some(g),
                Err(e) => {
                    skipped.push(Skipped {
                        what: format!("hugetlb {}", human(size)),
                        reason: format!("cannot reserve the pool: {e}"),
                    });
                    continue;
                }
            }
        } else {
            None
        };
        eprintln!("unimem-bench: {what}: preparing memory, allocating and populating");
        let Some((surface, held)) =
            allocate(backing, size, condition, holder, &what, &mut skipped)?
        else {
            continue;
        };
        let len = surface.len();
        let mut fixture = Fixture::new(
            surface.fd(),
            surface.addr(),
            len,
            surface.page_size(),
            backing,
            page_types.as_deref(),
        )?;
        fixture.held = held;
        // A fresh connection per case: preparing memory may wait on the
        // lock for longer than the service's idle timeout.
        if let Some((svc, client)) = service.as_mut() {
            *client = ServiceClient::connect(&svc.dir.join("unimem.sock"))?;
        }
        let segments = fixture.segments()?;
        eprintln!(
            "unimem-bench: {what}: {segments} segments ({:.0} per GiB)",
            segments as f64 * (1u64 << 30) as f64 / len as f64
        );
        let samples = repeat(
            &mut fixture,
            &surface,
            &methods,
            args.reps,
            &stop,
            &mut service,
            &what,
        )?;
        for m in &methods {
            results.push(Row::new(
                *m,
                backing.name(),
                len,
                condition.name(),
                base,
                segments,
                &samples[m],
            ));
        }
        drop(fixture);
        if !args.no_rss && backing == Backing::Memfd && condition == Condition::Fresh {
            for m in rss::METHODS {
                eprintln!("unimem-bench: {what}: peak RSS of {m}");
                rss_results.push(rss::measure(m, backing.name(), surface.fd(), len)?);
            }
        }
    }
    drop(service.take());

    let mut report = Report {
        machine: Machine {
            kernel: unimem::system::kernel_release(),
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_bytes: unimem::system::meminfo_kb("MemTotal:").unwrap_or(0) * 1024,
            page_size: base,
            note: "in a VM, PFNs are guest-physical",
            date: today(),
        },
        reps: args.reps as usize,
        per_page_sample: SAMPLE,
        results,
        rss: rss_results,
        targets: Vec::new(),
        skipped,
    };
    report.finish();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
        println!("\nmethods");
        for m in &all_methods {
            println!("  {:<10} {}", m.name(), m.describe());
        }
    }
    Ok(())
}
