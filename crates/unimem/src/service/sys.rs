//! The system calls the service needs that rustix does not wrap, or does
//! not wrap soundly for every value the kernel returns:
//! `getsockopt(SO_PEERCRED)` (rustix's `UCred` holds a non-zero `Pid`, but
//! the kernel reports pid 0 for a peer outside the service's pid
//! namespace), `getsockopt(SO_PEERGROUPS)` and `process_vm_readv` on this
//! process.
//!
//! Both are plain data transfers into buffers this module owns, so the
//! `unsafe` is limited to passing correct pointers and lengths.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd};

/// The peer's credentials at `connect`: `(pid, uid, gid)`. The pid is 0
/// when the peer lives in a pid namespace the service cannot see into.
pub fn peer_cred(fd: impl AsFd) -> io::Result<(i32, u32, u32)> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` is a writable `ucred` and `len` its size; the kernel
    // writes at most `len` bytes, all of them plain integers.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != size_of::<libc::ucred>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok((cred.pid, cred.uid, cred.gid))
}

/// `getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS)` — the supplementary groups
/// of the peer of a connected Unix socket, as they were at `connect`.
pub fn peer_groups(fd: impl AsFd) -> io::Result<Vec<u32>> {
    let mut groups: Vec<libc::gid_t> = vec![0; 64];
    for _ in 0..4 {
        let mut len = (groups.len() * size_of::<libc::gid_t>()) as libc::socklen_t;
        // SAFETY: `groups` is a writable buffer of `len` bytes and `len` is a
        // valid pointer to its size; the kernel writes at most `len` bytes.
        let rc = unsafe {
            libc::getsockopt(
                fd.as_fd().as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                groups.as_mut_ptr().cast(),
                &mut len,
            )
        };
        let n = len as usize / size_of::<libc::gid_t>();
        if rc == 0 {
            groups.truncate(n);
            return Ok(groups);
        }
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ERANGE) {
            return Err(err);
        }
        // The kernel reported the size it needs in `len`.
        groups.resize(n.max(groups.len() * 2), 0);
    }
    Err(io::Error::from_raw_os_error(libc::ERANGE))
}

/// Copies `out.len()` bytes at virtual address `addr` of *this* process into
/// `out` with `process_vm_readv`. Unlike dereferencing the mapping, a page
/// that cannot be read (a shared file truncated by the client after the
/// service mapped it) yields `EFAULT` instead of a SIGBUS that would end the
/// whole service.
pub fn read_own_memory(addr: u64, out: &mut [u8]) -> io::Result<()> {
    let local = libc::iovec {
        iov_base: out.as_mut_ptr().cast(),
        iov_len: out.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as usize as *mut libc::c_void,
        iov_len: out.len(),
    };
    // SAFETY: `local` describes `out`, which is writable for its length;
    // `remote` is only read by the kernel, which checks it against our page
    // tables and fails with EFAULT instead of touching invalid memory.
    let n = unsafe { libc::process_vm_readv(libc::getpid(), &local, 1, &remote, 1, 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != out.len() {
        return Err(io::Error::from_raw_os_error(libc::EFAULT));
    }
    Ok(())
}

/// Whether the page at `addr` of a file mapping of this process is in the
/// file's page cache (`mincore`), whether or not this process maps it now.
/// Asks without faulting anything in.
pub fn page_resident(addr: u64, page: usize) -> io::Result<bool> {
    let mut vec = [0u8; 1];
    // SAFETY: `addr` is page aligned (callers pass page starts of their own
    // mapping) and `vec` has room for the one page asked about; mincore only
    // reads the page tables and the page cache, and writes `vec`.
    let rc = unsafe { libc::mincore(addr as usize as *mut libc::c_void, page, vec.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(vec[0] & 1 != 0)
}
