//! `unimem watch`: re-resolves a range of a process every interval and
//! prints every page whose physical address changed, the kernel's
//! migration and compaction counters meanwhile, and whether the process
//! pins memory. A page read without an address (briefly, while the kernel
//! tries to migrate it) is not a move; see `unimem::watch`. Ends after `--count` ticks, on Ctrl-C, or when the process
//! exits, with a summary.

use crate::output::{self, io_error};
use crate::EXIT_OK;
use clap::Args;
use serde_json::json;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use unimem::watch::{self, Tick, Watcher};
use unimem::{Error, ErrorKind, Result};
use unimem_core::size::{parse_address, parse_size};
use unimem_core::VirtAddr;

/// Moved pages a table tick lists without `--all`.
const SHOWN_MOVES: usize = 16;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Process whose memory to watch.
    #[arg(long)]
    pub pid: u32,
    /// Start of the range (hex 0x... or decimal), page-aligned.
    #[arg(long, value_parser = parse_address_arg)]
    pub addr: u64,
    /// Length of the range: 4096, 2M, 1G.
    #[arg(long, value_parser = parse_len_arg)]
    pub len: u64,
    /// Time between readings: 1s, 500ms, 2m.
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: Duration,
    /// Stop after this many readings after the first.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub count: Option<u64>,
    /// One JSON object per reading (JSON Lines), then a summary object.
    #[arg(long)]
    pub json: bool,
    /// List every moved page in the table (JSON always lists every one).
    #[arg(long)]
    pub all: bool,
}

fn parse_address_arg(text: &str) -> std::result::Result<u64, String> {
    parse_address(text).map_err(|e| e.to_string())
}

fn parse_len_arg(text: &str) -> std::result::Result<u64, String> {
    match parse_size(text) {
        Ok(0) => Err(format!("length '{text}' is 0: give at least one page")),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

/// `250ms`, `1s`, `2m`, or plain seconds.
fn parse_interval(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("invalid interval '{text}': expected e.g. 500ms, 1s or 2m"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        _ => {
            return Err(format!(
                "invalid interval '{text}': expected e.g. 500ms, 1s or 2m"
            ))
        }
    };
    if d < Duration::from_millis(10) {
        return Err(format!("interval '{text}' is shorter than 10ms"));
    }
    Ok(d)
}

/// Why the watch ended.
#[derive(Clone, Copy)]
enum End {
    Count,
    Interrupted,
    Exited,
}

impl End {
    fn name(self) -> &'static str {
        match self {
            End::Count => "count reached",
            End::Interrupted => "interrupted",
            End::Exited => "process exited",
        }
    }
}

/// Totals over the whole watch.
#[derive(Default)]
struct Totals {
    ticks: u64,
    moves: u64,
    pages: HashSet<u64>,
    vmstat: BTreeMap<&'static str, u64>,
}

pub fn run(args: &WatchArgs) -> Result<ExitCode> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .map_err(|e| Error::io("cannot install the Ctrl-C handler", e))?;
    }
    let (mut watcher, first) = Watcher::start(args.pid, VirtAddr(args.addr), args.len)?;
    let started = Instant::now();
    emit(args, 0, Duration::ZERO, &watcher, &first)?;
    let mut totals = Totals::default();
    let end = loop {
        if args.count.is_some_and(|c| totals.ticks >= c) {
            break End::Count;
        }
        if sleep_unless_stopped(args.interval, &stop) {
            break End::Interrupted;
        }
        if watch::exited(args.pid) {
            break End::Exited;
        }
        let tick = match watcher.tick() {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => break End::Exited,
            Err(e) => return Err(e),
        };
        totals.ticks += 1;
        totals.moves += tick.moves.len() as u64;
        totals.pages.extend(tick.moves.iter().map(|m| m.offset));
        for (name, d) in &tick.vmstat {
            *totals.vmstat.entry(name).or_default() += d;
        }
        emit(args, totals.ticks, started.elapsed(), &watcher, &tick)?;
    };
    summary(args, end, started.elapsed(), &watcher, &totals)?;
    Ok(ExitCode::from(EXIT_OK))
}

/// Sleeps `d` in short steps; true when a stop signal arrived.
fn sleep_unless_stopped(d: Duration, stop: &AtomicBool) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if stop.load(Ordering::Relaxed) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(50)));
    }
}

fn vmstat_object(v: &[(&'static str, u64)]) -> serde_json::Map<String, serde_json::Value> {
    v.iter().map(|(k, d)| (k.to_string(), json!(d))).collect()
}

fn line(value: serde_json::Value) -> Result<()> {
    output::data(&format!("{value}\n")).map_err(io_error)
}

fn emit(args: &WatchArgs, n: u64, at: Duration, w: &Watcher, t: &Tick) -> Result<()> {
    if args.json {
        return line(json!({
            "tick": n,
            "elapsed_s": at.as_secs_f64(),
            "pid": args.pid,
            "pages": w.pages(),
            "present": t.present,
            "moved": t.moves.len(),
            "moves": t.moves,
            "vmstat": vmstat_object(&t.vmstat),
            "vm_pin_bytes": t.vm_pin,
            "pinned": t.pinned.name(),
        }));
    }
    let mut out = String::new();
    let pin = match t.vm_pin {
        Some(b) => format!("{} (VmPin {} kB)", t.pinned.name(), b / 1024),
        None => t.pinned.name().to_string(),
    };
    if n == 0 {
        let _ = writeln!(
            out,
            "[*] Watching {} pages of process {} at {:#x}: {} present; pinned: {pin}",
            w.pages(),
            args.pid,
            args.addr,
            t.present
        );
        return output::data(&out).map_err(io_error);
    }
    let grown: Vec<String> = t
        .vmstat
        .iter()
        .filter(|(_, d)| *d > 0)
        .map(|(k, d)| format!("{k} +{d}"))
        .collect();
    let _ = writeln!(
        out,
        "[{n} @ {:.1}s] {} pages moved; {} present; pinned: {pin}; vmstat: {}",
        at.as_secs_f64(),
        t.moves.len(),
        t.present,
        if grown.is_empty() {
            "no change".to_string()
        } else {
            grown.join(", ")
        }
    );
    let shown = if args.all { t.moves.len() } else { SHOWN_MOVES };
    for m in t.moves.iter().take(shown) {
        let _ = writeln!(
            out,
            "    {:#014x}: {:#015x} -> {:#015x}",
            m.offset, m.old, m.new
        );
    }
    if t.moves.len() > shown {
        let _ = writeln!(
            out,
            "    ... {} more (--all lists every page)",
            t.moves.len() - shown
        );
    }
    output::data(&out).map_err(io_error)
}

fn summary(args: &WatchArgs, end: End, at: Duration, w: &Watcher, t: &Totals) -> Result<()> {
    if args.json {
        let vmstat: serde_json::Map<String, serde_json::Value> = t
            .vmstat
            .iter()
            .map(|(k, d)| (k.to_string(), json!(d)))
            .collect();
        return line(json!({
            "summary": {
                "ended": end.name(),
                "ticks": t.ticks,
                "elapsed_s": at.as_secs_f64(),
                "pages": w.pages(),
                "moves": t.moves,
                "pages_moved": t.pages.len(),
                "vmstat": vmstat,
            }
        }));
    }
    let grown: Vec<String> = t
        .vmstat
        .iter()
        .filter(|(_, d)| **d > 0)
        .map(|(k, d)| format!("{k} +{d}"))
        .collect();
    output::data(&format!(
        "[*] {}: {} readings over {:.1}s; {} of {} pages moved ({} moves); vmstat: {}\n",
        end.name(),
        t.ticks,
        at.as_secs_f64(),
        t.pages.len(),
        w.pages(),
        t.moves,
        if grown.is_empty() {
            "no change".to_string()
        } else {
            grown.join(", ")
        }
    ))
    .map_err(io_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_interval("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_interval("3"), Ok(Duration::from_secs(3)));
        assert!(parse_interval("1ms").is_err());
        assert!(parse_interval("fast").is_err());
        assert!(parse_interval("1h").is_err());
    }
}
