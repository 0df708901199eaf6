//! Do the addresses stay put? A [`Watcher`] re-reads the pagemap of a
//! range of a process and reports every page whose physical address
//! changed since the previous reading, with how much the kernel migrated
//! and compacted meanwhile (`/proc/vmstat`) and how many bytes the process
//! pins (`VmPin`).
//!
//! A move is a page read at an address other than the last one it was
//! read at. A reading without an address is not a move: while the kernel
//! tries to migrate a page, even a pinned one whose migration then fails,
//! its page-table entry is briefly a migration entry, which pagemap shows
//! as not present; the page comes back at the same address. Such pages
//! are counted per reading (`present` is lower), never reported as moved.

use crate::error::{Error, ErrorKind, Result};
use crate::pagemap::{check_range, Pagemap, HIDDEN_PFNS};
use crate::system;
use crate::vmstat::Counters;
use unimem_core::pagemap::{Entry, PageState};
use unimem_core::VirtAddr;

/// One page read at an address other than the last one it was read at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Move {
    /// Byte offset of the base page from the start of the range (`va`).
    pub offset: u64,
    /// Physical address of the page's first byte at the last reading that
    /// found it present.
    pub old: u64,
    /// Physical address of the page's first byte now.
    pub new: u64,
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

    /// The word the table and JSON use: "yes", "partly", "no" or
    /// "unknown".
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
    /// Pages read at another address than the last one they were read at.
    pub moves: Vec<Move>,
    /// Pages that have an address now.
    pub present: u64,
    /// Growth of the migration counters since the previous reading.
    pub vmstat: Vec<(&'static str, u64)>,
    /// `VmPin` of the process in bytes; `None` when not visible.
    pub vm_pin: Option<u64>,
    /// `vm_pin` judged against the range's length.
    pub pinned: Pinned,
}

/// Re-reads the addresses of `[va, va + len)` in one process.
pub struct Watcher {
    pid: u32,
    va: VirtAddr,
    len: u64,
    pagemap: Pagemap,
    page: u64,
    /// The last address each page was read at (`None`: never yet).
    known: Vec<Option<u64>>,
    /// Pages with an address in the latest reading.
    present: u64,
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
            known: Vec::new(),
            present: 0,
            counters: Counters::read()?,
        };
        w.known = w.read_addresses()?;
        w.present = w.known.iter().filter(|a| a.is_some()).count() as u64;
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
        let mut moves = Vec::new();
        let mut present = 0;
        for (i, (known, new)) in self.known.iter_mut().zip(&now).enumerate() {
            let Some(new) = *new else { continue };
            present += 1;
            if let Some(old) = known.filter(|&old| old != new) {
                moves.push(Move {
                    offset: i as u64 * self.page,
                    old,
                    new,
                });
            }
            *known = Some(new);
        }
        self.present = present;
        let counters = Counters::read()?;
        let before = std::mem::replace(&mut self.counters, counters);
        Ok(self.tick_from(moves, before))
    }

    fn tick_from(&self, moves: Vec<Move>, before: Counters) -> Tick {
        let vm_pin = vm_pin_bytes(self.pid);
        Tick {
            moves,
            present: self.present,
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
        let page = rustix::param::page_size();
        let len = 16 * page;
        let fd = rustix::fs::memfd_create("unimem-watch", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, len as u64).unwrap();
        let mut m = crate::mapping::Mapping::shared(&fd, 0, len).unwrap();
        m.as_mut_slice().fill(1);
        // This test's own reading of pagemap, one address per page.
        let reference = |m: &crate::mapping::Mapping| {
            let f = std::fs::File::open("/proc/self/pagemap").unwrap();
            let mut bytes = vec![0u8; 16 * 8];
            std::os::unix::fs::FileExt::read_exact_at(&f, &mut bytes, m.addr().0 / page as u64 * 8)
                .unwrap();
            bytes
                .chunks_exact(8)
                .map(|b| {
                    (u64::from_le_bytes(b.try_into().unwrap()) & ((1 << 55) - 1)) * page as u64
                })
                .collect::<Vec<u64>>()
        };
        let before = reference(&m);
        let (mut w, first) = Watcher::start(std::process::id(), m.addr(), len as u64)
            .expect("watching needs PFNs: run the tests as root");
        assert_eq!(first.present, 16);
        assert!(first.moves.is_empty());
        // Dropping the pages leaves them without an address: not a move.
        let flags = rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE;
        rustix::fs::fallocate(&fd, flags, 0, len as u64).unwrap();
        let t = w.tick().unwrap();
        assert_eq!(t.present, 0);
        assert!(t.moves.is_empty());
        // Touched again, each page gets a fresh frame: a move wherever it
        // differs from the address first read.
        m.as_mut_slice().fill(2);
        let again = reference(&m);
        let t = w.tick().unwrap();
        assert_eq!(t.present, 16);
        let expected: Vec<Move> = (0..16)
            .filter(|&i| again[i] != before[i])
            .map(|i| Move {
                offset: (i * page) as u64,
                old: before[i],
                new: again[i],
            })
            .collect();
        assert_eq!(t.moves, expected);
    }
}
