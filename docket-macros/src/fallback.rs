//! What the macro emits when the attribute or the function is wrong.
//!
//! The user's function, unchanged, and the errors; and, when the task's name and arguments could
//! still be read, stand-ins for the argument struct and the `schedule` functions (as thiserror's
//! `fallback.rs` stands in for an `Error` impl). Code elsewhere that names `ScanCopyright` or calls
//! `schedule_scan_copyright` then compiles against them, so the macro's errors are the only ones
//! the user sees, and an IDE still knows the function and the generated names. The stand-ins
//! implement no `Task` and register nothing: the build fails on the errors anyway.
//!
//! Recent rustc releases (rust-lang/rust#149484; 1.95 has it) already keep quiet about names
//! missing from a module that holds a `compile_error!`, but not about names reached through a
//! glob import, such as `use super::*` in a test module; older releases, down to docket's 1.85,
//! and IDEs report them all. On those older releases the stand-ins' `__docket_not_generated` is
//! reported once per `schedule` function instead of once per use.

use proc_macro2::TokenStream;

use crate::errors::Errors;
use crate::expand::{Emit, args_struct, schedule_fns};
use crate::input::TaskFn;

// Input:
//     #[docket::task(retries = "3")]
//     pub async fn scan_copyright(track_id: i64) { .. }
// Output:
//     pub async fn scan_copyright(track_id: i64) { .. }
//     /// Arguments of the [`scan_copyright`] task.
//     #[allow(dead_code, missing_debug_implementations)]
//     pub struct ScanCopyright { pub track_id: i64 }
//     impl ScanCopyright {
//         pub fn schedule(track_id: i64) -> Schedule<__docket_not_generated> { unreachable!() }
//     }
//     pub fn schedule_scan_copyright(track_id: i64) -> Schedule<__docket_not_generated> { .. }
//     ::core::compile_error! { "`retries` takes a whole number, such as `retries = 3`" }
pub(crate) fn fallback(
    mut item: TokenStream,
    task: Option<&TaskFn<'_>>,
    errors: impl IntoIterator<Item = syn::Error>,
) -> TokenStream {
    if let Some(task) = task {
        item.extend(args_struct(task, Emit::StandIn));
        item.extend(schedule_fns(task, Emit::StandIn));
    }
    let mut all = Errors::default();
    errors.into_iter().for_each(|error| all.push(error));
    if let Err(errors) = all.finish(()) {
        item.extend(errors.into_compile_error());
    }
    item
}

#[cfg(test)]
mod tests;
