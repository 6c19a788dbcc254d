//! The chaos harness's short mode (`docket-chaos --short`): producers and workers in separate
//! processes while workers are SIGKILLed, Redis restarts and connections are cut. It fails when
//! a task whose scheduling succeeded never completed, a toxic task was not dead-lettered, or
//! anything was left behind; on one server, and on a local cluster (`--cluster`: masters killed
//! and replaced by their replicas, `wait_replicas(1)`). The long mode runs by hand (see the
//! binary's docs).

use std::process::Command;

/// Run `docket-chaos --short` with `extra` arguments; fail unless nothing was lost.
fn chaos(extra: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_docket-chaos"))
        .arg("--short")
        .args(extra)
        .output()
        .expect("run docket-chaos");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(output.status.success(), "the chaos run failed: {stdout}");
    let summary = stdout
        .lines()
        .find(|line| line.starts_with("chaos: scheduled="))
        .expect("a summary line");
    assert!(summary.ends_with("lost=0"), "{summary}");
}

/// One chaos run at a time: each starts its own servers, producers and workers, and two at
/// once on a small machine would test its scheduler more than docket.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn nothing_is_lost_under_chaos() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    chaos(&[]);
}

#[test]
fn nothing_is_lost_under_chaos_on_a_cluster() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    chaos(&["--cluster"]);
}

/// A docket spread over three partitions, each on its own master, whose masters are killed in
/// turn.
#[test]
fn nothing_is_lost_under_chaos_on_a_cluster_spread_over_three_partitions() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    chaos(&["--cluster", "--partitions", "3"]);
}

/// A docket spread over three partitions on one server, whose workers are killed and whose
/// toxic tasks kill them: the mode that caught a keeper taking every partition's stalled
/// deliveries over in its own process, where one task that exits took them all down, keeper
/// after keeper.
#[test]
fn nothing_is_lost_under_chaos_spread_over_three_partitions() {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    chaos(&["--partitions", "3"]);
}
