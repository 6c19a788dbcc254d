//! Model-based fault injection: seeded random sequences of operations against the public API,
//! on the memory backend and on a private Redis server (AOF, `appendfsync always`), with several
//! workers, each on a thread and runtime of its own; after every step what happened is judged
//! against a small reference model of docket's guarantees (`fault_model/model.rs`):
//!
//! 1. an acknowledged `schedule` is never lost: it ends completed, cancelled, replaced, or as a
//!    dead letter with its reason;
//! 2. a success, once settled, is final: no second run, no dead letter (a crash or a long freeze
//!    of its worker before it acknowledged excuses a second run; nothing else does), and a live
//!    worker's task is never taken over;
//! 3. after `cancel(key)` returned true nothing of the key starts or completes, neither its task
//!    nor a run a `replace` went beside (within the time a worker takes to hear of it);
//! 4. a key is reusable once nothing of it waits or runs;
//! 5. invalid input is refused with a typed error, never a panic, and stores nothing.
//!
//! Operations: schedule (now, later, keyed, `replace`, `add_many`), cancel, strike and restore,
//! invalid inputs; in half the sequences, workers that read ahead of their free slots
//! (`Worker::read_ahead`, which only Redis honours); task behaviours (succeed, fail N runs then succeed, always fail, hang); faults
//! (freezes of a worker's thread at failpoints, worker crashes (on Redis, every other sequence
//! crashes the keeper, the worker that holds the fleet's lease and runs its checks, so that the
//! lease must lapse and pass on before its tasks run again), connection cuts by proxy or
//! failpoint, Redis restarts and outages). About a third of the sequences embed a short scenario
//! aimed at a finding of the Redis protocol audit (R1, R2, R6, R9).
//!
//! A failure prints the sequence's seed, the command that runs it again, its operations, runs
//! and faults. Timing varies from run to run, so a replay meets the same operations, not always
//! the same interleaving: run it a few times.
//!
//! Environment:
//! - `DOCKET_MODEL_SEQUENCES` (default 200 per backend), `DOCKET_MODEL_SEED` (the first
//!   sequence's seed; random by default, and printed), `DOCKET_MODEL_LANES` (sequences run side by
//!   side, default 2; each Redis lane has its own server);
//! - `DOCKET_MODEL_REDELIVERY_MS` (default 1000): the redelivery timeout; freezes and cuts scale
//!   with it;
//! - `DOCKET_MODEL_EMPTY_KEY_VALID=1`: treat the empty key as an ordinary key instead of
//!   expecting `Error::InvalidKey` (to run against versions that accept it: then whether it is
//!   reusable is checked like any key's);
//! - `DOCKET_MODEL_SCENARIO=<name>`: embed that scenario in every sequence (`StaleFailure`,
//!   `HeldCopy`, `KeyReuse`, `CrashCancel`, `RestartCancel`, `LongOutage`, `CutAcks`; see
//!   `fault_model/ops.rs`);
//! - `DOCKET_MODEL_REPEAT=1`: run the given seed `DOCKET_MODEL_SEQUENCES` times over (a failure
//!   that depends on timing shows in some of them);
//! - `DOCKET_MODEL_KEEP_GOING=1`: go on after a failing sequence, print each report as it comes
//!   and list them all at the end;
//! - `DOCKET_MODEL_TRACE=1`: print docket's debug events with their threads' names (the workers'
//!   are `fault-model-worker-N`), best with `DOCKET_MODEL_LANES=1` and one seed.
//!
//! About 110 s for both backends on 2 cores with the defaults. A longer run by hand (2,000
//! sequences per backend, about 12 minutes on 2 cores):
//!
//! ```sh
//! DOCKET_MODEL_SEQUENCES=2000 DOCKET_MODEL_LANES=3 cargo test --release -p tests --test fault_model -- --nocapture
//! ```

mod fault_model {
    pub(crate) mod harness;
    pub(crate) mod log;
    pub(crate) mod model;
    pub(crate) mod ops;
    pub(crate) mod rng;
    pub(crate) mod runner;
}

use fault_model::runner::{Backend, run};

/// The model task; `fm_beta` is the same under another name, so that a strike can hold one
/// type while the other runs.
#[docket::task(retries = 2, backoff = "fixed 50ms")]
async fn fm_alpha(
    seq: u64,
    generation: u64,
    behaviour: u8,
    param: u64,
    ctx: docket::Context,
) -> Result<(), String> {
    fault_model::log::body("fm_alpha", seq, generation, behaviour, param, ctx.attempt()).await
}

#[docket::task(retries = 2, backoff = "fixed 50ms")]
async fn fm_beta(
    seq: u64,
    generation: u64,
    behaviour: u8,
    param: u64,
    ctx: docket::Context,
) -> Result<(), String> {
    fault_model::log::body("fm_beta", seq, generation, behaviour, param, ctx.attempt()).await
}

#[test]
fn memory() {
    run(Backend::Memory);
}

#[test]
fn redis() {
    run(Backend::Redis);
}
