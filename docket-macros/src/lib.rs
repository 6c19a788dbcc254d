//! The `#[docket::task]` attribute macro.
//!
//! Use it through the `docket-tasks` crate (library name `docket`), which re-exports it: the
//! code it generates names `::docket` paths and relies on `docket`'s hidden `__private` module, a
//! contract between two crates of exactly the same version.
//!
//! The macro runs in four phases, one file each: `args` parses the attribute's arguments,
//! `input` lowers and validates the function, `check` fits the two together, `expand` generates
//! the task beside them, or `fallback` stands in for it next to the errors. The string values'
//! grammars, which `args` calls, live in `values` (durations, backoffs, rates, percentages) and
//! `cron`.

mod args;
mod check;
#[cfg(test)]
mod conformance;
mod cron;
mod errors;
mod expand;
mod fallback;
mod input;
mod values;

use proc_macro::TokenStream;

/// Turns an `async fn` into a docket task. Documented on `docket::task`.
#[proc_macro_attribute]
pub fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand::task(attr.into(), item.into()).into()
}
