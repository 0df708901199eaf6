//! What the anchors need besides the buffer: a thread that answers
//! fd-passing messages (the transport's floor), another process holding a
//! buffer for `unimem map`, and the memory state a case is measured in.

use crate::Res;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};
use std::fs::File;
use std::io::{BufRead, BufReader, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;

/// Round trips per `roundtrip` sample; the sample is their mean.
pub const ROUNDTRIPS: u32 = 64;

/// The far end of a `SOCK_SEQPACKET` pair, on a thread: every request
/// (4 bytes and one fd) gets the fd closed and a 1-byte reply.
pub struct Echo {
    sock: Option<OwnedFd>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    pub fn start() -> Res<Echo> {
        let (near, far) = rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::SEQPACKET,
            SocketFlags::CLOEXEC,
            None,
        )?;
        let thread = std::thread::spawn(move || {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            loop {
                let mut req = [0u8; 4];
                let mut control = RecvAncillaryBuffer::new(&mut space);
                let got = rustix::net::recvmsg(
                    &far,
                    &mut [IoSliceMut::new(&mut req)],
                    &mut control,
                    RecvFlags::CMSG_CLOEXEC,
                );
                match got {
                    Ok(m) if m.bytes > 0 => {}
                    _ => return,
                }
                for msg in control.drain() {
                    if let RecvAncillaryMessage::ScmRights(fds) = msg {
                        fds.for_each(drop);
                    }
                }
                if rustix::net::send(&far, &[1], SendFlags::empty()).is_err() {
                    return;
                }
            }
        });
        Ok(Echo {
            sock: Some(near),
            thread: Some(thread),
        })
    }

    /// `n` requests, each passing `fd` and waiting for its reply.
    pub fn roundtrips(&mut self, fd: BorrowedFd<'_>, n: u32) -> Res<()> {
        let sock = self.sock.as_ref().ok_or("echo stopped")?;
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        for _ in 0..n {
            let fds = [fd];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
                return Err("no room for the fd in the control message".into());
            }
            rustix::net::sendmsg(
                sock,
                &[IoSlice::new(&[0, 0, 0, 1])],
                &mut control,
                SendFlags::empty(),
            )?;
            let mut reply = [0u8; 1];
            if rustix::net::recv(sock, &mut reply, rustix::net::RecvFlags::empty())?.0 != 1 {
                return Err("the echo thread did not reply".into());
            }
        }
        Ok(())
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        // Closing our end ends the thread's receive loop.
        drop(self.sock.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Another process holding a populated memfd buffer, for `unimem map`.
pub struct Held {
    child: Child,
    unimem: PathBuf,
    addr: u64,
    len: u64,
}

impl Held {
    /// Starts `unimem-bench hold --len LEN` and reads where its buffer is.
    pub fn start(len: u64, unimem: &Path) -> Res<Held> {
        let mut child = Command::new(std::env::current_exe()?)
            .args(["hold", "--len", &len.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().ok_or("no stdout")?).read_line(&mut line)?;
        let mut it = line.split_whitespace().map(str::parse::<u64>);
        let (Some(Ok(addr)), Some(Ok(len))) = (it.next(), it.next()) else {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("the holder process said {line:?}").into());
        };
        Ok(Held {
            child,
            unimem: unimem.to_path_buf(),
            addr,
            len,
        })
    }

    /// Runs `unimem map` of the held range, as JSON or as the full table,
    /// with stdout to /dev/null.
    pub fn map(&self, json: bool) -> Res<()> {
        let status = Command::new(&self.unimem)
            .args(["map", "--pid", &self.child.id().to_string()])
            .args(["--addr", &format!("{:#x}", self.addr)])
            .args(["--len", &self.len.to_string()])
            .arg(if json { "--json" } else { "--all" })
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if !status.success() {
            return Err(format!("unimem map exited with {status}").into());
        }
        Ok(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        // Closing its stdin releases the holder.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The holder's side: a populated memfd of `len` bytes, its address and
/// length on stdout, kept until stdin closes.
pub fn hold(len: u64) -> Res<()> {
    let s = unimem::surface::Surface::create(len, unimem::surface::Backing::Memfd)?;
    keep_resident(&s)?;
    println!("{} {}", s.addr().0, s.len());
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    drop(s);
    Ok(())
}

/// The `unimem` binary built next to this one, if there is one.
pub fn find_unimem() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir.join("unimem"), dir.join("../unimem")]
        .into_iter()
        .find(|p| p.is_file())
}

/// The lock file every pool, THP or fragmentation change in the project
/// serializes on.
pub const MM_LOCK: &str = "/tmp/unimem-mm-tests.lock";

/// Holds the project's memory lock until dropped.
pub struct MmLock(#[allow(dead_code)] File);

impl MmLock {
    pub fn take() -> Res<MmLock> {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(MM_LOCK)?;
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
        Ok(MmLock(f))
    }
}

/// The memory state a case is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Condition {
    /// Right after `echo 1 > /proc/sys/vm/compact_memory`: free memory in
    /// large blocks, as on a freshly booted machine.
    Fresh,
    /// Free memory in single pages: every other page of a filler freed
    /// just before the buffer is created, as on a long-running machine.
    Fragmented,
}

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::Fresh => "fresh",
            Condition::Fragmented => "fragmented",
        }
    }

    pub fn parse(text: &str) -> Result<Condition, String> {
        match text {
            "fresh" => Ok(Condition::Fresh),
            "fragmented" => Ok(Condition::Fragmented),
            other => Err(format!("unknown condition '{other}': fresh or fragmented")),
        }
    }
}

/// The memory state for the next allocations of about `bytes`, while the
/// guard lives (with the memory lock held). Dropping it frees the filler:
/// nothing else is changed, so nothing else needs restoring.
pub struct Prepared {
    _filler: Option<OwnedFd>,
    _lock: MmLock,
}

/// Brings free memory into `condition` for allocations of `bytes`.
pub fn prepare(condition: Condition, bytes: u64) -> Res<Prepared> {
    let lock = MmLock::take()?;
    let filler = match condition {
        Condition::Fresh => {
            std::fs::write("/proc/sys/vm/compact_memory", "1")
                .map_err(|e| format!("cannot compact memory (needs root): {e}"))?;
            None
        }
        Condition::Fragmented => Some(fragment(bytes)?),
    };
    Ok(Prepared {
        _filler: filler,
        _lock: lock,
    })
}

/// Faults a filler of twice `bytes` (at least 256 MiB) and frees every
/// other page of it, leaving that many single free pages between pages in
/// use. The returned fd keeps the other half until dropped.
fn fragment(bytes: u64) -> Res<OwnedFd> {
    let page = unimem::system::page_size().bytes();
    // Twice the buffer, but never so much that the buffer itself would not
    // fit beside the filler's kept half on a shared machine: the segments
    // per GiB in the report say how fragmented the buffer really came out.
    let room = unimem::system::available_memory()
        .unwrap_or(u64::MAX)
        .saturating_sub(bytes + (2 << 30));
    let len = (2 * bytes).max(256 << 20).min(room) & !(2 * page - 1);
    if len == 0 {
        return Err("too little memory available to fragment it".into());
    }
    let fd = rustix::fs::memfd_create("unimem-bench-filler", rustix::fs::MemfdFlags::CLOEXEC)?;
    rustix::fs::ftruncate(&fd, len)?;
    {
        let m = unimem::mapping::Mapping::shared(&fd, 0, len as usize)?;
        m.advise(unimem::mapping::Advice::PopulateWrite)
            .map_err(|e| format!("cannot populate the filler: {e}"))?;
    }
    let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
    for off in (0..len).step_by(2 * page as usize) {
        rustix::fs::fallocate(&fd, flags, off, page)?;
    }
    Ok(fd)
}

/// `shmem_enabled` set to `advise` while the guard lives, where it was
/// `never` (some kernels refuse MADV_COLLAPSE on shmem under `never`); the
/// old mode is written back on drop. Hold the memory lock around it.
pub struct ShmemAdvise(Option<String>);

impl ShmemAdvise {
    pub fn set() -> Res<ShmemAdvise> {
        let path = unimem::system::THP_SHMEM_ENABLED;
        let old = unimem::system::thp_mode(path).ok_or("this kernel has no shmem THP")?;
        if old != "never" {
            return Ok(ShmemAdvise(None));
        }
        std::fs::write(path, "advise").map_err(|e| format!("cannot write {path}: {e}"))?;
        Ok(ShmemAdvise(Some(old)))
    }

    /// Whether the mode was changed.
    pub fn changed(&self) -> bool {
        self.0.is_some()
    }
}

impl Drop for ShmemAdvise {
    fn drop(&mut self) {
        if let Some(old) = &self.0 {
            let path = unimem::system::THP_SHMEM_ENABLED;
            if let Err(e) = std::fs::write(path, old) {
                eprintln!("unimem-bench: cannot restore {path} to {old}: {e}; do it by hand");
            }
        }
    }
}

/// Keeps the held buffer resident (`mlock`), so memory pressure from
/// other processes on a shared machine cannot swap pages out under
/// `unimem map`; unlocked when the mapping goes. (The bench's own buffer is
/// not locked: the service pins it, and pinning mlocked pages may fail.)
pub fn keep_resident(s: &unimem::surface::Surface) -> Res<()> {
    let ptr = s.as_slice().as_ptr() as *mut std::ffi::c_void;
    // SAFETY: the range is exactly the surface's live mapping; mlock only
    // faults pages in and keeps them, it never changes their contents.
    unsafe { rustix::mm::mlock(ptr, s.len() as usize) }
        .map_err(|e| format!("cannot mlock the buffer: {e}"))?;
    Ok(())
}
