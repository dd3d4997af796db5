//! The synchronisation primitives that the stack thread and the socket handles share, in one
//! place, so that a model checker can stand in for them:
//! - normally, std's;
//! - built with `RUSTFLAGS="--cfg loom"`, loom's: its checker explores every interleaving of
//!   the protocols built on them, exhaustively (the `loom` tests beside each protocol: the
//!   reply, the shared state's wait and wake, the poke, the wake eventfd, the `Poller`);
//! - built with `RUSTFLAGS="--cfg shuttle"`, shuttle's: the whole runtime, stack threads and
//!   socket handles over the in-memory link, runs under its randomised schedules
//!   (`runtime::shuttle`).
//!
//! `scripts/test.sh` runs both. Atomics that only count (statistics, the memory pool) and
//! locks that no other thread contends stay std's.

#[cfg(not(any(loom, shuttle)))]
pub(crate) use std::{
    sync::{atomic::fence, atomic::AtomicBool, Condvar, Mutex, MutexGuard},
    thread,
};

#[cfg(loom)]
pub(crate) use loom::{
    sync::{atomic::fence, atomic::AtomicBool, atomic::AtomicU64, Condvar, Mutex, MutexGuard},
    thread,
};

#[cfg(all(shuttle, not(loom)))]
pub(crate) use shuttle::{
    sync::{atomic::fence, atomic::AtomicBool, atomic::AtomicU64, Condvar, Mutex, MutexGuard},
    thread,
};
