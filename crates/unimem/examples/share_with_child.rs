//! Create a surface, write the test pattern, and hand the surface to a
//! child process by its fd; the child imports it, checks the pattern, and
//! resolves the pages it now shares with its parent.
//!
//! ```sh
//! cargo run -p unimem --example share_with_child      # as root: with addresses
//! ```
//!
//! The fd crosses `exec` because it is a duplicate without `FD_CLOEXEC`;
//! between unrelated processes the same fd would travel over a Unix socket
//! (`SCM_RIGHTS`), as `unimem serve` receives it.

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
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::process::{Command, ExitCode};

    use unimem::core::pattern::Pattern;
    use unimem::resolve::{DirectResolver, Resolver};
    use unimem::surface::{Backing, Surface};

    const SALT: u64 = 0x5eed_cafe_0000_0001;

    pub fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().collect();
        let result = match args.get(1).map(String::as_str) {
            Some("--child") => child(args.get(2).map(String::as_str)),
            _ => parent(),
        };
        match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("share_with_child: {e}");
                ExitCode::FAILURE
            }
        }
    }

    fn parent() -> Result<(), Box<dyn std::error::Error>> {
        let mut surface = Surface::create(1 << 20, Backing::Memfd)?;
        Pattern::new(surface.page_size(), SALT).fill(0, surface.as_mut_slice());
        // An importer maps the file; sealing it against shrinking keeps the
        // mapping from losing pages under the child. (Surfaces unimem creates
        // may be sealed already; adding a seal twice is harmless.)
        let _ = rustix::fs::fcntl_add_seals(surface.fd(), rustix::fs::SealFlags::SHRINK);
        // dup() gives a descriptor without FD_CLOEXEC, so it survives exec.
        let inherited = rustix::io::dup(surface.fd())?;
        let status = Command::new(std::env::current_exe()?)
            .arg("--child")
            .arg(inherited.as_raw_fd().to_string())
            .status()?;
        drop(inherited);
        if !status.success() {
            return Err(format!("the child failed: {status}").into());
        }
        println!(
            "parent: the child verified {} bytes of this surface",
            surface.len()
        );
        Ok(())
    }

    fn child(fd: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
        let raw: i32 = fd.ok_or("--child needs the fd number")?.parse()?;
        // SAFETY: the parent passed this descriptor open across exec, and
        // nothing else in this process owns or closes it.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let surface = Surface::from_fd(fd)?;
        let verification = Pattern::new(surface.page_size(), SALT).verify(0, surface.as_slice());
        if !verification.ok() {
            return Err(format!("the pattern differs: {verification:?}").into());
        }
        println!(
            "child: imported {} bytes at {:#x}; the parent's pattern is intact",
            surface.len(),
            surface.addr().0
        );
        match DirectResolver::new() {
            Ok(mut resolver) => {
                let prepared = resolver.prepare(&surface)?;
                println!(
                    "child: {} segments of {} address(es), first at {:#x}",
                    prepared.map.segments().len(),
                    prepared.map.kind().name(),
                    prepared.map.lookup(0).map_or(0, |a| a.get())
                );
            }
            Err(e) => println!("child: no addresses without root ({e})"),
        }
        Ok(())
    }
}
