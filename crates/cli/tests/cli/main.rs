//! The real `unimem` binary, end to end, checked against independent
//! readings of pagemap made by the test itself: one test binary, a module
//! per concern.

// The helpers every CLI test binary shares.
#[path = "../common/mod.rs"]
mod common;

mod errors;
mod huge;
mod map;
mod probe;
mod service;
