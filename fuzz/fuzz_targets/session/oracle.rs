//! The session target's oracle: what the reply to one frame must be, given
//! the request, the fds that came with it and what the client did to its
//! files since each prepare.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(crate) fn check(
    f: &Fixture,
    s: &Session,
    bytes: &[u8],
    chosen: &[usize],
    extra: bool,
    reply: &[u8],
    before: &[(u64, u64)],
    held: &mut HashMap<u64, Held>,
    changes: &Changes,
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
        (Request::Handshake(hs), Reply::Handshake(info)) => {
            let offered = hs.min_version.get()..=hs.max_version.get();
            assert!(offered.contains(&info.version.get()));
            assert_eq!(s.held(), before);
        }
        (Request::Prepare(p), Reply::Segments(batch)) => {
            let (offset, length) = (p.offset.get(), p.length.get());
            // Only the sealed memfd, only a fully written range inside it.
            assert!(!extra && chosen == [0], "prepare with fds {chosen:?}");
            assert_eq!(p.client_va.get(), 0);
            let size = PAGES[0] * f.page;
            assert!(length > 0 && offset.checked_add(length).is_some_and(|e| e <= size));
            let pages = changes.pages(f.page, offset, length);
            assert!(
                !changes.hole[pages.clone()].iter().any(|&h| h),
                "prepared a range with holes: {offset:#x}+{length:#x}"
            );
            check_frames(f, offset, &batch);
            let handle = batch.handle.get();
            assert_eq!((batch.start.get(), batch.total_length.get()), (0, length));
            assert!(!before.iter().any(|&(h, _)| h == handle), "handle reused");
            assert!(s.held().contains(&(handle, length)));
            held.insert(
                handle,
                Held {
                    offset,
                    length,
                    generations: changes.generation[pages].to_vec(),
                },
            );
        }
        (Request::Segments(r), Reply::Segments(batch)) => {
            let (handle, continuation) = (r.handle.get(), r.continuation.get());
            let len = before
                .iter()
                .find(|p| p.0 == handle)
                .expect("a held handle")
                .1;
            let (start, next) = (batch.start.get(), batch.next.get());
            assert_eq!(
                (batch.handle.get(), start, batch.total_length.get()),
                (handle, continuation, len)
            );
            assert!(next > start || next == len);
            let p = &held[&handle];
            unchanged_since_prepare(f, changes, p, start, next - start);
            check_frames(f, p.offset, &batch);
        }
        (Request::Complete(r), Reply::Complete(c)) => {
            let handle = r.handle.get();
            let len = before
                .iter()
                .find(|p| p.0 == handle)
                .expect("a held handle")
                .1;
            assert_eq!((c.handle.get(), c.released_bytes.get()), (handle, len));
            assert!(!s.held().iter().any(|p| p.0 == handle));
            held.remove(&handle);
        }
        (Request::Checksum(r), Reply::Checksum(c)) => {
            let (handle, offset, length) = (r.handle.get(), r.offset.get(), r.length.get());
            let p = &held[&handle];
            assert!(offset.checked_add(length).is_some_and(|e| e <= p.length));
            unchanged_since_prepare(f, changes, p, offset, length);
            let start = (p.offset + offset) as usize;
            let want = checksum(&f.content[0][start..start + length as usize]);
            assert_eq!(
                c.checksum.get(),
                want,
                "checksum of handle {handle} {offset:#x}+{length:#x}"
            );
        }
        (req, r) => panic!("{req:?} answered with {r:?}"),
    }
}

/// A success reply over `[offset, offset + length)` of a held range: none
/// of those pages may have been punched out since the prepare.
fn unchanged_since_prepare(f: &Fixture, changes: &Changes, p: &Held, offset: u64, length: u64) {
    let first = (p.offset / f.page) as usize;
    for i in changes.pages(f.page, p.offset + offset, length) {
        assert_eq!(
            changes.generation[i],
            p.generations[i - first],
            "a success reply describes page {i}, punched out since the prepare"
        );
        assert!(
            !changes.hole[i],
            "a success reply describes page {i}, a hole now"
        );
    }
}

/// Every address of a success reply is the frame backing that page of the
/// file now, as this process reads it.
fn check_frames(f: &Fixture, range_offset: u64, batch: &SegmentsReply) {
    if f.pagemap.is_none() {
        return;
    }
    let mut at = range_offset + batch.start.get();
    for segment in batch.valid_segments() {
        let (addr, len) = (segment.address.get(), segment.length.get());
        let mut o = 0;
        while o < len {
            let i = ((at + o) / f.page) as usize;
            assert_eq!(
                frame_of(f, i),
                Some(addr + o),
                "the reply's address for page {i} is not the file's frame"
            );
            o += f.page;
        }
        at += len;
    }
}
