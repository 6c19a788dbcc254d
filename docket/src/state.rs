//! Worker-scoped shared state: values a task is given rather than sent, such as a database pool
//! or an HTTP client. Provided once on the [`Docket`](crate::Docket) handle, injected into every
//! task that asks for it with a [`State`] parameter, never serialized.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, RwLock};

/// A shared value injected into a task: write a parameter `State(db): State<Db>` in a
/// `#[docket::task]` function, and provide the value with
/// [`Docket::provide`](crate::Docket::provide).
///
/// ```standalone_crate
/// #[derive(Clone)]
/// struct Mailer { from: &'static str }
///
/// #[docket::task]
/// async fn greet(user_id: u64, docket::State(mailer): docket::State<Mailer>) {
///     println!("mail from {} to user {user_id}", mailer.from);
/// }
///
/// # async fn demo() -> docket::Result<()> {
/// let docket = docket::Docket::memory();
/// docket.provide(Mailer { from: "hello@plyr.example" });
/// Greet::schedule(7).on(&docket).await?;
/// # Ok(()) }
/// ```
///
/// Workers check at start that every task's state was provided, and refuse to start when some is
/// missing, naming the task and the type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct State<T>(pub T);

impl<T> Deref for State<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> DerefMut for State<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.0
    }
}

/// A state type a task needs; `#[docket::task]` lists one per `State<T>` parameter.
#[doc(hidden)]
#[derive(Clone, Copy)]
pub struct Requirement {
    type_id: fn() -> TypeId,
    type_name: fn() -> &'static str,
}

impl Requirement {
    /// The requirement of a `State<T>` parameter.
    pub fn of<T: 'static>() -> Self {
        Requirement {
            type_id: TypeId::of::<T>,
            type_name: std::any::type_name::<T>,
        }
    }

    pub(crate) fn type_name(&self) -> &'static str {
        (self.type_name)()
    }
}

impl fmt::Debug for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.type_name())
    }
}

/// The values provided on one docket, by type. Clones share them.
#[derive(Clone, Default)]
pub(crate) struct Provided {
    values: Arc<RwLock<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>,
}

impl Provided {
    pub(crate) fn insert<T: Send + Sync + 'static>(&self, value: T) {
        self.values
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(TypeId::of::<T>(), Arc::new(value));
    }

    pub(crate) fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.values
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(&TypeId::of::<T>())
            .and_then(|value| value.downcast_ref::<T>())
            .cloned()
    }

    pub(crate) fn has(&self, requirement: &Requirement) -> bool {
        self.values
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains_key(&(requirement.type_id)())
    }
}

impl fmt::Debug for Provided {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self
            .values
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len();
        write!(f, "Provided({count} values)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provided_values_are_found_by_type_and_shared_by_clones() {
        let provided = Provided::default();
        let clone = provided.clone();
        provided.insert(String::from("pool"));
        assert_eq!(clone.get::<String>().as_deref(), Some("pool"));
        assert_eq!(clone.get::<u32>(), None);
        assert!(clone.has(&Requirement::of::<String>()));
        assert!(!clone.has(&Requirement::of::<u32>()));
        provided.insert(String::from("replaced"));
        assert_eq!(clone.get::<String>().as_deref(), Some("replaced"));
    }
}
