//! `unimem watch` against the test's own pagemap readings: while memory
//! is compacted, every page the test saw move is one the watch reported,
//! and a surface pinned by `unimem probe --hold` reports none.
//!
//! Compaction affects the whole machine: the test holds the project's mm
//! lock file, and turns proactive compaction off (restored on drop) so the
//! only compaction in its windows is the one it triggers.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;
use unimem::mapping::Mapping;

const MIB: u64 = 1 << 20;
const PROACTIVENESS: &str = "/proc/sys/vm/compaction_proactiveness";

use unimem_testkit::Knob;

/// One address (or none) per base page, straight from pagemap.
fn addresses(pid: u32, va: u64, len: u64) -> Vec<Option<u64>> {
    use std::os::unix::fs::FileExt;
    let page = page_size();
    let f = std::fs::File::open(format!("/proc/{pid}/pagemap")).unwrap();
    let mut bytes = vec![0u8; (len / page * 8) as usize];
    f.read_exact_at(&mut bytes, va / page * 8).unwrap();
    bytes
        .chunks_exact(8)
        .map(|b| {
            let w = u64::from_le_bytes(b.try_into().unwrap());
            let pfn = w & ((1 << 55) - 1);
            (w >> 63 == 1 && pfn != 0).then_some(pfn * page)
        })
        .collect()
}

/// A running `unimem watch --json`, its lines parsed as they come.
struct Watch {
    child: Child,
    lines: Receiver<serde_json::Value>,
    seen: Vec<serde_json::Value>,
}

impl Watch {
    fn start(pid: u32, va: u64, len: u64, extra: &[&str]) -> Watch {
        let mut child = Command::new(bin())
            .args(["watch", "--pid", &pid.to_string()])
            .args(["--addr", &format!("{va:#x}"), "--len", &len.to_string()])
            .args(["--interval", "100ms", "--json"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for l in out.lines().map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&l).expect("a JSON line");
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Watch {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for the next line (at most 60 s).
    fn next(&mut self) -> serde_json::Value {
        let v = self
            .lines
            .recv_timeout(Duration::from_secs(60))
            .expect("watch printed nothing for 60 s");
        self.seen.push(v.clone());
        v
    }

    /// Waits until `n` more ticks have been printed.
    fn ticks(&mut self, n: usize) {
        for _ in 0..n {
            let v = self.next();
            assert!(v.get("tick").is_some(), "{v}");
        }
    }

    /// Reads ticks until one that was read after this call finds every one
    /// of `pages` present (at most `max`). Ticks already printed were read
    /// earlier, and the next may have begun earlier too, so both are passed
    /// over; a page caught mid-migration (a migration entry) has no address,
    /// and its move shows only at the next reading that has one.
    fn ticks_until_all_present(&mut self, pages: u64, max: usize) {
        while let Ok(v) = self.lines.try_recv() {
            self.seen.push(v);
        }
        self.ticks(1);
        for _ in 0..max {
            let v = self.next();
            assert!(v.get("tick").is_some(), "{v}");
            if v["present"] == pages {
                return;
            }
        }
        panic!("watch never read all {pages} pages present in {max} readings");
    }

    /// Ctrl-C; returns every tick and the summary.
    fn interrupt(self) -> (Vec<serde_json::Value>, serde_json::Value) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
        self.finish()
    }

    fn finish(mut self) -> (Vec<serde_json::Value>, serde_json::Value) {
        loop {
            let v = self.next();
            if v.get("summary").is_some() {
                break;
            }
        }
        assert_eq!(self.child.wait().unwrap().code(), Some(0));
        let summary = self.seen.pop().unwrap();
        (self.seen, summary["summary"].clone())
    }
}

/// A reading in which every page has an address: while the kernel tries
/// to migrate a page (even a pinned one, whose migration then fails) its
/// entry is briefly a migration entry without one.
fn all_present(pid: u32, va: u64, len: u64) -> Vec<Option<u64>> {
    for _ in 0..20 {
        let a = addresses(pid, va, len);
        if a.iter().all(Option::is_some) {
            return a;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("pages of process {pid} stayed without an address");
}

/// Offsets of every page the watch reported moved, in any tick.
fn moved_offsets(ticks: &[serde_json::Value]) -> HashSet<u64> {
    ticks
        .iter()
        .flat_map(|t| t["moves"].as_array().unwrap().iter())
        .map(|m| m["offset"].as_u64().unwrap())
        .collect()
}

fn memfd_mapping(len: u64) -> (OwnedFd, Mapping) {
    let fd = rustix::fs::memfd_create("unimem-watch", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    rustix::fs::ftruncate(&fd, len).unwrap();
    let m = Mapping::shared(&fd, 0, len as usize).unwrap();
    (fd, m)
}

/// A buffer of this process whose pages are interleaved with a filler
/// four times its size, of which every other 64 KiB is then freed: small
/// holes between the buffer's pages that compaction fills.
fn fragmented_buffer(len: u64) -> (OwnedFd, Mapping) {
    let page = page_size() as usize;
    let (fd, mut buf) = memfd_mapping(len);
    let (filler_fd, mut filler) = memfd_mapping(4 * len);
    {
        let (b, f) = (buf.as_mut_slice(), filler.as_mut_slice());
        for i in 0..len as usize / page {
            b[i * page] = i as u8;
            for j in 0..4 {
                f[(4 * i + j) * page] = 1;
            }
        }
    }
    drop(filler);
    let chunk = 64 * 1024;
    for off in (0..4 * len).step_by(2 * chunk as usize) {
        let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        rustix::fs::fallocate(&filler_fd, flags, off, chunk).unwrap();
    }
    (fd, buf)
}

#[test]
fn watch_reports_what_compaction_moved_and_nothing_of_a_pinned_surface() {
    require_root();
    let _lock = unimem_testkit::mm_lock();
    let _quiet = Knob::set(PROACTIVENESS, "0");
    let page = page_size();
    let len = 64 * MIB;
    let me = std::process::id();
    let pinned = HeldProbe::start(&["--size", "64M", "--via", "direct"]);
    assert_eq!(pinned.json["resolver"]["pinned"], true);
    let mut seen_moving = Vec::new();

    for round in 1..=5 {
        let (_fd, buf) = fragmented_buffer(len);
        let va = buf.addr().0;
        let before = all_present(me, va, len);
        let pinned_before = all_present(pinned.pid(), pinned.va(), pinned.len());
        let mut free_watch = Watch::start(me, va, len, &[]);
        let mut pin_watch = Watch::start(pinned.pid(), pinned.va(), pinned.len(), &[]);
        let first = free_watch.next();
        assert_eq!(first["tick"], 0, "{first}");
        assert_eq!(first["pinned"], "no", "{first}");
        assert_eq!(first["present"], len / page);
        let pin_first = pin_watch.next();
        assert_eq!(pin_first["pinned"], "yes", "{pin_first}");
        // The reference must not have moved between its reading and the
        // watch's first one (nothing compacts here, but retry if so).
        if all_present(me, va, len) != before {
            eprintln!("round {round}: pages moved before the watch started; again");
            continue;
        }

        std::fs::write("/proc/sys/vm/compact_memory", "1").unwrap();
        free_watch.ticks(2);
        pin_watch.ticks(2);
        let after = all_present(me, va, len);
        let pinned_after = all_present(pinned.pid(), pinned.va(), pinned.len());
        // One more reading each after the reference's, with every page
        // present, so no move the reference saw is still in flight.
        free_watch.ticks_until_all_present(len / page, 50);
        pin_watch.ticks(1);
        let (free_ticks, free_summary) = free_watch.interrupt();
        let (pin_ticks, pin_summary) = pin_watch.interrupt();

        let reported = moved_offsets(&free_ticks);
        let moved: Vec<u64> = (0..len / page)
            .filter(|&i| before[i as usize] != after[i as usize])
            .map(|i| i * page)
            .collect();
        eprintln!(
            "round {round}: the reference saw {} of {} pages move; watch reported {}; vmstat {}",
            moved.len(),
            len / page,
            reported.len(),
            free_summary["vmstat"]
        );
        // The watch never reports a move the reference cannot have seen:
        // every reported move goes from one address to another.
        for t in &free_ticks {
            for m in t["moves"].as_array().unwrap() {
                assert_ne!(m["old"], m["new"], "{m}");
                assert!(m["old"].is_u64() && m["new"].is_u64(), "{m}");
            }
        }
        for off in &moved {
            assert!(
                reported.contains(off),
                "page at offset {off:#x} moved ({:?} -> {:?}) but watch did not report it",
                before[(off / page) as usize],
                after[(off / page) as usize]
            );
        }
        assert_eq!(free_summary["ended"], "interrupted");
        assert_eq!(free_summary["pages_moved"], reported.len() as u64);

        // The pinned surface: nothing moved, for the reference or watch.
        assert_eq!(pinned_before, pinned_after, "a pinned page moved");
        assert_eq!(pin_summary["moves"], 0, "{pin_summary}");
        assert!(moved_offsets(&pin_ticks).is_empty());
        assert!(pin_ticks.iter().all(|t| t["pinned"] == "yes"));

        seen_moving.push(moved.len());
        if !moved.is_empty() {
            break;
        }
    }
    assert!(
        seen_moving.iter().any(|&n| n > 0),
        "compaction moved no unpinned page in {} rounds ({seen_moving:?}): the machine could \
         not be fragmented enough, so this run shows nothing about watch",
        seen_moving.len()
    );
    drop(pinned);
}

#[test]
fn watch_ends_when_the_process_exits() {
    require_root();
    let held = HeldProbe::start(&["--size", "1M"]);
    let mut w = Watch::start(held.pid(), held.va(), held.len(), &[]);
    assert_eq!(w.next()["tick"], 0);
    assert_eq!(held.release().code(), Some(0));
    let (_, summary) = w.finish();
    assert_eq!(summary["ended"], "process exited", "{summary}");
}

#[test]
fn watch_stops_after_count_and_refuses_bad_values() {
    require_root();
    let held = HeldProbe::start(&["--size", "1M"]);
    let w = Watch::start(held.pid(), held.va(), held.len(), &["--count", "2"]);
    let (ticks, summary) = w.finish();
    assert_eq!(ticks.len(), 3, "the first reading and two more");
    assert_eq!(summary["ended"], "count reached");
    assert_eq!(summary["ticks"], 2);
    for (args, needle) in [
        (vec!["--interval", "1ms"], "shorter than 10ms"),
        (vec!["--interval", "soon"], "invalid interval"),
        (vec!["--count", "0"], "--count"),
    ] {
        let out = unimem(
            &[
                &["watch", "--pid", "1", "--addr", "0x1000", "--len", "4K"][..],
                &args,
            ]
            .concat(),
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains(needle), "{}", stderr(&out));
    }
    let gone = unimem(&[
        "watch",
        "--pid",
        "999999999",
        "--addr",
        "0x1000",
        "--len",
        "4K",
    ]);
    assert_eq!(gone.status.code(), Some(2));
    assert!(
        stderr(&gone).contains("does not exist"),
        "{}",
        stderr(&gone)
    );
}
