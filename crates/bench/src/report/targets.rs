//! The targets: each a ratio or a bound measured in this run, judged
//! PASS, MISS or NOT MEASURED, never relaxed to pass.

use super::{duration, Report, Target, GIB, KIB, MIB};
use unimem::core::size::human;

impl Report {
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
