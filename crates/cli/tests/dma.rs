//! `probe --dma-from`: the machine's disk writes a file into the prepared
//! surface by DMA, and the probe's map is checked against the test's own
//! pagemap reading after it; refusals name what to do.
#![cfg(target_os = "linux")]

mod common;

use common::*;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// A file of pseudo-random bytes on the disk (not tmpfs), removed on drop.
struct DiskFile(PathBuf);

impl DiskFile {
    fn new(len: usize) -> DiskFile {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = PathBuf::from(format!(
            "/var/tmp/unimem-dma-{}-{n}.bin",
            std::process::id()
        ));
        let mut x = 0x9e37_79b9_7f4a_7c15u64 ^ n as u64;
        let bytes: Vec<u8> = (0..len / 8)
            .flat_map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x.to_le_bytes()
            })
            .collect();
        let mut f = std::fs::File::create(&path).unwrap();
        f.write_all(&bytes).unwrap();
        f.sync_all().unwrap();
        DiskFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for DiskFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn check_dma(json: &serde_json::Value, len: u64, total: u64) {
    let d = &json["dma"];
    assert_eq!(d["ok"], true, "{d}");
    assert_eq!(d["bytes"], len, "{d}");
    assert_eq!(d["addresses_unchanged"], true, "{d}");
    assert_eq!(d["surface_checksum"], d["expected_checksum"], "{d}");
    assert_eq!(d["uncovered"]["checked_bytes"], total - len, "{d}");
    assert_eq!(d["uncovered"]["mismatched_words"], 0, "{d}");
    assert_eq!(json["verification"]["ok"], true);
}

#[test]
fn a_disk_dmas_into_the_pinned_surface_where_the_map_says() {
    require_root();
    let file = DiskFile::new(8 << 20);
    let held = HeldProbe::start(&[
        "--size",
        "8M",
        "--via",
        "direct",
        "--dma-from",
        file.path(),
        "--dma-len",
        "6M",
    ]);
    check_dma(&held.json, 6 << 20, 8 << 20);
    assert_eq!(held.json["dma"]["method"], "io_uring READ_FIXED");
    // After the DMA, the map still matches the test's own reading, and the
    // surface's bytes are the file's: read them through /proc/PID/mem.
    let runs = reference_segments(held.pid(), held.va(), held.len());
    assert_eq!(coalesce(held.segments()), runs);
    let mem = std::fs::File::open(format!("/proc/{}/mem", held.pid())).unwrap();
    let mut got = vec![0u8; 6 << 20];
    std::os::unix::fs::FileExt::read_exact_at(&mem, &mut got, held.va()).unwrap();
    let want = std::fs::read(&file.0).unwrap();
    assert!(got == want[..6 << 20], "surface bytes differ from the file");
    assert_eq!(held.release().code(), Some(0));
}

#[test]
fn through_the_service_the_resolver_checksum_matches_the_file() {
    require_root();
    let dir = std::env::temp_dir().join(format!("unimem-dma-serve-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let sock = dir.join("unimem.sock");
    let mut serve = Command::new(bin())
        .args(["serve", "--socket", sock.to_str().unwrap()])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..200 {
        if sock.exists() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    let file = DiskFile::new(4 << 20);
    let out = unimem(&[
        "probe",
        "--size",
        "4M",
        "--via",
        "service",
        "--socket",
        sock.to_str().unwrap(),
        "--dma-from",
        file.path(),
        "--json",
    ]);
    let _ = serve.kill();
    let _ = serve.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    check_dma(&json, 4 << 20, 4 << 20);
    assert_eq!(json["dma"]["method"], "O_DIRECT pread");
    let sums = json["dma"]["resolver_checksums"].as_array().unwrap();
    assert!(!sums.is_empty(), "the service computes checksums");
    for c in sums {
        assert_eq!(c["resolver"], c["expected"], "{c}");
    }
}

#[test]
fn files_no_device_would_write_are_refused_with_status_2() {
    let err = |args: &[&str], needle: &str| {
        let out = unimem(args);
        let e = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {e}");
        let last = e.trim_end().lines().last().unwrap_or("");
        assert!(last.starts_with("unimem: ") && last.contains(needle), "{e}");
        assert!(stdout(&out).is_empty());
    };
    err(
        &["probe", "--dma-from", "/nonexistent/file"],
        "No such file",
    );
    let shm = format!("/dev/shm/unimem-dma-test-{}", std::process::id());
    std::fs::write(&shm, vec![0u8; 65536]).unwrap();
    err(&["probe", "--dma-from", &shm], "not on a block device");
    let _ = std::fs::remove_file(&shm);
    err(&["probe", "--dma-len", "4K"], "--dma-from");
    require_root();
    let short = DiskFile::new(64 << 10);
    err(
        &["probe", "--size", "128K", "--dma-from", short.path()],
        "fewer than the 131072",
    );
    err(
        &[
            "probe",
            "--size",
            "64K",
            "--dma-from",
            short.path(),
            "--dma-len",
            "1000",
        ],
        "not a whole number",
    );
}
