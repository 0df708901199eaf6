//! Refusals (and connection lines) in the log, rate limited per uid.
//!
//! A client that is refused (or refused again and again), or that connects
//! and hangs up in a loop, must not be able to flood the log and push out
//! the lines that matter: each uid gets [`BURST`] lines of each kind per
//! [`PERIOD`]; the rest are counted, and once the period is over one line
//! says how many were suppressed. The service
//! calls [`RateLimitedLog::flush_due`] periodically, so that line appears even
//! when the uid has gone quiet. Lines go through the `log` crate (target
//! `unimem::service`): the program that runs the service picks the backend.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Refusal lines logged per uid per [`PERIOD`].
pub const BURST: u32 = 5;
/// The period of the per-uid budget and of the "suppressed" lines.
pub const PERIOD: Duration = Duration::from_secs(10);
/// The uid refusals are counted under when the peer's uid is unknown.
pub const UNKNOWN_UID: u32 = u32::MAX;

#[derive(Debug)]
struct Window {
    start: Instant,
    logged: u32,
    suppressed: u64,
}

/// Per-uid budgets of refusal lines.
#[derive(Debug)]
pub struct RateLimitedLog {
    windows: Mutex<HashMap<u32, Window>>,
    burst: u32,
    period: Duration,
    enabled: bool,
    /// What the lines are, for the "suppressed" line ("refusals").
    noun: &'static str,
}

impl RateLimitedLog {
    /// A log allowing `burst` lines per uid per `period`; `enabled: false`
    /// logs nothing. `noun` names the lines in the "N more ... suppressed"
    /// line.
    pub fn new(burst: u32, period: Duration, enabled: bool, noun: &'static str) -> Self {
        RateLimitedLog {
            windows: Mutex::default(),
            burst,
            period,
            enabled,
            noun,
        }
    }

    /// Logs `line`, about `uid`, unless the uid's budget is spent.
    pub fn note(&self, uid: u32, line: impl FnOnce() -> String) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        let mut windows = super::lock(&self.windows);
        let w = windows.entry(uid).or_insert(Window {
            start: now,
            logged: 0,
            suppressed: 0,
        });
        if now.duration_since(w.start) >= self.period {
            report_suppressed(self.noun, uid, w.suppressed, self.period);
            *w = Window {
                start: now,
                logged: 0,
                suppressed: 0,
            };
        }
        if w.logged < self.burst {
            w.logged += 1;
            let line = line();
            log::warn!(target: "unimem::service", "{line}");
        } else {
            w.suppressed += 1;
        }
    }

    /// Writes the "suppressed" line of every uid whose period is over and
    /// forgets those uids. `all`: every uid, period over or not (at stop).
    pub fn flush_due(&self, all: bool) {
        let now = Instant::now();
        let mut windows = super::lock(&self.windows);
        windows.retain(|&uid, w| {
            if all || now.duration_since(w.start) >= self.period {
                report_suppressed(self.noun, uid, w.suppressed, self.period);
                false
            } else {
                true
            }
        });
    }
}

fn report_suppressed(noun: &str, uid: u32, n: u64, period: Duration) {
    if n == 0 {
        return;
    }
    let who = if uid == UNKNOWN_UID {
        "clients of unknown uid".to_string()
    } else {
        format!("uid {uid}")
    };
    log::warn!(
        target: "unimem::service",
        "{n} more {noun} from {who} suppressed (at most {BURST} lines per uid every {} s)",
        period.as_secs()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_budget_per_uid_then_counting() {
        let log = RateLimitedLog::new(2, Duration::from_secs(3600), true, "refusals");
        let mut shown = 0;
        for _ in 0..10 {
            log.note(7, || {
                shown += 1;
                String::new()
            });
        }
        log.note(8, || {
            shown += 1;
            String::new()
        });
        assert_eq!(shown, 3, "two lines for uid 7, one for uid 8");
        let w = super::super::lock(&log.windows);
        assert_eq!(w[&7].suppressed, 8);
        assert_eq!(w[&8].suppressed, 0);
        drop(w);
        log.flush_due(true);
        assert!(super::super::lock(&log.windows).is_empty());
    }
}
