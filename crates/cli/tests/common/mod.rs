//! Helpers shared by the integration tests: the real binary, root checks,
//! and an independent reading of a process's pagemap that does not use
//! unimem's own code.
#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Output, Stdio};

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_unimem"))
}

pub fn unimem(args: &[&str]) -> Output {
    Command::new(bin()).args(args).output().expect("run unimem")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// These tests read PFNs and change sysctls: they need root, and say so.
pub fn require_root() {
    unimem_testkit::require_root("PFNs in pagemap need CAP_SYS_ADMIN, and sysctls need root");
}

/// A copy of the binary that every user may run (removed at exit).
pub fn world_executable_bin() -> PathBuf {
    unimem_testkit::world_executable_copy(&bin())
}

/// Runs the binary as nobody (uid and gid 65534).
pub fn as_nobody(args: &[&str]) -> Output {
    let mut cmd = Command::new(world_executable_bin());
    std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
    std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    cmd.args(args).output().expect("run unimem as nobody")
}

/// Physically contiguous runs `(address, length)` of `[va, va+len)` in
/// `pid`, read straight from /proc/PID/pagemap: bit 63 present, bits 0-54
/// PFN. Panics on a page that is not present or hidden: callers populate
/// first and run as root.
pub fn reference_segments(pid: u32, va: u64, len: u64) -> Vec<(u64, u64)> {
    let page = page_size();
    let f = File::open(format!("/proc/{pid}/pagemap")).expect("open pagemap");
    let n = (len / page) as usize;
    let mut bytes = vec![0u8; n * 8];
    f.read_exact_at(&mut bytes, va / page * 8)
        .expect("read pagemap");
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for (i, w) in bytes.chunks_exact(8).enumerate() {
        let w = u64::from_le_bytes(w.try_into().unwrap());
        assert!(
            w >> 63 == 1,
            "page {i} of {va:#x} is not present (entry {w:#x})"
        );
        let pfn = w & ((1 << 55) - 1);
        assert!(pfn != 0, "page {i} has a hidden PFN");
        let pa = pfn * page;
        match runs.last_mut() {
            Some((a, l)) if *a + *l == pa => *l += page,
            _ => runs.push((pa, page)),
        }
    }
    runs
}

pub fn page_size() -> u64 {
    // The base page size from the auxiliary vector the kernel exports.
    let auxv = std::fs::read("/proc/self/auxv").expect("read auxv");
    for pair in auxv.chunks_exact(16) {
        let key = u64::from_le_bytes(pair[..8].try_into().unwrap());
        let value = u64::from_le_bytes(pair[8..].try_into().unwrap());
        if key == 6 {
            // AT_PAGESZ
            return value;
        }
    }
    panic!("AT_PAGESZ missing from auxv");
}

/// Merges adjacent `(address, length)` pairs whose addresses continue.
pub fn coalesce(segs: impl IntoIterator<Item = (u64, u64)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (a, l) in segs {
        match out.last_mut() {
            Some((pa, pl)) if *pa + *pl == a => *pl += l,
            _ => out.push((a, l)),
        }
    }
    out
}

/// `unimem probe ... --json --hold` kept running, its JSON parsed.
pub struct HeldProbe {
    pub child: Child,
    stdin: Option<ChildStdin>,
    pub json: serde_json::Value,
}

impl HeldProbe {
    pub fn start(args: &[&str]) -> HeldProbe {
        Self::start_with(Command::new(bin()), args)
    }

    /// As `start`, as another user (with a binary every user may run).
    pub fn start_as(uid: u32, args: &[&str]) -> HeldProbe {
        let mut cmd = Command::new(world_executable_bin());
        std::os::unix::process::CommandExt::uid(&mut cmd, uid);
        std::os::unix::process::CommandExt::gid(&mut cmd, uid);
        Self::start_with(cmd, args)
    }

    fn start_with(mut cmd: Command, args: &[&str]) -> HeldProbe {
        let mut child = cmd
            .arg("probe")
            .args(args)
            .args(["--json", "--hold"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unimem probe");
        let stdin = child.stdin.take();
        // stderr is drained on a thread so neither pipe can fill up and
        // stall the child; the holding note says the document is complete.
        let err = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut log = String::new();
            for line in err.lines().map_while(Result::ok) {
                let holding = line.contains("Holding the surface");
                log.push_str(&line);
                log.push('\n');
                if holding {
                    let _ = tx.send(Ok(log.clone()));
                }
            }
            let _ = tx.send(Err(log));
        });
        let mut out = Vec::new();
        let mut stdout = child.stdout.take().unwrap();
        let mut buf = [0u8; 65536];
        let json = loop {
            let n = std::io::Read::read(&mut stdout, &mut buf).unwrap();
            out.extend_from_slice(&buf[..n]);
            // The document ends with a newline: parse only then, not after
            // every read (a map of a fragmented 4 GiB is tens of megabytes).
            if out.ends_with(b"\n") {
                if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&out) {
                    break v;
                }
            }
            if n == 0 {
                let log = rx
                    .recv()
                    .map_or_else(|e| e.to_string(), |r| r.unwrap_or_else(|l| l));
                panic!(
                    "probe exited without a JSON document: {log}{}",
                    String::from_utf8_lossy(&out)
                );
            }
        };
        match rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(log)) => panic!("probe did not hold its surface: {log}"),
            Err(e) => panic!("probe stderr: {e}"),
        }
        HeldProbe { child, stdin, json }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn va(&self) -> u64 {
        self.json["surface"]["virtual_address"].as_u64().unwrap()
    }

    pub fn len(&self) -> u64 {
        self.json["total_length"].as_u64().unwrap()
    }

    pub fn segments(&self) -> Vec<(u64, u64)> {
        segments_of(&self.json)
    }

    /// Closes stdin and returns the exit status.
    pub fn release(mut self) -> std::process::ExitStatus {
        if let Some(mut s) = self.stdin.take() {
            let _ = s.flush();
        }
        self.child.wait().unwrap()
    }
}

impl Drop for HeldProbe {
    fn drop(&mut self) {
        self.stdin.take();
        let _ = self.child.wait();
    }
}

pub fn segments_of(json: &serde_json::Value) -> Vec<(u64, u64)> {
    json["segments"]
        .as_array()
        .expect("segments array")
        .iter()
        .map(|s| {
            (
                s["address"].as_u64().expect("address"),
                s["length"].as_u64().expect("length"),
            )
        })
        .collect()
}

/// Calls `read` until the reference reading is the same before and after
/// it (pages may migrate meanwhile), up to `tries` times; returns the
/// stable pair (reference, value).
pub fn stable<T>(
    tries: usize,
    mut reference: impl FnMut() -> Vec<(u64, u64)>,
    mut read: impl FnMut() -> T,
) -> (Vec<(u64, u64)>, T) {
    for _ in 0..tries {
        let before = reference();
        let value = read();
        let after = reference();
        if before == after {
            return (before, value);
        }
    }
    panic!("pages kept moving during {tries} readings");
}
