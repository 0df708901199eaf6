//! Refusals cannot flood the log: 20,000 refused connections from one uid
//! give a handful of lines, then one that says how many were suppressed,
//! through the `log` crate (this test installs a logger that keeps every
//! line).

use crate::common::*;
use std::sync::Mutex;
use std::time::Duration;
use unimem::service::logbook;
use unimem::service::Limits;
use unimem_service_tests::env;

const NOBODY: u32 = 65534;
const NOT_ADMITTED: u32 = 65533;
const CONNECTIONS: u64 = 20_000;

/// Every line logged by the service, in order.
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Keep;

impl log::Log for Keep {
    fn enabled(&self, _: &log::Metadata<'_>) -> bool {
        true
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("unimem") {
            LINES.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn refusal_lines() -> Vec<String> {
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("refus"))
        .cloned()
        .collect()
}

#[test]
fn twenty_thousand_refused_connections_give_a_bounded_number_of_lines() {
    // The log is process-wide: no other test's refusals may land in it.
    let _alone = alone();
    log::set_logger(&Keep).unwrap();
    log::set_max_level(log::LevelFilter::Trace);
    let svc = start(admitting(NOBODY), Limits::default());
    let env = [
        socket_env(&svc.socket),
        (env::CONNS, CONNECTIONS.to_string()),
    ];
    let started = std::time::Instant::now();
    let mut c = child_client(Role::ConnectMany, Some(NOT_ADMITTED), &env);
    assert_eq!(c.line(), Some(format!("CONNECTED {CONNECTIONS}")));
    assert!(c.finish().success());
    assert!(
        wait_until(60, || svc.handle.stats().refused >= CONNECTIONS),
        "{:?}",
        svc.handle.stats()
    );
    let took = started.elapsed();
    // Every refusal is either a line or counted in a periodic
    // "suppressed" line, which comes without another refusal.
    let accounted = || {
        let lines = refusal_lines();
        let suppressed: u64 = lines.iter().filter_map(|l| suppressed_count(l)).sum();
        let shown = lines
            .iter()
            .filter(|l| suppressed_count(l).is_none())
            .count() as u64;
        (shown, suppressed, lines.len())
    };
    let period = logbook::PERIOD + Duration::from_secs(5);
    assert!(
        wait_until(period.as_secs(), || {
            let (shown, suppressed, _) = accounted();
            shown + suppressed == CONNECTIONS
        }),
        "refusals not accounted for: {:?}: {:#?}",
        accounted(),
        refusal_lines()
    );
    let (shown, suppressed, lines) = accounted();
    let all = LINES.lock().unwrap().len();
    eprintln!(
        "{CONNECTIONS} refused connections in {:.1} s: {lines} refusal lines ({shown} shown, \
         {suppressed} suppressed), {all} lines in all",
        took.as_secs_f64()
    );
    // At most BURST lines and one "suppressed" line per period.
    let periods = took.as_secs() / logbook::PERIOD.as_secs() + 2;
    assert!(
        lines as u64 <= periods * (u64::from(logbook::BURST) + 1),
        "{lines} lines in {periods} periods"
    );
    assert!(refusal_lines()
        .iter()
        .all(|l| l.contains(&format!("uid {NOT_ADMITTED}"))));
}

/// N of a "N more refusals from uid U suppressed" line.
fn suppressed_count(line: &str) -> Option<u64> {
    let (n, rest) = line.split_once(" more refusals from ")?;
    rest.contains("suppressed").then(|| n.parse().ok())?
}
