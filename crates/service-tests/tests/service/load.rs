//! Load: 32 concurrent clients, each running 200 prepare → segments →
//! checksum → complete cycles against one service, on ranges from 64 KiB to
//! 64 MiB. Every cycle must succeed, every map must equal an independent
//! pagemap reading taken while the range is pinned, and afterwards the
//! service must hold exactly what it held before: no pinned bytes, no
//! mappings, no fds, nothing the kernel counts as pinned. A second test
//! squeezes the byte caps under the same kind of load and samples that they
//! are never exceeded. The tests of this binary run one at a time (they
//! count the process's fds).

use crate::common::*;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use unimem::core::checksum::checksum;
use unimem::core::pattern::Pattern;
use unimem::resolve::service::ServiceClient;
use unimem::service::{Limits, Policy};
use unimem::surface::{Backing, Surface};
use unimem::ErrorKind;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const CLIENTS: u64 = 32;
const CYCLES: u64 = 200;
/// Range sizes: 64 KiB << 0..=10, i.e. 64 KiB to 64 MiB.
const SIZES: u64 = 11;
const SURFACE: u64 = 64 * MIB;

/// Samples the service's pinned bytes until stopped; returns the largest.
fn sampler(
    stats: impl Fn() -> u64 + Send + 'static,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut max = 0;
        while !stop.load(Ordering::SeqCst) {
            max = max.max(stats()).max(vm_pin_kb() * KIB);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        max
    })
}

#[test]
fn thirty_two_clients_two_hundred_cycles_each_from_64k_to_64m() {
    let _alone = alone();
    let svc = start(Policy::default(), Limits::default());
    let base = Baseline::now();
    let pid = std::process::id();
    let page = rustix::param::page_size() as u64;
    let errors = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let socket = svc.socket.clone();
            let (errors, bytes) = (Arc::clone(&errors), Arc::clone(&bytes));
            std::thread::spawn(move || {
                let mut s = Surface::create(SURFACE, Backing::Memfd).unwrap();
                Pattern::new(s.page_size(), c).fill(0, s.as_mut_slice());
                let mut client = ServiceClient::connect(&socket).unwrap();
                let mut rng = Rng(0x10ad ^ c);
                for i in 0..CYCLES {
                    let size = (64 * KIB) << ((c + i) % SIZES);
                    let offset = rng.below((SURFACE - size) / page + 1) * page;
                    let result = (|| {
                        let (h, map) = client.prepare(s.fd(), offset, size)?;
                        // While pinned, the map is what pagemap says of our
                        // own mapping of the same pages.
                        // A pinned page shows not present for a moment while
                        // compaction tries (and fails) to move it: read again.
                        let mut own = physical_addresses(pid, s.addr().0 + offset, size);
                        for _ in 0..100 {
                            let agree = own
                                .iter()
                                .enumerate()
                                .all(|(p, a)| map.lookup(p as u64 * page).map(|x| x.get()) == *a);
                            if agree {
                                break;
                            }
                            std::thread::sleep(std::time::Duration::from_millis(2));
                            own = physical_addresses(pid, s.addr().0 + offset, size);
                        }
                        for (p, addr) in own.iter().enumerate() {
                            let off = p as u64 * page;
                            assert_eq!(
                                map.lookup(off).map(|x| x.get()),
                                *addr,
                                "client {c} cycle {i} page {p}"
                            );
                        }
                        let at = rng.below(size / page) * page;
                        let len = page.min(size - at);
                        let local =
                            checksum(&s.as_slice()[(offset + at) as usize..][..len as usize]);
                        assert_eq!(client.checksum(h, at, len)?, local, "client {c} cycle {i}");
                        assert_eq!(client.complete(h)?, size);
                        Ok::<_, unimem::Error>(())
                    })();
                    match result {
                        Ok(()) => {
                            bytes.fetch_add(size, Ordering::Relaxed);
                        }
                        Err(e) => {
                            eprintln!("client {c} cycle {i} ({size} bytes at {offset:#x}): {e}");
                            errors.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
            })
        })
        .collect();
    for (c, t) in clients.into_iter().enumerate() {
        t.join().unwrap_or_else(|_| panic!("client {c} panicked"));
    }
    let elapsed = started.elapsed();
    let gib = bytes.load(Ordering::SeqCst) as f64 / (1u64 << 30) as f64;
    eprintln!(
        "load: {CLIENTS} clients x {CYCLES} cycles, {gib:.1} GiB prepared in {:.1} s, {} errors",
        elapsed.as_secs_f64(),
        errors.load(Ordering::SeqCst)
    );
    assert_eq!(errors.load(Ordering::SeqCst), 0, "some cycles failed");
    assert_nothing_held(&svc.handle, base, "after the load");
}

#[test]
fn byte_caps_hold_under_load() {
    let _alone = alone();
    let limits = Limits {
        max_prepare_bytes: 16 * MIB,
        max_connection_bytes: 24 * MIB,
        max_total_bytes: 160 * MIB,
        ..Limits::default()
    };
    let svc = start(Policy::default(), limits.clone());
    let base = Baseline::now();
    let stop = Arc::new(AtomicBool::new(false));
    let handle = Arc::new(svc.handle);
    let h2 = Arc::clone(&handle);
    let sample = sampler(move || h2.stats().pinned_bytes, Arc::clone(&stop));
    let refused = Arc::new(Mutex::new(std::collections::BTreeMap::<String, u64>::new()));
    let granted = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let socket = svc.socket.clone();
            let (refused, granted) = (Arc::clone(&refused), Arc::clone(&granted));
            std::thread::spawn(move || {
                let s = Surface::create(32 * MIB, Backing::Memfd).unwrap();
                let mut client = ServiceClient::connect(&socket).unwrap();
                let mut rng = Rng(0xca9 ^ c);
                let mut held = Vec::new();
                for _ in 0..40 {
                    // Ask for 4..=20 MiB: some over the per-prepare cap, many
                    // over the per-connection cap, together over the total.
                    let size = (4 + rng.below(17)) * MIB;
                    let offset = rng.below((32 * MIB - size) / MIB + 1) * MIB;
                    match client.prepare(s.fd(), offset, size) {
                        Ok((h, _)) => {
                            granted.fetch_add(1, Ordering::SeqCst);
                            held.push(h);
                        }
                        Err(e) => {
                            assert_eq!(e.kind(), ErrorKind::Resources, "{e}");
                            let rule = e.message().split(": ").nth(1).unwrap_or("").to_string();
                            *refused.lock().unwrap().entry(rule).or_default() += 1;
                        }
                    }
                    if held.len() > 1 || (rng.chance(3) && !held.is_empty()) {
                        let h = held.remove(rng.below(held.len() as u64) as usize);
                        client.complete(h).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in clients {
        t.join().expect("a client failed");
    }
    stop.store(true, Ordering::SeqCst);
    let max = sample.join().unwrap();
    let refused = refused.lock().unwrap().clone();
    eprintln!(
        "caps: {} prepares granted, refusals {refused:?}, at most {} MiB pinned (cap {} MiB)",
        granted.load(Ordering::SeqCst),
        max / MIB,
        limits.max_total_bytes / MIB
    );
    assert!(max <= limits.max_total_bytes, "{max} bytes pinned at once");
    assert!(granted.load(Ordering::SeqCst) > 0);
    for rule in ["per prepare", "per connection", "for all clients"] {
        assert!(
            refused.keys().any(|k| k.contains(rule)),
            "no refusal by the limit {rule}: {refused:?}"
        );
    }
    let handle = Arc::try_unwrap(handle).ok().expect("the sampler is done");
    assert_nothing_held(&handle, base, "after the caps test");
}
