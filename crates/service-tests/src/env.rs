//! The environment a role reads: the test sets these variables when it
//! runs the helper, the helper reads them.

use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The service's socket path (every role).
pub const SOCKET: &str = "UNIMEM_TEST_SOCKET";
/// Bytes of the surface to resolve.
pub const SIZE: &str = "UNIMEM_TEST_SIZE";
/// How many connections to open.
pub const CONNS: &str = "UNIMEM_TEST_CONNS";
/// How many pages to prepare.
pub const PAGES: &str = "UNIMEM_TEST_PAGES";
/// The protocol step to stop at.
pub const STEP: &str = "UNIMEM_TEST_STEP";
/// Files to prepare, comma-separated `read:<path>` or `path:<path>`.
pub const FILES: &str = "UNIMEM_TEST_TRY";

/// The variable that points a helper at the service on `socket`.
pub fn socket_env(socket: &Path) -> (&'static str, String) {
    (SOCKET, socket.display().to_string())
}

/// The socket path the helper was given.
pub fn socket() -> PathBuf {
    PathBuf::from(var(SOCKET))
}

/// The value of `name`; panics, naming it, when the test did not set it.
pub fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The value of `name` as a `T`; panics, naming it, when unset or not one.
pub fn parsed<T: FromStr>(name: &str) -> T
where
    T::Err: std::fmt::Display,
{
    parse(name, &var(name))
}

/// The value of `name` as a `T`, or `default` when unset.
pub fn parsed_or<T: FromStr>(name: &str, default: T) -> T
where
    T::Err: std::fmt::Display,
{
    std::env::var(name).map_or(default, |v| parse(name, &v))
}

fn parse<T: FromStr>(name: &str, value: &str) -> T
where
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .unwrap_or_else(|e| panic!("{name}={value}: {e}"))
}
