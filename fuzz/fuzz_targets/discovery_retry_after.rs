//! Fuzz target: see `m2m::fuzzing::discovery_retry_after` for the input and
//! the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| m2m::fuzzing::discovery_retry_after(data));
