//! Paging through a prepared range: every segments reply is checked
//! against the range asked for before its addresses enter the map.

use unimem_core::addr::{AddressKind, PageSize};
use unimem_core::map::PaMap;
use unimem_core::wire::SegmentsReply;

use super::{protocol, ProtocolClient, Transport};
use crate::error::Result;

impl<T: Transport> ProtocolClient<T> {
    /// The page size a range comes in, from its first reply: a power of two
    /// and a multiple of the handshake's (a surface of huge pages comes in
    /// huge pages).
    pub(super) fn range_page_size(&self, first: &SegmentsReply) -> Result<PageSize> {
        PageSize::new(first.page_size.get())
            .filter(|p| p.bytes() >= self.page_size.bytes())
            .ok_or_else(|| {
                protocol(format!(
                    "{}'s segments come in pages of {} bytes, which is not a power of two of at \
                     least its handshake's {} bytes",
                    self.transport.peer(),
                    first.page_size,
                    self.page_size.bytes()
                ))
            })
    }

    /// Pages through the segments of the range `first` opened (`length`
    /// bytes, handle `handle`), appending them to `map` at `base` on.
    pub(super) fn collect(
        &mut self,
        first: Box<SegmentsReply>,
        handle: u64,
        length: u64,
        base: u64,
        map: &mut PaMap,
    ) -> Result<()> {
        let mut batch = first;
        let mut expected_start = 0;
        loop {
            self.check_batch(&batch, handle, length, expected_start, map.page_size())?;
            let mut offset = batch.start.get();
            for segment in batch.valid_segments() {
                let (address, len) = (segment.address.get(), segment.length.get());
                // Page frame 0 never backs user memory, and no IOMMU hands
                // out IOVA 0 for a mapping: 0 is a peer that could not see
                // the addresses, never a real segment.
                if address == 0 {
                    return Err(protocol(format!(
                        "{} sent address 0 for offset {offset:#x}: it cannot see the addresses",
                        self.transport.peer()
                    )));
                }
                if len > length - offset {
                    return Err(protocol(format!(
                        "{}'s segment at offset {offset:#x} runs past the end of the prepared \
                         range ({length:#x})",
                        self.transport.peer()
                    )));
                }
                map.push_at(base + offset, len, map.target(address))
                    .map_err(|e| {
                        protocol(format!("bad segment from {}: {e}", self.transport.peer()))
                    })?;
                offset += len;
            }
            let next = batch.next.get();
            if offset != next {
                return Err(protocol(format!(
                    "{}'s segments end at {offset:#x}, not at the continuation {:#x} it announced",
                    self.transport.peer(),
                    next
                )));
            }
            if batch.is_last() {
                return Ok(());
            }
            if batch.next == batch.start {
                return Err(protocol(format!(
                    "{} sent an empty segments reply before the end",
                    self.transport.peer()
                )));
            }
            expected_start = next;
            batch = self.segments(handle, next)?;
        }
    }

    /// Whether `b` is the next batch of the range asked for.
    fn check_batch(
        &self,
        b: &SegmentsReply,
        handle: u64,
        length: u64,
        expected_start: u64,
        page: PageSize,
    ) -> Result<()> {
        let peer = self.transport.peer();
        if b.handle.get() != handle || b.total_length.get() != length {
            return Err(protocol(format!(
                "{peer} answered for another range (handle {}, {} bytes; asked for handle \
                 {handle}, {length} bytes)",
                b.handle, b.total_length
            )));
        }
        if b.start.get() != expected_start {
            return Err(protocol(format!(
                "{peer}'s segments start at {:#x}, not at {expected_start:#x}",
                b.start
            )));
        }
        if b.next.get() > length || b.next.get() < b.start.get() {
            return Err(protocol(format!(
                "{peer}'s continuation {:#x} is outside the range",
                b.next
            )));
        }
        if b.address_kind() != Some(self.address_kind) {
            return Err(protocol(format!(
                "{peer}'s segments are {} addresses, but its handshake said {}",
                b.address_kind().map_or("unknown", AddressKind::name),
                self.address_kind.name()
            )));
        }
        if b.page_size.get() != page.bytes() {
            return Err(protocol(format!(
                "{peer}'s segments come in pages of {} bytes, but the range's first reply said {}",
                b.page_size,
                page.bytes()
            )));
        }
        Ok(())
    }
}
