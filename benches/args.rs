#![allow(dead_code)] // shared by the benches; each uses a part
//! Command-line arguments of the benches: `--name value` pairs and `--flag`s after
//! `cargo bench --bench NAME --`.

/// The value after `name`, if given.
pub fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// Whether `name` is given.
pub fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// The number after `name` (`_` separators allowed), or `default`.
pub fn num_arg(name: &str, default: u64) -> u64 {
    arg(name).map_or(default, |v| {
        v.replace('_', "")
            .parse()
            .unwrap_or_else(|e| panic!("{name} {v}: {e}"))
    })
}
