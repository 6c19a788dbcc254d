//! docket's delivery protocol, model-checked: `model/delivery.pml` (Promela) goes through `spin`,
//! whose verifier `pan` explores every interleaving of the model's bounded scenario (two workers,
//! one key, client calls, crashes, freezes, lost replies, Redis restarts). The fixed protocol keeps
//! the six guarantees of `model/README.md` in every one of them; each audit fix put back wrong,
//! and each gap the model found, breaks the guarantee it is for.
//!
//! Needs `spin` and a C compiler: `apt-get install spin`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// What `pan` found.
struct Verdict {
    /// `pan`'s whole report.
    report: String,
    /// The guarantee whose assertion failed (`invariant==N` in the failed condition), if any.
    broken: Option<u32>,
    /// The steps to the failure, replayed from the trail (the model prints one line a step).
    trail: String,
}

impl Verdict {
    /// The number `pan` printed before `label`, as in `4269783 states, stored`.
    fn count(&self, label: &str) -> u64 {
        let line = self
            .report
            .lines()
            .find(|line| line.contains(label))
            .unwrap_or_else(|| panic!("pan printed no `{label}`:\n{}", self.report));
        line.split_whitespace()
            .find_map(|word| word.parse().ok())
            .unwrap_or_else(|| panic!("no number in `{line}`"))
    }

    fn errors(&self) -> u64 {
        let line = self
            .report
            .lines()
            .find(|line| line.contains("errors:"))
            .unwrap_or_else(|| panic!("pan printed no error count:\n{}", self.report));
        let count = line.rsplit("errors:").next().expect("split").trim();
        count
            .parse()
            .unwrap_or_else(|_| panic!("unreadable `{line}`"))
    }

    fn seconds(&self) -> f64 {
        self.report
            .lines()
            .find_map(|line| line.strip_prefix("pan: elapsed time "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|seconds| seconds.parse().ok())
            .unwrap_or(f64::NAN)
    }
}

/// `name` on the PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// Run `command` in `dir`; its stdout, or the test fails with what it printed.
fn run(command: &mut Command, dir: &Path) -> String {
    let output = command
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("could not run {command:?}: {error}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Generate the verifier of the model with `defines` (`-DNAME` macros of the model), compile and
/// run it in a directory of its own, and replay the trail of a failure.
fn verify(defines: &[&str]) -> Verdict {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let spin =
        on_path("spin").unwrap_or_else(|| panic!("spin is not installed: apt-get install spin"));
    let cc = on_path("cc").expect("spin's verifier needs a C compiler: apt-get install gcc");
    let dir = std::env::temp_dir().join(format!(
        "docket-protocol-model-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create a directory for the model");
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../model/delivery.pml");
    std::fs::copy(&model, dir.join("delivery.pml"))
        .unwrap_or_else(|error| panic!("copy {}: {error}", model.display()));

    run(
        Command::new(&spin)
            .arg("-a")
            .args(defines)
            .arg("delivery.pml"),
        &dir,
    );
    // SAFETY: assertions and end states, no cycle checks; NOREDUCE: the model is one process
    // over global state, where partial-order reduction has nothing to reduce.
    run(
        Command::new(cc).args(["-O2", "-DSAFETY", "-DNOREDUCE", "-o", "pan", "pan.c"]),
        &dir,
    );
    // -m: a depth bound far above the model's (about 40), so that no path is cut short; -w24: a
    // hash table of 16M slots, for the few million states.
    let report = run(
        Command::new(dir.join("pan")).args(["-m100000", "-w24"]),
        &dir,
    );
    let broken = report
        .lines()
        .find(|line| line.contains("assertion violated"))
        .map(|line| {
            line.split("invariant==")
                .nth(1)
                .and_then(|rest| rest.get(..1))
                .and_then(|digit| digit.parse().ok())
                .unwrap_or_else(|| panic!("an assertion of the model itself failed: {line}"))
        });
    let trail = if dir.join("delivery.pml.trail").exists() {
        run(
            Command::new(&spin)
                .args(defines)
                .args(["-t", "delivery.pml"]),
            &dir,
        )
        .lines()
        // The model's own lines (one a step) and the failed assertion; not the state dump.
        .filter(|line| line.starts_with("      ") || line.contains("failed assertion"))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
    } else {
        String::new()
    };
    std::fs::remove_dir_all(&dir).ok();
    Verdict {
        report,
        broken,
        trail,
    }
}

/// The fixed protocol, checked over the whole state space of the scenario `defines` bounds.
fn keeps_every_guarantee(defines: &[&str], at_least: u64) {
    let verdict = verify(defines);
    assert_eq!(
        verdict.errors(),
        0,
        "a guarantee broke (invariant {:?}); the steps:\n{}\n\n{}",
        verdict.broken,
        verdict.trail,
        verdict.report
    );
    for cut in [
        "max search depth too small",
        "Search not completed",
        "out of memory",
    ] {
        assert!(
            !verdict.report.contains(cut),
            "the search was cut short ({cut}):\n{}",
            verdict.report
        );
    }
    // A model that stops early (a guard that never opens, a bound of zero) proves nothing.
    let states = verdict.count("states, stored");
    assert!(
        states >= at_least,
        "only {states} states explored:\n{}",
        verdict.report
    );
    println!(
        "{defines:?}: {states} states, {} transitions, {:.1} s",
        verdict.count("transitions"),
        verdict.seconds()
    );
}

/// The model with one fix put back wrong (`bug`) breaks `guarantee`.
fn breaks(bug: &str, guarantee: u32, scenario: &[&str]) {
    let define = format!("-D{bug}");
    let mut defines = vec![define.as_str()];
    defines.extend_from_slice(scenario);
    let verdict = verify(&defines);
    assert!(
        verdict.errors() >= 1,
        "{bug} breaks nothing the model checks:\n{}",
        verdict.report
    );
    assert_eq!(
        verdict.broken,
        Some(guarantee),
        "{bug} broke another guarantee than {guarantee}; the steps:\n{}",
        verdict.trail
    );
    println!(
        "{bug}: invariant {guarantee} broken after {} states; the steps:\n{}",
        verdict.count("states, stored"),
        verdict.trail
    );
}

/// Scenarios small enough for CI: faults, cancels and concurrency slots without strikes; and
/// strikes with one fault. `model/README.md` has the bigger runs.
const NO_STRIKES: &[&str] = &["-DNO_STRIKE"];
const ONE_FAULT: &[&str] = &["-DNFAULTS=1"];
/// As [`ONE_FAULT`], with invariant 6 (key-wide cancel) unchecked: the variants that let an
/// older copy take the index from the newer task break it first (a cancel no longer sees the
/// newer run), and invariant 1 is the one they are about.
const ONE_FAULT_BUT_6: &[&str] = &["-DNFAULTS=1", "-DSKIP=6"];

#[test]
fn the_fixed_protocol_keeps_every_guarantee_through_two_faults() {
    keeps_every_guarantee(NO_STRIKES, 1_000_000);
}

#[test]
fn the_fixed_protocol_keeps_every_guarantee_with_a_strike_and_a_fault() {
    keeps_every_guarantee(ONE_FAULT, 1_000_000);
}

#[test]
fn r1_outages_and_lost_reads_counted_as_deliveries_bury_a_healthy_task() {
    breaks("BUG_R1", 5, NO_STRIKES);
}

#[test]
fn each_of_r1s_counting_fixes_is_needed_on_its_own() {
    // With max_deliveries 1, one uncounted redelivery of each kind is enough.
    let scenario = ["-DNO_STRIKE", "-DMAXD=1"];
    breaks("BUG_R1_RECOVER", 5, &scenario);
    breaks("BUG_R1_NEUTRAL", 5, &scenario);
    breaks("BUG_R1_GRACE", 5, &scenario);
}

#[test]
fn r2_a_stale_copys_retry_or_burial_outlives_the_tasks_end() {
    breaks("BUG_R2", 2, NO_STRIKES);
}

#[test]
fn r6a_a_cancelled_delivery_without_its_mark_is_handed_out_again() {
    breaks("BUG_R6A", 3, NO_STRIKES);
}

#[test]
fn r7_an_older_copy_set_aside_overwrites_the_newer_task() {
    breaks("BUG_R7", 1, ONE_FAULT_BUT_6);
}

#[test]
fn r8_a_settlement_that_settles_before_writing_loses_the_task() {
    breaks("BUG_R8", 1, NO_STRIKES);
}

#[test]
fn a_lost_delivery_recovered_without_a_look_at_the_index_runs_after_its_cancel() {
    breaks("GAP_RECOVER", 3, NO_STRIKES);
}

#[test]
fn a_delivery_whose_key_has_no_index_entry_runs_after_its_cancel() {
    breaks("GAP_ABSENT", 3, NO_STRIKES);
}

#[test]
fn a_held_task_queued_over_a_newer_running_one_pushes_it_out() {
    breaks("GAP_UNHOLD", 1, ONE_FAULT_BUT_6);
}

#[test]
fn a_dropped_delivery_that_keeps_its_slot_strands_the_task_behind_it() {
    breaks("GAP_SLOT", 4, NO_STRIKES);
}

#[test]
fn a_burial_that_frees_the_key_before_its_letter_loses_the_task() {
    breaks("GAP_BURY_ORDER", 1, ONE_FAULT);
}

#[test]
fn a_cancel_that_stops_an_earlier_run_and_forgets_the_newer_one_on_its_way_lets_it_start() {
    breaks("BUG_EARLY_FOUND", 3, NO_STRIKES);
}

/// Two runs that fail for good, with a fault: a replace beside a run, both then buried.
const TWO_FAILURES: &[&str] = &["-DNFAIL=2", "-DNFAULTS=1", "-DNO_STRIKE"];

#[test]
fn the_fixed_protocol_keeps_every_guarantee_through_two_failures_and_a_fault() {
    keeps_every_guarantee(TWO_FAILURES, 1_000_000);
}

#[test]
fn a_run_replaced_while_running_and_buried_last_takes_the_letter_of_its_replacement() {
    breaks("BUG_LETTER", 1, TWO_FAILURES);
}

#[test]
fn a_cancel_that_ignores_the_run_a_replace_went_beside_lets_it_complete() {
    breaks("BUG_BESIDE", 6, NO_STRIKES);
}

/// Three enqueues, no faults or strikes: two replaces while the key's runs go on.
const THREE_TASKS: &[&str] = &[
    "-DNENQ=3",
    "-DNE=10",
    "-DNFAULTS=0",
    "-DNO_STRIKE",
    "-DNFAIL=0",
];

#[test]
fn the_fixed_protocol_keeps_every_guarantee_through_two_replaces_beside_running_tasks() {
    keeps_every_guarantee(THREE_TASKS, 100_000);
}

#[test]
fn a_replace_field_naming_only_the_latest_run_beside_lets_an_older_one_complete() {
    breaks("BUG_BESIDE_ONE", 6, THREE_TASKS);
}
