//! The error type of docket's own operations (scheduling, connecting, running a worker).
//!
//! A task's own failure is a [`TaskError`](crate::TaskError), not an [`Error`]: it is retried,
//! not returned to the caller of `schedule`.

/// Shorthand for `Result<T, docket::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong in a docket operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting (an environment variable or a builder value) is invalid.
    #[error("invalid docket configuration: {0}")]
    Config(String),

    /// A URL names a backend this build of docket does not have.
    #[error(
        "unsupported docket URL `{url}`: expected `redis://`, `rediss://` (TLS), `unix:///path/to/redis.sock`, `redis+cluster://host:port,host:port` (or `rediss+cluster://`), `redis+sentinel://host:port,host:port/name` (or `rediss+sentinel://`) or `memory://`, or leave `DOCKET_URL` unset to run tasks in-process"
    )]
    UnsupportedUrl {
        /// The URL, with any password replaced by `***`.
        url: String,
    },

    /// A task key given to [`Schedule::key`](crate::Schedule::key) is empty, longer than
    /// 1024 bytes, or contains a control character. Nothing was scheduled.
    #[error("invalid task key {key:?}: {reason}")]
    InvalidKey {
        /// The key, cut to its first 64 characters (with `…` when cut), for display.
        key: String,
        /// What is wrong with it, and what to do instead.
        reason: String,
    },

    /// A value that would become part of a Redis key or set member is too long: the value, as
    /// JSON, of the argument a per-argument limit (`concurrency(arg)`, `rate_limit(arg)`)
    /// counts by, checked when the task is scheduled; or the value a
    /// [`Strike`](crate::strike::Strike) compares with, checked by
    /// [`Docket::strike`](crate::Docket::strike). The limit is 1024 bytes, like a task key's,
    /// far below what managed Redis services accept (Upstash: 32 KB). Nothing was stored.
    #[error("{}", scope_too_long(.task, .param, .policy, .len, .limit))]
    ScopeTooLong {
        /// The task's registered name; `*` for a strike on every task.
        task: String,
        /// The argument's name.
        param: String,
        /// What the value scopes: `concurrency`, `rate_limit` or `strike`.
        policy: &'static str,
        /// The value's length as JSON, in bytes.
        len: usize,
        /// The longest value accepted, in bytes.
        limit: usize,
    },

    /// A task is due later than the end of the year 9999, the latest due time docket stores
    /// (as from [`Schedule::after`](crate::Schedule::after) with `Duration::MAX`). Nothing was
    /// scheduled.
    #[error(
        "task `{task}` would be due after the end of the year 9999, the latest due time docket stores; schedule it sooner, or leave it unscheduled"
    )]
    InvalidDue {
        /// The task's registered name.
        task: String,
    },

    /// A task's arguments could not be encoded as JSON.
    #[error("cannot encode the arguments of task `{task}`")]
    Encode {
        /// The task's registered name.
        task: &'static str,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },

    /// Arguments given as JSON text (see [`Docket::add_json`](crate::Docket::add_json)) do not
    /// parse.
    #[error("the arguments given for task `{task}` are not valid JSON")]
    Json {
        /// The task name given.
        task: String,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },

    /// A task's kept result does not decode as the type asked for (see
    /// [`Docket::result`](crate::Docket::result)): the type given to `result::<R>()` is not
    /// the one the task returns.
    #[error(
        "the result of task `{key}` does not decode as `{type_name}`; ask for the type the task returns"
    )]
    ResultDecode {
        /// The task's key.
        key: String,
        /// The type asked for.
        type_name: &'static str,
        /// What serde_json reported.
        #[source]
        source: serde_json::Error,
    },

    /// Two tasks in the binary are registered under one name.
    #[error(
        "two tasks are registered as `{name}`: `{first}` and `{second}`; give one of them `#[docket::task(name = \"...\")]`"
    )]
    DuplicateTask {
        /// The shared name.
        name: &'static str,
        /// One task type.
        first: &'static str,
        /// The other task type.
        second: &'static str,
    },

    /// A task's encoded arguments are larger than the docket accepts.
    #[error(
        "task `{task}` is {size} bytes encoded, over the limit of {limit}; pass a reference to the data (an id, a URL) instead of the data"
    )]
    PayloadTooLarge {
        /// The task's name.
        task: String,
        /// The encoded size.
        size: usize,
        /// The limit set with [`Connect::max_payload`](crate::Connect::max_payload).
        limit: usize,
    },

    /// The backend refused an operation (a permission, a script or a server error).
    #[error("the docket backend failed")]
    Backend {
        /// What the backend reported.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// There is no tokio runtime to run an in-process task on.
    #[error("docket needs a tokio runtime to run tasks in-process; call it from inside one")]
    NoRuntime,

    /// A worker cannot start: a task needs a [`State`](crate::State) value nobody provided.
    #[error(
        "task `{task}` needs a `State<{type_name}>`, but none was provided: call `docket.provide(value)` before starting the worker"
    )]
    MissingState {
        /// The task's registered name.
        task: &'static str,
        /// The type of the missing value.
        type_name: &'static str,
    },

    /// The task ended without success, so there is no result to return.
    #[error("task `{key}` failed: {message}")]
    TaskFailed {
        /// The task's key.
        key: String,
        /// Its last error.
        message: String,
    },

    /// The task was cancelled, so there is no result to return.
    #[error("task `{key}` was cancelled")]
    TaskCancelled {
        /// The task's key.
        key: String,
    },

    /// No state is kept for this key: the task does not keep results
    /// (`#[docket::task(result)]`), its results expired, or no such task was scheduled.
    #[error(
        "no state is kept for task `{key}`: it does not keep results (`#[docket::task(result)]`), they expired, or there is no such task"
    )]
    NoResult {
        /// The task's key.
        key: String,
    },

    /// A strike names an operator docket does not know.
    #[error("unknown strike operator `{0}`: use one of == != > >= < <=")]
    Operator(String),

    /// The tasks were stored on the Redis master, but fewer replicas than
    /// [`Connect::wait_replicas`](crate::Connect::wait_replicas) asks for confirmed them within
    /// 2 s. They run unless the master fails before its replicas catch up; scheduling them again
    /// with the same keys is harmless.
    #[error(
        "the tasks were stored, but only {confirmed} of the {wanted} replicas asked for confirmed them in time"
    )]
    NotReplicated {
        /// The replicas asked for.
        wanted: u32,
        /// The replicas that confirmed.
        confirmed: u32,
    },

    /// A batch was stored in parts, and a part failed: the first `stored` tasks of the batch
    /// are in the queue (in the order given), the others are not. Schedule the rest again; keyed
    /// tasks may be sent again whole, as their keys make it idempotent.
    #[error("only the first {stored} tasks of the batch were stored")]
    BatchIncomplete {
        /// How many tasks, from the start of the batch, were stored.
        stored: usize,
        /// Why the next part failed.
        #[source]
        source: Box<Error>,
    },

    /// A batch on a docket spread over partitions (`Connect::partitions`) was stored one
    /// partition's share at a time, and a share failed: the tasks at the positions in `stored`
    /// (counted from 0, in the batch's order) are in the queue, the others are not. Schedule
    /// those again; keyed tasks may be sent again whole, as their keys make it idempotent. (When
    /// the stored tasks are the first ones of the batch, the error is
    /// [`Error::BatchIncomplete`] instead.)
    #[error("only {} of the batch's tasks were stored", stored.len())]
    BatchPartlyStored {
        /// The positions in the batch of the tasks that were stored, in order.
        stored: Vec<usize>,
        /// Why another share failed.
        #[source]
        source: Box<Error>,
    },

    /// The operation has no counterpart in the docket's protocol: on a docket in pydocket's
    /// protocol, dead letters, held tasks, watches and the dashboard's views are docket's own
    /// and not kept (see [`crate::pydocket`]).
    #[error("{operation} is not available on a docket in {protocol}'s protocol")]
    Unsupported {
        /// What was asked for.
        operation: &'static str,
        /// The docket's protocol, as `DOCKET_PROTOCOL` names it.
        protocol: &'static str,
    },

    /// The backend could not be reached; the operation may succeed if tried again.
    #[error("the docket backend is unavailable")]
    Unavailable {
        /// The underlying failure.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl Error {
    /// Whether the backend could not be reached, so that trying again later may succeed.
    ///
    /// `schedule` falls back to running the task in-process on such an error.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// The message of [`Error::ScopeTooLong`]: what the value scopes, and how to do without it.
fn scope_too_long(task: &str, param: &str, policy: &str, len: &usize, limit: &usize) -> String {
    if policy == "strike" {
        return format!(
            "a strike on task `{task}` compares the argument `{param}` with a value of {len} bytes as JSON, over the limit of {limit}; strike with a shorter value, such as an id"
        );
    }
    format!(
        "task `{task}` is limited per value of its argument `{param}` (`{policy}({param})`), and this value is {len} bytes as JSON, over the limit of {limit}; limit by a shorter argument, such as an id"
    )
}

/// Displays an error with its chain of sources: `outer: inner: innermost`.
pub(crate) struct Chain<'a>(pub(crate) &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}
