//! Resolve a buffer and keep its addresses valid while using them: the
//! pattern of a DMA-heavy program, on Linux.
//!
//! ```sh
//! cargo run -p unimem --example keep_prepared              # as root: pagemap directly
//! cargo run -p unimem --example keep_prepared -- --service # through a resolver service
//! ```
//!
//! With `--service` the example starts the resolver service in this
//! process, on a socket in a private directory, and asks it as a client
//! would: the surface's fd goes over the socket, the service pins the
//! pages and answers segments and a checksum through its own mapping. A
//! real program would connect to `/run/unimem/unimem.sock` instead.

#[cfg(target_os = "linux")]
fn main() -> std::process::ExitCode {
    linux::main()
}

/// The example is about memfds and pagemap: Linux only.
#[cfg(not(target_os = "linux"))]
fn main() {
    eprintln!("this example runs on Linux");
}

#[cfg(target_os = "linux")]
mod linux {
    use std::process::ExitCode;

    use unimem::core::pattern::Pattern;
    use unimem::probe::ChecksumCheck;
    use unimem::resolve::{DirectResolver, Prepared, Resolver, ServiceResolver};
    use unimem::service::{Config, Service};
    use unimem::surface::{Backing, Surface};

    pub fn main() -> ExitCode {
        let through_service = std::env::args().any(|a| a == "--service");
        match run(through_service) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("keep_prepared: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn run(through_service: bool) -> Result<(), Box<dyn std::error::Error>> {
        let mut surface = Surface::create(4 << 20, Backing::Memfd)?;
        let pattern = Pattern::new(surface.page_size(), 0x1234_5679);
        pattern.fill(0, surface.as_mut_slice());

        // The service, when asked for, lives in this process for the example;
        // it must outlive the preparation (declared first, dropped last).
        let dir = std::env::temp_dir().join(format!("unimem-example-{}", std::process::id()));
        let service = if through_service {
            std::fs::create_dir_all(&dir)?;
            let mut config = Config::new(dir.join("unimem.sock"));
            config.quiet = true;
            Some(Service::bind(config)?.spawn()?)
        } else {
            None
        };
        let mut resolver: Box<dyn Resolver> = match &service {
            Some(s) => Box::new(ServiceResolver::connect(
                s.socket_path().ok_or("the service has no socket")?,
            )?),
            None => Box::new(DirectResolver::new()?),
        };

        let prepared: Prepared = resolver.prepare(&surface)?;
        println!(
            "{}: {} bytes in {} segments, pinned: {}",
            resolver.name(),
            prepared.map.total_length(),
            prepared.map.segments().len(),
            prepared.pinned
        );
        for s in prepared.map.segments().iter().take(4) {
            println!(
                "  offset {:#09x}  address {:#015x}  {} bytes",
                s.offset,
                s.address().map_or(0, |a| a.get()),
                s.length
            );
        }
        // ... a device would DMA to these addresses now: they stay valid for
        // as long as `prepared` lives ...
        let integrity = pattern.verify(0, surface.as_slice());
        let checksums: Vec<ChecksumCheck> = prepared
            .checksums
            .iter()
            .map(|c| ChecksumCheck::against(surface.as_slice(), c.offset, c.length, c.value))
            .collect();
        let verified = unimem::probe::verified(
            &prepared.map.coverage(),
            &integrity,
            &checksums,
            prepared.checksums_required,
        );
        println!(
            "verified: {verified} (pattern {}, {} resolver checksum(s))",
            if integrity.ok() { "intact" } else { "DIFFERS" },
            checksums.len()
        );
        drop(prepared); // completes: unpins, releases the handle
        drop(resolver);
        if let Some(s) = service {
            s.shutdown();
            let _ = std::fs::remove_dir_all(&dir);
        }
        if verified {
            Ok(())
        } else {
            Err("the buffer did not verify".into())
        }
    }
}
