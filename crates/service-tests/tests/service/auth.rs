//! Nobody can pose as the service: `serve` refuses a socket directory any
//! other user can write to, sticky or not, and the client checks the
//! credentials of the process listening on the socket before it sends
//! anything, so an impostor that bound the path gets neither a request
//! nor the surface's fd.

use crate::common::*;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Duration;
use unimem::resolve::service::ServiceClient;
use unimem::service::{frame, Config, Service};
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

/// Child: binds and listens at `UNIMEM_TEST_SOCKET` as its (non-root)
/// uid, then for each of two connections says what it received.
#[test]
#[ignore = "helper: run as a child process by other tests"]
fn child_impostor() {
    if !is_child("child_impostor") {
        return;
    }
    let path = PathBuf::from(std::env::var("UNIMEM_TEST_SOCKET").unwrap());
    let listener = frame::socket().unwrap();
    rustix::net::bind(&listener, &frame::address(&path).unwrap()).unwrap();
    rustix::net::listen(&listener, 4).unwrap();
    say("READY");
    for _ in 0..2 {
        let conn = rustix::net::accept(&listener).unwrap();
        rustix::net::sockopt::set_socket_timeout(
            &conn,
            rustix::net::sockopt::Timeout::Recv,
            Some(Duration::from_secs(10)),
        )
        .unwrap();
        let mut buf = Box::new([0u8; unimem::core::wire::MAX_MESSAGE + 1]);
        match frame::recv(std::os::fd::AsFd::as_fd(&conn), &mut buf) {
            Ok(Some(f)) => say(format!("RECEIVED {} bytes {} fds", f.len, f.fds.len())),
            Ok(None) => say("RECEIVED nothing"),
            Err(e) => say(format!("RECEIVED error {e}")),
        }
    }
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
    let mut imp = ChildClient::spawn("child_impostor", Some(NOBODY), &[socket_env(&socket)]);
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
