//! `unimem-bench`: unimem's resolution against what users do today, on the
//! same populated buffer, in one run.
//!
//! For each buffer (4 KiB memfd at each `--sizes`, and hugetlb when a pool
//! can be reserved) every method runs once to warm up, then `--reps` times
//! in rotating order; the table gives medians, min–max and each median's
//! ratio to the limit (one raw `pread`). Peak RSS of a resolution is
//! measured in fresh child processes. The targets of issue 5 are printed
//! with PASS/MISS; the exit code never depends on them.

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
        /// Size of the hugetlb buffer; 0 for none.
        #[arg(long, default_value = "1G", value_parser = size)]
        hugetlb: u64,
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
        #[command(hide = true)]
        RssChild {
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
        if let Some(Child::RssChild {
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
            .max(args.hugetlb);
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
        let mut methods = vec![
            Method::Limit,
            Method::Direct,
            Method::PerPage,
            Method::Procfs,
        ];
        if page_types.is_some() {
            methods.push(Method::PageTypes);
        }
        if service.is_some() {
            methods.push(Method::Service);
        }
        methods.push(Method::Pin);
        if service.is_some() {
            methods.push(Method::Map);
        }

        let mut cases: Vec<(Backing, u64)> =
            args.sizes.iter().map(|&s| (Backing::Memfd, s)).collect();
        if args.hugetlb > 0 {
            cases.push((Backing::Hugetlb, args.hugetlb));
        }
        let base = unimem::system::page_size().bytes();
        let mut results = Vec::new();
        let mut rss_results = Vec::new();
        for (backing, size) in cases {
            if stop.load(Ordering::SeqCst) {
                return Err("interrupted".into());
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
            eprintln!(
                "unimem-bench: {} {}: allocating and populating",
                backing,
                human(size)
            );
            let surface = Surface::create(size, backing)?;
            let len = surface.len();
            let mut fixture = Fixture::new(
                surface.fd(),
                surface.addr(),
                len,
                surface.page_size(),
                page_types.as_deref(),
            )?;
            let mut samples: BTreeMap<Method, Vec<Sample>> = BTreeMap::new();
            for rep in 0..=args.reps {
                if stop.load(Ordering::SeqCst) {
                    return Err("interrupted".into());
                }
                eprintln!(
                    "unimem-bench: {} {}: repetition {rep}/{}{}",
                    backing,
                    human(len),
                    args.reps,
                    if rep == 0 { " (warm-up)" } else { "" }
                );
                // Rotate the order so no method always runs after the same one.
                let n = methods.len();
                for k in 0..n {
                    let m = methods[(k + rep as usize) % n];
                    let client = service.as_mut().map(|s| &mut s.1);
                    let s = fixture
                        .run(m, client)
                        .map_err(|e| format!("{} on {} {}: {e}", m.name(), backing, human(len)))?;
                    if rep > 0 {
                        samples.entry(m).or_default().push(s);
                    }
                }
            }
            for m in &methods {
                results.push(Row::new(*m, backing.name(), len, base, &samples[m]));
            }
            drop(fixture);
            if !args.no_rss && backing == Backing::Memfd {
                for m in rss::METHODS {
                    eprintln!("unimem-bench: {} {}: peak RSS of {m}", backing, human(len));
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
            for m in &methods {
                println!("  {:<10} {}", m.name(), m.describe());
            }
        }
        Ok(())
    }
}
