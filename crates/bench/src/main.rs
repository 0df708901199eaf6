//! `unimem-bench`: unimem's resolution against what users do today, on the
//! same populated buffer, in one run.
//!
//! For each buffer (4 KiB memfd at each `--sizes`, in each memory
//! condition: `fresh` after compaction and `fragmented` into single free
//! pages; hugetlb when a pool can be reserved; shmem THP collapsed with
//! `MADV_COLLAPSE`) every method runs once to warm up, then `--reps` times
//! in rotating order; the table gives medians, min–max, each median's
//! ratio to the limit (one raw `pread`) and how fragmented the buffer was.
//! Peak RSS of a resolution is measured in fresh child processes. The
//! targets are printed with PASS/MISS; the exit code never depends on them.

#[cfg(target_os = "linux")]
mod anchors;
#[cfg(target_os = "linux")]
mod hugetlb;
#[cfg(target_os = "linux")]
mod methods;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod rss;
#[cfg(target_os = "linux")]
mod svg;

/// Errors of the benchmark binary: a message is enough.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

#[cfg(not(target_os = "linux"))]
fn main() -> std::process::ExitCode {
    eprintln!("unimem-bench: the benchmark reads /proc/self/pagemap and runs on Linux only");
    std::process::ExitCode::FAILURE
}

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    match linux::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unimem-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(target_os = "linux")]
mod linux {
    use crate::anchors::{self, Condition, Held, MmLock, ShmemAdvise};
    use crate::hugetlb::PoolGuard;
    use crate::methods::{find_page_types, Fixture, Method, Sample};
    use crate::report::{Machine, Report, Row, Skipped, SAMPLE};
    use crate::{rss, Res};
    use clap::{Parser, Subcommand};
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use unimem::core::size::{human, parse_size};
    use unimem::resolve::service::ServiceClient;
    use unimem::service::{Config, Limits, Service, ServiceHandle};
    use unimem::surface::{Backing, Surface};

    /// Times unimem's address resolution against raw pread, DPDK-style
    /// per-page reads, the procfs crate, the service and the pin alone.
    /// Needs root (PFNs, pinning, the hugetlb pool).
    #[derive(Parser, Debug)]
    #[command(name = "unimem-bench", version, args_conflicts_with_subcommands = true)]
    struct Args {
        /// Sizes of the 4 KiB memfd buffers (K, M, G suffixes).
        #[arg(long, value_delimiter = ',', default_value = "64K,16M,1G,4G", value_parser = size)]
        sizes: Vec<u64>,
        /// Timed repetitions per method and buffer (after one warm-up).
        #[arg(long, default_value_t = 7, value_parser = clap::value_parser!(u32).range(1..))]
        reps: u32,
        /// Memory conditions of the 4 KiB buffers.
        #[arg(long, value_delimiter = ',', default_value = "fresh,fragmented", value_parser = Condition::parse)]
        conditions: Vec<Condition>,
        /// Size of the hugetlb buffer; 0 for none.
        #[arg(long, default_value = "1G", value_parser = size)]
        hugetlb: u64,
        /// Size of the shmem THP buffer (collapsed with MADV_COLLAPSE); 0 for none.
        #[arg(long, default_value = "1G", value_parser = size)]
        thp: u64,
        /// The largest 4 KiB buffer the memory anchors (memset, fill,
        /// readsum, verify, populate, probe) and `unimem map` run on.
        #[arg(long, default_value = "1G", value_parser = size)]
        anchors_max: u64,
        /// Skip the peak-RSS measurements.
        #[arg(long)]
        no_rss: bool,
        /// One JSON document on stdout instead of the table.
        #[arg(long)]
        json: bool,
        #[command(subcommand)]
        child: Option<Child>,
    }

    #[derive(Subcommand, Debug)]
    enum Child {
        /// (internal) one RSS measurement in a fresh process.
        #[command(hide = true, name = "rss-child")]
        Rss {
            #[arg(long)]
            path: String,
            #[arg(long)]
            len: u64,
            #[arg(long)]
            method: String,
            #[arg(long)]
            backing: String,
        },
        /// Size and drawing time of `--svg` pictures (issue 12).
        Svg {
            /// Sizes of the 4 KiB memfd surfaces to draw.
            #[arg(long, value_delimiter = ',', default_value = "64K,1G,4G", value_parser = size)]
            sizes: Vec<u64>,
            /// Timed drawings per map (after one warm-up).
            #[arg(long, default_value_t = 11, value_parser = clap::value_parser!(u32).range(1..))]
            reps: u32,
        },
        /// (internal) hold a populated buffer until stdin closes.
        #[command(hide = true)]
        Hold {
            #[arg(long)]
            len: u64,
        },
    }

    /// Today's date (UTC), from `date`, for the report.
    fn today() -> String {
        std::process::Command::new("date")
            .args(["-u", "+%Y-%m-%d %H:%M UTC"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map_or_else(String::new, |s| s.trim().to_string())
    }

    fn size(s: &str) -> Result<u64, String> {
        parse_size(s).map_err(|e| e.to_string())
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

    pub fn run() -> Res<()> {
        let args = Args::parse();
        if let Some(Child::Rss {
            path,
            len,
            method,
            backing,
        }) = &args.child
        {
            return rss::child(path, *len, method, backing);
        }
        if let Some(Child::Svg { sizes, reps }) = &args.child {
            return crate::svg::run(sizes, *reps);
        }
        if let Some(Child::Hold { len }) = &args.child {
            return anchors::hold(*len);
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
        let mut base_methods = vec![
            Method::Limit,
            Method::Direct,
            Method::PerPage,
            Method::Procfs,
        ];
        if page_types.is_some() {
            base_methods.push(Method::PageTypes);
        }
        if service.is_some() {
            base_methods.push(Method::Service);
        }
        base_methods.push(Method::Pin);
        if service.is_some() {
            base_methods.push(Method::Map);
        }
        base_methods.push(Method::Roundtrip);
        let memory_methods = [
            Method::Memset,
            Method::Fill,
            Method::Readsum,
            Method::Verify,
            Method::Populate,
            Method::Probe,
        ];

        let mut cases: Vec<(Backing, u64, Condition)> = Vec::new();
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
        let base = unimem::system::page_size().bytes();
        let mut results = Vec::new();
        let mut rss_results = Vec::new();
        let mut all_methods: Vec<Method> = Vec::new();
        for (backing, size, condition) in cases {
            if stop.load(Ordering::SeqCst) {
                return Err("interrupted".into());
            }
            let what = format!("{} {} {}", backing, human(size), condition.name());
            let mut methods = base_methods.clone();
            let small_memfd = backing == Backing::Memfd && size <= args.anchors_max;
            if small_memfd {
                methods.extend(memory_methods);
            }
            let hold = small_memfd && unimem_bin.is_some();
            if hold {
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
            // The memory state is set up, and the buffers allocated, under
            // the project's memory lock; measuring needs no lock.
            let (surface, held) = match backing {
                Backing::Memfd => {
                    let extra = if hold { size } else { 0 };
                    let state = anchors::prepare(condition, size + extra)?;
                    let held = if hold {
                        Some(Held::start(size, unimem_bin.as_deref().expect("checked"))?)
                    } else {
                        None
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
                            "unimem-bench: {what}: shmem_enabled is never; advise while the \
                             surface is collapsed"
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
                            continue;
                        }
                    }
                }
                Backing::Hugetlb => (Surface::create(size, backing)?, None),
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
            let mut samples: BTreeMap<Method, Vec<Sample>> = BTreeMap::new();
            for rep in 0..=args.reps {
                if stop.load(Ordering::SeqCst) {
                    return Err("interrupted".into());
                }
                eprintln!(
                    "unimem-bench: {what}: repetition {rep}/{}{}",
                    args.reps,
                    if rep == 0 { " (warm-up)" } else { "" }
                );
                // Rotate the order so no method always runs after the same one.
                let n = methods.len();
                for k in 0..n {
                    let m = methods[(k + rep as usize) % n];
                    let client = service.as_mut().map(|s| &mut s.1);
                    let s = match fixture.run(m, client) {
                        Ok(s) => s,
                        // Memory pressure from other processes may have
                        // swapped a page out: fault everything back in and
                        // run once more before giving up.
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
}
