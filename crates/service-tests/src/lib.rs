//! The resolver service's integration tests (`tests/service`) and their
//! client helper, the `service-client` program: a client of the service in
//! a process of its own, which the tests run (often as another user, to
//! test the service's access policy) and listen to. What both need is
//! here, once: the roles the helper plays, the environment it reads, the
//! lines it and its test exchange, raw connections and requests, and
//! memfds as the service accepts them.
#![cfg(target_os = "linux")]
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod connect;
pub mod env;
pub mod memfd;
pub mod request;
pub mod role;
pub mod talk;
