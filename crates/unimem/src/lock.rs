//! Taking a mutex whose holder may have panicked.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, poisoned or not. Every mutex of this crate guards state that
/// is changed in whole steps (a client between requests, a pin table's
/// slots, the service's tables and counters), so a panic elsewhere leaves
/// nothing half-done behind it, and refusing the lock would only turn one
/// failure into many.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
