//! Fuzzes one connection of the resolver service as a whole: the service's
//! own request handling (`unimem::service::session::Session`, the state
//! machine a connection thread runs) fed a sequence of frames, each with a
//! choice of fds — a sealed read-write memfd, an unsealed one, a read-only
//! reopen, an `O_PATH` fd, a pipe, `/dev/null` — and real prepares that map
//! and pin, between which the client changes its files: punches holes in
//! the sealed memfd and writes them again, truncates and regrows the
//! unsealed one, and tries to shrink the sealed one.
//!
//! After every frame: the reply is one well-formed message for the
//! request's selector (an error reply is a bare header naming a rule or an
//! errno); a prepare succeeds only with the sealed memfd and a fully
//! written range inside it; segments, checksum and complete succeed only
//! for a handle this connection holds. Never a success reply describing
//! pages that are not the file's: a segments or checksum reply succeeds
//! only over pages not punched since the prepare, its addresses are the
//! file's frames as this process reads them from its own pagemap, and a
//! checksum equals the file's bytes. The counters agree with the handle
//! table and every limit holds. After the input: closing the connection
//! leaves nothing pinned, mapped or held.
#![no_main]

use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use rustix::fs::{MemfdFlags, Mode, OFlags, SealFlags};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::OnceLock;
use unimem::mapping::Mapping;
use unimem::service::rule::{Rule, RULE_BASE};
use unimem::service::session::Session;
use unimem::service::Limits;
use unimem_core::checksum::checksum;
use unimem_core::wire::{Header, Reply, Request, SegmentsReply, MAX_MESSAGE, VERSION};

// What every reply must be, given the request and the files' history.
#[path = "session/oracle.rs"]
mod oracle;
use oracle::check;

/// Pages of the two read-write memfds.
const PAGES: [u64; 2] = [24, 8];

struct Fixture {
    page: u64,
    /// Index 0: a read-write memfd sealed against shrinking; 1: one not
    /// sealed (always refused); 2: read-only reopen of 0; 3: `O_PATH` of 0;
    /// 4: a pipe; 5: /dev/null read-write.
    fds: Vec<OwnedFd>,
    /// The memfds' bytes, for checking checksums and restoring them.
    content: [Vec<u8>; 2],
    /// This process's own mapping of memfd 0, to read its frames.
    view: Mapping,
    /// This process's pagemap, if it shows frames (root).
    pagemap: Option<std::fs::File>,
    _pipe_writer: OwnedFd,
}

fn memfd(pages: u64, page: u64, seed: u8, seal: bool) -> (OwnedFd, Vec<u8>) {
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    let fd = rustix::fs::memfd_create("unimem-fuzz", flags).unwrap();
    let bytes: Vec<u8> = (0..pages * page)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed ^ (i >> 12) as u8)
        .collect();
    rustix::io::write(&fd, &bytes).unwrap();
    if seal {
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK).unwrap();
    }
    (fd, bytes)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let page = rustix::param::page_size() as u64;
        let (a, ca) = memfd(PAGES[0], page, 0x5a, true);
        let (b, cb) = memfd(PAGES[1], page, 0xa5, false);
        let view = Mapping::shared(&a, 0, (PAGES[0] * page) as usize).unwrap();
        let pagemap = unimem::pagemap::can_see_pfns()
            .unwrap_or(false)
            .then(|| std::fs::File::open("/proc/self/pagemap").unwrap());
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
            view,
            pagemap,
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

/// Where a prepared handle came from, and the generation of each page of
/// memfd 0 when it was prepared.
#[derive(Clone)]
struct Held {
    offset: u64,
    length: u64,
    generations: Vec<u64>,
}

/// What the client did to memfd 0: per page, whether it is a hole now and
/// how often it was punched out (a page punched and written again is a new
/// page, not the one a handle pinned).
struct Changes {
    hole: Vec<bool>,
    generation: Vec<u64>,
}

impl Changes {
    fn new() -> Self {
        Changes {
            hole: vec![false; PAGES[0] as usize],
            generation: vec![0; PAGES[0] as usize],
        }
    }

    fn pages(&self, page: u64, offset: u64, length: u64) -> std::ops::Range<usize> {
        (offset / page) as usize..offset.saturating_add(length).div_ceil(page) as usize
    }

    fn changed(&self) -> bool {
        self.generation.iter().any(|&g| g != 0)
    }
}

/// The frame backing page `i` of memfd 0, read by this process from its own
/// mapping and pagemap (the page must not be a hole: touching it then
/// would allocate one).
fn frame_of(f: &Fixture, i: usize) -> Option<u64> {
    let pm = f.pagemap.as_ref()?;
    let at = i * f.page as usize;
    // Touch it, so this process's page tables map it.
    let _ = touch(&f.view, at);
    let mut word = [0u8; 8];
    let va = f.view.addr().0 + at as u64;
    std::os::unix::fs::FileExt::read_exact_at(pm, &mut word, va / f.page * 8).unwrap();
    let w = u64::from_le_bytes(word);
    assert!(
        w >> 63 == 1,
        "page {i} of the fixture is not present after a touch"
    );
    Some((w & ((1 << 55) - 1)) * f.page)
}

/// Reads one byte of the mapping (the slice is valid: the file never
/// shrinks below the mapping, it is sealed).
fn touch(m: &Mapping, at: usize) -> u8 {
    std::hint::black_box(m.as_slice()[at])
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let mut s = Session::new(limits(f.page)).expect("a session");
    let mut u = Unstructured::new(data);
    let mut held: HashMap<u64, Held> = HashMap::new();
    let mut changes = Changes::new();
    let mut truncated = false;
    let _ = run(f, &mut s, &mut u, &mut held, &mut changes, &mut truncated);
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
    // Restore the memfds for the next input.
    if changes.changed() {
        rustix::io::pwrite(&f.fds[0], &f.content[0], 0).unwrap();
    }
    if truncated {
        rustix::fs::ftruncate(&f.fds[1], 0).unwrap();
        rustix::io::pwrite(&f.fds[1], &f.content[1], 0).unwrap();
    }
});

fn run(
    f: &Fixture,
    s: &mut Session,
    u: &mut Unstructured<'_>,
    held: &mut HashMap<u64, Held>,
    changes: &mut Changes,
    truncated: &mut bool,
) -> Result<()> {
    let page = f.page;
    // Most inputs start on a handshaken connection, so the fuzzer spends
    // its time past the first check.
    if u.ratio(7, 8)? {
        let hs = Request::handshake(VERSION, VERSION);
        let reply = s.request(&hs.encode(), Vec::new());
        assert!(matches!(Reply::decode(0, &reply), Ok(Reply::Handshake(_))));
    }
    for _ in 0..32 {
        if u.is_empty() {
            break;
        }
        let op = u.int_in_range(0..=12u8)?;
        let mut bytes = match op {
            // Raw bytes, up to past the largest message.
            0 => {
                let n = u.int_in_range(0..=MAX_MESSAGE + 8)?;
                u.bytes(n.min(u.len()))?.to_vec()
            }
            // The client truncates (or regrows) its unsealed memfd, and
            // tries to shrink the sealed one, which the seal forbids.
            1 => {
                let pages = u.int_in_range(0..=PAGES[1])?;
                rustix::fs::ftruncate(&f.fds[1], pages * page).unwrap();
                *truncated = true;
                let shrink =
                    rustix::fs::ftruncate(&f.fds[0], u.int_in_range(0..=PAGES[0] - 1)? * page);
                assert_eq!(
                    shrink,
                    Err(rustix::io::Errno::PERM),
                    "a sealed memfd shrank"
                );
                continue;
            }
            // The client punches pages out of its sealed memfd.
            10 | 11 => {
                let first = u.int_in_range(0..=PAGES[0] - 1)?;
                let n = u.int_in_range(1..=PAGES[0] - first)?;
                use rustix::fs::FallocateFlags as F;
                rustix::fs::fallocate(
                    &f.fds[0],
                    F::PUNCH_HOLE | F::KEEP_SIZE,
                    first * page,
                    n * page,
                )
                .unwrap();
                for i in first as usize..(first + n) as usize {
                    changes.hole[i] = true;
                    changes.generation[i] += 1;
                }
                continue;
            }
            // ...and writes them again: new pages, not the pinned ones.
            12 => {
                for i in 0..PAGES[0] as usize {
                    if changes.hole[i] {
                        let at = i * page as usize;
                        let bytes = &f.content[0][at..at + page as usize];
                        rustix::io::pwrite(&f.fds[0], bytes, at as u64).unwrap();
                        changes.hole[i] = false;
                    }
                }
                continue;
            }
            2 => Request::handshake(u.int_in_range(0..=3)?, u.int_in_range(0..=3)?).encode(),
            3 | 4 => Request::prepare(
                edgy(u, page)?,
                edgy(u, page)?,
                if u.ratio(1, 8)? { edgy(u, page)? } else { 0 },
                u.arbitrary()?,
            )
            .encode(),
            5 => Request::segments(u.int_in_range(0..=5)?, edgy(u, page)?).encode(),
            6 => Request::complete(u.int_in_range(0..=5)?).encode(),
            _ => Request::checksum(u.int_in_range(0..=5)?, edgy(u, page)?, edgy(u, page)?).encode(),
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
        check(f, s, &bytes, &chosen, extra, &reply, &before, held, changes);
        s.check()
            .unwrap_or_else(|e| panic!("after {bytes:02x?}: {e}"));
    }
    Ok(())
}
