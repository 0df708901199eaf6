//! What a helper and its test say to each other. The helper says one line
//! on its stdout per event (`READY`, `AT handshake`, `RESULT ...`; its
//! stdout carries nothing else) and, where a test needs a client to stay,
//! waits for the parent: for a line on its stdin, or for stdin to close.
//! The test reads those lines through [`ChildClient`].

use crate::role::Role;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};

/// Says `line` to the parent (in the helper).
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", line.as_ref()).unwrap();
    out.flush().unwrap();
}

/// Waits until the parent writes a line or closes stdin (in the helper).
pub fn wait_for_parent() {
    let mut s = String::new();
    let _ = std::io::stdin().read_line(&mut s);
}

/// The helper playing a role, as its test sees it: the process, and the
/// lines it says.
pub struct ChildClient {
    /// The helper's process (to kill it, wait for it, read its pagemap).
    pub child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
}

impl ChildClient {
    /// Runs the helper program `exe` as `role`, as `uid` (and its group
    /// of the same number) when given, with `env` set; its stderr is the
    /// test's.
    pub fn spawn(exe: &Path, role: Role, uid: Option<u32>, env: &[(&str, String)]) -> ChildClient {
        let mut cmd = Command::new(exe);
        cmd.arg(role.name());
        for (k, v) in env {
            cmd.env(k, v);
        }
        if let Some(uid) = uid {
            // As root, std also drops the supplementary groups (setgroups(0)).
            cmd.uid(uid).gid(uid);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {} {} as a child client: {e}",
                exe.display(),
                role.name()
            )
        });
        let stdin = child.stdin.take();
        let out = BufReader::new(child.stdout.take().unwrap());
        ChildClient { child, stdin, out }
    }

    /// The next line the helper said; None at the end of its output.
    pub fn line(&mut self) -> Option<String> {
        let mut s = String::new();
        if self.out.read_line(&mut s).unwrap() == 0 {
            return None;
        }
        Some(s.trim_end().to_string())
    }

    /// Tells the helper to finish and waits for it to exit.
    pub fn finish(mut self) -> ExitStatus {
        if let Some(mut i) = self.stdin.take() {
            let _ = writeln!(i, "done");
        }
        while self.line().is_some() {}
        self.child.wait().unwrap()
    }
}

impl Drop for ChildClient {
    /// A test that fails midway leaves no helper behind, wherever it
    /// blocks (in `accept`, or connected with a range held).
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
