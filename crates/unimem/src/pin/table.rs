//! One ring kept for many pins: a sparse table of registered-buffer slots.
//!
//! Creating an io_uring costs more than registering a small buffer on it,
//! so a process that pins again and again keeps one [`PinTable`]. Its ring
//! starts with an empty (sparse) buffer table of a fixed number of slots
//! (`IORING_REGISTER_BUFFERS2` with `IORING_RSRC_REGISTER_SPARSE`); a pin
//! fills one free slot per iovec of at most [`MAX_IOVEC`](super::MAX_IOVEC)
//! bytes (`IORING_REGISTER_BUFFERS_UPDATE`), and releasing it sets those
//! slots back to empty, which unpins the pages at once. The ring closes
//! when the table and every pin made from it are gone.
//!
//! Each slot is updated on its own: the kernel may update only part of a
//! longer run and say so in a count the io-uring crate does not return, so
//! one slot per call leaves no doubt about which slots hold a buffer.

use super::{iovecs_of, new_ring, register_error, Holder, Pin};
use crate::error::{Error, ErrorKind, Result};
use crate::lock::lock;
use crate::mapping::Mapping;
use io_uring::IoUring;
use rustix::io::Errno;
use std::sync::{Arc, Mutex};

/// Most slots one table may have (`IORING_MAX_REG_BUFFERS`).
pub const MAX_SLOTS: u32 = 1 << 14;

/// An io_uring with a sparse table of buffer slots, pinning mappings into
/// free slots. Pins made from it hold the ring open until they are released.
pub struct PinTable {
    table: Arc<Mutex<Table>>,
    capacity: u32,
}

impl std::fmt::Debug for PinTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PinTable")
            .field("capacity", &self.capacity)
            .field("free", &self.free_slots())
            .finish_non_exhaustive()
    }
}

/// The ring and which of its slots are free.
struct Table {
    ring: IoUring,
    free: FreeSlots,
}

impl PinTable {
    /// A ring with an empty table of `slots` buffer slots (at most
    /// [`MAX_SLOTS`]). A pin takes one slot per GiB or part of one.
    pub fn new(slots: u32) -> Result<PinTable> {
        if slots == 0 || slots > MAX_SLOTS {
            return Err(Error::new(
                ErrorKind::InvalidRequest,
                format!("a pin table has 1 to {MAX_SLOTS} slots, not {slots}"),
            ));
        }
        let ring = new_ring(1)?;
        ring.submitter()
            .register_buffers_sparse(slots)
            .map_err(|e| {
                let msg = match e.raw_os_error().map(Errno::from_raw_os_error) {
                    Some(Errno::INVAL) => format!(
                        "cannot create a table of {slots} pin slots: this kernel lacks sparse \
                         io_uring buffer tables (Linux 5.19 or later has them)"
                    ),
                    Some(Errno::NOMEM) => {
                        format!("cannot create a table of {slots} pin slots: out of memory")
                    }
                    _ => format!("cannot create a table of {slots} pin slots"),
                };
                Error::with_source(ErrorKind::Unsupported, msg, e)
            })?;
        Ok(PinTable {
            table: Arc::new(Mutex::new(Table {
                ring,
                free: FreeSlots::new(slots),
            })),
            capacity: slots,
        })
    }

    /// Slots in the table.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    /// Slots free now.
    pub fn free_slots(&self) -> usize {
        lock(&self.table).free.len()
    }

    /// Pins every page of `mapping` (which must be writable, as for
    /// [`Pin::new`]) into free slots of this table. Faults in any page that
    /// is not present. The pin empties its slots again when released.
    pub fn pin(&self, mapping: &Mapping) -> Result<Pin> {
        let len = mapping.len();
        let iovecs = iovecs_of(mapping)?;
        let mut table = lock(&self.table);
        let Some(slots) = table.free.take(iovecs.len()) else {
            return Err(Error::new(
                ErrorKind::Resources,
                format!(
                    "cannot pin {len} bytes: {} buffer slots are needed and {} of {} are free; \
                     release a pin first",
                    iovecs.len(),
                    table.free.len(),
                    self.capacity
                ),
            ));
        };
        for (done, (&slot, iovec)) in slots.iter().zip(&iovecs).enumerate() {
            // SAFETY: `iovec` describes a part of `mapping`, a live mapping.
            // Registration pins its pages; this ring never submits an
            // operation, so the kernel never accesses the memory through it,
            // and the pin empties the slot before its owner unmaps.
            let updated = unsafe {
                table.ring.submitter().register_buffers_update(
                    slot,
                    std::slice::from_ref(iovec),
                    None,
                )
            };
            if let Err(e) = updated {
                // Unpin what this call pinned; the slots go back either way
                // (a slot that stays filled is replaced by its next use).
                let _ = table.empty(&slots[..done]);
                table.free.put(&slots);
                return Err(register_error(len, e));
            }
        }
        drop(table);
        Ok(Pin {
            holder: Holder::Slots(Slots {
                table: Arc::clone(&self.table),
                slots,
            }),
            bytes: len as u64,
        })
    }
}

impl Table {
    /// Sets `slots` back to empty, unpinning their pages.
    fn empty(&self, slots: &[u32]) -> std::io::Result<()> {
        let empty = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }];
        let mut result = Ok(());
        for &slot in slots {
            // SAFETY: an empty iovec registers no memory; it only drops the
            // buffer the slot held.
            let r = unsafe {
                self.ring
                    .submitter()
                    .register_buffers_update(slot, &empty, None)
            };
            result = result.and(r);
        }
        result
    }
}

/// The slots one [`Pin`] holds in a [`PinTable`].
pub(super) struct Slots {
    table: Arc<Mutex<Table>>,
    slots: Vec<u32>,
}

impl Slots {
    /// Empties the slots and gives them back; a second call does nothing.
    pub(super) fn release(&mut self) -> Result<()> {
        if self.slots.is_empty() {
            return Ok(());
        }
        let slots = std::mem::take(&mut self.slots);
        let mut table = lock(&self.table);
        let emptied = table.empty(&slots);
        table.free.put(&slots);
        emptied
            .map_err(|e| Error::with_source(ErrorKind::Io, "cannot unregister pinned buffers", e))
    }
}

/// Which slots of a table are free. Bookkeeping only: the kernel's table is
/// updated by [`PinTable`].
#[derive(Debug)]
struct FreeSlots {
    /// Free slots, the lowest last (taken first).
    free: Vec<u32>,
    /// Whether each slot is taken, to catch a slot given back twice.
    taken: Vec<bool>,
}

impl FreeSlots {
    fn new(slots: u32) -> FreeSlots {
        FreeSlots {
            free: (0..slots).rev().collect(),
            taken: vec![false; slots as usize],
        }
    }

    fn len(&self) -> usize {
        self.free.len()
    }

    /// Takes `n` free slots, or none if fewer than `n` are free.
    fn take(&mut self, n: usize) -> Option<Vec<u32>> {
        if n > self.free.len() {
            return None;
        }
        let slots = self.free.split_off(self.free.len() - n);
        let slots: Vec<u32> = slots.into_iter().rev().collect();
        for &s in &slots {
            self.taken[s as usize] = true;
        }
        Some(slots)
    }

    /// Gives `slots` back. A slot that is not taken is left alone.
    fn put(&mut self, slots: &[u32]) {
        for &s in slots.iter().rev() {
            if let Some(t) = self.taken.get_mut(s as usize).filter(|t| **t) {
                *t = false;
                self.free.push(s);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_taken_lowest_first_and_given_back() {
        let mut f = FreeSlots::new(4);
        assert_eq!(f.take(1), Some(vec![0]));
        assert_eq!(f.take(2), Some(vec![1, 2]));
        assert_eq!(f.len(), 1);
        assert_eq!(f.take(2), None, "two slots taken when one is free");
        assert_eq!(f.len(), 1, "a refused take changed the free list");
        f.put(&[1, 2]);
        assert_eq!(f.len(), 3);
        f.put(&[1]);
        assert_eq!(f.len(), 3, "a slot given back twice counts twice");
        assert_eq!(f.take(3), Some(vec![1, 2, 3]));
        assert_eq!(f.take(1), None);
        f.put(&[0, 1, 2, 3]);
        let mut all = f.take(4).unwrap();
        all.sort_unstable();
        assert_eq!(all, vec![0, 1, 2, 3]);
        f.put(&[7]);
        assert_eq!(f.len(), 0, "a slot outside the table was taken in");
    }

    #[test]
    fn pins_reuse_the_slots_of_released_pins() {
        let _serial = crate::pin::serial_pin_test();
        let fd = rustix::fs::memfd_create("unimem-pin-table-test", rustix::fs::MemfdFlags::CLOEXEC)
            .unwrap();
        rustix::fs::ftruncate(&fd, 1 << 20).unwrap();
        let m = Mapping::shared(&fd, 0, 1 << 20).unwrap();
        let table = PinTable::new(2).unwrap();
        for _ in 0..8 {
            let a = table.pin(&m).unwrap();
            let b = table.pin(&m).unwrap();
            assert_eq!(table.free_slots(), 0);
            let err = table.pin(&m).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Resources);
            assert_eq!(table.free_slots(), 0);
            a.release().unwrap();
            drop(b);
            assert_eq!(table.free_slots(), 2);
        }
        assert!(PinTable::new(0).is_err());
        assert!(PinTable::new(MAX_SLOTS + 1).is_err());
    }
}
