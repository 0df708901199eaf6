//! Long-term pinning of a mapping through io_uring buffer registration.
//!
//! `mlock` keeps pages resident but lets compaction migrate them, so the
//! addresses it "locks" can change under a device. `IORING_REGISTER_BUFFERS`
//! takes a `FOLL_LONGTERM` pin on every page instead: migration fails on the
//! extra reference and the physical address stays put until the buffers are
//! unregistered. The kernel may migrate pages *while* pinning (out of
//! ZONE_MOVABLE or CMA), so addresses must be read after [`Pin::new`].
//!
//! One registered buffer is at most 1 GiB on Linux 6.x, so a mapping is
//! registered as consecutive iovecs of at most [`MAX_IOVEC`] bytes.
//!
//! Why the `unsafe` here is sound: registration only makes the kernel take
//! references on the pages; this type never submits an I/O operation, so
//! the kernel never reads or writes the memory through the ring. The pin is
//! released with an explicit `IORING_UNREGISTER_BUFFERS` before the ring
//! closes, because ring teardown is asynchronous and would leave the pages
//! accounted as pinned for a while after the fd is closed.
//!
//! A one-off [`Pin::new`] creates a ring of its own. A process that pins
//! and unpins often (the service, one connection after another range)
//! keeps a [`PinTable`] instead: one ring with a sparse table of buffer
//! slots, where a pin fills free slots and its release empties them again.
#![allow(unsafe_code)]

mod table;

pub use table::{PinTable, MAX_SLOTS};

use crate::error::{Error, ErrorKind, Result};
use crate::mapping::Mapping;
use io_uring::IoUring;
use rustix::io::Errno;

/// Largest single registered buffer the kernel accepts (`io_buffer_validate`).
pub const MAX_IOVEC: usize = 1 << 30;

/// Largest number of iovecs one registration takes (`UIO_MAXIOV`).
const MAX_IOVECS: usize = 1024;

/// A long-term pin of every page of a mapping, released on drop.
///
/// The pin does not borrow the mapping: unmapping first is memory-safe (the
/// kernel keeps its own page references), but the pages would then stay
/// pinned without any mapping to name them, so owners keep the `Pin` and
/// the [`Mapping`] together and drop the pin first.
pub struct Pin {
    holder: Holder,
    bytes: u64,
}

/// What releasing a [`Pin`] undoes.
enum Holder {
    /// A ring of the pin's own, whose whole buffer table is the pin.
    Ring {
        ring: Box<IoUring>,
        registered: bool,
    },
    /// Slots of a shared [`PinTable`].
    Slots(table::Slots),
}

impl std::fmt::Debug for Pin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pin")
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl Pin {
    /// Pins every page of `mapping` (which must be writable: the kernel pins
    /// with `FOLL_WRITE`). Faults in any page that is not present.
    pub fn new(mapping: &Mapping) -> Result<Pin> {
        let len = mapping.len();
        let iovecs = iovecs_of(mapping)?;
        let ring = new_ring(1)?;
        // SAFETY: every iovec describes a part of `mapping`, a live mapping
        // of `len` bytes. Registration pins the pages; this ring never
        // submits an operation, so the kernel never accesses the memory
        // through it, and `Drop` unregisters before the ring closes.
        let registered = unsafe { ring.submitter().register_buffers(&iovecs) };
        registered.map_err(|e| register_error(len, e))?;
        Ok(Pin {
            holder: Holder::Ring {
                ring: Box::new(ring),
                registered: true,
            },
            bytes: len as u64,
        })
    }

    /// Bytes held by this pin.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Releases the pin now, reporting a failure instead of ignoring it.
    pub fn release(mut self) -> Result<()> {
        self.unregister()
    }

    fn unregister(&mut self) -> Result<()> {
        match &mut self.holder {
            Holder::Ring { registered, .. } if !*registered => Ok(()),
            Holder::Ring { ring, registered } => {
                *registered = false;
                ring.submitter().unregister_buffers().map_err(|e| {
                    Error::with_source(ErrorKind::Io, "cannot unregister pinned buffers", e)
                })
            }
            Holder::Slots(slots) => slots.release(),
        }
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        // Unregister synchronously; closing the ring alone would release the
        // pages only when the kernel's deferred teardown runs.
        let _ = self.unregister();
    }
}

/// The iovecs registering `mapping`, refused when there are too many.
fn iovecs_of(mapping: &Mapping) -> Result<Vec<libc::iovec>> {
    let len = mapping.len();
    if len == 0 {
        return Err(Error::new(ErrorKind::InvalidRequest, "cannot pin 0 bytes"));
    }
    let iovecs = split(mapping.addr().0 as usize, len);
    if iovecs.len() > MAX_IOVECS {
        return Err(Error::new(
            ErrorKind::Resources,
            format!(
                "cannot pin {len} bytes: more than {MAX_IOVECS} buffers of 1 GiB would be needed"
            ),
        ));
    }
    Ok(iovecs)
}

/// A ring of `entries` submission entries, used only for its buffer table.
fn new_ring(entries: u32) -> Result<IoUring> {
    IoUring::new(entries).map_err(|e| {
        let msg = match e.raw_os_error().map(Errno::from_raw_os_error) {
            Some(Errno::NOSYS) => {
                "cannot create an io_uring (this kernel lacks io_uring) to pin the memory"
            }
            Some(Errno::PERM) | Some(Errno::ACCESS) => {
                "cannot create an io_uring to pin the memory: io_uring is disabled \
                 (sysctl kernel.io_uring_disabled) or blocked by a seccomp filter"
            }
            _ => "cannot create an io_uring to pin the memory",
        };
        Error::with_source(ErrorKind::Unsupported, msg, e)
    })
}

/// The error for a registration of `len` bytes the kernel refused.
fn register_error(len: usize, e: std::io::Error) -> Error {
    let (kind, msg) = match e.raw_os_error().map(Errno::from_raw_os_error) {
        Some(Errno::NOMEM) => (
            ErrorKind::Resources,
            format!(
                "cannot pin {len} bytes: the locked-memory limit (RLIMIT_MEMLOCK) is \
                 too low; run as root (CAP_IPC_LOCK) or raise `ulimit -l`"
            ),
        ),
        Some(Errno::FAULT) => (
            ErrorKind::PrepareFailed,
            format!(
                "cannot pin {len} bytes: the kernel refuses long-term pins of this \
                 memory (only memfd, tmpfs and hugetlbfs memory can be pinned)"
            ),
        ),
        _ => (ErrorKind::PrepareFailed, format!("cannot pin {len} bytes")),
    };
    Error::with_source(kind, msg, e)
}

/// Splits `[addr, addr + len)` into iovecs of at most [`MAX_IOVEC`] bytes.
fn split(addr: usize, len: usize) -> Vec<libc::iovec> {
    let mut out = Vec::with_capacity(len.div_ceil(MAX_IOVEC));
    let mut done = 0;
    while done < len {
        let n = (len - done).min(MAX_IOVEC);
        out.push(libc::iovec {
            iov_base: (addr + done) as *mut libc::c_void,
            iov_len: n,
        });
        done += n;
    }
    out
}

/// The unit tests that pin memory, one at a time: `VmPin` is one number
/// for the whole test process, so a test that reads it must not see another
/// test's pin come or go meanwhile.
#[cfg(test)]
pub(crate) fn serial_pin_test() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    crate::lock::lock(&LOCK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_into_gib_iovecs() {
        let v = split(0x1000, 2 * MAX_IOVEC + 4096);
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].iov_len, MAX_IOVEC);
        assert_eq!(v[1].iov_base as usize, 0x1000 + MAX_IOVEC);
        assert_eq!(v[2].iov_len, 4096);
        assert_eq!(split(0, MAX_IOVEC).len(), 1);
    }

    #[test]
    fn pins_and_releases_a_memfd_mapping() {
        let _serial = serial_pin_test();
        let fd =
            rustix::fs::memfd_create("unimem-pin-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 1 << 20).unwrap();
        let m = Mapping::shared(&fd, 0, 1 << 20).unwrap();
        let before = vm_pin_kb();
        let pin = Pin::new(&m).unwrap();
        assert_eq!(pin.bytes(), 1 << 20);
        if let Some(b) = before {
            assert!(
                vm_pin_kb().unwrap() >= b + 1024,
                "VmPin did not grow by the pinned MiB"
            );
        }
        pin.release().unwrap();
    }

    fn vm_pin_kb() -> Option<u64> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = s.lines().find(|l| l.starts_with("VmPin:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}
