//! Nobody can pose as the service: `serve` refuses a socket directory any
//! other user can write to, sticky or not, and the client checks the
//! credentials of the process listening on the socket before it sends
//! anything, so an impostor that bound the path gets neither a request
//! nor the surface's fd.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use unimem::resolve::service::ServiceClient;
use unimem::service::{Config, Service};
use unimem::ErrorKind;

const NOBODY: u32 = 65534;

#[test]
fn serve_refuses_a_directory_others_can_write_sticky_or_not() {
    require_root();
    for mode in [0o1777, 0o777, 0o1733, 0o775] {
        let dir = TempDir::new("auth-dir");
        std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(mode)).unwrap();
        let socket = dir.0.join("unimem.sock");
        let e = match Service::bind(Config::new(&socket)) {
            Ok(_) => panic!("the service bound in a directory of mode {mode:o}"),
            Err(e) => e,
        };
        assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{mode:o}: {e}");
        assert!(e.to_string().contains("writable by others"), "{e}");
        assert!(!socket.exists(), "{mode:o}: a socket was left behind");
    }
    // Only its owner may write: accepted.
    let dir = TempDir::new("auth-dir");
    let h = Service::bind(Config::new(dir.0.join("unimem.sock")))
        .unwrap()
        .spawn()
        .unwrap();
    h.shutdown();
}

#[test]
fn the_client_sends_nothing_to_a_server_that_is_not_the_service_uid() {
    require_root();
    let dir = TempDir::new("impostor");
    rustix::fs::chown(
        &dir.0,
        Some(rustix::fs::Uid::from_raw(NOBODY)),
        Some(rustix::fs::Gid::from_raw(NOBODY)),
    )
    .unwrap();
    let socket = dir.0.join("unimem.sock");
    let mut imp = child_client(Role::Impostor, Some(NOBODY), &[socket_env(&socket)]);
    assert_eq!(imp.line().as_deref(), Some("READY"));

    // The default: the service must be root. Refused before anything is sent.
    let e = ServiceClient::connect(&socket).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("runs as uid {NOBODY}")) && msg.contains("nothing was sent"),
        "{msg}"
    );
    assert_eq!(imp.line().as_deref(), Some("RECEIVED nothing"));

    // The check is what stopped it: told to expect that uid, the client
    // does send (its handshake), and then fails for want of an answer.
    let e = ServiceClient::connect_to(&socket, NOBODY).unwrap_err();
    assert_ne!(e.kind(), ErrorKind::PermissionDenied, "{e}");
    let got = imp.line().unwrap();
    assert!(
        got.starts_with("RECEIVED ") && got.ends_with(" bytes 0 fds"),
        "{got}"
    );
    assert!(imp.finish().success());
}
