//! The sandbox's own cost per check: the same command (`true` by default) spawned plainly
//! (`sh -c`, piped output, waited for: the baseline), through the process sandbox and
//! through bubblewrap, interleaved in one run so that machine noise hits all three alike.
//!
//! `cargo bench -p fleet-sandbox --bench overhead -- [--n 200] [--command true]`

use fleet_sandbox::{Limits, Mode, Spec, env::sandbox_env};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>, baseline_p50: Option<Duration>) -> Duration {
    samples.sort();
    let p50 = percentile(&samples, 0.5);
    let ratio = baseline_p50
        .map(|b| {
            format!(
                "  {:.1}x the plain spawn",
                p50.as_secs_f64() / b.as_secs_f64()
            )
        })
        .unwrap_or_default();
    println!(
        "{name:<22} n {:>4}  p50 {:>7.2} ms  p99 {:>7.2} ms{ratio}",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
    );
    p50
}

/// One sandboxed check, timed as a whole: preparing, spawning, waiting, the group kill,
/// the output. It must pass.
async fn timed_run(spec: &Spec, cancel: &CancellationToken) -> Duration {
    let started = Instant::now();
    let finished = fleet_sandbox::run(spec, cancel).await.expect("sandbox run");
    assert!(finished.exit.passed(), "{finished:?}");
    started.elapsed()
}

#[tokio::main]
async fn main() {
    let n: usize = arg("--n").and_then(|v| v.parse().ok()).unwrap_or(200);
    let command = arg("--command").unwrap_or_else(|| "true".into());
    let dir = tempfile::tempdir().expect("tempdir");
    let checkout = dir.path().join("checkout");
    std::fs::create_dir_all(&checkout).expect("checkout");
    let bwrap = fleet_sandbox::bwrap_works().await;
    let spec = |mode| Spec {
        mode,
        command: command.clone(),
        checkout: checkout.clone(),
        scratch: dir.path().join("scratch"),
        hide: vec![dir.path().join("hidden")],
        read_only: Vec::new(),
        network: false,
        timeout: Duration::from_secs(60),
        output_cap: 1 << 20,
        env: sandbox_env(|name| std::env::var(name).ok(), &[], &[]),
        limits: Limits::default(),
    };
    let (process_spec, bwrap_spec) = (spec(Mode::Process), spec(Mode::Bwrap));
    let cancel = CancellationToken::new();
    let (mut plain, mut process, mut sandboxed) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let started = Instant::now();
        let out = tokio::process::Command::new("sh")
            .args(["-c", &command])
            .current_dir(&checkout)
            .output()
            .await
            .expect("plain spawn");
        assert!(out.status.success());
        plain.push(started.elapsed());

        process.push(timed_run(&process_spec, &cancel).await);
        if bwrap {
            sandboxed.push(timed_run(&bwrap_spec, &cancel).await);
        }
    }
    println!("sandbox overhead per check, command `{command}`");
    let baseline = report("plain spawn (sh -c)", plain, None);
    report("SANDBOX=process", process, Some(baseline));
    if bwrap {
        report("SANDBOX=bwrap", sandboxed, Some(baseline));
    } else {
        println!("SANDBOX=bwrap          not measured: bubblewrap does not work here");
    }
}
