//! Results: summaries of the repetitions, the targets, the human table and
//! the JSON document.

use crate::methods::{Method, Sample, PER_PAGE_SAMPLE};
use crate::rss::RssResult;
use serde::Serialize;
use std::fmt::Write as _;
use unimem::core::size::human;

mod targets;

/// One (method, backing, size) over all repetitions.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub method: &'static str,
    pub backing: &'static str,
    pub size: u64,
    /// The memory state: `fresh` (after compaction) or `fragmented`.
    pub condition: &'static str,
    pub median_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    /// This method's median over the limit's median for the same buffer.
    pub ratio_to_limit: Option<f64>,
    pub reps: usize,
    pub ns_per_page: f64,
    /// Physically contiguous runs of the buffer: the method's own count
    /// where it builds a segment map, else the buffer's.
    pub segments: Option<usize>,
    /// The buffer's segments per GiB: how fragmented the memory was.
    pub segments_per_gib: f64,
    /// True when the time is extrapolated from a sample of pages.
    pub extrapolated: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sampled_pages: Option<u64>,
}

impl Row {
    pub fn new(
        method: Method,
        backing: &'static str,
        size: u64,
        condition: &'static str,
        base_page: u64,
        buffer_segments: usize,
        samples: &[Sample],
    ) -> Row {
        let mut ns: Vec<u64> = samples
            .iter()
            .map(|s| s.elapsed.as_nanos() as u64)
            .collect();
        ns.sort_unstable();
        let n = ns.len();
        let median = if n == 0 {
            0
        } else if n % 2 == 1 {
            ns[n / 2]
        } else {
            (ns[n / 2 - 1] + ns[n / 2]) / 2
        };
        let sampled = samples.iter().find_map(|s| s.sampled_pages);
        Row {
            method: method.name(),
            backing,
            size,
            condition,
            median_ns: median,
            min_ns: ns.first().copied().unwrap_or(0),
            max_ns: ns.last().copied().unwrap_or(0),
            ratio_to_limit: None,
            reps: n,
            ns_per_page: median as f64 / (size / base_page).max(1) as f64,
            segments: samples
                .iter()
                .find_map(|s| s.segments)
                .or(Some(buffer_segments)),
            segments_per_gib: buffer_segments as f64 * GIB as f64 / size.max(1) as f64,
            extrapolated: sampled.is_some(),
            sampled_pages: sampled,
        }
    }
}

/// A target from the issue, evaluated.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: Option<f64>,
    pub status: &'static str,
    pub detail: String,
}

/// Something the run left out, and why.
#[derive(Debug, Clone, Serialize)]
pub struct Skipped {
    pub what: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub kernel: String,
    pub cpus: usize,
    pub memory_bytes: u64,
    pub page_size: u64,
    pub note: &'static str,
    /// When the run was made.
    pub date: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub machine: Machine,
    pub reps: usize,
    pub per_page_sample: u64,
    pub results: Vec<Row>,
    pub rss: Vec<RssResult>,
    pub targets: Vec<Target>,
    pub skipped: Vec<Skipped>,
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;
const KIB: u64 = 1 << 10;

impl Report {
    fn row(&self, method: &str, backing: &str, size: u64, condition: &str) -> Option<&Row> {
        self.results.iter().find(|r| {
            r.method == method && r.backing == backing && r.size == size && r.condition == condition
        })
    }

    fn median(&self, method: &str, backing: &str, size: u64, condition: &str) -> Option<f64> {
        self.row(method, backing, size, condition)
            .map(|r| r.median_ns as f64)
            .filter(|&v| v > 0.0)
    }

    /// `a / b` of two methods' medians on the same buffer.
    fn ratio(&self, a: &str, b: &str, backing: &str, size: u64, condition: &str) -> Option<f64> {
        Some(self.median(a, backing, size, condition)? / self.median(b, backing, size, condition)?)
    }

    /// The conditions measured, in order.
    fn conditions(&self) -> Vec<&'static str> {
        let mut c: Vec<&'static str> = Vec::new();
        for r in &self.results {
            if !c.contains(&r.condition) {
                c.push(r.condition);
            }
        }
        c
    }

    /// The human table: the machine, every row, the targets, what was
    /// skipped.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        let _ = writeln!(
            s,
            "{}; kernel {}, {} CPUs, {} memory, {} pages ({})\n",
            m.date,
            m.kernel,
            m.cpus,
            human(m.memory_bytes),
            human(m.page_size),
            m.note
        );
        let _ = writeln!(
            s,
            "{:<8} {:>7}  {:<10}  {:<10} {:>10}  {:>21}  {:>8}  {:>9}  {:>8}",
            "backing",
            "size",
            "condition",
            "method",
            "median",
            "min - max",
            "x limit",
            "ns/page",
            "segments"
        );
        let mut last = None;
        for r in &self.results {
            let case = (r.backing, r.size, r.condition);
            if last.is_some() && last != Some(case) {
                s.push('\n');
            }
            if last != Some(case) {
                let _ = writeln!(
                    s,
                    "# {} {} {}: {:.0} segments per GiB",
                    r.backing,
                    human(r.size),
                    r.condition,
                    r.segments_per_gib
                );
            }
            last = Some(case);
            let ratio = r.ratio_to_limit.map_or("-".into(), |v| format!("{v:.2}"));
            let note = if r.extrapolated { " *" } else { "" };
            let _ = writeln!(
                s,
                "{:<8} {:>7}  {:<10}  {:<10} {:>10}  {:>21}  {:>8}  {:>9.1}  {:>8}{note}",
                r.backing,
                human(r.size),
                r.condition,
                r.method,
                duration(r.median_ns),
                format!("{} - {}", duration(r.min_ns), duration(r.max_ns)),
                ratio,
                r.ns_per_page,
                r.segments.map_or("".into(), |n| n.to_string()),
            );
        }
        if self.results.iter().any(|r| r.extrapolated) {
            let _ = writeln!(
                s,
                "\n* extrapolated: per_page reads at most {} pages per repetition, evenly spread, and scales the time to every page",
                self.per_page_sample
            );
        }
        if !self.rss.is_empty() {
            let _ = writeln!(
                s,
                "\npeak RSS growth of one resolution (fresh process, buffer pages excluded)"
            );
            let _ = writeln!(
                s,
                "{:<8} {:>7}  {:<10} {:>12}  {:>12}  {:>14}",
                "backing", "size", "method", "peak growth", "result", "beyond result"
            );
            for r in &self.rss {
                let _ = writeln!(
                    s,
                    "{:<8} {:>7}  {:<10} {:>12}  {:>12}  {:>14}",
                    r.backing,
                    human(r.size),
                    r.method,
                    human(r.peak_growth_bytes),
                    human(r.result_bytes),
                    signed_human(r.beyond_result_bytes)
                );
            }
        }
        let _ = writeln!(s, "\ntargets");
        for t in &self.targets {
            let v = t.measured.map_or("-".into(), |v| format!("{v:.2}"));
            let detail = if t.detail.is_empty() {
                String::new()
            } else {
                format!("  ({})", t.detail)
            };
            let _ = writeln!(s, "  {:<12} {:>9}  {}{detail}", t.status, v, t.target);
        }
        for k in &self.skipped {
            let _ = writeln!(s, "skipped {}: {}", k.what, k.reason);
        }
        s.lines().map(|l| format!("{}\n", l.trim_end())).collect()
    }
}

fn signed_human(v: i64) -> String {
    if v < 0 {
        format!("-{}", human(v.unsigned_abs()))
    } else {
        human(v as u64)
    }
}

/// A duration for humans: `812 ns`, `41.3 us`, `12.7 ms`, `1.58 s`.
pub fn duration(ns: u64) -> String {
    let v = ns as f64;
    if ns < 1_000 {
        format!("{ns} ns")
    } else if ns < 1_000_000 {
        format!("{:.1} us", v / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1} ms", v / 1e6)
    } else {
        format!("{:.2} s", v / 1e9)
    }
}

/// Default per-page sample, re-exported for the report.
pub const SAMPLE: u64 = PER_PAGE_SAMPLE;
