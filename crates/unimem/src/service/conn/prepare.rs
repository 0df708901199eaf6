//! PREPARE on one connection: the fd and range checked, every limit
//! (per prepare, per connection, handles, per user, for all clients)
//! reserved in that order and given back on any failure, then the range
//! mapped, pinned and resolved.

use super::Conn;
use crate::pin::{PinTable, MAX_IOVEC};
use crate::service::prepared::{self, PreparedRange};
use crate::service::rule::Rule;
use crate::service::Refusal;
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use unimem_core::wire::{selector, Reply};

impl Conn {
    /// Prepares `[offset, offset + length)` of the file behind `fd` and
    /// answers with its first segments.
    pub(super) fn prepare(
        &mut self,
        fd: OwnedFd,
        offset: u64,
        length: u64,
    ) -> Result<(Reply, String), Refusal> {
        let limits = &self.shared.config.limits;
        let f = prepared::check_fd(fd)?;
        prepared::check_range(&f, offset, length)?;
        if length > limits.max_prepare_bytes {
            return Err(Refusal::rule(
                Rule::PrepareBytes,
                format!("{length} bytes > --max-bytes {}", limits.max_prepare_bytes),
            ));
        }
        if self.bytes.saturating_add(length) > limits.max_connection_bytes {
            return Err(Refusal::rule(
                Rule::ConnectionBytes,
                format!(
                    "{} held + {length} > {} per connection",
                    self.bytes, limits.max_connection_bytes
                ),
            ));
        }
        if self.handles.len() >= limits.max_handles {
            return Err(Refusal::rule(
                Rule::Handles,
                format!("{} held", self.handles.len()),
            ));
        }
        let pins = match &mut self.pins {
            Some(pins) => pins,
            none => none.insert(new_pin_table(limits)?),
        };
        if let Err(held) = self.shared.user_reserve(self.uid, self.admin, length) {
            return Err(Refusal::rule(
                Rule::UserBytes,
                format!(
                    "uid {} holds {held} + {length} > {} per user",
                    self.uid, limits.max_user_bytes
                ),
            ));
        }
        let counters = &self.shared.counters;
        if !counters.reserve(length, limits.max_total_bytes) {
            self.shared.user_release(self.uid, length);
            return Err(Refusal::rule(
                Rule::TotalBytes,
                format!(
                    "{length} more bytes > {} for all clients",
                    limits.max_total_bytes
                ),
            ));
        }
        counters.preparing.fetch_add(1, Ordering::SeqCst);
        let created = PreparedRange::create(
            &f,
            offset,
            length,
            &self.shared.pagemap,
            pins,
            Arc::clone(counters),
        );
        counters.preparing.fetch_sub(1, Ordering::SeqCst);
        let range = created.inspect_err(|_| self.shared.user_release(self.uid, length))?;
        drop(f);
        let handle = self.next_handle;
        self.next_handle += 1;
        let batch = range
            .batch(selector::PREPARE, handle, 0)
            .inspect_err(|_| self.shared.user_release(self.uid, length))?;
        let note = format!(
            " handle {handle}: {length} bytes pinned in {} segments",
            range.segment_count()
        );
        self.bytes += length;
        counters.handles.fetch_add(1, Ordering::SeqCst);
        self.handles.insert(handle, range);
        Ok((Reply::Segments(batch), note))
    }
}

/// The pin table of one connection: a slot per GiB (or part) of every range
/// it may hold at once, that is one per handle plus one per GiB of the
/// connection's byte limit, up to the most a table may have.
fn new_pin_table(limits: &crate::service::config::Limits) -> Result<PinTable, Refusal> {
    let slots = (limits.max_handles as u64)
        .saturating_add(limits.max_connection_bytes / MAX_IOVEC as u64)
        .clamp(1, u64::from(crate::pin::MAX_SLOTS)) as u32;
    PinTable::new(slots).map_err(|e| {
        let errno = e.os_code().unwrap_or(libc::EIO);
        Refusal::from_errno("create the connection's pin ring", errno, e.to_string())
    })
}
