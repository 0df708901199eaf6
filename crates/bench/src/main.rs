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
mod args;
#[cfg(target_os = "linux")]
mod hugetlb;
#[cfg(target_os = "linux")]
mod methods;
#[cfg(target_os = "linux")]
mod report;
#[cfg(target_os = "linux")]
mod rss;
#[cfg(target_os = "linux")]
mod run;
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
    match run::run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unimem-bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
