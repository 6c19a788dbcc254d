//! The behaviour every backend shares: what a user of docket may rely on, one test a behaviour.
//!
//! # The house style for a suite that runs on several backends
//!
//! Each behaviour is a plain `pub(crate) async fn` that takes a fresh [`Docket`] and states one
//! thing a user may rely on, named for it (`a_task_scheduled_now_runs`). It lives in the file of
//! its topic (`retries.rs`, `strikes.rs`, ...), where rustfmt formats it and an editor finds it
//! like any function. The suite macros only list the names, grouped by file:
//! [`behaviour_suite!`] stamps one `#[tokio::test]` per behaviour for the backend a test binary
//! hands it; [`policies_suite!`] the task policies alone, which hold in-process too. A new
//! behaviour is a function in its topic's file and its name in one of the lists; a forgotten
//! name is a `dead_code` warning.
//!
//! A backend's test binary runs the whole suite against its own dockets:
//!
//! ```ignore
//! mod behaviour;
//!
//! /// A fresh, empty docket no other test uses.
//! async fn open() -> docket::Docket {
//!     docket::Docket::connect("memory://")
//!         .name(tests::redis_server::unique_name("behaviour-memory"))
//!         .await
//!         .unwrap()
//! }
//!
//! behaviour::behaviour_suite!(open);
//! ```
//!
//! `open` may also return a docket and a value to keep until the test ends, such as the private
//! `redis-server` behind the docket (see [`Opened`]). The binaries are `memory.rs`, `redis.rs`,
//! `redis_tls.rs` and `in_process_policies.rs`.
//!
//! Tasks report to a [`Probe`] named in their arguments, so tests that run side by side in one
//! process never see each other's work. Delays are asserted as lower bounds exactly and upper
//! bounds generously: these tests state behaviour, not speed.
//!
//! The tasks are defined in `tasks.rs`, in the suite's binaries only, on purpose: every task
//! registered in a binary changes what each worker of that binary does. A recurring task would
//! be started by every worker, and one taking a `State<T>` would stop every worker whose docket
//! lacks the state; such tasks have binaries of their own (`recurring.rs`, `state.rs`).
//!
//! [`Probe`]: tests::probe::Probe

mod tasks;

pub(crate) mod cancel;
pub(crate) mod context;
pub(crate) mod cooldown;
pub(crate) mod dead_letters;
pub(crate) mod debounce;
pub(crate) mod forever;
pub(crate) mod hooks;
pub(crate) mod keys;
pub(crate) mod limits;
pub(crate) mod results;
pub(crate) mod retries;
pub(crate) mod scatter;
pub(crate) mod scheduling;
pub(crate) mod snapshots;
pub(crate) mod strikes;
pub(crate) mod timeouts;
pub(crate) mod traces;
pub(crate) mod workers;

use std::time::{Duration, Instant};

use docket::{Docket, Worker, inspect::DeadLetter};
use tests::background::Background;
use tests::probe::Probe;

use self::tasks::{NoteRun, WaitForRelease};

/// One `#[tokio::test]` per behaviour, each on a docket of its own from `$open`, an async
/// function (or closure) returning a fresh, empty [`Docket`], or a docket and a value to keep
/// until the test ends (see [`Opened`]). Every behaviour: those that need a queue, then the
/// [`policies_suite!`].
macro_rules! behaviour_suite {
    ($open:expr) => {
        $crate::behaviour::behaviour_suite!(@tests $open;
            scheduling::{
                a_task_scheduled_now_runs,
                add_many_schedules_every_task_with_its_own_options,
                a_task_scheduled_after_a_delay_does_not_run_before_it,
                a_task_scheduled_at_a_time_does_not_run_before_it,
                a_task_scheduled_at_a_past_time_runs_now,
                scheduled_reports_the_key_the_task_and_the_queue,
            },
            keys::{
                a_second_task_with_the_key_of_a_waiting_one_is_a_duplicate_and_never_runs,
                a_second_task_with_the_key_of_a_running_one_is_a_duplicate,
                a_key_is_free_again_once_its_task_has_run,
                replace_swaps_the_waiting_task_for_the_new_one,
                a_task_replaced_while_running_finishes_undisturbed_beside_its_replacement,
                a_cancel_stops_both_a_run_replaced_while_running_and_its_replacement,
                a_cancel_stops_every_run_replaced_while_running_even_after_a_later_one_ended,
                a_run_replaced_while_running_leaves_the_dead_letter_to_its_replacement,
            },
            cancel::{
                cancel_removes_a_waiting_task_so_it_never_runs,
                cancelling_a_key_that_nothing_holds_returns_false,
                tasks_with_generated_keys_are_found_and_cancelled_by_their_receipts,
            },
            retries::{
                a_failing_task_runs_once_plus_its_retries_then_becomes_a_dead_letter,
                retries_wait_at_least_the_fixed_backoff,
                retries_wait_at_least_the_exponential_backoff,
                a_task_that_succeeds_on_a_retry_is_not_a_dead_letter,
                a_panicking_task_is_a_failed_attempt_and_the_worker_keeps_running,
            },
            timeouts::{an_attempt_that_overruns_its_timeout_fails_as_timed_out},
            workers::{
                a_worker_never_runs_more_tasks_at_once_than_its_concurrency,
                shutdown_lets_running_tasks_finish_and_leaves_the_rest_queued,
                run_until_finished_waits_for_tasks_due_later,
            },
            dead_letters::{
                a_task_with_an_unknown_name_becomes_a_replayable_dead_letter,
                arguments_that_do_not_decode_become_a_dead_letter_without_retries,
            },
            snapshots::{
                the_snapshot_lists_due_tasks_as_queued,
                the_snapshot_lists_queued_tasks_oldest_first,
                the_snapshot_lists_future_tasks_as_scheduled,
                the_snapshot_lists_a_task_being_run_as_running_on_its_worker,
                the_snapshot_lists_a_task_waiting_to_retry_as_scheduled_for_its_next_attempt,
                the_snapshot_is_empty_after_run_until_finished,
            },
            traces::{scheduling_on_a_queue_is_traced_as_via_docket},
        );
        $crate::behaviour::policies_suite!($open);
    };
    (@tests $open:expr; $($topic:ident::{$($behaviour:ident),* $(,)?}),* $(,)?) => {
        $($(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $behaviour() {
                let (docket, _keep) = $crate::behaviour::Opened::split(($open)().await);
                $crate::behaviour::$topic::$behaviour(docket).await;
            }
        )*)*
    };
}

/// One `#[tokio::test]` per task-policy behaviour (and per behaviour of scatter and hooks), each
/// on a docket of its own from `$open` (see [`behaviour_suite!`], which includes these). They
/// hold in-process too.
macro_rules! policies_suite {
    ($open:expr) => {
        $crate::behaviour::behaviour_suite!(@tests $open;
            retries::{
                a_dead_letter_keeps_the_error_of_every_attempt,
                retry_delays_are_jittered_within_their_percentage,
                a_retry_the_task_asks_for_waits_its_delay_and_counts_as_an_attempt,
                a_task_that_fails_for_good_is_a_dead_letter_at_once,
            },
            timeouts::{a_task_that_extends_its_timeout_runs_past_the_original_one},
            context::{the_context_tells_the_key_the_attempt_the_due_time_and_the_docket},
            strikes::{
                a_strike_by_task_name_holds_its_tasks_until_restored,
                a_strike_made_while_a_worker_runs_holds_the_tasks_it_claims_afterwards,
                a_strike_where_an_argument_compares_with_a_value_holds_exactly_those_runs,
            },
            limits::{
                a_concurrency_limit_per_argument_value_is_never_exceeded,
                a_concurrency_limit_is_never_exceeded,
                a_rate_limit_allows_no_more_starts_in_a_window_than_it_says,
            },
            debounce::{
                debounce_collapses_a_burst_into_one_run_with_the_newest_arguments,
                debounce_by_argument_collapses_each_value_on_its_own,
            },
            cooldown::{
                a_cooldown_lets_the_first_schedule_through_and_drops_the_others_of_its_window,
                a_cooldown_by_argument_counts_each_value_on_its_own,
                a_cooldown_opens_again_once_its_window_has_passed,
                a_cooldown_drops_keyed_and_replacing_schedules_but_answers_a_duplicate_first,
                a_batch_or_scatter_lets_through_the_first_of_each_scope,
            },
            results::{
                a_kept_result_is_returned_by_scheduled_result_and_docket_result,
                results_of_tasks_scheduled_while_a_worker_runs_are_all_returned,
                the_result_of_a_task_that_failed_is_a_task_failed_error,
                the_result_of_a_cancelled_task_is_a_task_cancelled_error,
                a_task_that_keeps_no_result_has_none_to_return,
                watch_sees_a_task_queued_then_running_then_completed,
                progress_is_seen_through_watch,
            },
            forever::{
                a_task_retried_forever_retries_past_any_count_until_it_succeeds,
                a_snapshot_shows_a_task_retried_forever_as_unlimited,
            },
            scatter::{
                scatter_spreads_a_batch_evenly_and_runs_it_in_that_order,
                scattering_the_same_batch_again_adds_nothing_while_it_waits,
            },
            hooks::{
                hooks_see_each_success_failed_attempt_retry_and_dead_letter,
                a_hook_that_fails_or_panics_neither_loses_nor_repeats_a_task,
            },
            cancel::{
                cancelling_a_running_task_stops_it_at_its_next_await_without_a_retry,
                a_running_task_that_keeps_state_is_recorded_as_cancelled,
            },
        );
    };
}

pub(crate) use {behaviour_suite, policies_suite};

/// What a suite's `open` returns: a docket, or a docket and what must live as long as the test
/// (a private server, say).
pub(crate) trait Opened {
    type Keep;
    fn split(self) -> (Docket, Self::Keep);
}

impl Opened for Docket {
    type Keep = ();
    fn split(self) -> (Docket, ()) {
        (self, ())
    }
}

impl<K> Opened for (Docket, K) {
    type Keep = K;
    fn split(self) -> (Docket, K) {
        self
    }
}

/// Slack allowed above an expected delay before it counts as not honoured. Generous: a loaded
/// machine is slow, and these tests are not about speed.
const SLACK: Duration = Duration::from_secs(2);

async fn dead_letters(docket: &Docket) -> Vec<DeadLetter> {
    docket.dead_letters().await.expect("read the dead letters")
}

/// The one dead letter of `docket`; fails the test unless it is the task scheduled as `key`.
async fn only_dead_letter(docket: &Docket, key: &str) -> DeadLetter {
    let mut dead = dead_letters(docket).await;
    assert_eq!(dead.len(), 1, "{dead:#?}");
    let dead = dead.remove(0);
    assert_eq!(dead.key, key, "the dead letter is the task scheduled");
    dead
}

/// Schedule a `note_run` labelled `label`, due `delay` from now; when it was scheduled.
async fn schedule_note_after(
    docket: &Docket,
    probe: &Probe,
    label: &str,
    delay: Duration,
) -> Instant {
    let scheduled_at = Instant::now();
    NoteRun::schedule(probe.id(), label.into())
        .after(delay)
        .on(docket)
        .await
        .unwrap();
    scheduled_at
}

/// Schedule as `key` a task that runs until `probe` releases it, and start a worker in the
/// background to run it; the worker and its id. The task may not have started yet.
async fn start_a_task_awaiting_release(
    docket: &Docket,
    probe: &Probe,
    key: &str,
) -> (Background, String) {
    WaitForRelease::schedule(probe.id())
        .key(key)
        .on(docket)
        .await
        .unwrap();
    let worker = Worker::new(docket);
    let worker_id = worker.id().to_owned();
    (Background::start(worker), worker_id)
}
