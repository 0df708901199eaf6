//! The methods under test, each a function that resolves the same populated
//! buffer once and checks what it read: every page present with a PFN.
//!
//! Everything a method needs that a caller would set up once per process
//! (an open pagemap, a pre-faulted read buffer, a connected service client,
//! a second mapping to pin) is built before timing by [`Fixture`]; the timed
//! part is what a caller pays per buffer.

use crate::Res;
use rustix::fs::{Mode, OFlags, SeekFrom};
use std::fs::File;
use std::os::fd::BorrowedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use unimem::core::pagemap::{PFN_MASK, PRESENT};
use unimem::core::pattern::Pattern;
use unimem::core::{Coverage, PageSize, VirtAddr};
use unimem::mapping::Mapping;
use unimem::pagemap::Pagemap;
use unimem::pin::PinTable;
use unimem::resolve::service::ServiceClient;
use unimem::surface::Backing;

use crate::anchors::{Echo, Held};

mod baselines;

/// The per-page method reads at most this many pages per repetition and
/// extrapolates to the whole buffer beyond that.
pub const PER_PAGE_SAMPLE: u64 = 8192;

/// One method's name, as it appears in the table and the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    Limit,
    Direct,
    PerPage,
    Procfs,
    PageTypes,
    Service,
    Pin,
    Map,
    Roundtrip,
    Memset,
    Fill,
    Readsum,
    Verify,
    Populate,
    Probe,
    MapJson,
    MapTable,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Limit => "limit",
            Method::Direct => "direct",
            Method::PerPage => "per_page",
            Method::Procfs => "procfs",
            Method::PageTypes => "page_types",
            Method::Service => "service",
            Method::Pin => "pin",
            Method::Map => "map",
            Method::Roundtrip => "roundtrip",
            Method::Memset => "memset",
            Method::Fill => "fill",
            Method::Readsum => "readsum",
            Method::Verify => "verify",
            Method::Populate => "populate",
            Method::Probe => "probe",
            Method::MapJson => "map_json",
            Method::MapTable => "map_table",
        }
    }

    /// What the method does, for the table's legend.
    pub fn describe(self) -> &'static str {
        match self {
            Method::Limit => "one raw pread of the whole pagemap range + present/PFN check",
            Method::Direct => {
                "unimem Pagemap::resolve (threaded 64 KiB preads; one entry per huge page on hugetlb/THP)"
            }
            Method::PerPage => "DPDK rte_mem_virt2phy style: open+lseek+read+close per page",
            Method::Procfs => "procfs 0.18 PageMap::get_range_info over the whole range",
            Method::PageTypes => "the kernel's tools/mm/page-types -p PID -a RANGE -l -N",
            Method::Service => "unimem service over its socket: prepare + all segments + complete",
            Method::Pin => "io_uring buffer register + unregister (FOLL_LONGTERM pin) alone, on a ring made before",
            Method::Map => {
                "what the service pays for its own mapping: mmap + MADV_POPULATE_READ (munmap after the reply)"
            }
            Method::Roundtrip => {
                "bare SOCK_SEQPACKET request + 1-byte reply with the memfd passed (SCM_RIGHTS), to a thread"
            }
            Method::Memset => "ptr::write_bytes over the buffer, one thread (the write floor)",
            Method::Fill => "unimem Pattern::fill over the buffer",
            Method::Readsum => "wrapping sum of every u64 of the buffer, one thread (the read floor)",
            Method::Verify => "unimem Pattern::verify over the filled buffer",
            Method::Populate => "create a memfd of the size, map it, MADV_POPULATE_WRITE, unmap (Surface::create + drop)",
            Method::Probe => {
                "what `unimem probe --size N --json` does, in process: create, fill, pin + resolve, verify, JSON to a sink"
            }
            Method::MapJson => {
                "`unimem map --json` of the buffer held by another process, stdout to /dev/null"
            }
            Method::MapTable => {
                "`unimem map --all` (the table) of the same range, stdout to /dev/null"
            }
        }
    }
}

/// One timed run: its duration and, where the method samples, how many
/// pages it really read.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub elapsed: Duration,
    /// Pages read when the method sampled instead of reading them all.
    pub sampled_pages: Option<u64>,
    /// Physically contiguous runs the method found (segment-map methods).
    pub segments: Option<usize>,
}

impl Sample {
    fn timed(elapsed: Duration) -> Self {
        Sample {
            elapsed,
            sampled_pages: None,
            segments: None,
        }
    }
}

/// What all methods share for one buffer.
pub struct Fixture<'a> {
    pub fd: BorrowedFd<'a>,
    pub va: u64,
    pub len: u64,
    /// The page size the buffer is made of (huge for hugetlb).
    pub page_size: PageSize,
    /// The page size pagemap is indexed in.
    pub base: PageSize,
    pagemap_file: File,
    pagemap: Pagemap,
    procfs: procfs::process::PageMap,
    limit_buf: Vec<u8>,
    pin_mapping: Mapping,
    /// The ring the `pin` anchor registers on, made once: a service
    /// connection keeps one the same way.
    pin_table: PinTable,
    page_types: Option<std::path::PathBuf>,
    /// Whether the buffer holds the pattern (verify needs it).
    filled: bool,
    pattern: Pattern,
    backing: Backing,
    roundtrip: Option<Echo>,
    /// `unimem map` of the same range in another process, where set up.
    pub held: Option<Held>,
}

impl<'a> Fixture<'a> {
    pub fn new(
        fd: BorrowedFd<'a>,
        va: VirtAddr,
        len: u64,
        page_size: PageSize,
        backing: Backing,
        page_types: Option<&Path>,
    ) -> Res<Self> {
        let base = unimem::system::page_size();
        let pages = len >> base.shift();
        // Pre-faulted: the limit pays for the read, not for first touch of
        // its buffer.
        let limit_buf = vec![0xffu8; (pages * 8) as usize];
        let pin_mapping = Mapping::shared(fd, 0, len as usize)?;
        pin_mapping
            .advise(unimem::mapping::Advice::PopulateWrite)
            .map_err(|e| format!("cannot populate the mapping to pin: {e}"))?;
        Ok(Fixture {
            fd,
            va: va.0,
            len,
            page_size,
            base,
            pagemap_file: File::open("/proc/self/pagemap")?,
            pagemap: Pagemap::open_self()?,
            procfs: procfs::process::Process::myself()?.pagemap()?,
            limit_buf,
            pin_mapping,
            pin_table: PinTable::new((len as usize).div_ceil(unimem::pin::MAX_IOVEC) as u32)?,
            page_types: page_types.map(Path::to_path_buf),
            filled: false,
            pattern: Pattern::new(page_size, 0x5eed_0000_0000_0001),
            backing,
            roundtrip: Some(Echo::start()?),
            held: None,
        })
    }

    /// The buffer's map, untimed: how fragmented it is.
    pub fn segments(&self) -> Res<usize> {
        Ok(self
            .pagemap
            .resolve_sequential(VirtAddr(self.va), self.len, self.page_size)?
            .address_segment_count())
    }

    /// Faults every page of the buffer back in (after memory pressure may
    /// have swapped some out).
    pub fn repopulate(&self) -> Res<()> {
        self.pin_mapping
            .advise(unimem::mapping::Advice::PopulateWrite)
            .map_err(|e| format!("cannot populate the buffer again: {e}"))?;
        Ok(())
    }

    fn pages(&self) -> u64 {
        self.len >> self.base.shift()
    }

    fn first_page(&self) -> u64 {
        self.va >> self.base.shift()
    }

    /// Runs `method` once.
    pub fn run(&mut self, method: Method, service: Option<&mut ServiceClient>) -> Res<Sample> {
        match method {
            Method::Limit => self.limit(),
            Method::Direct => self.direct(),
            Method::PerPage => self.per_page(),
            Method::Procfs => self.procfs(),
            Method::PageTypes => self.page_types(),
            Method::Service => self.service(service.ok_or("no service client")?),
            Method::Pin => self.pin(),
            Method::Map => self.map(),
            Method::Roundtrip => self.roundtrip(),
            Method::Memset => self.memset(),
            Method::Fill => self.fill(),
            Method::Readsum => self.readsum(),
            Method::Verify => self.verify(),
            Method::Populate => self.populate(),
            Method::Probe => self.probe(),
            Method::MapJson => self.map_cli(true),
            Method::MapTable => self.map_cli(false),
        }
    }

    /// One `pread` of every entry, then the check every resolver must do:
    /// present, and a PFN that is not hidden.
    fn limit(&mut self) -> Res<Sample> {
        let offset = self.first_page() * 8;
        let t = Instant::now();
        self.pagemap_file
            .read_exact_at(&mut self.limit_buf, offset)?;
        let bad = self
            .limit_buf
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .filter(|&w| w & PRESENT == 0 || w & PFN_MASK == 0)
            .count();
        let elapsed = t.elapsed();
        if bad != 0 {
            return Err(format!("limit: {bad} pages not present or hidden").into());
        }
        Ok(Sample::timed(elapsed))
    }

    fn direct(&mut self) -> Res<Sample> {
        let t = Instant::now();
        let map = if self.backing == Backing::Thp {
            self.pagemap.resolve_thp(VirtAddr(self.va), self.len)?
        } else {
            self.pagemap
                .resolve(VirtAddr(self.va), self.len, self.page_size)?
        };
        let elapsed = t.elapsed();
        if map.coverage() != Coverage::Full {
            return Err(format!("direct: coverage {:?}", map.coverage()).into());
        }
        Ok(Sample {
            elapsed,
            sampled_pages: None,
            segments: Some(map.address_segment_count()),
        })
    }

    /// What `rte_mem_virt2phy` does for one address, for a sample of pages
    /// spread evenly over the buffer.
    fn per_page(&mut self) -> Res<Sample> {
        let pages = self.pages();
        let sample = pages.min(PER_PAGE_SAMPLE);
        let stride = pages / sample;
        let first = self.first_page();
        let t = Instant::now();
        for i in 0..sample {
            let page = first + i * stride;
            let fd = rustix::fs::open("/proc/self/pagemap", OFlags::RDONLY, Mode::empty())?;
            rustix::fs::seek(&fd, SeekFrom::Start(page * 8))?;
            let mut word = [0u8; 8];
            let n = rustix::io::read(&fd, &mut word)?;
            drop(fd);
            let w = u64::from_le_bytes(word);
            if n != 8 || w & PRESENT == 0 || w & PFN_MASK == 0 {
                return Err(format!("per_page: page {i} not present or hidden").into());
            }
        }
        let measured = t.elapsed();
        let elapsed = if sample == pages {
            measured
        } else {
            Duration::from_nanos((measured.as_nanos() * pages as u128 / sample as u128) as u64)
        };
        Ok(Sample {
            elapsed,
            sampled_pages: (sample != pages).then_some(sample),
            segments: None,
        })
    }

    fn procfs(&mut self) -> Res<Sample> {
        use procfs::process::{MemoryPageFlags, PageInfo};
        let first = self.first_page() as usize;
        let t = Instant::now();
        let infos = self
            .procfs
            .get_range_info(first..first + self.pages() as usize)?;
        let bad = infos
            .iter()
            .filter(|i| match i {
                PageInfo::MemoryPage(f) => {
                    !f.contains(MemoryPageFlags::PRESENT) || f.get_page_frame_number().0 == 0
                }
                PageInfo::SwapPage(_) => true,
            })
            .count();
        let elapsed = t.elapsed();
        if bad != 0 || infos.len() as u64 != self.pages() {
            return Err(format!("procfs: {bad} pages not present or hidden").into());
        }
        Ok(Sample::timed(elapsed))
    }

    /// The whole `page-types` process, as a user would run it.
    fn page_types(&mut self) -> Res<Sample> {
        let exe = self.page_types.as_ref().ok_or("page-types not found")?;
        let first = self.first_page();
        let t = Instant::now();
        let out = Command::new(exe)
            .args(["-p", &std::process::id().to_string()])
            .args(["-a", &format!("{first},{}", first + self.pages())])
            .args(["-l", "-N"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        let elapsed = t.elapsed();
        if !out.status.success() {
            return Err(format!("page-types exited with {}", out.status).into());
        }
        Ok(Sample {
            elapsed,
            sampled_pages: None,
            segments: Some(out.stdout.split(|&b| b == b'\n').count().saturating_sub(1)),
        })
    }

    /// Prepare (the service maps, populates, pins, reads its pagemap),
    /// fetch every segment, complete (unpin, unmap).
    fn service(&mut self, client: &mut ServiceClient) -> Res<Sample> {
        let t = Instant::now();
        let (handle, map) = client.prepare(self.fd, 0, self.len)?;
        client.complete(handle)?;
        let elapsed = t.elapsed();
        if map.coverage() != Coverage::Full {
            return Err(format!("service: coverage {:?}", map.coverage()).into());
        }
        Ok(Sample {
            elapsed,
            sampled_pages: None,
            segments: Some(map.address_segment_count()),
        })
    }

    fn pin(&mut self) -> Res<Sample> {
        let t = Instant::now();
        let pin = self.pin_table.pin(&self.pin_mapping)?;
        pin.release()?;
        Ok(Sample::timed(t.elapsed()))
    }
}

impl Fixture<'_> {
    /// The part of the service's prepare that no resolver in the client's
    /// own process pays: the page tables of a second mapping, built the way
    /// the service builds them (read faults). The teardown is not timed:
    /// the service unmaps after its reply to complete.
    fn map(&mut self) -> Res<Sample> {
        let t = Instant::now();
        let m = Mapping::shared(self.fd, 0, self.len as usize)?;
        m.advise(unimem::mapping::Advice::PopulateRead)
            .map_err(|e| format!("cannot populate: {e}"))?;
        let elapsed = t.elapsed();
        drop(m);
        Ok(Sample::timed(elapsed))
    }
}

/// The `page-types` binary on `PATH`, if there is one.
pub fn find_page_types() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .chain([std::path::PathBuf::from("/usr/sbin")])
        .map(|d| d.join("page-types"))
        .find(|p| p.is_file())
}
