//! SQL text through the parser, martdb's rewrites, the planner and the executor.
#![no_main]

mod common;

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    common::panic_policy();
    if let Ok(sql) = std::str::from_utf8(input) {
        common::run_sql(sql);
    }
});
