//! Faults: clients killed with SIGKILL at every step of the protocol, a
//! client that connects and says nothing, clients that read replies slowly
//! or never, and the service restarted under connected clients. After each,
//! the service holds nothing: no pinned bytes or mappings (its counters), no
//! pins the kernel counts (`VmPin`), no fds beyond its baseline. The tests
//! of this binary run one at a time (they count the process's fds).

use crate::common::*;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};
use unimem::core::wire::{selector, Header, Reply, Request, MAX_MESSAGE};
use unimem::probe::probe;
use unimem::resolve::service::ServiceClient;
use unimem::resolve::ServiceResolver;
use unimem::service::rule::Rule;
use unimem::service::{frame, Config, Limits, Policy, Service};
use unimem::surface::{Backing, Surface};
use unimem::ErrorKind;
use unimem_service_tests::env;
use unimem_service_tests::request::{call, prepare, send, HANDSHAKE};

const MIB: u64 = 1 << 20;

#[test]
fn clients_killed_at_every_step_leave_nothing_behind() {
    let _alone = alone();
    let svc = start(Policy::default(), Limits::default());
    let base = Baseline::now();
    let mut faults = 0;
    for round in 0..2 {
        for step in [
            "connect",
            "handshake",
            "prepare",
            "holding",
            "segments",
            "checksum",
        ] {
            let mut c = child_client(
                Role::StopAtStep,
                None,
                &[socket_env(&svc.socket), (env::STEP, step.to_string())],
            );
            let line = c.line();
            assert_eq!(line.as_deref(), Some(format!("AT {step}").as_str()));
            // Kill while the service is working on the request, where it
            // can be seen.
            let busy = match step {
                "prepare" => wait_until(30, || svc.handle.stats().preparing > 0),
                "checksum" => wait_until(30, || svc.handle.stats().checksumming > 0),
                "holding" => svc.handle.stats().pinned_bytes == 64 * MIB,
                _ => true,
            };
            c.child.kill().unwrap();
            let _ = c.child.wait();
            drop(c);
            faults += 1;
            assert!(busy, "round {round}: never saw the service at step {step}");
            assert_nothing_held(&svc.handle, base, &format!("killed at {step}"));
        }
    }
    eprintln!("faults: {faults} clients killed (SIGKILL), nothing left behind");
    // Still serving.
    let mut r = ServiceResolver::connect(&svc.socket).unwrap();
    assert!(probe(4 * MIB, Backing::Memfd, 3, &mut r, |_| {})
        .unwrap()
        .verified());
}

#[test]
fn a_silent_client_is_timed_out_but_one_holding_a_range_is_not() {
    let _alone = alone();
    let limits = Limits {
        idle_timeout: Some(Duration::from_millis(700)),
        ..Limits::default()
    };
    let svc = start(Policy::default(), limits);
    let base = Baseline::now();
    // Connects and says nothing: closed after the timeout, told why.
    let silent = raw_connect(&svc.socket);
    let t = Instant::now();
    let mut buf = Box::new([0u8; MAX_MESSAGE + 1]);
    let f = frame::recv(silent.as_fd(), &mut buf).unwrap().unwrap();
    let h = Header::parse(&buf[..f.len]).unwrap();
    assert_eq!(Rule::from_detail(h.detail.get()), Some(Rule::IdleTimeout));
    assert!(
        t.elapsed() >= Duration::from_millis(600),
        "{:?}",
        t.elapsed()
    );
    assert!(frame::recv(silent.as_fd(), &mut buf).unwrap().is_none());
    // A client that went idle after its handshake hears why on its next call.
    let mut idle = ServiceClient::connect(&svc.socket).unwrap();
    let mut holder = ServiceClient::connect(&svc.socket).unwrap();
    let s = Surface::create(2 * MIB, Backing::Memfd).unwrap();
    let (h, _) = holder.prepare(s.fd(), 0, s.len()).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let e = idle.prepare(s.fd(), 0, s.len()).unwrap_err();
    assert!(e.message().contains("idle-timeout"), "{e}");
    // The one holding a prepared range kept its connection and its pin.
    assert_eq!(svc.handle.stats().pinned_bytes, 2 * MIB);
    holder.checksum(h, 0, s.len()).unwrap();
    holder.complete(h).unwrap();
    drop((idle, holder, silent, s));
    assert_nothing_held(&svc.handle, base, "after the idle clients");
}

#[test]
fn slow_readers_are_served_and_non_readers_are_dropped() {
    let _alone = alone();
    let limits = Limits {
        reply_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let svc = start(Policy::default(), limits);
    let base = Baseline::now();
    let s = Surface::create(64 * MIB, Backing::Memfd).unwrap();
    let fd = s.fd().try_clone_to_owned().unwrap();

    // Slow: 100 requests queued, replies read one per 20 ms, all correct.
    let slow = raw_connect(&svc.socket);
    call(&slow, &HANDSHAKE, None);
    let Reply::Segments(batch) = call(&slow, &prepare(0, s.len()), Some(fd.as_fd())) else {
        panic!("prepare")
    };
    let n = 100;
    for _ in 0..n {
        let req = Request::segments(batch.handle.get(), 0);
        send(&slow, &req, None);
    }
    // Meanwhile another client is served at once.
    let t = Instant::now();
    let mut r = ServiceResolver::connect(&svc.socket).unwrap();
    assert!(probe(4 * MIB, Backing::Memfd, 5, &mut r, |_| {})
        .unwrap()
        .verified());
    drop(r);
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Each answers the segments request with what the prepare answered.
    let mut want = batch.clone();
    want.header.selector = selector::SEGMENTS.into();
    let mut buf = Box::new([0u8; MAX_MESSAGE + 1]);
    for i in 0..n {
        std::thread::sleep(Duration::from_millis(20));
        let f = frame::recv(slow.as_fd(), &mut buf).unwrap().unwrap();
        let Ok(Reply::Segments(b)) = Reply::decode(selector::SEGMENTS, &buf[..f.len]) else {
            panic!("reply {i} to the slow reader")
        };
        assert_eq!(b, want, "reply {i}");
    }
    drop(slow);

    // Never reads: the service gives up on it after the reply timeout.
    let deaf = raw_connect(&svc.socket);
    call(&deaf, &HANDSHAKE, None);
    call(&deaf, &prepare(0, s.len()), Some(fd.as_fd()));
    let mut queued = 0;
    for _ in 0..100_000 {
        let req = Request::segments(batch.handle.get().min(1), 0).encode();
        if rustix::net::send(&deaf, &req, rustix::net::SendFlags::DONTWAIT).is_err() {
            break;
        }
        queued += 1;
    }
    assert!(queued > 10, "could not fill the service's queue");
    assert!(
        wait_until(10, || svc.handle.stats().connections == 0),
        "the deaf client was not dropped: {:?}",
        svc.handle.stats()
    );
    drop((deaf, fd, s));
    assert_nothing_held(&svc.handle, base, "after the slow and deaf clients");
}

#[test]
fn a_restarted_service_gives_clients_a_clear_error_and_they_reconnect() {
    let _alone = alone();
    let base = Baseline::now();
    let svc = start(Policy::default(), Limits::default());
    let socket = svc.socket.clone();
    let s = Surface::create(8 * MIB, Backing::Memfd).unwrap();
    let mut holding = ServiceClient::connect(&socket).unwrap();
    let (h, _) = holding.prepare(s.fd(), 0, s.len()).unwrap();
    let mut idle = ServiceClient::connect(&socket).unwrap();
    assert_eq!(svc.handle.stats().pinned_bytes, 8 * MIB);

    svc.handle.shutdown();
    // The old service is gone and took nothing with it.
    assert_eq!(vm_pin_kb(), base.pin_kb, "pins outlived the service");
    let e = holding.checksum(h, 0, s.len()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResolverNotFound, "{e}");
    assert!(e.message().contains("connect again"), "{e}");
    let e = idle.prepare(s.fd(), 0, s.len()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ResolverNotFound, "{e}");
    drop((holding, idle));
    assert!(
        wait_until(5, || fd_count() <= base.fds + 1),
        "the stopped service left fds: {} now, {} before (+1 surface)",
        fd_count(),
        base.fds
    );

    // A new service on the same path; the clients connect again.
    let handle = Service::bind(Config::new(&socket))
        .unwrap()
        .spawn()
        .unwrap();
    let mut again = ServiceClient::connect(&socket).unwrap();
    let (h, _) = again.prepare(s.fd(), 0, s.len()).unwrap();
    again.checksum(h, 0, s.len()).unwrap();
    let mut r = ServiceResolver::connect(&socket).unwrap();
    assert!(probe(2 * MIB, Backing::Memfd, 8, &mut r, |_| {})
        .unwrap()
        .verified());
    drop((again, r));
    let base2 = Baseline {
        fds: base.fds + 1 + 2, // the surface; the new listener and pagemap
        pin_kb: base.pin_kb,
    };
    assert_nothing_held(&handle, base2, "after the restart");
    handle.shutdown();
}
