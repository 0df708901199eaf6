//! The resolver service, end to end, in one test binary: a real service
//! started in-process, clients in this process and in child processes run
//! as other users, every address checked against the tests' own reading
//! of pagemap. The child clients are the crate's `service-client`
//! program, in the role each test needs.
#![cfg(target_os = "linux")]
#![allow(dead_code)]

mod common;

mod auth;
mod availability;
mod basics;
mod cleanup;
mod compaction;
mod faults;
mod helper;
mod hostile;
mod integrity;
mod load;
mod logging;
mod malformed;
mod security;
mod slots;
mod unprivileged;
