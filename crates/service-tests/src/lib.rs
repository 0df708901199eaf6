//! The resolver service's integration tests (`tests/service`) and what
//! they share with their client helper.
#![cfg(target_os = "linux")]
