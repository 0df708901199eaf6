//! The `service-client` helper itself: run without a role, with one it
//! does not know or with more than one, it says how it is used and exits
//! with status 2, doing nothing else.

use std::process::Command;
use unimem_service_tests::role::usage;

#[test]
fn the_helper_without_a_known_role_prints_its_usage_and_exits_2() {
    let exe = env!("CARGO_BIN_EXE_service-client");
    for args in [&[][..], &["fly"][..], &["probe", "impostor"][..]] {
        let out = Command::new(exe).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: said something on stdout");
        assert!(
            stderr.contains(&usage()),
            "{args:?}: no usage line: {stderr}"
        );
    }
}
