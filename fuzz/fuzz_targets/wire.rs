//! Bytes a client sends over the Postgres wire protocol: startup, SSL and cancel requests,
//! simple and extended query messages, COPY data, all against a live server on loopback.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    common::panic_policy();
    common::converse(input);
});
