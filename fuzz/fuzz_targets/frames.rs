#![no_main]
//! Fuzz target: arbitrary bytes as frames into one core (see ../harness.rs).

#[path = "../harness.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| harness::frames(data));
