//! The long soak: `make bench-soak` (SOAK_SECONDS, SOAK_RATE, SOAK_KILLS) runs the real release binary on
//! loopback under an open-loop mix of every kind of request while faults are injected, and writes what it
//! held to `bench/results/soak.md` (see `nexent_bench::soak`).
//!
//! `cargo run --release -p nexent-bench --bin bench-soak -- [--seconds N] [--rate R] [--in-flight N] [--kills N] [--out FILE]`

use std::path::PathBuf;
use std::time::Duration;

use nexent_bench::argument;
use nexent_bench::soak::{SoakConfig, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().collect();
    let number = |flag: &str, default: f64| -> anyhow::Result<f64> {
        argument(&arguments, flag).map_or(Ok(default), |value| Ok(value.parse()?))
    };
    let fixtures = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/formats"));
    let config = SoakConfig {
        duration: Duration::from_secs_f64(number("--seconds", 1200.0)?),
        peak_rate: number("--rate", 60.0)?,
        max_in_flight: number("--in-flight", 200.0)? as usize,
        kills: number("--kills", 20.0)? as usize,
        disk_full_episodes: 3,
        read_only_episodes: 2,
        model_file_episodes: 2,
        index_corruptions: 2,
        memory_limit_mib: number("--memory-limit-mib", 1536.0)? as u64,
        data_dir_megabytes: 512,
        seed: number("--seed", 2026.0)? as u64,
        fixtures,
    };
    let report = run(config).await?;
    let mut text = String::from(
        "# Soak: load and faults at once\n\n`make bench-soak` on this machine (2 cores): the release binary, the tiny chat model (SmolLM2-135M), open-loop clients of every kind, and faults injected while they run (`bench/src/soak.rs`).\n\n",
    );
    text.push_str(&report.markdown());
    print!("{text}");
    if let Some(out) = argument(&arguments, "--out") {
        std::fs::write(&out, &text)?;
        eprintln!("wrote {out}");
    }
    let unexpected = report.unexpected_statuses();
    anyhow::ensure!(report.violations.is_empty() && unexpected.is_empty(), "the soak found violations");
    Ok(())
}
