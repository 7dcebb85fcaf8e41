//! The short soak in `make test`: two minutes of every kind of request with every fault at least once
//! (SIGKILLs with restarts, a full disk, a read-only data dir, the speech helper killed, the chat model's
//! file damaged, a corrupted index); every invariant must hold and every failure must be a 503 or a 507.

use std::path::PathBuf;

use nexent_bench::soak::{SoakConfig, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_with_every_fault_keeps_every_acknowledged_write() -> anyhow::Result<()> {
    let fixtures = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/fixtures/formats"));
    let report = run(SoakConfig::short(fixtures)).await?;
    let text = report.markdown();
    println!("{text}");
    assert!(report.kills >= 3, "{text}");
    assert!(report.helper_kills >= 1, "{text}");
    assert!(report.model_file_episodes >= 1 && report.index_corruptions >= 1, "{text}");
    if report.skipped_faults.is_empty() {
        assert!(report.disk_full_episodes >= 1 && report.read_only_episodes >= 1, "{text}");
    }
    assert_eq!(report.lost, 0, "{text}");
    assert_eq!(report.duplicated, 0, "{text}");
    assert!(report.violations.is_empty(), "{text}");
    assert!(report.unexpected_statuses().is_empty(), "{text}");
    Ok(())
}
