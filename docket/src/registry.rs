//! Every task linked into the binary, found through `inventory` and looked up by name.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;

use crate::error::Error;
use crate::failure::TaskError;
use crate::policy::Policy;
use crate::state::Requirement;
use crate::task::Task;
use crate::worker::execution::Context;

/// The future of one attempt, with its task type erased.
pub(crate) type Attempt = Pin<Box<dyn Future<Output = Result<(), TaskError>> + Send>>;

/// How a worker finds and runs one task type: what `#[docket::task]` submits to `inventory`.
///
/// Not public API: reach it through `#[docket::task]`.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Registration {
    name: &'static str,
    params: &'static [&'static str],
    type_name: fn() -> &'static str,
    policy: fn() -> Policy,
    required_state: fn() -> Vec<Requirement>,
    start: fn(&str, Context) -> Result<Attempt, serde_json::Error>,
}

impl Registration {
    /// The registration of `T`, usable in a `static`.
    pub const fn of<T: Task>() -> Self {
        Registration {
            name: T::NAME,
            params: T::PARAMS,
            type_name: std::any::type_name::<T>,
            policy: T::policy,
            required_state: T::required_state,
            start: start::<T>,
        }
    }

    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// The task's parameter names, in order (what pydocket's positional arguments bind to).
    #[cfg_attr(not(feature = "pydocket"), allow(dead_code))]
    pub(crate) fn params(&self) -> &'static [&'static str] {
        self.params
    }

    pub(crate) fn policy(&self) -> Policy {
        (self.policy)()
    }

    /// The `State<T>` values the task needs.
    pub(crate) fn required_state(&self) -> Vec<Requirement> {
        (self.required_state)()
    }

    /// Decode the JSON arguments and start an attempt.
    pub(crate) fn start(&self, args: &str, context: Context) -> Result<Attempt, serde_json::Error> {
        (self.start)(args, context)
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("name", &self.name)
            .field("type", &(self.type_name)())
            .finish_non_exhaustive()
    }
}

fn start<T: Task>(args: &str, context: Context) -> Result<Attempt, serde_json::Error> {
    let task: T = serde_json::from_str(args)?;
    Ok(Box::pin(task.run(context)))
}

inventory::collect!(Registration);

/// Two task types registered under one name.
#[derive(Debug, Clone, Copy)]
struct Duplicate {
    name: &'static str,
    first: &'static str,
    second: &'static str,
}

impl From<Duplicate> for Error {
    fn from(duplicate: Duplicate) -> Error {
        Error::DuplicateTask {
            name: duplicate.name,
            first: duplicate.first,
            second: duplicate.second,
        }
    }
}

/// The tasks a worker can run, by name.
#[derive(Debug)]
pub(crate) struct Registry {
    by_name: HashMap<&'static str, &'static Registration>,
}

impl Registry {
    /// Every registered task.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &'static Registration> + '_ {
        self.by_name.values().copied()
    }

    /// Every `#[docket::task]` in the binary, gathered once; two tasks with one name are an
    /// error naming both.
    pub(crate) fn global() -> Result<&'static Registry, Error> {
        static GLOBAL: OnceLock<Result<Registry, Duplicate>> = OnceLock::new();
        GLOBAL
            .get_or_init(|| Registry::from_registrations(inventory::iter::<Registration>()))
            .as_ref()
            .map_err(|duplicate| Error::from(*duplicate))
    }

    fn from_registrations(
        registrations: impl IntoIterator<Item = &'static Registration>,
    ) -> Result<Registry, Duplicate> {
        let mut by_name = HashMap::new();
        for registration in registrations {
            if let Some(first) = by_name.insert(registration.name, registration) {
                let mut types = [(first.type_name)(), (registration.type_name)()];
                types.sort_unstable();
                return Err(Duplicate {
                    name: registration.name,
                    first: types[0],
                    second: types[1],
                });
            }
        }
        Ok(Registry { by_name })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&'static Registration> {
        self.by_name.get(name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Ping;

    impl Task for Ping {
        const NAME: &'static str = "ping";
        async fn run(self, _: Context) -> Result<(), TaskError> {
            Ok(())
        }
    }

    mod other {
        #[derive(serde::Serialize, serde::Deserialize)]
        pub(super) struct Ping;

        impl crate::Task for Ping {
            const NAME: &'static str = "ping";
            async fn run(self, _: crate::Context) -> Result<(), crate::TaskError> {
                Ok(())
            }
        }
    }

    static FIRST: Registration = Registration::of::<Ping>();
    static SECOND: Registration = Registration::of::<other::Ping>();

    #[test]
    fn two_tasks_with_one_name_are_an_error_naming_both() {
        let duplicate = Registry::from_registrations([&FIRST, &SECOND]).unwrap_err();
        let message = Error::from(duplicate).to_string();
        assert!(message.contains("`ping`"), "{message}");
        assert!(message.contains("registry::tests::Ping"), "{message}");
        assert!(
            message.contains("registry::tests::other::Ping"),
            "{message}"
        );
    }

    #[test]
    fn tasks_are_found_by_name() {
        let registry = Registry::from_registrations([&FIRST]).unwrap();
        assert_eq!(registry.get("ping").map(Registration::name), Some("ping"));
        assert!(registry.get("pong").is_none());
    }
}
