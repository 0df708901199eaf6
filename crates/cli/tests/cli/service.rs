//! The real `unimem serve` with the real client: an unprivileged probe gets
//! pinned addresses, a uid not admitted is refused, a client the service
//! cannot see by pid is still served.

use crate::common::*;
use std::process::Command;

#[test]
fn unprivileged_probe_through_the_real_service_gets_pinned_addresses() {
    require_root();
    let served = Served::start(&["--allow-uid", "65534"]);
    let held = HeldProbe::start_as(
        65534,
        &[
            "--via",
            "service",
            "--socket",
            &served.socket(),
            "--size",
            "16M",
        ],
    );
    let j = &held.json;
    assert_eq!(j["resolver"]["name"], "service");
    assert_eq!(j["resolver"]["pinned"], true);
    assert_eq!(j["verification"]["ok"], true, "{j}");
    assert!(
        !j["verification"]["checksums"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no resolver checksum was verified"
    );
    // Pinned: the addresses cannot have moved, so one reading must match.
    assert_eq!(
        held.segments(),
        reference_segments(held.pid(), held.va(), held.len())
    );
    assert_eq!(held.release().code(), Some(0));
}

#[test]
fn a_uid_the_service_does_not_admit_is_refused() {
    require_root();
    let served = Served::start(&["--allow-uid", "4242"]);
    let out = as_nobody(&["probe", "--via", "service", "--socket", &served.socket()]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.to_lowercase().contains("permission denied") || err.contains("not admitted"),
        "{err}"
    );
}

#[test]
fn a_client_the_service_cannot_see_by_pid_is_still_served() {
    require_root();
    // In a pid namespace of its own, the service sees its clients' pid as 0
    // (SO_PEERCRED): admission must rest on uid/gid alone, and nothing may
    // assume a non-zero pid.
    let served = Served::start_under(&["unshare", "--pid", "--fork", "--kill-child"], &[]);
    let out = unimem(&[
        "probe",
        "--via",
        "service",
        "--socket",
        &served.socket(),
        "--json",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["resolver"]["name"], "service");
    assert_eq!(j["verification"]["ok"], true);
}

/// `unimem serve` as a child process on a private socket; killed on drop.
pub(crate) struct Served {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Served {
    pub(crate) fn start(extra: &[&str]) -> Served {
        Self::start_under(&[], extra)
    }

    /// `unimem serve` run by `wrapper` (e.g. `unshare ...`), if not empty.
    pub(crate) fn start_under(wrapper: &[&str], extra: &[&str]) -> Served {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = std::env::temp_dir().join(format!("unimem-cli-serve-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let sock = dir.join("unimem.sock");
        let bin = bin();
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&bin);
                c
            }
            None => Command::new(&bin),
        };
        let child = cmd
            .args(["serve", "--socket", sock.to_str().unwrap()])
            .args(extra)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // From here the child is owned by `Served`, whose drop reaps it.
        let served = Served { child, dir };
        for _ in 0..200 {
            if sock.exists() {
                return served;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("unimem serve did not create {}", sock.display());
    }

    pub(crate) fn socket(&self) -> String {
        self.dir.join("unimem.sock").to_str().unwrap().to_string()
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
