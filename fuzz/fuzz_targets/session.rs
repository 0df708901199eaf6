//! Fuzzes one connection of the resolver service as a whole: the service's
//! own request handling (`unimem::service::session::Session`, the state
//! machine a connection thread runs) fed a sequence of frames, each with a
//! choice of fds — read-write memfds, a read-only reopen, an `O_PATH` fd, a
//! pipe, `/dev/null` — and real prepares that map and pin.
//!
//! After every frame: the reply is one well-formed message for the
//! request's selector (an error reply is a bare header naming a rule or an
//! errno); a prepare succeeds only with exactly one read-write memfd and a
//! range inside it; segments, checksum and complete succeed only for a
//! handle this connection holds, and a checksum equals the file's bytes;
//! the counters agree with the handle table and every limit holds. After
//! the input: closing the connection leaves nothing pinned, mapped or held.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use rustix::fs::{MemfdFlags, Mode, OFlags};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;
use unimem::service::rule::{Rule, RULE_BASE};
use unimem::service::session::Session;
use unimem::service::Limits;
use unimem_core::checksum::checksum;
use unimem_core::wire::{Header, Reply, Request, MAX_MESSAGE, VERSION};

/// Pages of the two read-write memfds.
const PAGES: [u64; 2] = [24, 8];

struct Fixture {
    page: u64,
    /// Index 0, 1: read-write memfds; 2: read-only reopen of 0; 3: `O_PATH`
    /// of 0; 4: a pipe; 5: /dev/null read-write.
    fds: Vec<OwnedFd>,
    /// The memfds' bytes, for checking checksums.
    content: [Vec<u8>; 2],
    _pipe_writer: OwnedFd,
}

fn memfd(pages: u64, page: u64, seed: u8) -> (OwnedFd, Vec<u8>) {
    let fd = rustix::fs::memfd_create("unimem-fuzz", MemfdFlags::CLOEXEC).unwrap();
    let bytes: Vec<u8> = (0..pages * page)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8)
        .collect();
    rustix::io::write(&fd, &bytes).unwrap();
    (fd, bytes)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let page = rustix::param::page_size() as u64;
        let (a, ca) = memfd(PAGES[0], page, 0x5a);
        let (b, cb) = memfd(PAGES[1], page, 0xa5);
        let path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&a));
        let ro = rustix::fs::open(&path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let opath = rustix::fs::open(&path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let (pr, pw) = rustix::pipe::pipe().unwrap();
        let null =
            rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).unwrap();
        Fixture {
            page,
            fds: vec![a, b, ro, opath, pr, null],
            content: [ca, cb],
            _pipe_writer: pw,
        }
    })
}

fn limits(page: u64) -> Limits {
    Limits {
        max_prepare_bytes: 16 * page,
        max_connection_bytes: 20 * page,
        max_total_bytes: 28 * page,
        max_connections: 1,
        max_handles: 3,
        ..Limits::default()
    }
}

/// A value biased towards the edges a checker gets wrong.
fn edgy(u: &mut Unstructured<'_>, page: u64) -> Result<u64> {
    Ok(match u.int_in_range(0..=7u8)? {
        0 => 0,
        1 => u.int_in_range(0..=32u64)? * page,
        2 => u.int_in_range(0..=32u64)? * page + u.int_in_range(1..=page - 1)?,
        3 => u64::MAX - u.int_in_range(0..=2 * page)?,
        4 => 1u64 << u.int_in_range(0..=63u32)?,
        5 => u.int_in_range(0..=4u64)?,
        6 => u.int_in_range(0..=32u64)? * 8,
        _ => u.arbitrary()?,
    })
}

/// Where a prepared handle came from.
#[derive(Clone, Copy)]
struct Held {
    file: usize,
    offset: u64,
    length: u64,
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut s = Session::new(limits(f.page)).expect("a session");
    let mut u = Unstructured::new(data);
    let mut held: HashMap<u64, Held> = HashMap::new();
    let mut truncated = false;
    let _ = run(f, &mut s, &mut u, &mut held, &mut truncated);
    let after = s.close();
    assert_eq!(
        (
            after.connections,
            after.pinned_bytes,
            after.mappings,
            after.handles
        ),
        (0, 0, 0, 0),
        "closing left something behind: {after:?}"
    );
    if truncated {
        // Restore the first memfd for the next input.
        rustix::fs::ftruncate(&f.fds[0], 0).unwrap();
        rustix::io::pwrite(&f.fds[0], &f.content[0], 0).unwrap();
    }
});

fn run(
    f: &Fixture,
    s: &mut Session,
    u: &mut Unstructured<'_>,
    held: &mut HashMap<u64, Held>,
    truncated: &mut bool,
) -> Result<()> {
    let page = f.page;
    // Most inputs start on a handshaken connection, so the fuzzer spends
    // its time past the first check.
    if u.ratio(7, 8)? {
        let hs = Request::Handshake {
            min_version: VERSION,
            max_version: VERSION,
        };
        let reply = s.request(&hs.encode(), Vec::new());
        assert!(matches!(Reply::decode(0, &reply), Ok(Reply::Handshake(_))));
    }
    for _ in 0..32 {
        if u.is_empty() {
            break;
        }
        let op = u.int_in_range(0..=9u8)?;
        let mut bytes = match op {
            // Raw bytes, up to past the largest message.
            0 => {
                let n = u.int_in_range(0..=MAX_MESSAGE + 8)?;
                u.bytes(n.min(u.len()))?.to_vec()
            }
            // The client shrinks (or regrows) its first memfd.
            1 => {
                let pages = u.int_in_range(0..=PAGES[0])?;
                rustix::fs::ftruncate(&f.fds[0], pages * page).unwrap();
                *truncated = true;
                continue;
            }
            2 => Request::Handshake {
                min_version: u.int_in_range(0..=3)?,
                max_version: u.int_in_range(0..=3)?,
            }
            .encode(),
            3 | 4 => Request::Prepare {
                offset: edgy(u, page)?,
                length: edgy(u, page)?,
                client_va: if u.ratio(1, 8)? { edgy(u, page)? } else { 0 },
                surface_id: u.arbitrary()?,
            }
            .encode(),
            5 => Request::Segments {
                handle: u.int_in_range(0..=5)?,
                continuation: edgy(u, page)?,
            }
            .encode(),
            6 => Request::Complete {
                handle: u.int_in_range(0..=5)?,
            }
            .encode(),
            _ => Request::Checksum {
                handle: u.int_in_range(0..=5)?,
                offset: edgy(u, page)?,
                length: edgy(u, page)?,
            }
            .encode(),
        };
        // Sometimes damage a well-formed request: one byte, or its length.
        if op >= 2 && u.ratio(1, 6)? && !bytes.is_empty() {
            if u.arbitrary()? {
                let i = u.choose_index(bytes.len())?;
                bytes[i] = u.arbitrary()?;
            } else {
                let n = u.int_in_range(0..=bytes.len() + 8)?;
                bytes.resize(n, 0);
            }
        }
        // Fds to send: a mask over the fixture, once or twice each.
        let mask: u8 = if op == 3 || op == 4 {
            1 << u.int_in_range(0..=5u8)?
        } else if u.ratio(1, 5)? {
            u.arbitrary()?
        } else {
            0
        };
        let chosen: Vec<usize> = (0..f.fds.len()).filter(|i| mask & (1 << i) != 0).collect();
        let extra = mask & 0xc0 != 0;
        let mut fds: Vec<OwnedFd> = Vec::new();
        for &i in &chosen {
            fds.push(f.fds[i].as_fd().try_clone_to_owned().unwrap());
            if extra {
                fds.push(f.fds[i].as_fd().try_clone_to_owned().unwrap());
            }
        }
        let before = s.held();
        let reply = s.request(&bytes, fds);
        check(
            f, s, &bytes, &chosen, extra, &reply, &before, held, *truncated,
        );
        s.check()
            .unwrap_or_else(|e| panic!("after {bytes:02x?}: {e}"));
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn check(
    f: &Fixture,
    s: &Session,
    bytes: &[u8],
    chosen: &[usize],
    extra: bool,
    reply: &[u8],
    before: &[(u64, u64)],
    held: &mut HashMap<u64, Held>,
    truncated: bool,
) {
    assert!(reply.len() <= MAX_MESSAGE, "reply of {} bytes", reply.len());
    let h = Header::parse(reply).expect("every reply starts with a header");
    assert_eq!(h.version.get(), VERSION);
    let request = if bytes.len() <= MAX_MESSAGE {
        Request::decode(bytes).ok()
    } else {
        None
    };
    if !h.status().is_success() {
        assert_eq!(reply.len(), 16, "an error reply is a bare header");
        let d = h.detail.get();
        assert!(
            Rule::from_detail(d).is_some() || (d < 4096 && d < RULE_BASE),
            "detail {d:#x} names neither a rule nor an errno"
        );
        assert_eq!(s.held(), before, "a refused request changed the handles");
        return;
    }
    let req = request.unwrap_or_else(|| panic!("success for a malformed frame {bytes:02x?}"));
    let sel = req.selector();
    let r = Reply::decode(sel, reply).unwrap_or_else(|e| panic!("bad reply to {req:?}: {e}"));
    match (req, r) {
        (
            Request::Handshake {
                min_version,
                max_version,
            },
            Reply::Handshake(info),
        ) => {
            assert!((min_version..=max_version).contains(&info.version));
            assert_eq!(s.held(), before);
        }
        (
            Request::Prepare {
                offset,
                length,
                client_va,
                ..
            },
            Reply::Segments { batch, .. },
        ) => {
            // Only one read-write memfd, only a range inside it.
            assert!(
                !extra && chosen.len() == 1 && chosen[0] < 2,
                "prepare with fds {chosen:?}"
            );
            assert_eq!(client_va, 0);
            let file = chosen[0];
            let size = if file == 0 && truncated {
                rustix::fs::fstat(&f.fds[0]).unwrap().st_size as u64
            } else {
                PAGES[file] * f.page
            };
            assert!(length > 0 && offset.checked_add(length).is_some_and(|e| e <= size));
            assert_eq!((batch.start, batch.total_length), (0, length));
            assert!(
                !before.iter().any(|&(h, _)| h == batch.handle),
                "handle reused"
            );
            assert!(s.held().contains(&(batch.handle, length)));
            held.insert(
                batch.handle,
                Held {
                    file,
                    offset,
                    length,
                },
            );
        }
        (
            Request::Segments {
                handle,
                continuation,
            },
            Reply::Segments { batch, .. },
        ) => {
            let len = before
                .iter()
                .find(|p| p.0 == handle)
                .expect("a held handle")
                .1;
            assert_eq!(
                (batch.handle, batch.start, batch.total_length),
                (handle, continuation, len)
            );
            assert!(batch.next > batch.start || batch.next == len);
        }
        (
            Request::Complete { handle },
            Reply::Complete {
                handle: h2,
                released_bytes,
            },
        ) => {
            let len = before
                .iter()
                .find(|p| p.0 == handle)
                .expect("a held handle")
                .1;
            assert_eq!((h2, released_bytes), (handle, len));
            assert!(!s.held().iter().any(|p| p.0 == handle));
            held.remove(&handle);
        }
        (
            Request::Checksum {
                handle,
                offset,
                length,
            },
            Reply::Checksum { checksum: sum, .. },
        ) => {
            let p = held[&handle];
            assert!(offset.checked_add(length).is_some_and(|e| e <= p.length));
            if !truncated {
                let start = (p.offset + offset) as usize;
                let want = checksum(&f.content[p.file][start..start + length as usize]);
                assert_eq!(
                    sum, want,
                    "checksum of handle {handle} {offset:#x}+{length:#x}"
                );
            }
        }
        (req, r) => panic!("{req:?} answered with {r:?}"),
    }
}
