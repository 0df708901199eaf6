//! Do the addresses stay put? A [`Watcher`] re-reads the pagemap of a
//! range of a process and reports every page whose physical address
//! changed since the previous reading, with how much the kernel migrated
//! and compacted meanwhile (`/proc/vmstat`) and how many bytes the process
//! pins (`VmPin`). Pages that are not present have no address; a page
//! becoming present or dropping out is a change too.

use crate::error::{Error, ErrorKind, Result};
use crate::pagemap::{check_range, Pagemap, HIDDEN_PFNS};
use crate::system;
use crate::vmstat::Counters;
use unimem_core::pagemap::{Entry, PageState};
use unimem_core::VirtAddr;

/// One page whose address changed between two readings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Move {
    /// Offset of the page from the start of the range.
    pub offset: u64,
    /// `None`: the page had no address (not present).
    pub old: Option<u64>,
    pub new: Option<u64>,
}

/// Whether the range is pinned, as far as `VmPin` of the process tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pinned {
    /// The process pins at least as many bytes as the range has.
    Yes,
    /// The process pins fewer bytes than the range has (maybe none of it).
    Partly,
    /// The process pins nothing.
    No,
    /// `VmPin` is not visible (no such line, or the process is gone).
    Unknown,
}

impl Pinned {
    fn judge(vm_pin: Option<u64>, len: u64) -> Pinned {
        match vm_pin {
            None => Pinned::Unknown,
            Some(0) => Pinned::No,
            Some(b) if b >= len => Pinned::Yes,
            Some(_) => Pinned::Partly,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Pinned::Yes => "yes",
            Pinned::Partly => "partly",
            Pinned::No => "no",
            Pinned::Unknown => "unknown",
        }
    }
}

/// `VmPin` of process `pid` in bytes, from `/proc/PID/status`, if visible.
pub fn vm_pin_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_vm_pin(&text)
}

fn parse_vm_pin(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmPin:"))?;
    let mut words = line.split_whitespace().skip(1);
    let kib: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib.checked_mul(1024)?)
}

/// Whether process `pid` is gone (or a zombie, whose memory is gone).
pub fn exited(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/status")) {
        Err(_) => true,
        Ok(text) => text
            .lines()
            .find(|l| l.starts_with("State:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("Z")),
    }
}

/// What one re-reading found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Pages whose address changed since the previous reading.
    pub moves: Vec<Move>,
    /// Pages that have an address now.
    pub present: u64,
    /// Growth of the migration counters since the previous reading.
    pub vmstat: Vec<(&'static str, u64)>,
    pub vm_pin: Option<u64>,
    pub pinned: Pinned,
}

/// Re-reads the addresses of `[va, va + len)` in one process.
pub struct Watcher {
    pid: u32,
    va: VirtAddr,
    len: u64,
    pagemap: Pagemap,
    page: u64,
    addresses: Vec<Option<u64>>,
    counters: Counters,
}

impl Watcher {
    /// Opens the process's pagemap and takes the first reading, which
    /// later ticks compare with.
    pub fn start(pid: u32, va: VirtAddr, len: u64) -> Result<(Watcher, Tick)> {
        let base = system::page_size();
        check_range(base, va, len)?;
        let pagemap = Pagemap::open_pid(pid)?;
        let mut w = Watcher {
            pid,
            va,
            len,
            pagemap,
            page: base.bytes(),
            addresses: Vec::new(),
            counters: Counters::read()?,
        };
        w.addresses = w.read_addresses()?;
        let tick = w.tick_from(Vec::new(), w.counters.clone());
        Ok((w, tick))
    }

    /// Number of base pages watched.
    pub fn pages(&self) -> u64 {
        self.len / self.page
    }

    /// Re-reads the range and reports what changed since the last reading.
    pub fn tick(&mut self) -> Result<Tick> {
        let now = self.read_addresses()?;
        let moves = self
            .addresses
            .iter()
            .zip(&now)
            .enumerate()
            .filter(|(_, (old, new))| old != new)
            .map(|(i, (old, new))| Move {
                offset: i as u64 * self.page,
                old: *old,
                new: *new,
            })
            .collect();
        self.addresses = now;
        let counters = Counters::read()?;
        let before = std::mem::replace(&mut self.counters, counters);
        Ok(self.tick_from(moves, before))
    }

    fn tick_from(&self, moves: Vec<Move>, before: Counters) -> Tick {
        let vm_pin = vm_pin_bytes(self.pid);
        Tick {
            moves,
            present: self.addresses.iter().filter(|a| a.is_some()).count() as u64,
            vmstat: self.counters.since(&before),
            vm_pin,
            pinned: Pinned::judge(vm_pin, self.len),
        }
    }

    /// One address (or none) per base page, read in bounded chunks.
    fn read_addresses(&self) -> Result<Vec<Option<u64>>> {
        let pages = self.pages() as usize;
        let mut out = Vec::with_capacity(pages);
        let mut words = vec![0u64; crate::pagemap::CHUNK_ENTRIES.min(pages)];
        let mut done = 0usize;
        while done < pages {
            let n = words.len().min(pages - done);
            let va = VirtAddr(self.va.0 + done as u64 * self.page);
            self.pagemap.read(va, &mut words[..n]).map_err(|e| {
                if exited(self.pid) {
                    Error::new(ErrorKind::NotFound, format!("process {} exited", self.pid))
                } else {
                    e
                }
            })?;
            for &w in &words[..n] {
                out.push(match Entry(w).state() {
                    PageState::Present(pfn) => Some(pfn.0 * self.page),
                    PageState::Hidden => {
                        return Err(Error::new(ErrorKind::PermissionDenied, HIDDEN_PFNS))
                    }
                    _ => None,
                });
            }
            done += n;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_pin_is_read_in_bytes() {
        let status = "Name:\tx\nVmPin:\t    1024 kB\nVmPTE:\t 4 kB\n";
        assert_eq!(parse_vm_pin(status), Some(1 << 20));
        assert_eq!(parse_vm_pin("Name:\tx\n"), None);
        assert_eq!(Pinned::judge(Some(1 << 20), 1 << 20), Pinned::Yes);
        assert_eq!(Pinned::judge(Some(4096), 1 << 20), Pinned::Partly);
        assert_eq!(Pinned::judge(Some(0), 1 << 20), Pinned::No);
        assert_eq!(Pinned::judge(None, 1 << 20), Pinned::Unknown);
    }

    #[test]
    fn a_buffer_of_this_process_is_watched_and_a_change_is_seen() {
        // Reads PFNs: run as root (as test.sh does).
        let len = 16 * rustix::param::page_size();
        let fd = rustix::fs::memfd_create("unimem-watch", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, len as u64).unwrap();
        let mut m = crate::mapping::Mapping::shared(&fd, 0, len).unwrap();
        m.as_mut_slice().fill(1);
        let (mut w, first) = Watcher::start(std::process::id(), m.addr(), len as u64)
            .expect("watching needs PFNs: run the tests as root");
        assert_eq!(first.present, 16);
        assert!(first.moves.is_empty());
        // Dropping the pages from the page tables and the file is a change
        // of every page: each loses its address.
        let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        rustix::fs::fallocate(&fd, flags, 0, len as u64).unwrap();
        let t = w.tick().unwrap();
        assert_eq!(t.present, 0);
        assert_eq!(t.moves.len(), 16);
        assert!(t.moves.iter().all(|m| m.old.is_some() && m.new.is_none()));
        assert_eq!(t.moves[3].offset, 3 * rustix::param::page_size() as u64);
    }
}
