//! What the project's tests share, in one place: the rule for tests that
//! need root, and the one lock under which every test that changes the
//! kernel's memory management (huge page pools, THP modes, compaction
//! knobs) or triggers compaction runs, serially, across every test binary
//! of the workspace, with what it changed put back on drop.
#![deny(unsafe_code)]
#![warn(missing_docs)]

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The file every test binary locks before it touches memory management.
pub const MM_LOCK: &str = "/tmp/unimem-mm-tests.lock";

/// Fails the test unless it runs as root, saying why it needs root. A test
/// that cannot run here fails; none returns silently.
pub fn require_root(why: &str) {
    let uid = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m))
        .expect("stat /proc/self");
    assert_eq!(
        uid, 0,
        "this test needs root ({why}): run ./test.sh as root, as CI does"
    );
}

/// Held while a test changes or disturbs memory management: one test at a
/// time in this process (the mutex) and in every other test binary (the
/// file lock).
pub struct MmLock {
    _thread: MutexGuard<'static, ()>,
    _file: File,
}

/// Takes the memory-management lock, waiting for whoever holds it.
pub fn mm_lock() -> MmLock {
    static IN_PROCESS: Mutex<()> = Mutex::new(());
    let thread = IN_PROCESS.lock().unwrap_or_else(|p| p.into_inner());
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(MM_LOCK)
        .unwrap_or_else(|e| panic!("cannot open {MM_LOCK}: {e}"));
    file.lock()
        .unwrap_or_else(|e| panic!("cannot lock {MM_LOCK}: {e}"));
    MmLock {
        _thread: thread,
        _file: file,
    }
}

/// A sysctl or sysfs setting changed for a test and put back on drop. Mode
/// files that list every choice (`always [madvise] never`) are restored to
/// the bracketed one.
pub struct Knob {
    path: PathBuf,
    old: String,
}

impl Knob {
    /// Writes `value` to `path`, remembering what was there.
    pub fn set(path: impl AsRef<Path>, value: &str) -> Knob {
        let path = path.as_ref().to_path_buf();
        let old = Knob::current(&path);
        std::fs::write(&path, value)
            .unwrap_or_else(|e| panic!("cannot write {value} to {}: {e}", path.display()));
        Knob { path, old }
    }

    /// The value a knob holds now, as it would be written back.
    pub fn current(path: &Path) -> String {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        match (text.find('['), text.find(']')) {
            (Some(a), Some(b)) if a < b => text[a + 1..b].to_string(),
            _ => text.trim().to_string(),
        }
    }
}

impl Drop for Knob {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.path, &self.old);
    }
}

/// A copy of the executable `exe` that every user may run, for tests that
/// run it as another uid (the build directory may sit under a private
/// one): made once per process in a directory of the temporary directory,
/// and removed when the process exits.
pub fn world_executable_copy(exe: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    static COPY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    COPY.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("unimem-test-exe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        remove_at_exit(&dir);
        let name = exe.file_name().expect("an executable's path names a file");
        let tmp = dir.join("partial");
        let dst = dir.join(name);
        // Copy under another name and rename, so no thread can exec a file
        // that is still open for writing (ETXTBSY).
        std::fs::copy(exe, &tmp).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::rename(&tmp, &dst).unwrap();
        dst
    })
    .clone()
}

/// Removes `dir` when the process exits. The test harness ends with
/// `exit`, which runs `atexit` handlers but no destructors of statics.
fn remove_at_exit(dir: &Path) {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    extern "C" fn remove() {
        if let Some(d) = DIR.get() {
            let _ = std::fs::remove_dir_all(d);
        }
    }
    if DIR.set(dir.to_path_buf()).is_ok() {
        // SAFETY: `remove` is a plain `extern "C" fn()` that touches only a
        // static already set; atexit has no other precondition.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::atexit(remove) };
        assert_eq!(rc, 0, "atexit failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_knob_is_put_back_and_a_mode_file_reads_its_choice() {
        let dir = std::env::temp_dir().join(format!("unimem-testkit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let plain = dir.join("plain");
        std::fs::write(&plain, "7\n").unwrap();
        {
            let _k = Knob::set(&plain, "9");
            assert_eq!(std::fs::read_to_string(&plain).unwrap(), "9");
        }
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "7");
        let mode = dir.join("mode");
        std::fs::write(&mode, "always [madvise] never\n").unwrap();
        assert_eq!(Knob::current(&mode), "madvise");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_lock_serializes_holders() {
        let first = mm_lock();
        let (tx, rx) = std::sync::mpsc::channel();
        let t = std::thread::spawn(move || {
            let _second = mm_lock();
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(200))
                .is_err(),
            "a second holder got the lock while the first held it"
        );
        drop(first);
        rx.recv_timeout(std::time::Duration::from_secs(10))
            .expect("the second holder got the lock once it was free");
        t.join().unwrap();
    }
}
