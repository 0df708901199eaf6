//! The kernel's migration and compaction counters from `/proc/vmstat`, so
//! a watcher can say how much the kernel moved while it looked.

use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// The counters that say pages were migrated or compaction ran, in the
/// order they are printed. Kernels without one of them simply lack it.
pub const MIGRATION_COUNTERS: &[&str] = &[
    "pgmigrate_success",
    "pgmigrate_fail",
    "compact_migrate_scanned",
    "compact_free_scanned",
    "compact_isolated",
    "compact_stall",
    "compact_success",
    "compact_fail",
    "compact_daemon_wake",
    "thp_collapse_alloc",
    "thp_migration_success",
    "numa_pages_migrated",
];

/// The values of [`MIGRATION_COUNTERS`] this kernel has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters(pub BTreeMap<&'static str, u64>);

impl Counters {
    /// Picks the migration counters out of `/proc/vmstat` text
    /// (`name value` per line).
    pub fn parse(text: &str) -> Counters {
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let (Some(name), Some(value)) = (words.next(), words.next()) else {
                continue;
            };
            if let (Some(known), Ok(v)) = (
                MIGRATION_COUNTERS.iter().find(|&&c| c == name),
                value.parse::<u64>(),
            ) {
                out.insert(*known, v);
            }
        }
        Counters(out)
    }

    /// Reads `/proc/vmstat`.
    pub fn read() -> Result<Counters> {
        let text = std::fs::read_to_string("/proc/vmstat")
            .map_err(|e| Error::io("cannot read /proc/vmstat (is /proc mounted?)", e))?;
        Ok(Counters::parse(&text))
    }

    /// How much each counter grew since `before`, in [`MIGRATION_COUNTERS`]
    /// order (a counter that went backwards counts as 0).
    pub fn since(&self, before: &Counters) -> Vec<(&'static str, u64)> {
        MIGRATION_COUNTERS
            .iter()
            .filter_map(|name| {
                let now = *self.0.get(name)?;
                let then = before.0.get(name).copied().unwrap_or(now);
                Some((*name, now.saturating_sub(then)))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_migration_counters_and_subtracts() {
        let a = Counters::parse("nr_free_pages 5\npgmigrate_success 10\ncompact_stall 1\nbogus\n");
        let b = Counters::parse("nr_free_pages 9\npgmigrate_success 25\ncompact_stall 1\n");
        assert_eq!(a.0.len(), 2);
        assert_eq!(
            b.since(&a),
            vec![("pgmigrate_success", 15), ("compact_stall", 0)]
        );
    }
}
