//! What the service holds, counted as it goes and read as a snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what the service holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections being served now.
    pub connections: u64,
    /// Bytes pinned now.
    pub pinned_bytes: u64,
    /// Client memory mappings held now.
    pub mappings: u64,
    /// Prepared handles open now.
    pub handles: u64,
    /// Prepare requests being worked on now.
    pub preparing: u64,
    /// Checksum requests being worked on now.
    pub checksumming: u64,
    /// Connections accepted since start (admitted or not).
    pub accepted: u64,
    /// Connections and requests refused since start.
    pub refused: u64,
}

/// Shared counters, updated by the connection threads.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) connections: AtomicU64,
    pub(crate) pinned_bytes: AtomicU64,
    pub(crate) mappings: AtomicU64,
    pub(crate) handles: AtomicU64,
    pub(crate) preparing: AtomicU64,
    pub(crate) checksumming: AtomicU64,
    pub(crate) accepted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) reserved_bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> Stats {
        let l = |a: &AtomicU64| a.load(Ordering::SeqCst);
        Stats {
            connections: l(&self.connections),
            pinned_bytes: l(&self.pinned_bytes),
            mappings: l(&self.mappings),
            handles: l(&self.handles),
            preparing: l(&self.preparing),
            checksumming: l(&self.checksumming),
            accepted: l(&self.accepted),
            refused: l(&self.refused),
        }
    }

    /// Reserves `bytes` against `limit` for all connections.
    pub(crate) fn reserve(&self, bytes: u64, limit: u64) -> bool {
        self.reserved_bytes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |r| {
                r.checked_add(bytes).filter(|&t| t <= limit)
            })
            .is_ok()
    }
}
