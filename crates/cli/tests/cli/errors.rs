//! Bad input and missing privileges: one clear `unimem:` line on stderr,
//! status 2, nothing on stdout, never a panic.

use crate::common::*;
use std::process::Command;

#[test]
fn unprivileged_direct_probe_is_permission_denied() {
    require_root();
    let out = as_nobody(&["probe", "--via", "direct"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(last_line(&err).starts_with("unimem: "), "{err}");
    assert!(err.contains("CAP_SYS_ADMIN"), "{err}");
    assert!(
        !stdout(&out).contains("0x0000000000000"),
        "a map of zeros was printed"
    );
    assert!(
        !stdout(&out).contains("Phys Addr"),
        "no table may be printed: {}",
        stdout(&out)
    );
}

/// The last line of a stderr text: where the command's one error line goes.
fn last_line(err: &str) -> &str {
    err.trim_end().lines().last().unwrap_or("")
}

pub(crate) fn assert_error(args: &[&str], needle: &str) {
    let out = unimem(args);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
    assert!(last_line(&err).starts_with("unimem: "), "{args:?}: {err}");
    assert_eq!(
        err.trim_end()
            .lines()
            .filter(|l| l.starts_with("unimem:"))
            .count(),
        1,
        "{args:?}: {err}"
    );
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        stdout(&out).is_empty(),
        "{args:?}: nothing belongs on stdout: {}",
        stdout(&out)
    );
}

#[test]
fn bad_input_is_a_clear_error_with_status_2() {
    assert_error(&["probe", "--size", "0"], "is 0");
    assert_error(&["probe", "--size", "abc"], "invalid size 'abc'");
    assert_error(&["probe", "--size", "64P"], "invalid size '64P'");
    assert_error(
        &["probe", "--size", "99999999999999999999"],
        "does not fit 64 bits",
    );
    assert_error(&["probe", "--size", "1T"], "exceeds");
    assert_error(
        &["probe", "--backing", "ramdisk"],
        "invalid value 'ramdisk'",
    );
    assert_error(
        &["map", "--pid", "1", "--addr", "0x1000", "--len", "0"],
        "is 0",
    );
    assert_error(
        &["map", "--pid", "1", "--addr", "zz", "--len", "4K"],
        "invalid address 'zz'",
    );
    assert_error(&["frobnicate"], "unrecognized subcommand");
}

#[test]
fn map_errors_for_exited_unmapped_and_unaligned() {
    require_root();
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    assert_error(
        &[
            "map",
            "--pid",
            &pid.to_string(),
            "--addr",
            "0x7f0000000000",
            "--len",
            "4K",
        ],
        "does not exist",
    );
    let me = std::process::id().to_string();
    assert_error(
        &["map", "--pid", &me, "--addr", "0x1000", "--len", "4K"],
        "no mapping of process",
    );
    assert_error(
        &[
            "map",
            "--pid",
            &me,
            "--addr",
            "0x7f0000000001",
            "--len",
            "4K",
        ],
        "not aligned",
    );
    assert_error(
        &[
            "map",
            "--pid",
            &me,
            "--addr",
            "0x7f0000000000",
            "--len",
            "4097",
        ],
        "not a multiple",
    );
    assert_error(
        &[
            "map",
            "--pid",
            &me,
            "--addr",
            "0xfffffffffffff000",
            "--len",
            "8K",
        ],
        "wraps",
    );
}

#[test]
fn auto_without_pfns_or_service_explains_both_ways() {
    require_root();
    let out = as_nobody(&["probe", "--socket", "/nonexistent/unimem.sock"]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("run as root") && err.contains("unimem serve"),
        "{err}"
    );
    assert!(stdout(&out).is_empty());
}

#[test]
fn serve_refuses_an_open_file_limit_too_small_for_its_limits() {
    require_root();
    let dir = std::env::temp_dir().join(format!("unimem-cli-nofile-{}", std::process::id()));
    let sock = dir.join("s.sock");
    let out = Command::new("prlimit")
        .args(["--nofile=256:256", "--"])
        .arg(bin())
        .args(["serve", "--socket", sock.to_str().unwrap()])
        .output()
        .expect("prlimit (util-linux) runs");
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("open-file limit is 256"), "{err}");
    assert!(!sock.exists(), "a refused service left its socket behind");
    let _ = std::fs::remove_dir_all(&dir);
}
