//! Generating a task beside the user's function.
//!
//! Every path is written in full (`::core::…`, `::docket::…`) so the code means the same whatever
//! the user imported or shadowed. Trait checks are spanned on the user's tokens, so a type that
//! cannot be a task argument, or a future that is not `Send`, is reported where it was written.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Ident, Item, LitStr};

use crate::args::{Arg, Args, PerArgument};
use crate::check::check;
use crate::fallback::fallback;
use crate::input::{Param, TaskFn};
use crate::values::{Backoff, Retries};

/// The whole macro: check the attribute and the function, then generate the task beside it.
pub(crate) fn task(attr: TokenStream, item: TokenStream) -> TokenStream {
    let args = syn::parse2::<Args>(attr);
    // A body-less `async fn name(..);` declares a task that another service's workers run.
    let (item_fn, declared) = match syn::parse2::<Declaration>(item.clone()) {
        Ok(declaration) => (declaration.item_fn(), true),
        Err(_) => match parse_fn(&item, args.as_ref().err().cloned()) {
            Ok(item_fn) => (item_fn, false),
            Err(output) => return output,
        },
    };
    let emitted = if declared {
        TokenStream::new()
    } else {
        item.clone()
    };
    let lowered = TaskFn::lower(&item_fn).map(|task| TaskFn { declared, ..task });
    match (args, lowered) {
        (Ok(args), Ok(task)) => match check(&args, &task) {
            Ok(()) if declared => generate_declared(&args, &task),
            Ok(()) => generate(&args, &task),
            Err(error) => fallback(emitted, Some(&task), [error]),
        },
        (args, Ok(task)) => fallback(emitted, Some(&task), args.err()),
        (args, Err(rejected)) => {
            let errors = args.err().into_iter().chain([rejected.error]);
            fallback(emitted, rejected.task.as_deref(), errors)
        }
    }
}

/// A task declared without a body: `[attributes] [pub] async fn name(args) [-> T];`.
struct Declaration {
    attrs: Vec<syn::Attribute>,
    vis: syn::Visibility,
    sig: syn::Signature,
}

impl syn::parse::Parse for Declaration {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(syn::Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        input.parse::<syn::Token![;]>()?;
        Ok(Declaration { attrs, vis, sig })
    }
}

impl Declaration {
    /// The declaration as a function with an empty body, for the checks every task passes.
    fn item_fn(self) -> syn::ItemFn {
        syn::ItemFn {
            attrs: self.attrs,
            vis: self.vis,
            sig: self.sig,
            block: Box::new(syn::parse_quote!({})),
        }
    }
}

/// The item as a function, or the macro's output when it is none.
fn parse_fn(
    item: &TokenStream,
    args_error: Option<syn::Error>,
) -> Result<syn::ItemFn, TokenStream> {
    match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Fn(item_fn)) => Ok(item_fn),
        Ok(_) => {
            let error = syn::Error::new(
                Span::call_site(),
                "`#[docket::task]` can only be applied to an `async fn` (or declared without a \
                 body, `async fn name(..);`, for a task other workers run)",
            );
            Err(fallback(
                item.clone(),
                None,
                args_error.into_iter().chain([error]),
            ))
        }
        Err(error) => Err(fallback(item.clone(), None, [error])),
    }
}

/// What an item is generated for: the task, or a stand-in beside the macro's errors, with the
/// same name, fields and signature but nothing that could fail on the user's types.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Emit {
    Task,
    StandIn,
}

// Input:
//     /// Scan a track.
//     #[docket::task(retries = 3)]
//     pub async fn scan_copyright(track_id: i64) -> Result<(), ScanError> { .. }
// Output:
//     /// Scan a track.
//     pub async fn scan_copyright(track_id: i64) -> Result<(), ScanError> { .. }
//     const _: () = { /* argument checks */ };
//     /// Scan a track.
//     pub struct ScanCopyright { pub track_id: i64 }
//     impl ScanCopyright { pub fn schedule(track_id: i64) -> Schedule<ScanCopyright> { .. } }
//     pub fn schedule_scan_copyright(track_id: i64) -> Schedule<ScanCopyright> { .. }
//     impl Task for ScanCopyright { .. }
//     const _: () = { /* registration */ };
fn generate(args: &Args, task: &TaskFn<'_>) -> TokenStream {
    let item = task.item;
    let args_struct = args_struct(task, Emit::Task);
    let schedule = schedule_fns(task, Emit::Task);
    let task_impl = task_impl(args, task);
    let registration = registration(task);
    // The checks go first, so rustc reports a bad argument type with their message before
    // serde's derive reports it with its own.
    let checks = checks(task);
    quote! {
        #item
        #checks
        #args_struct
        #schedule
        #task_impl
        #registration
    }
}

// Input:
//     /// Scan a track (Python runs it).
//     #[docket::task]
//     pub async fn scan_copyright(track_id: i64);
// Output: as for a function, but no function, no registration (no worker of this binary
// can run it), and a `run` that fails for good should it ever be called.
fn generate_declared(args: &Args, task: &TaskFn<'_>) -> TokenStream {
    let args_struct = args_struct(task, Emit::Task);
    let schedule = schedule_fns(task, Emit::Task);
    let task_impl = task_impl(args, task);
    let checks = checks(task);
    quote! {
        #checks
        #args_struct
        #schedule
        #task_impl
    }
}

// Input:
//     /// Scan a track.
//     pub async fn scan_copyright(track_id: i64, mut url: String) { .. }
// Output:
//     /// Scan a track.
//     #[derive(Serialize, Deserialize, Debug, Clone)] // a stand-in: #[allow(dead_code, ..)]
//     pub struct ScanCopyright {
//         /// The `track_id` argument of [`scan_copyright`].
//         pub track_id: i64,
//         /// The `url` argument of [`scan_copyright`].
//         pub url: String,
//     }
pub(crate) fn args_struct(task: &TaskFn<'_>, emit: Emit) -> TokenStream {
    let TaskFn {
        struct_ident, cfgs, ..
    } = task;
    let vis = &task.item.vis;
    let function = task.function_doc();
    let docs = if task.docs.is_empty() {
        let doc = format!(" Arguments of the {function} task.");
        quote!(#[doc = #doc])
    } else {
        let docs = &task.docs;
        quote!(#(#docs)*)
    };
    let fields = task.arguments().map(|arg| {
        let (ident, ty) = (arg.ident, arg.ty);
        let doc = format!(" The `{}` argument of {function}.", unraw(ident));
        quote! {
            #[doc = #doc]
            #vis #ident: #ty,
        }
    });
    let derives = match emit {
        Emit::Task => quote! {
            #[derive(
                ::docket::__private::serde::Serialize,
                ::docket::__private::serde::Deserialize,
                ::core::fmt::Debug,
                ::core::clone::Clone,
            )]
            #[serde(crate = "::docket::__private::serde")]
        },
        // A derive could fail on an argument's type and add an error; nothing reads the fields.
        Emit::StandIn => quote!(#[allow(dead_code, missing_debug_implementations)]),
    };
    quote! {
        #docs
        #(#cfgs)*
        #derives
        #vis struct #struct_ident {
            #(#fields)*
        }
    }
}

// Input:
//     pub async fn scan_copyright(track_id: i64, mut url: String, ctx: Context) { .. }
// Output (injected parameters, such as `ctx`, are left out):
//     impl ScanCopyright {
//         pub fn schedule(track_id: i64, url: String) -> Schedule<ScanCopyright> { .. }
//     }
//     pub fn schedule_scan_copyright(track_id: i64, url: String) -> Schedule<ScanCopyright> {
//         ScanCopyright::schedule(track_id, url)
//     }
// A stand-in's `schedule` is `::core::unreachable!()`, as `Schedule::new` needs a `Task`, and
// returns a `Schedule` of an unresolved type (see below).
pub(crate) fn schedule_fns(task: &TaskFn<'_>, emit: Emit) -> TokenStream {
    let TaskFn {
        struct_ident,
        schedule_ident,
        cfgs,
        ..
    } = task;
    let vis = &task.item.vis;
    let function = task.function_doc();
    let idents: Vec<&Ident> = task.arguments().map(|arg| arg.ident).collect();
    let params = task.arguments().map(|arg| {
        let (ident, ty) = (arg.ident, arg.ty);
        quote!(#ident: #ty)
    });
    let params = quote!(#(#params),*);
    let method_doc = format!(
        " Schedules the {function} task with these arguments.\n\n Await the returned \
         `docket::Schedule` to schedule it now, or first set when with `after` or `at`, or \
         a key with `key`."
    );
    let free_doc = format!(
        " Schedules the {function} task with these arguments: the same as \
         [`{struct_ident}::schedule`]."
    );
    let (returns, body, unused) = match emit {
        Emit::Task => (
            quote!(::docket::Schedule<#struct_ident>),
            quote!(::docket::Schedule::new(#struct_ident { #(#idents),* })),
            None,
        ),
        // Not `Schedule<ScanCopyright>`: with no `Task` impl, every `.after(..)` or `.await` on
        // it would be an error of its own. A name that resolves nowhere makes the type an error
        // type, which rustc checks nothing against; and recent rustc does not report names
        // missing from a module holding a `compile_error!`, as this one does (see `fallback`).
        Emit::StandIn => (
            quote!(::docket::Schedule<__docket_not_generated>),
            quote!(::core::unreachable!()),
            Some(quote!(unused_variables,)),
        ),
    };
    // Unused schedule functions are not the user's dead code, and their argument count is the
    // user's function's, which clippy already reports there.
    quote! {
        #(#cfgs)*
        impl #struct_ident {
            #[doc = #method_doc]
            #[allow(dead_code, #unused clippy::too_many_arguments)]
            #vis fn schedule(#params) -> #returns {
                #body
            }
        }

        #[doc = #free_doc]
        #(#cfgs)*
        #[allow(dead_code, clippy::too_many_arguments)]
        #vis fn #schedule_ident(#params) -> #returns {
            #struct_ident::schedule(#(#idents),*)
        }
    }
}

// Input:
//     #[docket::task(retries = 3, result)]
//     async fn scan_copyright(track_id: i64, ctx: Context, State(db): State<Db>)
//         -> Result<Report, ScanError> { .. }
// Output:
//     impl ::docket::Task for ScanCopyright {
//         const NAME: &'static str = "scan_copyright";
//         const PARAMS: &'static [&'static str] = &["track_id"];
//         fn policy() -> Policy { Policy::new().with_retries(3).with_result(Duration::from_millis(..)) }
//         fn required_state() -> Vec<Requirement> { vec![Requirement::of::<Db>()] } // with `State`
//         fn run(self, __docket_context: Context) -> impl Future<Output = Result<(), TaskError>> + Send {
//             async move {
//                 let __docket_state_2 = state::<Db>(&__docket_context)?;
//                 let __docket_output =
//                     scan_copyright(self.track_id, __docket_context.clone(), __docket_state_2).await;
//                 keep_result::<Result<Report, ScanError>>(&__docket_context, &__docket_output); // `result`
//                 <Result<Report, ScanError> as TaskOutput>::into_outcome(__docket_output)
//             }
//         }
//     }
fn task_impl(args: &Args, task: &TaskFn<'_>) -> TokenStream {
    let TaskFn {
        struct_ident, cfgs, ..
    } = task;
    let function = task.ident();
    let name = match &args.name {
        Some(arg) => arg.value.clone(),
        None => LitStr::new(&task.name, function.span()),
    };
    let policy = policy(args);
    // Serde names the fields without `r#`, and so must the list positional arguments bind to.
    let params = task.arguments().map(|arg| unraw(arg.ident));
    // The future's checks land on the user's signature: `Send` on the function's name, the
    // output's `TaskOutput` on the return type.
    let future = quote_spanned! {function.span()=>
        impl ::core::future::Future<Output = ::core::result::Result<(), ::docket::TaskError>>
            + ::core::marker::Send
    };
    let (states, call_args) = call_args(args, task);
    let keep_result = args.result.as_ref().map(|_| match task.output {
        // Named for the same reason as the output's type below.
        Some(ty) => quote_spanned! {ty.span()=>
            ::docket::__private::keep_result::<#ty>(&__docket_context, &__docket_output);
        },
        None => quote!(::docket::__private::keep_result(&__docket_context, &__docket_output);),
    });
    let outcome = match task.output {
        // Naming the type makes rustc underline all of it, not only its first token.
        Some(ty) => quote_spanned! {ty.span()=>
            <#ty as ::docket::TaskOutput>::into_outcome(__docket_output)
        },
        None => quote!(::docket::TaskOutput::into_outcome(__docket_output)),
    };
    let body = match task.declared {
        true => quote_spanned! {function.span()=>
            async move {
                let _ = (self, __docket_context);
                ::core::result::Result::Err(::docket::__private::declared_only(#name))
            }
        },
        false => quote_spanned! {function.span()=>
            async move {
                #(#states)*
                let __docket_output = #function(#(#call_args),*).await;
                #keep_result
                #outcome
            }
        },
    };
    let requirements: Vec<TokenStream> = task
        .states()
        .map(|ty| quote_spanned!(ty.span()=> ::docket::__private::Requirement::of::<#ty>()))
        .collect();
    // Without `State` parameters the trait's default, no requirements, holds.
    let required_state = (!requirements.is_empty()).then(|| {
        quote! {
            fn required_state() -> ::std::vec::Vec<::docket::__private::Requirement> {
                ::std::vec![#(#requirements),*]
            }
        }
    });
    quote! {
        #(#cfgs)*
        impl ::docket::Task for #struct_ident {
            const NAME: &'static ::core::primitive::str = #name;
            const PARAMS: &'static [&'static ::core::primitive::str] = &[#(#params),*];

            fn policy() -> ::docket::policy::Policy {
                #policy
            }

            #required_state

            fn run(self, __docket_context: ::docket::Context) -> #future {
                #body
            }
        }
    }
}

// Input:
//     retries = 3, backoff = "fixed 5s", timeout = "30s", concurrency(track_id) = 1, result
// Output:
//     Policy::new().with_retries(3).with_backoff(Backoff::fixed(Duration::from_millis(5000)))
//         .with_timeout(Duration::from_millis(30000)).with_concurrency_by("track_id", 1)
//         .with_result(Duration::from_millis(3600000))
fn policy(args: &Args) -> TokenStream {
    // Each method is named with the user's key token, so an IDE shows `Policy`'s docs on hover.
    fn method<K: Spanned, V>(arg: &Arg<K, V>, name: &str) -> Ident {
        Ident::new(name, arg.key.span())
    }

    let mut policy = quote!(::docket::policy::Policy::new());
    if let Some(arg) = &args.retries {
        policy.extend(match arg.value {
            Retries::Times(retries) => {
                let method = method(arg, "with_retries");
                quote!(.#method(#retries))
            }
            Retries::Forever => {
                let method = method(arg, "with_retries_forever");
                quote!(.#method())
            }
        });
    }
    if let Some(arg) = &args.backoff {
        let method = method(arg, "with_backoff");
        let backoff = match arg.value {
            Backoff::Fixed(delay) => {
                let delay = duration(delay);
                quote!(::docket::policy::Backoff::fixed(#delay))
            }
            Backoff::Exponential { min, max } => {
                let (min, max) = (duration(min), duration(max));
                quote!(::docket::policy::Backoff::exponential(#min, #max))
            }
        };
        policy.extend(quote!(.#method(#backoff)));
    }
    if let Some(arg) = &args.jitter {
        let (method, percent) = (method(arg, "with_jitter"), arg.value);
        policy.extend(quote!(.#method(#percent)));
    }
    if let Some(arg) = &args.timeout {
        let (method, timeout) = (method(arg, "with_timeout"), duration(arg.value));
        policy.extend(quote!(.#method(#timeout)));
    }
    if let Some(arg) = &args.every {
        let (method, period) = (method(arg, "with_every"), duration(arg.value));
        policy.extend(quote!(.#method(#period)));
    }
    if let Some(arg) = &args.cron {
        let (method, expression) = (method(arg, "with_cron"), &arg.value);
        let tz = match &args.tz {
            Some(tz) => tz.value.clone(),
            None => LitStr::new("UTC", arg.key.span),
        };
        policy.extend(quote!(.#method(#expression, #tz)));
    }
    if let Some(arg) = &args.concurrency {
        let limit = arg.value.value;
        policy.extend(per_argument(arg, "with_concurrency", quote!(#limit)));
    }
    if let Some(arg) = &args.rate_limit {
        let (count, window) = (arg.value.value.count, duration(arg.value.value.window));
        policy.extend(per_argument(
            arg,
            "with_rate_limit",
            quote!(#count, #window),
        ));
    }
    if let Some(arg) = &args.debounce {
        let window = duration(arg.value.value);
        policy.extend(per_argument(arg, "with_debounce", quote!(#window)));
    }
    if let Some(arg) = &args.cooldown {
        // The window was checked above; the helper takes it as checked (see its docs).
        let method = method(arg, "with_cooldown");
        let window = duration(arg.value.value);
        let param = match &arg.value.param {
            None => quote!(::core::option::Option::None),
            Some(param) => {
                let param = LitStr::new(&unraw(param), param.span());
                quote!(::core::option::Option::Some(#param))
            }
        };
        policy.extend(quote!(.#method(::docket::__private::cooldown(#param, #window))));
    }
    if let Some(arg) = &args.result {
        let (method, ttl) = (method(arg, "with_result"), duration(arg.value));
        policy.extend(quote!(.#method(#ttl)));
    }
    policy
}

/// `.with_concurrency(4)` for the whole task, `.with_concurrency_by("track_id", 1)` per argument
/// value: the argument by the name serde gives its field.
fn per_argument<K: Spanned, V>(
    arg: &Arg<K, PerArgument<V>>,
    name: &str,
    values: TokenStream,
) -> TokenStream {
    match &arg.value.param {
        None => {
            let method = Ident::new(name, arg.key.span());
            quote!(.#method(#values))
        }
        Some(param) => {
            let method = format_ident!("{name}_by", span = arg.key.span());
            let param = LitStr::new(&unraw(param), param.span());
            quote!(.#method(#param, #values))
        }
    }
}

// Input:
//     async fn scan_copyright(track_id: i64, ctx: Context, State(db): State<Db>) { .. }
// Output:
//     [let __docket_state_2 = ::docket::__private::state::<Db>(&__docket_context)?;]
//     [self.track_id, __docket_context, __docket_state_2]
fn call_args(args: &Args, task: &TaskFn<'_>) -> (Vec<TokenStream>, Vec<TokenStream>) {
    let mut states = Vec::new();
    let call_args = task
        .params
        .iter()
        .enumerate()
        .map(|(index, param)| match param {
            Param::Argument(arg) => {
                let ident = arg.ident;
                quote!(self.#ident)
            }
            // Spanned at the user's type, so a `Context` that is not docket's is a type mismatch
            // there. `keep_result` needs the context after the call.
            Param::Context(param) if args.result.is_some() => {
                quote_spanned!(param.ty.span()=> __docket_context.clone())
            }
            Param::Context(param) => quote_spanned!(param.ty.span()=> __docket_context),
            Param::State { param, inner } => {
                let binding = format_ident!("__docket_state_{index}");
                states.push(quote_spanned! {param.ty.span()=>
                    let #binding = ::docket::__private::state::<#inner>(&__docket_context)?;
                });
                quote!(#binding)
            }
        })
        .collect();
    (states, call_args)
}

fn duration(duration: std::time::Duration) -> TokenStream {
    // `parse_duration` only yields whole milliseconds that fit a `u64`.
    let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
    let millis = Literal::u64_unsuffixed(millis);
    quote!(::core::time::Duration::from_millis(#millis))
}

// Input:
//     async fn scan_copyright(track_id: i64) { .. }
// Output:
//     const _: () = {
//         ::docket::__private::inventory::submit! {
//             ::docket::__private::Registration::of::<ScanCopyright>()
//         }
//     };
fn registration(task: &TaskFn<'_>) -> TokenStream {
    let TaskFn {
        struct_ident, cfgs, ..
    } = task;
    quote! {
        #(#cfgs)*
        const _: () = {
            ::docket::__private::inventory::submit! {
                ::docket::__private::Registration::of::<#struct_ident>()
            }
        };
    }
}

// Input:
//     async fn scan_copyright(track_id: i64, url: String) { .. }
// Output (each assertion spanned at the argument's type):
//     const _: () = {
//         ::docket::__private::assert_argument::<i64>();
//         ::docket::__private::assert_argument::<String>();
//     };
fn checks(task: &TaskFn<'_>) -> TokenStream {
    let cfgs = &task.cfgs;
    let arguments = task.arguments().map(|arg| {
        let ty = arg.ty;
        quote_spanned!(ty.span()=> ::docket::__private::assert_argument::<#ty>();)
    });
    quote! {
        #(#cfgs)*
        const _: () = {
            #(#arguments)*
        };
    }
}

fn unraw(ident: &Ident) -> String {
    syn::ext::IdentExt::unraw(ident).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::{File, ImplItem, ItemConst, ItemImpl, ItemStruct, parse_quote};

    fn expand(attr: TokenStream, item: TokenStream) -> File {
        syn::parse2(task(attr, item)).expect("the expansion parses as items")
    }

    fn scan_copyright() -> File {
        expand(
            quote!(
                retries = 3,
                backoff = "exponential 1s..60s",
                timeout = "30s"
            ),
            quote! {
                /// Scan an uploaded track.
                pub async fn scan_copyright(track_id: i64, mut audio_url: String)
                    -> Result<(), ScanError>
                {
                    Ok(())
                }
            },
        )
    }

    /// Token text without the spacing `quote` puts between tokens, nor the trailing commas
    /// rustfmt puts into the expected code.
    fn text(tokens: impl quote::ToTokens) -> String {
        let text = tokens.to_token_stream().to_string().replace(' ', "");
        text.replace(",)", ")")
            .replace(",}", "}")
            .replace(",]", "]")
            .replace(",>", ">")
    }

    fn impls(file: &File) -> Vec<&ItemImpl> {
        file.items
            .iter()
            .filter_map(|item| match item {
                Item::Impl(item) => Some(item),
                _ => None,
            })
            .collect()
    }

    fn method<'a>(item: &'a ItemImpl, name: &str) -> &'a syn::ImplItemFn {
        item.items
            .iter()
            .find_map(|item| match item {
                ImplItem::Fn(method) if method.sig.ident == name => Some(method),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no `{name}` in the impl"))
    }

    #[test]
    fn the_function_comes_first_and_unchanged() {
        let file = scan_copyright();
        let Item::Fn(function) = &file.items[0] else {
            panic!("the function comes first")
        };
        let expected: syn::ItemFn = parse_quote! {
            /// Scan an uploaded track.
            pub async fn scan_copyright(track_id: i64, mut audio_url: String)
                -> Result<(), ScanError>
            {
                Ok(())
            }
        };
        assert_eq!(text(function), text(expected));
    }

    #[test]
    fn the_struct_carries_the_arguments_docs_and_visibility() {
        let file = scan_copyright();
        let strukt: &ItemStruct = file
            .items
            .iter()
            .find_map(|item| match item {
                Item::Struct(strukt) => Some(strukt),
                _ => None,
            })
            .unwrap();
        let expected: ItemStruct = parse_quote! {
            /// Scan an uploaded track.
            #[derive(
                ::docket::__private::serde::Serialize,
                ::docket::__private::serde::Deserialize,
                ::core::fmt::Debug,
                ::core::clone::Clone,
            )]
            #[serde(crate = "::docket::__private::serde")]
            pub struct ScanCopyright {
                #[doc = " The `track_id` argument of [`scan_copyright`]."]
                pub track_id: i64,
                #[doc = " The `audio_url` argument of [`scan_copyright`]."]
                pub audio_url: String,
            }
        };
        assert_eq!(text(strukt), text(expected));
    }

    #[test]
    fn undocumented_private_functions_give_private_documented_structs() {
        let file = expand(
            quote!(),
            quote!(
                async fn ping(count: u32) {}
            ),
        );
        let Some(Item::Struct(strukt)) = file.items.iter().find(|i| matches!(i, Item::Struct(_)))
        else {
            panic!("no struct")
        };
        assert!(matches!(strukt.vis, syn::Visibility::Inherited));
        let doc = text(&strukt.attrs[0]);
        assert_eq!(
            doc,
            text(quote!(#[doc = " Arguments of the [`ping`] task."]))
        );
        let field = strukt.fields.iter().next().unwrap();
        assert!(matches!(field.vis, syn::Visibility::Inherited));
    }

    #[test]
    fn schedule_takes_the_arguments_by_their_plain_names() {
        let file = scan_copyright();
        let schedule = method(impls(&file)[0], "schedule");
        assert_eq!(text(&schedule.vis), "pub");
        assert_eq!(
            text(&schedule.sig),
            text(quote! {
                fn schedule(track_id: i64, audio_url: String)
                    -> ::docket::Schedule<ScanCopyright>
            })
        );
        assert_eq!(
            text(&schedule.block),
            text(quote!({
                ::docket::Schedule::new(ScanCopyright {
                    track_id,
                    audio_url,
                })
            }))
        );
        let free = file
            .items
            .iter()
            .find_map(|item| match item {
                Item::Fn(function) if function.sig.ident == "schedule_scan_copyright" => {
                    Some(function)
                }
                _ => None,
            })
            .expect("a free `schedule_scan_copyright`");
        assert_eq!(
            text(&free.block),
            text(quote!({ ScanCopyright::schedule(track_id, audio_url) }))
        );
        for attrs in [&schedule.attrs, &free.attrs] {
            let allow = "#[allow(dead_code,clippy::too_many_arguments)]";
            assert!(attrs.iter().any(|a| text(a) == allow));
            assert!(attrs.iter().any(|a| a.path().is_ident("doc")));
        }
    }

    #[test]
    fn the_task_impl_names_policy_and_runs_the_function() {
        let file = scan_copyright();
        let task_impl = impls(&file)[1];
        assert_eq!(
            text(&task_impl.trait_.as_ref().unwrap().1),
            "::docket::Task"
        );
        let ImplItem::Const(name) = &task_impl.items[0] else {
            panic!("`NAME` comes first")
        };
        assert_eq!(text(&name.expr), "\"scan_copyright\"");
        let ImplItem::Const(params) = &task_impl.items[1] else {
            panic!("`PARAMS` comes second")
        };
        assert_eq!(text(&params.expr), text(quote!(&["track_id", "audio_url"])));
        assert_eq!(
            text(&method(task_impl, "policy").block),
            text(quote!({
                ::docket::policy::Policy::new()
                    .with_retries(3u32)
                    .with_backoff(::docket::policy::Backoff::exponential(
                        ::core::time::Duration::from_millis(1000),
                        ::core::time::Duration::from_millis(60000),
                    ))
                    .with_timeout(::core::time::Duration::from_millis(30000))
            }))
        );
        let run = method(task_impl, "run");
        assert_eq!(
            text(&run.block),
            text(quote!({
                async move {
                    let __docket_output = scan_copyright(self.track_id, self.audio_url).await;
                    <Result<(), ScanError> as ::docket::TaskOutput>::into_outcome(__docket_output)
                }
            }))
        );
    }

    #[test]
    fn name_and_fixed_backoff_are_honoured() {
        let file = expand(
            quote!(name = "ping-v2", backoff = "fixed 250ms"),
            quote!(
                async fn ping() {}
            ),
        );
        let task_impl = impls(&file)[1];
        let ImplItem::Const(name) = &task_impl.items[0] else {
            panic!("`NAME` comes first")
        };
        assert_eq!(text(&name.expr), "\"ping-v2\"");
        assert_eq!(
            text(&method(task_impl, "policy").block),
            text(quote!({
                ::docket::policy::Policy::new().with_backoff(::docket::policy::Backoff::fixed(
                    ::core::time::Duration::from_millis(250),
                ))
            }))
        );
        let run = method(task_impl, "run");
        assert!(text(&run.block).contains("::docket::TaskOutput::into_outcome(__docket_output)"));
    }

    #[test]
    fn registration_and_checks_hide_in_anonymous_consts() {
        let file = scan_copyright();
        let consts: Vec<&ItemConst> = file
            .items
            .iter()
            .filter_map(|item| match item {
                Item::Const(item) => Some(item),
                _ => None,
            })
            .collect();
        assert_eq!(consts.len(), 2);
        assert!(consts.iter().all(|c| c.ident == "_"));
        assert_eq!(
            text(&consts[0].expr),
            text(quote!({
                ::docket::__private::assert_argument::<i64>();
                ::docket::__private::assert_argument::<String>();
            }))
        );
        assert_eq!(
            text(&consts[1].expr),
            text(quote!({
                ::docket::__private::inventory::submit! {
                    ::docket::__private::Registration::of::<ScanCopyright>()
                }
            }))
        );
    }

    #[test]
    fn cfg_attributes_follow_every_generated_item() {
        let file = expand(
            quote!(),
            quote!(
                #[cfg(feature = "jobs")]
                async fn ping() {}
            ),
        );
        assert_eq!(file.items.len(), 7);
        for item in &file.items {
            let attrs = match item {
                Item::Fn(item) => &item.attrs,
                Item::Struct(item) => &item.attrs,
                Item::Impl(item) => &item.attrs,
                Item::Const(item) => &item.attrs,
                other => panic!("unexpected item {}", text(other)),
            };
            let cfg = text(quote!(#[cfg(feature = "jobs")]));
            assert!(attrs.iter().any(|a| text(a) == cfg), "{}", text(item));
        }
    }

    #[test]
    fn on_error_the_function_is_kept_beside_every_error() {
        let item = quote!(
            fn scan(name: &str) {}
        );
        let output = task(quote!(retry = 3), item.clone()).to_string();
        assert!(output.starts_with(&item.to_string()), "{output}");
        assert_eq!(output.matches("compile_error").count(), 3, "{output}");
        assert!(output.contains("unknown argument `retry`"));
        assert!(output.contains("must be `async`"));
        assert!(output.contains("use `String` instead of `&str`"));
    }

    #[test]
    fn other_items_are_kept_beside_the_error() {
        let item = quote!(
            struct Scan;
        );
        let output = task(quote!(), item.clone()).to_string();
        assert!(output.starts_with(&item.to_string()), "{output}");
        assert!(output.contains("can only be applied to an `async fn`"));
    }
    fn ingest() -> File {
        expand(
            quote!(result = "1d", concurrency(track_id) = 2),
            quote! {
                async fn ingest(
                    track_id: i64,
                    ctx: docket::Context,
                    State(db): State<Db>,
                    mut http: docket::State<Http>,
                ) -> Result<Report, Error> {
                    todo!()
                }
            },
        )
    }

    #[test]
    fn injected_parameters_are_neither_fields_nor_schedule_parameters() {
        let file = ingest();
        let Some(Item::Struct(strukt)) = file.items.iter().find(|i| matches!(i, Item::Struct(_)))
        else {
            panic!("no struct")
        };
        let fields: Vec<String> = strukt.fields.iter().map(|f| text(&f.ident)).collect();
        assert_eq!(fields, ["track_id"]);
        let schedule = method(impls(&file)[0], "schedule");
        assert_eq!(
            text(&schedule.sig),
            text(quote!(fn schedule(track_id: i64) -> ::docket::Schedule<Ingest>))
        );
        let consts = file.items.iter().filter_map(|item| match item {
            Item::Const(item) => Some(text(&item.expr)),
            _ => None,
        });
        let checks = consts.into_iter().next().unwrap();
        assert_eq!(
            checks,
            text(quote!({
                ::docket::__private::assert_argument::<i64>();
            }))
        );
    }

    #[test]
    fn injected_parameters_are_passed_in_order_and_results_kept() {
        let file = ingest();
        let task_impl = impls(&file)[1];
        assert_eq!(
            text(&method(task_impl, "required_state").block),
            text(quote!({
                ::std::vec![
                    ::docket::__private::Requirement::of::<Db>(),
                    ::docket::__private::Requirement::of::<Http>()
                ]
            }))
        );
        let run = method(task_impl, "run");
        assert_eq!(
            text(&run.sig),
            text(quote! {
                fn run(self, __docket_context: ::docket::Context)
                    -> impl ::core::future::Future<
                        Output = ::core::result::Result<(), ::docket::TaskError>,
                    > + ::core::marker::Send
            })
        );
        assert_eq!(
            text(&run.block),
            text(quote!({
                async move {
                    let __docket_state_2 = ::docket::__private::state::<Db>(&__docket_context)?;
                    let __docket_state_3 = ::docket::__private::state::<Http>(&__docket_context)?;
                    let __docket_output = ingest(
                        self.track_id,
                        __docket_context.clone(),
                        __docket_state_2,
                        __docket_state_3,
                    )
                    .await;
                    ::docket::__private::keep_result::<Result<Report, Error>>(
                        &__docket_context,
                        &__docket_output,
                    );
                    <Result<Report, Error> as ::docket::TaskOutput>::into_outcome(__docket_output)
                }
            }))
        );
        assert_eq!(
            text(&method(task_impl, "policy").block),
            text(quote!({
                ::docket::policy::Policy::new()
                    .with_concurrency_by("track_id", 2u32)
                    .with_result(::core::time::Duration::from_millis(86400000))
            }))
        );
    }

    #[test]
    fn without_result_the_context_moves_into_the_call() {
        let file = expand(
            quote!(every = "30s"),
            quote!(
                async fn sweep(ctx: Context) {}
            ),
        );
        let task_impl = impls(&file)[1];
        let methods = task_impl.items.iter().filter_map(|item| match item {
            ImplItem::Fn(method) => Some(method.sig.ident.to_string()),
            _ => None,
        });
        assert_eq!(methods.collect::<Vec<_>>(), ["policy", "run"]);
        assert_eq!(
            text(&method(task_impl, "run").block),
            text(quote!({
                async move {
                    let __docket_output = sweep(__docket_context).await;
                    ::docket::TaskOutput::into_outcome(__docket_output)
                }
            }))
        );
        let schedule = method(impls(&file)[0], "schedule");
        assert_eq!(
            text(&schedule.sig),
            text(quote!(fn schedule() -> ::docket::Schedule<Sweep>))
        );
    }

    #[test]
    fn every_policy_key_is_a_builder_call() {
        let file = expand(
            quote!(
                retries = 5,
                backoff = "fixed 1s",
                jitter = "20%",
                timeout = "2m",
                cron = "0 9 * * MON-FRI",
                tz = "Europe/Paris",
                concurrency = 4,
                rate_limit = "10/1m",
                debounce = "1.5s",
                result,
            ),
            quote!(
                async fn report(ctx: Context) {}
            ),
        );
        assert_eq!(
            text(&method(impls(&file)[1], "policy").block),
            text(quote!({
                ::docket::policy::Policy::new()
                    .with_retries(5u32)
                    .with_backoff(::docket::policy::Backoff::fixed(
                        ::core::time::Duration::from_millis(1000),
                    ))
                    .with_jitter(20u8)
                    .with_timeout(::core::time::Duration::from_millis(120000))
                    .with_cron("0 9 * * MON-FRI", "Europe/Paris")
                    .with_concurrency(4u32)
                    .with_rate_limit(10u32, ::core::time::Duration::from_millis(60000))
                    .with_debounce(::core::time::Duration::from_millis(1500))
                    .with_result(::core::time::Duration::from_millis(3600000))
            }))
        );
        // Per argument, by the name serde gives the field.
        let file = expand(
            quote!(rate_limit(r#type) = "1/1s", debounce(r#type) = "5s"),
            quote!(
                async fn report(r#type: String) {}
            ),
        );
        assert_eq!(
            text(&method(impls(&file)[1], "policy").block),
            text(quote!({
                ::docket::policy::Policy::new()
                    .with_rate_limit_by("type", 1u32, ::core::time::Duration::from_millis(1000))
                    .with_debounce_by("type", ::core::time::Duration::from_millis(5000))
            }))
        );
        // A cooldown, checked here, goes through the runtime's helper; per argument too.
        let file = expand(
            quote!(cooldown(r#type) = "30s"),
            quote!(
                async fn report(r#type: String) {}
            ),
        );
        assert_eq!(
            text(&method(impls(&file)[1], "policy").block),
            text(quote!({
                ::docket::policy::Policy::new().with_cooldown(::docket::__private::cooldown(
                    ::core::option::Option::Some("type"),
                    ::core::time::Duration::from_millis(30000),
                ))
            }))
        );
        let file = expand(
            quote!(cron = "*/5 * * * *"),
            quote!(
                async fn tick() {}
            ),
        );
        assert_eq!(
            text(&method(impls(&file)[1], "policy").block),
            text(quote!({
                ::docket::policy::Policy::new().with_cron("*/5 * * * *", "UTC")
            }))
        );
        let file = expand(
            quote!(every = "1d"),
            quote!(
                async fn tick() {}
            ),
        );
        assert_eq!(
            text(&method(impls(&file)[1], "policy").block),
            text(quote!({
                ::docket::policy::Policy::new()
                    .with_every(::core::time::Duration::from_millis(86400000))
            }))
        );
    }

    #[test]
    fn a_mismatch_between_attribute_and_function_keeps_the_function() {
        let item = quote!(
            async fn sweep(days: u32) {}
        );
        let output = task(quote!(every = "1h", concurrency(user) = 1), item.clone()).to_string();
        assert!(output.starts_with(&item.to_string()), "{output}");
        assert_eq!(output.matches("compile_error").count(), 2, "{output}");
        assert!(output.contains("nothing passes it `days`"));
        assert!(output.contains("has no argument `user`"));
    }
}
