//! The numbers a run may be tuned with from outside, read one way everywhere: a bench's
//! `--name N` arguments and the property tests' case count (`FUZZ_CASES`).

/// The value after `name` on the command line (`--tasks 500`), or `default`.
pub fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.windows(2)
        .find(|w| w[0] == name)
        .and_then(|w| w[1].parse().ok())
        .unwrap_or(default)
}

/// How many cases a property test runs: `FUZZ_CASES`, default 512 (bounded, so the run
/// is too; raise it for a longer local session).
pub fn fuzz_cases() -> u32 {
    std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(512)
}
