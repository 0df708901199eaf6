//! The policy cannot be bypassed: a uid the policy does not admit gets
//! nothing; no client learns addresses of memory it did not pass — not
//! through another connection's handles, not through a file it may only
//! read (or only name, `O_PATH`), not through offsets outside its surface;
//! and the socket and its directory have the modes the policy says. (The
//! byte caps under load are in `load.rs`.)

use crate::common::*;
use std::os::fd::AsFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::PathBuf;
use unimem::core::wire::Request;
use unimem::resolve::service::ServiceClient;
use unimem::service::rule::Rule;
use unimem::service::{Config, Limits, Policy, Service};
use unimem::surface::{Backing, Surface};
use unimem_service_tests::env;
use unimem_service_tests::request::{prepare, refusal, HANDSHAKE};

const MIB: u64 = 1 << 20;
const NOBODY: u32 = 65534;
const NOT_ADMITTED: u32 = 65533;

fn results(c: &mut ChildClient) -> Vec<String> {
    let mut v = Vec::new();
    while let Some(l) = c.line() {
        v.push(l);
    }
    v
}

#[test]
fn a_uid_not_admitted_gets_nothing_and_readable_files_are_refused() {
    let svc = start(admitting(NOBODY), Limits::default());
    // A root-owned tmpfs file others may read, and one only root may read.
    let shm = PathBuf::from(format!("/dev/shm/unimem-sec-{}", std::process::id()));
    let secret = PathBuf::from(format!("/dev/shm/unimem-sec-{}-0600", std::process::id()));
    /// Removes the files even if the test fails.
    struct Remove(Vec<PathBuf>);
    impl Drop for Remove {
        fn drop(&mut self) {
            for p in &self.0 {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    let _remove = Remove(vec![shm.clone(), secret.clone()]);
    for (p, mode) in [(&shm, 0o644), (&secret, 0o600)] {
        let f = std::fs::File::create(p).unwrap();
        f.set_len(MIB).unwrap();
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    let tries = format!("read:{},path:{}", shm.display(), secret.display());
    let env = [socket_env(&svc.socket), (env::FILES, tries.clone())];

    // Not admitted: the handshake is refused by the policy and the
    // connection ends; nothing else is answered.
    let mut c = child_client(Role::PrepareFiles, Some(NOT_ADMITTED), &env);
    let r = results(&mut c);
    assert!(c.child.wait().unwrap().success());
    assert_eq!(r[0], "RESULT handshake Some(Policy)", "{r:?}");
    assert!(r[1..].iter().all(|l| l.ends_with("CLOSED")), "{r:?}");

    // Admitted, but with fds of files it may only read or only name.
    let mut c = child_client(Role::PrepareFiles, Some(NOBODY), &env);
    let r = results(&mut c);
    assert!(c.child.wait().unwrap().success());
    assert_eq!(
        r,
        [
            "RESULT handshake None",
            "RESULT read Some(Some(FdAccess))",
            "RESULT path Some(Some(FdAccess))"
        ]
    );
    let st = svc.handle.stats();
    assert_eq!((st.pinned_bytes, st.handles), (0, 0), "{st:?}");
}

#[test]
fn no_connection_reaches_another_connections_handles_or_outside_its_surface() {
    // B guesses many handles on one connection: the limit of bad requests
    // in a row that would close it is tested in availability.rs.
    let limits = Limits {
        max_refusals: 1000,
        ..Limits::default()
    };
    let svc = start(Policy::default(), limits);
    let page = rustix::param::page_size() as u64;
    // A holds two prepared ranges.
    let s = Surface::create(4 * MIB, Backing::Memfd).unwrap();
    let mut a = ServiceClient::connect(&svc.socket).unwrap();
    let (h1, _) = a.prepare(s.fd(), 0, 2 * MIB).unwrap();
    let (h2, _) = a.prepare(s.fd(), 2 * MIB, 2 * MIB).unwrap();
    // B guesses handles, including A's exact ones.
    let b = raw_connect(&svc.socket);
    assert_eq!(refusal(&b, &HANDSHAKE, None), None);
    for h in [h1, h2, 0, 3, 4, 64, u64::MAX] {
        for req in [
            Request::segments(h, 0),
            Request::checksum(h, 0, page),
            Request::complete(h),
        ] {
            assert_eq!(
                refusal(&b, &req, None),
                Some(Rule::UnknownHandle),
                "{req:?}"
            );
        }
    }
    // B's own small surface: nothing outside it.
    let mine = memfd(4 * page);
    for (o, l) in [
        (0, 5 * page),
        (4 * page, page),
        (3 * page, 2 * page),
        (u64::MAX - page + 1, page),
        (page, u64::MAX - page + 1),
        (0, !(page - 1)),
    ] {
        assert_eq!(
            refusal(&b, &prepare(o, l), Some(mine.as_fd())),
            Some(Rule::Range),
            "{o:#x}+{l:#x}"
        );
    }
    assert_eq!(refusal(&b, &prepare(0, 4 * page), Some(mine.as_fd())), None);
    for (o, l) in [(0, 5 * page), (4 * page, 8), (u64::MAX - 7, 8)] {
        let req = Request::checksum(1, o, l);
        assert_eq!(refusal(&b, &req, None), Some(Rule::ChecksumRange));
    }
    // A's ranges are untouched.
    a.checksum(h1, 0, 2 * MIB).unwrap();
    a.complete(h2).unwrap();
    assert_eq!(svc.handle.stats().pinned_bytes, 2 * MIB + 4 * page);
}

fn mode_of(p: &std::path::Path) -> (u32, u32, u32) {
    let m = std::fs::metadata(p).unwrap();
    (m.mode() & 0o7777, m.uid(), m.gid())
}

#[test]
fn socket_and_directory_modes_follow_the_policy() {
    require_root();
    let dir = TempDir::new("modes");
    for (policy, want) in [
        (Policy::default(), (0o600, 0)),
        (
            Policy {
                allow_uids: vec![],
                allow_gids: vec![4242],
                admin_gids: vec![],
            },
            (0o660, 4242),
        ),
        (admitting(NOBODY), (0o666, 0)),
    ] {
        let sock = dir.0.join("run/unimem.sock");
        let mut config = Config::new(&sock);
        config.policy = policy.clone();
        let h = Service::bind(config).unwrap().spawn().unwrap();
        assert_eq!(mode_of(&sock), (want.0, 0, want.1), "socket for {policy:?}");
        assert_eq!(mode_of(&dir.0.join("run")).0, 0o755, "created directory");
        h.shutdown();
        assert!(!sock.exists(), "the socket outlived the service");
    }
    // A directory others could write to, or owned by someone else, is refused.
    let open = dir.0.join("open");
    std::fs::create_dir(&open).unwrap();
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = Service::bind(Config::new(open.join("s.sock")))
        .err()
        .unwrap();
    assert!(e.message().contains("writable by others"), "{e}");
    let theirs = dir.0.join("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::os::unix::fs::chown(&theirs, Some(NOBODY), None).unwrap();
    let e = Service::bind(Config::new(theirs.join("s.sock")))
        .err()
        .unwrap();
    assert!(e.message().contains("belongs to uid"), "{e}");
}
