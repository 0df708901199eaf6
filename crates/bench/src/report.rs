//! Results: summaries of the repetitions, the targets, the human table and
//! the JSON document.

use crate::methods::{Method, Sample, PER_PAGE_SAMPLE};
use crate::rss::RssResult;
use serde::Serialize;
use std::fmt::Write as _;
use unimem::core::size::human;

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

    /// Fills each row's ratio to the limit and evaluates the targets.
    pub fn finish(&mut self) {
        let limits: Vec<(&'static str, u64, &'static str, u64)> = self
            .results
            .iter()
            .filter(|r| r.method == "limit")
            .map(|r| (r.backing, r.size, r.condition, r.median_ns))
            .collect();
        for r in &mut self.results {
            r.ratio_to_limit = limits
                .iter()
                .find(|(b, s, c, _)| *b == r.backing && *s == r.size && *c == r.condition)
                .filter(|l| l.3 > 0)
                .map(|l| r.median_ns as f64 / l.3 as f64);
        }
        let mut t = Vec::new();
        let conditions = self.conditions();
        let state = |c: &str, size: u64| -> String {
            self.row("direct", "memfd", size, c)
                .map_or(String::new(), |r| {
                    format!("{:.0} segments/GiB", r.segments_per_gib)
                })
        };
        for &c in &conditions {
            for (size, at_most) in [(GIB, 0.70), (64 * KIB, 1.10)] {
                t.push(judge(
                    format!(
                        "direct / limit <= {at_most:.2} at {} memfd, {c}",
                        human(size)
                    ),
                    self.ratio("direct", "limit", "memfd", size, c),
                    |v| v <= at_most,
                    &state(c, size),
                ));
            }
            t.push(judge(
                format!("direct / procfs <= 0.80 at 1 GiB memfd, {c}"),
                self.ratio("direct", "procfs", "memfd", GIB, c),
                |v| v <= 0.80,
                &state(c, GIB),
            ));
        }
        for (backing, at_most) in [("hugetlb", 0.10), ("thp", 0.20)] {
            t.push(judge(
                format!("direct / limit <= {at_most:.2} at 1 GiB {backing}"),
                self.ratio("direct", "limit", backing, GIB, "fresh"),
                |v| v <= at_most,
                "",
            ));
        }
        for &c in &conditions {
            let service = (|| {
                let s = self.median("service", "memfd", GIB, c)?;
                let l = self.median("limit", "memfd", GIB, c)?;
                let p = self.median("pin", "memfd", GIB, c)?;
                Some(s / (l + p))
            })();
            let mut target = judge(
                format!("service / (limit + pin) <= 1.20 at 1 GiB memfd, {c}"),
                service,
                |v| v <= 1.20,
                "",
            );
            if let (Some(m), Some(s)) = (
                self.row("map", "memfd", GIB, c),
                self.row("service", "memfd", GIB, c),
            ) {
                target.detail = format!(
                    "the service's own mapping (mmap + populate) takes {} of its {}",
                    duration(m.median_ns),
                    duration(s.median_ns)
                );
            }
            t.push(target);
            let small = (|| {
                let s = self.median("service", "memfd", 64 * KIB, c)?;
                let r = self.median("roundtrip", "memfd", 64 * KIB, c)?;
                let l = self.median("limit", "memfd", 64 * KIB, c)?;
                let p = self.median("pin", "memfd", 64 * KIB, c)?;
                Some(s / (3.0 * r + p + l))
            })();
            t.push(judge(
                format!("service / (3 x roundtrip + pin + limit) <= 1.50 at 64 KiB memfd, {c}"),
                small,
                |v| v <= 1.50,
                "",
            ));
            for (a, b) in [
                ("fill", "memset"),
                ("verify", "readsum"),
                ("probe", "populate"),
            ] {
                let at_most = if a == "probe" { 1.60 } else { 1.50 };
                t.push(judge(
                    format!("{a} / {b} <= {at_most:.2} at 1 GiB memfd, {c}"),
                    self.ratio(a, b, "memfd", GIB, c),
                    |v| v <= at_most,
                    "",
                ));
            }
        }
        t.push(judge(
            "map_json / map_table <= 1.20 at 1 GiB memfd, fragmented".into(),
            self.ratio("map_json", "map_table", "memfd", GIB, "fragmented"),
            |v| v <= 1.20,
            &state("fragmented", GIB),
        ));
        // The first benchmark's targets still hold.
        for &c in &conditions {
            for size in [GIB, 4 * GIB] {
                t.push(judge(
                    format!("direct / limit <= 1.15 at {} memfd, {c}", human(size)),
                    self.ratio("direct", "limit", "memfd", size, c),
                    |v| v <= 1.15,
                    "",
                ));
            }
            let sizes: Vec<u64> = {
                let mut s: Vec<u64> = self
                    .results
                    .iter()
                    .filter(|r| r.backing == "memfd" && r.method == "direct" && r.condition == c)
                    .map(|r| r.size)
                    .collect();
                s.dedup();
                s
            };
            for size in sizes {
                let extrapolated = self
                    .row("per_page", "memfd", size, c)
                    .is_some_and(|r| r.extrapolated);
                t.push(judge(
                    format!("per_page / direct >= 50 at {} memfd, {c}", human(size)),
                    self.ratio("per_page", "direct", "memfd", size, c),
                    |v| v >= 50.0,
                    if extrapolated {
                        "per_page extrapolated from a sample"
                    } else {
                        ""
                    },
                ));
            }
        }
        let rss = self
            .rss
            .iter()
            .find(|r| r.method == "direct" && r.size == 4 * GIB);
        let mut rss_target = judge(
            "resolving 4 GiB adds < 16 MiB RSS beyond the segment list".into(),
            rss.map(|r| r.beyond_result_bytes as f64 / MIB as f64),
            |v| v < 16.0,
            "",
        );
        if let Some(r) = rss {
            rss_target.detail = format!(
                "peak growth {} for {} segments ({} of segment list); measured in MiB",
                human(r.peak_growth_bytes),
                r.segments.unwrap_or(0),
                human(r.result_bytes)
            );
        }
        t.push(rss_target);
        self.targets = t;
    }

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

fn judge(target: String, measured: Option<f64>, ok: impl Fn(f64) -> bool, note: &str) -> Target {
    Target {
        target,
        measured,
        status: match measured {
            None => "NOT MEASURED",
            Some(v) if ok(v) => "PASS",
            Some(_) => "MISS",
        },
        detail: note.into(),
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
