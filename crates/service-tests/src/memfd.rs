//! Memfds as a test or a helper hands them to the service.

use std::os::fd::OwnedFd;

/// A memfd of `len` bytes as the service accepts it: sealed against
/// shrinking and with every page written.
pub fn memfd(len: u64) -> OwnedFd {
    let fd = unsealed_memfd(len);
    rustix::fs::fcntl_add_seals(&fd, rustix::fs::SealFlags::SHRINK).unwrap();
    populate(&fd, len);
    fd
}

/// A memfd of `len` bytes that may be sealed later, with no page written.
pub fn unsealed_memfd(len: u64) -> OwnedFd {
    let flags = rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING;
    let fd = rustix::fs::memfd_create("unimem-test", flags).unwrap();
    rustix::fs::ftruncate(&fd, len).unwrap();
    fd
}

/// Writes every page of the first `len` bytes of `fd` (through a mapping
/// that is gone when this returns).
pub fn populate(fd: &OwnedFd, len: u64) {
    let m = unimem::mapping::Mapping::shared(fd, 0, len as usize).unwrap();
    m.advise(unimem::mapping::Advice::PopulateWrite).unwrap();
}
