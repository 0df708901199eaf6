//! What the helper does in each role (see `unimem_service_tests::role`
//! for what each says and reads).

use std::os::fd::AsFd;
use std::time::Duration;
use unimem::core::wire::{Header, Reply, Request, MAX_MESSAGE};
use unimem::probe::probe;
use unimem::resolve::ServiceResolver;
use unimem::service::frame;
use unimem::service::rule::Rule;
use unimem::surface::{Backing, Surface};
use unimem_service_tests::connect::{connect, raw_connect};
use unimem_service_tests::env;
use unimem_service_tests::memfd::memfd;
use unimem_service_tests::request::{answer, call, prepare, refusal, send, HANDSHAKE};
use unimem_service_tests::role::Role;
use unimem_service_tests::talk::{say, wait_for_parent};

const MIB: u64 = 1 << 20;

/// Plays `role` to its end.
pub fn play(role: Role) {
    match role {
        Role::PrepareFiles => prepare_files(),
        Role::ConnectMany => connect_many(),
        Role::Impostor => impostor(),
        Role::Probe => probe_and_report(),
        Role::PrepareAndHold => prepare_and_hold(),
        Role::HoldConnections => hold_connections(),
        Role::StopAtStep => stop_at_step(),
    }
}

fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

fn prepare_files() {
    let sock = match connect(&env::socket()) {
        Ok(s) => s,
        Err(e) => return say(format!("RESULT connect {e}")),
    };
    say(format!(
        "RESULT handshake {:?}",
        refusal(&sock, &HANDSHAKE, None)
    ));
    for entry in env::var(env::FILES).split(',') {
        use rustix::fs::{Mode, OFlags};
        let (mode, path) = entry
            .split_once(':')
            .unwrap_or_else(|| panic!("{}: '{entry}' is not <mode>:<path>", env::FILES));
        let flags = if mode == "path" {
            OFlags::PATH
        } else {
            OFlags::RDONLY
        };
        let fd = rustix::fs::open(path, flags | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let req = prepare(0, page_size());
        if frame::send(sock.as_fd(), &req.encode(), &[fd.as_fd()]).is_err() {
            say(format!("RESULT {mode} CLOSED"));
            continue;
        }
        let mut buf = Box::new([0u8; MAX_MESSAGE + 1]);
        match frame::recv(sock.as_fd(), &mut buf) {
            Ok(Some(f)) => {
                // Refused: Some(the rule, if the detail names one).
                let h = Header::parse(&buf[..f.len]).unwrap();
                let r = (!h.status().is_success()).then(|| Rule::from_detail(h.detail.get()));
                say(format!("RESULT {mode} {r:?}"));
            }
            _ => say(format!("RESULT {mode} CLOSED")),
        }
    }
}

fn connect_many() {
    let socket = env::socket();
    let n: u64 = env::parsed(env::CONNS);
    let addr = rustix::net::SocketAddrUnix::new(&socket).unwrap();
    let mut connected = 0;
    for _ in 0..n {
        let s = frame::socket().unwrap();
        if rustix::net::connect(&s, &addr).is_ok() {
            connected += 1;
        }
    }
    say(format!("CONNECTED {connected}"));
}

fn impostor() {
    let path = env::socket();
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
        let mut buf = Box::new([0u8; MAX_MESSAGE + 1]);
        match frame::recv(conn.as_fd(), &mut buf) {
            Ok(Some(f)) => say(format!("RECEIVED {} bytes {} fds", f.len, f.fds.len())),
            Ok(None) => say("RECEIVED nothing"),
            Err(e) => say(format!("RECEIVED error {e}")),
        }
    }
}

fn probe_and_report() {
    let socket = env::socket();
    let size: u64 = env::parsed_or(env::SIZE, 8 * MIB);
    say(format!("uid {}", rustix::process::getuid().as_raw()));
    let mut resolver = match ServiceResolver::connect(&socket) {
        Ok(r) => r,
        Err(e) => return say(format!("ERR {:?} {e}", e.kind())),
    };
    say("connected");
    match probe(size, Backing::Memfd, 0xc0ffee, &mut resolver, |_| {}) {
        Ok(out) => {
            say(format!(
                "VA {} LEN {} VERIFIED {}",
                out.surface.addr().0,
                out.surface.len(),
                out.verified()
            ));
            for s in out.prepared.map.segments() {
                say(format!(
                    "SEG {} {} {}",
                    s.offset,
                    s.length,
                    s.address().map_or(0, |a| a.get())
                ));
            }
            say("READY");
            wait_for_parent();
        }
        Err(e) => say(format!("ERR {:?} {e}", e.kind())),
    }
}

fn prepare_and_hold() {
    let socket = env::socket();
    let size: u64 = env::parsed(env::SIZE);
    let mut resolver = ServiceResolver::connect(&socket).unwrap();
    say("SENDING");
    match probe(size, Backing::Memfd, 3, &mut resolver, |_| {}) {
        Ok(out) => {
            say(format!("READY {}", out.verified()));
            wait_for_parent();
        }
        Err(e) => say(format!("ERR {e}")),
    }
}

fn hold_connections() {
    let socket = env::socket();
    let n: usize = env::parsed(env::CONNS);
    let pages: u64 = env::parsed(env::PAGES);
    let ps = page_size();
    let mut conns = Vec::new();
    for i in 0..n {
        let s = raw_connect(&socket);
        say(format!("CONN {i} {}", answer(&s, &HANDSHAKE, None)));
        conns.push(s);
    }
    let fd = memfd((pages + 1) * ps);
    say(format!(
        "PREPARE {}",
        answer(&conns[0], &prepare(0, pages * ps), Some(fd.as_fd()))
    ));
    say(format!(
        "EXTRA_PREPARE {}",
        answer(conns.last().unwrap(), &prepare(0, ps), Some(fd.as_fd()))
    ));
    let extra = raw_connect(&socket);
    say(format!("EXTRA_CONN {}", answer(&extra, &HANDSHAKE, None)));
    say("HOLDING");
    wait_for_parent();
    drop(conns);
}

fn stop_at_step() {
    let socket = env::socket();
    let step = env::var(env::STEP);
    let sock = raw_connect(&socket);
    let at = |s: &str| {
        say(format!("AT {s}"));
        wait_for_parent();
    };
    if step == "connect" {
        return at("connect");
    }
    assert!(matches!(call(&sock, &HANDSHAKE, None), Reply::Handshake(_)));
    if step == "handshake" {
        return at("handshake");
    }
    let big = 512 * MIB;
    let s = Surface::create(
        if step == "holding" { 64 * MIB } else { big },
        Backing::Memfd,
    )
    .unwrap();
    let fd = s.fd();
    if step == "prepare" {
        send(&sock, &prepare(0, big), Some(fd));
        return at("prepare");
    }
    let Reply::Segments(batch) = call(&sock, &prepare(0, s.len()), Some(fd)) else {
        panic!("prepare failed")
    };
    match step.as_str() {
        "holding" => at("holding"),
        "segments" => {
            // Requests pile up with their replies unread.
            for _ in 0..64 {
                send(&sock, &Request::segments(batch.handle.get(), 0), None);
            }
            at("segments")
        }
        "checksum" => {
            send(
                &sock,
                &Request::checksum(batch.handle.get(), 0, s.len()),
                None,
            );
            at("checksum")
        }
        other => panic!("unknown step {other}"),
    }
}
