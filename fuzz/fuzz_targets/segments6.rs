#![no_main]
//! Fuzz target: arbitrary bytes as segments of an IPv6 connection into one core (see
//! ../harness.rs).

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::segments6(data));
