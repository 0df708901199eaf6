//! No admitted user can lock others out: per-uid caps on connections and
//! prepared bytes, connection slots kept for administrators, a handshake
//! deadline, and refused frames that neither count as activity nor keep a
//! connection forever.

use crate::common::*;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};
use unimem::core::wire::{Header, Request, MAX_MESSAGE};
use unimem::probe::probe;
use unimem::resolve::service::ServiceResolver;
use unimem::service::rule::Rule;
use unimem::service::{frame, Limits, Policy};
use unimem::surface::Backing;
use unimem_service_tests::env;
use unimem_service_tests::request::{answer, HANDSHAKE};

const MIB: u64 = 1 << 20;
const USER_A: u32 = 65534;
const USER_B: u32 = 65533;

fn until_holding(c: &mut ChildClient) -> Vec<String> {
    let mut v = Vec::new();
    while let Some(l) = c.line() {
        if l == "HOLDING" {
            return v;
        }
        v.push(l);
    }
    panic!("the child ended before holding: {v:?}");
}

/// Root probes through the service; returns how long it took.
fn root_probe(socket: &std::path::Path, salt: u64) -> Duration {
    let t = Instant::now();
    let mut r = ServiceResolver::connect(socket).expect("root is served");
    let out = probe(4 * MIB, Backing::Memfd, salt, &mut r, |_| {}).expect("root's probe");
    assert!(out.verified());
    drop(out);
    drop(r);
    t.elapsed()
}

#[test]
fn one_user_at_its_limits_leaves_root_and_another_user_served() {
    let _alone = alone();
    let ps = rustix::param::page_size() as u64;
    let limits = Limits {
        max_connections: 10,
        admin_connections: 2,
        max_user_connections: 5,
        max_user_bytes: 8 * ps,
        ..Limits::default()
    };
    let svc = start(
        Policy {
            allow_uids: vec![USER_A, USER_B],
            ..Policy::default()
        },
        limits,
    );
    let base = Baseline::now();
    let env = |conns: usize, pages: u64| {
        vec![
            socket_env(&svc.socket),
            (env::CONNS, conns.to_string()),
            (env::PAGES, pages.to_string()),
        ]
    };

    // User A takes every connection and every byte it may.
    let mut a = child_client(Role::HoldConnections, Some(USER_A), &env(5, 8));
    let got = until_holding(&mut a);
    let want: Vec<String> = (0..5)
        .map(|i| format!("CONN {i} OK"))
        .chain([
            "PREPARE OK".into(),
            "EXTRA_PREPARE UserBytes".into(),
            "EXTRA_CONN UserConnections".into(),
        ])
        .collect();
    assert_eq!(got, want);
    assert!(wait_until(5, || svc.handle.stats().connections == 5));
    let st = svc.handle.stats();
    assert_eq!(st.pinned_bytes, 8 * ps, "{st:?}");

    // Root and user B are still served.
    let root_a = root_probe(&svc.socket, 1);
    assert!(wait_until(5, || svc.handle.stats().connections == 5));
    let mut b = child_client(Role::HoldConnections, Some(USER_B), &env(3, 1));
    let got = until_holding(&mut b);
    // B's fourth connection would take a slot kept for administrators.
    let want: Vec<String> = (0..3)
        .map(|i| format!("CONN {i} OK"))
        .chain([
            "PREPARE OK".into(),
            "EXTRA_PREPARE OK".into(),
            "EXTRA_CONN Connections".into(),
        ])
        .collect();
    assert_eq!(got, want);
    assert!(wait_until(5, || svc.handle.stats().connections == 8));

    // Every slot ordinary users may take is taken: root is still served.
    let root_full = root_probe(&svc.socket, 2);
    eprintln!(
        "root's 4 MiB probe: {:.1} ms while user {USER_A} held its maximum, {:.1} ms while \
         every ordinary slot was taken",
        root_a.as_secs_f64() * 1e3,
        root_full.as_secs_f64() * 1e3
    );
    assert!(a.finish().success());
    assert!(b.finish().success());
    assert_nothing_held(&svc.handle, base, "after the users left");
}

/// Reads replies until the connection ends; returns the last rule seen.
fn last_rule_before_close(sock: &OwnedFd, within: Duration) -> Option<Rule> {
    rustix::net::sockopt::set_socket_timeout(
        sock,
        rustix::net::sockopt::Timeout::Recv,
        Some(within),
    )
    .unwrap();
    let mut buf = Box::new([0u8; MAX_MESSAGE + 1]);
    let mut last = None;
    loop {
        match frame::recv(sock.as_fd(), &mut buf) {
            Ok(Some(f)) => {
                let h = Header::parse(&buf[..f.len]).unwrap();
                last = Rule::from_detail(h.detail.get());
            }
            Ok(None) | Err(rustix::io::Errno::CONNRESET) => return last,
            Err(e) => panic!("the connection was not closed within {within:?} ({e})"),
        }
    }
}

/// Sends a junk frame every 100 ms on `sock` until the service closes it
/// (or 20 s pass); returns when it was closed.
fn junk_until_closed(sock: &OwnedFd) -> Duration {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(20) {
        if frame::send(sock.as_fd(), b"junk", &[]).is_err() {
            return t.elapsed();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("a connection sending only junk was kept for 20 s");
}

#[test]
fn junk_frames_neither_pass_the_handshake_deadline_nor_keep_a_connection_alive() {
    let _alone = alone();
    let limits = Limits {
        handshake_timeout: Duration::from_secs(1),
        idle_timeout: Some(Duration::from_secs(3)),
        max_refusals: 1000,
        ..Limits::default()
    };
    let svc = start(Policy::default(), limits);
    let base = Baseline::now();

    // Never handshakes, sends junk: closed at the deadline.
    let s = raw_connect(&svc.socket);
    junk_until_closed(&s);
    assert_eq!(
        last_rule_before_close(&s, Duration::from_secs(5)),
        Some(Rule::HandshakeTimeout)
    );

    drop(s);
    // Handshakes, then only junk: refusals are not activity.
    let s = raw_connect(&svc.socket);
    assert_eq!(answer(&s, &HANDSHAKE, None), "OK");
    junk_until_closed(&s);
    assert_eq!(
        last_rule_before_close(&s, Duration::from_secs(5)),
        Some(Rule::IdleTimeout)
    );

    drop(s);
    // Says nothing at all: closed at the handshake deadline too.
    let s = raw_connect(&svc.socket);
    assert_eq!(
        last_rule_before_close(&s, Duration::from_secs(10)),
        Some(Rule::HandshakeTimeout)
    );
    drop(s);
    assert_nothing_held(&svc.handle, base, "after the junk senders");
}

#[test]
fn a_connection_that_keeps_sending_bad_frames_is_closed() {
    let limits = Limits {
        max_refusals: 4,
        ..Limits::default()
    };
    let svc = start(Policy::default(), limits);
    let s = raw_connect(&svc.socket);
    assert_eq!(answer(&s, &HANDSHAKE, None), "OK");
    // A good request between refusals resets the count.
    for _ in 0..3 {
        assert_eq!(answer(&s, &Request::complete(9), None), "UnknownHandle");
    }
    assert_eq!(answer(&s, &HANDSHAKE, None), "OK");
    for _ in 0..3 {
        assert_eq!(answer(&s, &Request::complete(9), None), "UnknownHandle");
    }
    // The fourth in a row: answered, then the connection is closed.
    assert_eq!(answer(&s, &Request::complete(9), None), "UnknownHandle");
    assert_eq!(
        last_rule_before_close(&s, Duration::from_secs(5)),
        Some(Rule::TooManyRefusals)
    );
    assert!(wait_until(5, || svc.handle.stats().connections == 0));
    // Other connections are unaffected.
    let s = raw_connect(&svc.socket);
    assert_eq!(answer(&s, &HANDSHAKE, None), "OK");
}
