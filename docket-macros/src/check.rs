//! Checking the attribute against the function: keys that are fine on their own but do not fit
//! the function they are on, such as `concurrency(user)` on a task without a `user` argument.

use syn::Ident;
use syn::ext::IdentExt;

use crate::args::{Arg, Args, PerArgument};
use crate::errors::Errors;
use crate::input::{Param, TaskFn};

pub(crate) fn check(args: &Args, task: &TaskFn<'_>) -> syn::Result<()> {
    let mut errors = Errors::default();
    if let Some(key) = args.recurring_key() {
        for argument in task.arguments() {
            errors.push_spanned(
                argument.param,
                format!(
                    "a recurring task (`{key}`) runs on its own, so nothing passes it `{}`: \
                     remove this argument; a recurring task takes only `Context` and `State<T>` \
                     parameters",
                    argument.ident.unraw()
                ),
            );
        }
    }
    per_argument(&args.concurrency, "concurrency", task, &mut errors);
    per_argument(&args.rate_limit, "rate_limit", task, &mut errors);
    per_argument(&args.debounce, "debounce", task, &mut errors);
    per_argument(&args.cooldown, "cooldown", task, &mut errors);
    errors.finish(())
}

/// `key(param)` must name one of the serialized arguments: the worker reads its value from the
/// queued task to count by it.
fn per_argument<K, V>(
    arg: &Option<Arg<K, PerArgument<V>>>,
    key: &str,
    task: &TaskFn<'_>,
    errors: &mut Errors,
) {
    let Some(param) = arg.as_ref().and_then(|arg| arg.value.param.as_ref()) else {
        return;
    };
    let name = param.unraw();
    if task
        .arguments()
        .any(|argument| argument.ident.unraw() == name)
    {
        return;
    }
    let function = &task.name;
    let arguments: Vec<String> = task
        .arguments()
        .map(|argument| format!("`{}`", argument.ident.unraw()))
        .collect();
    let choices = match &arguments[..] {
        [] => format!("it has no arguments: write `{key} = ..` to count the task as a whole"),
        [only] => format!("name its argument {only}, or write `{key} = ..` for the whole task"),
        [init @ .., last] => format!("name one of its arguments, {} or {last}", init.join(", ")),
    };
    let message = if is_injected(task, param) {
        format!(
            "`{name}` is passed in by the worker, not scheduled with the task, so `{key}` cannot \
             count by it; {choices}"
        )
    } else {
        format!("`{function}` has no argument `{name}` for `{key}` to count by; {choices}")
    };
    errors.push_spanned(param, message);
}

fn is_injected(task: &TaskFn<'_>, name: &Ident) -> bool {
    task.params.iter().any(|param| match param {
        Param::Context(param) | Param::State { param, .. } => {
            matches!(&*param.pat, syn::Pat::Ident(pat) if pat.ident.unraw() == name.unraw())
        }
        Param::Argument(_) => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::{ItemFn, parse_quote};

    fn errors(args: proc_macro2::TokenStream, item: ItemFn) -> Vec<String> {
        let args: Args = syn::parse2(args).unwrap();
        let task = TaskFn::lower(&item).unwrap();
        match check(&args, &task) {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn recurring_tasks_take_only_injected_parameters() {
        let item: ItemFn = parse_quote!(
            async fn sweep(ctx: Context, State(db): State<Db>) {}
        );
        assert!(errors(quote::quote!(every = "1m"), item.clone()).is_empty());
        assert!(errors(quote::quote!(cron = "0 * * * *"), item).is_empty());
        let item: ItemFn = parse_quote!(
            async fn sweep(ctx: Context, r#type: String, days: u32) {}
        );
        assert_eq!(
            errors(quote::quote!(every = "1m"), item.clone()),
            [
                "a recurring task (`every`) runs on its own, so nothing passes it `type`: remove \
                 this argument; a recurring task takes only `Context` and `State<T>` parameters",
                "a recurring task (`every`) runs on its own, so nothing passes it `days`: remove \
                 this argument; a recurring task takes only `Context` and `State<T>` parameters",
            ]
        );
        assert!(errors(quote::quote!(cron = "* * * * *"), item)[0].contains("(`cron`)"));
    }

    #[test]
    fn per_argument_keys_name_a_serialized_argument() {
        let item: ItemFn = parse_quote!(
            async fn scan(track_id: i64, r#type: String, ctx: Context) {}
        );
        let ok = quote::quote!(
            concurrency(track_id) = 1,
            rate_limit(r#type) = "1/1s",
            debounce(track_id) = "1s"
        );
        assert!(errors(ok, item.clone()).is_empty());
        assert_eq!(
            errors(quote::quote!(concurrency(user) = 1), item.clone()),
            [
                "`scan` has no argument `user` for `concurrency` to count by; name one of its \
                 arguments, `track_id` or `type`"
            ]
        );
        assert_eq!(
            errors(quote::quote!(debounce(ctx) = "1s"), item),
            [
                "`ctx` is passed in by the worker, not scheduled with the task, so `debounce` \
                 cannot count by it; name one of its arguments, `track_id` or `type`"
            ]
        );
        let one: ItemFn = parse_quote!(
            async fn scan(track_id: i64) {}
        );
        assert_eq!(
            errors(quote::quote!(rate_limit(track) = "1/1s"), one),
            [
                "`scan` has no argument `track` for `rate_limit` to count by; name its argument \
                 `track_id`, or write `rate_limit = ..` for the whole task"
            ]
        );
        let none: ItemFn = parse_quote!(
            async fn scan(ctx: Context) {}
        );
        assert_eq!(
            errors(quote::quote!(concurrency(track) = 1), none),
            [
                "`scan` has no argument `track` for `concurrency` to count by; it has no \
                 arguments: write `concurrency = ..` to count the task as a whole"
            ]
        );
    }
}
