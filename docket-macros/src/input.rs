//! Lowering the user's function to what a task needs, and rejecting what a task cannot be.
//!
//! A task's arguments travel through the queue as JSON and its future runs on any worker thread,
//! so the function must be a plain `async fn` of owned, named arguments. Two kinds of parameter
//! do not travel: a `Context` and `State<T>`s, which the worker passes in. Every problem is
//! reported at once, on the tokens at fault.

use quote::format_ident;
use syn::ext::IdentExt;
use syn::visit::Visit;
use syn::{
    Attribute, FnArg, GenericArgument, GenericParam, Ident, ItemFn, Lifetime, Pat, PatType,
    PathArguments, PathSegment, ReturnType, Type, TypeImplTrait, TypeReference, TypeSlice,
};

use crate::errors::Errors;

/// A validated task function, borrowing from the `syn::ItemFn` that is emitted unchanged.
pub(crate) struct TaskFn<'a> {
    pub(crate) item: &'a ItemFn,
    /// The task's default name: the function's, without any `r#`.
    pub(crate) name: String,
    /// `ScanCopyright` for `scan_copyright`: the argument struct, spanned at the function's name.
    pub(crate) struct_ident: Ident,
    /// `schedule_scan_copyright`, spanned at the function's name.
    pub(crate) schedule_ident: Ident,
    /// Every parameter, in the function's order.
    pub(crate) params: Vec<Param<'a>>,
    /// `None` for a function without `->`, which returns `()`.
    pub(crate) output: Option<&'a Type>,
    /// The `#[doc]` attributes, carried over to the argument struct.
    pub(crate) docs: Vec<&'a Attribute>,
    /// The `#[cfg]` attributes, repeated on every generated item so they come and go with the
    /// function.
    pub(crate) cfgs: Vec<&'a Attribute>,
    /// Declared without a body (`async fn name(..);`): another service's workers run it.
    pub(crate) declared: bool,
}

/// A function `lower` refused: every error, and the task as far as it was read when its name and
/// arguments are still clear, which is all the stand-ins next to the errors need (see
/// `fallback`).
pub(crate) struct Rejected<'a> {
    pub(crate) error: syn::Error,
    /// `None` when the struct's name or an argument cannot be written as a field: a generic,
    /// borrowed or `impl Trait` type, a pattern, or `self`.
    pub(crate) task: Option<Box<TaskFn<'a>>>,
}

/// The errors alone: `TaskFn` has nothing worth printing.
impl std::fmt::Debug for Rejected<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

/// One parameter of the task function.
pub(crate) enum Param<'a> {
    /// Serialized: a field of the argument struct and a parameter of `schedule`.
    Argument(Argument<'a>),
    /// `ctx: Context` (any path ending in `Context`), passed by the worker.
    Context(&'a PatType),
    /// `State(db): State<Db>`, taken from what the docket was given.
    State {
        param: &'a PatType,
        /// `Db`.
        inner: &'a Type,
    },
}

/// One serialized argument: a plain name (any `mut` dropped) and an owned type.
pub(crate) struct Argument<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    /// The whole `name: Type`, for errors about the argument.
    pub(crate) param: &'a PatType,
}

impl<'a> TaskFn<'a> {
    pub(crate) fn lower(item: &'a ItemFn) -> Result<TaskFn<'a>, Rejected<'a>> {
        let mut errors = Errors::default();
        let sig = &item.sig;
        // Whether the argument struct and `schedule` functions can still be written from what
        // is read, to stand in for the real ones next to the errors.
        let mut writable = sig.generics.params.is_empty();

        if let Some(constness) = &sig.constness {
            errors.push_spanned(constness, "`#[docket::task]` functions cannot be `const`");
        }
        if sig.asyncness.is_none() {
            errors.push_spanned(
                sig.fn_token,
                "`#[docket::task]` functions must be `async`; add `async` before `fn`",
            );
        }
        if let Some(unsafety) = &sig.unsafety {
            errors.push_spanned(unsafety, "`#[docket::task]` functions cannot be `unsafe`");
        }
        if let Some(abi) = &sig.abi {
            errors.push_spanned(abi, "`#[docket::task]` functions cannot be `extern`");
        }
        for param in &sig.generics.params {
            let message = match param {
                GenericParam::Lifetime(_) => "`#[docket::task]` functions cannot have lifetime \
                    parameters; task arguments are decoded from the queue, so they must be owned"
                    .to_owned(),
                GenericParam::Type(param) => format!(
                    "`#[docket::task]` functions cannot be generic; a worker decodes each \
                     argument into one concrete type: use that type instead of `{}`",
                    param.ident
                ),
                GenericParam::Const(param) => format!(
                    "`#[docket::task]` functions cannot be generic; pass `{}` as an argument \
                     instead",
                    param.ident
                ),
            };
            errors.push_spanned(param, message);
        }
        if let Some(where_clause) = &sig.generics.where_clause {
            // With generic parameters, the `where` clause is part of the mistake reported above.
            if sig.generics.params.is_empty() {
                errors.push_spanned(
                    where_clause,
                    "`#[docket::task]` functions cannot have a `where` clause",
                );
            }
        }
        if let Some(variadic) = &sig.variadic {
            errors.push_spanned(variadic, "`#[docket::task]` functions cannot be variadic");
        }

        let mut params = Vec::new();
        for input in &sig.inputs {
            let param = match input {
                FnArg::Receiver(receiver) => {
                    writable = false;
                    errors.push_spanned(
                        receiver,
                        "`#[docket::task]` functions cannot take `self`; a task is a free \
                         function: move it out of the `impl` block and pass what it needs as \
                         arguments",
                    );
                    continue;
                }
                FnArg::Typed(param) => param,
            };
            // Injected parameters never leave the worker, so any pattern and type will do; the
            // worker's types check them.
            if is_context(&param.ty) {
                if params.iter().any(|p| matches!(p, Param::Context(_))) {
                    errors.push_spanned(
                        param,
                        "a `#[docket::task]` function takes at most one `Context`; remove this \
                         parameter, and clone the first one where you need two",
                    );
                }
                params.push(Param::Context(param));
                continue;
            }
            if let Some(inner) = state_type(&param.ty) {
                params.push(Param::State { param, inner });
                continue;
            }
            writable &= OwnedType::check(&param.ty, &mut errors);
            match &*param.pat {
                Pat::Ident(pat) if pat.by_ref.is_none() && pat.subpat.is_none() => {
                    params.push(Param::Argument(Argument {
                        ident: &pat.ident,
                        ty: &param.ty,
                        param,
                    }));
                }
                pattern => {
                    writable = false;
                    errors.push_spanned(
                        pattern,
                        "`#[docket::task]` arguments must be plain names, such as `track_id: \
                         i64`; destructure inside the function instead",
                    );
                }
            }
        }

        let name = sig.ident.unraw().to_string();
        let struct_name = match upper_camel_case(&name) {
            camel if camel.starts_with(char::is_alphabetic) => camel,
            _ => {
                writable = false;
                errors.push_spanned(
                    &sig.ident,
                    format!(
                        "cannot name a struct after `{name}`; name the function in snake_case, \
                         such as `scan_track`"
                    ),
                );
                "Task".to_owned() // a placeholder, never emitted: `writable` is false
            }
        };
        let span = sig.ident.span();
        let struct_ident = format_ident!("{struct_name}", span = span);
        let schedule_ident = format_ident!("schedule_{name}", span = span);

        let output = match &sig.output {
            ReturnType::Default => None,
            ReturnType::Type(_, ty) => Some(&**ty),
        };
        let docs = attributes(item, "doc");
        let cfgs = attributes(item, "cfg");
        let task = TaskFn {
            item,
            name,
            struct_ident,
            schedule_ident,
            params,
            output,
            docs,
            cfgs,
            declared: false,
        };
        match errors.finish(()) {
            Ok(()) => Ok(task),
            Err(error) => Err(Rejected {
                error,
                task: writable.then(|| Box::new(task)),
            }),
        }
    }

    /// How generated docs name the function: a link, unless it was only declared (then there is
    /// no function to link to).
    pub(crate) fn function_doc(&self) -> String {
        match self.declared {
            true => format!("`{}`", self.name),
            false => format!("[`{}`]", self.name),
        }
    }

    pub(crate) fn ident(&self) -> &'a Ident {
        &self.item.sig.ident
    }

    /// The serialized arguments, in order: the argument struct's fields.
    pub(crate) fn arguments(&self) -> impl Iterator<Item = &Argument<'a>> + Clone {
        self.params.iter().filter_map(|param| match param {
            Param::Argument(argument) => Some(argument),
            _ => None,
        })
    }

    /// The `T` of each `State<T>` parameter, in order.
    pub(crate) fn states(&self) -> impl Iterator<Item = &'a Type> + '_ {
        self.params.iter().filter_map(|param| match param {
            Param::State { inner, .. } => Some(*inner),
            _ => None,
        })
    }
}

/// The last segment of a plain path type: `Context` in `docket::Context`.
fn last_segment(ty: &Type) -> Option<&PathSegment> {
    match ty {
        Type::Path(path) if path.qself.is_none() => path.path.segments.last(),
        // A type passed through a `macro_rules!` `$ty` arrives wrapped.
        Type::Group(group) => last_segment(&group.elem),
        Type::Paren(paren) => last_segment(&paren.elem),
        _ => None,
    }
}

/// `Context`, `docket::Context`: the run's context, which the worker passes in.
fn is_context(ty: &Type) -> bool {
    last_segment(ty)
        .is_some_and(|segment| segment.ident == "Context" && segment.arguments.is_none())
}

/// `Db` in `State<Db>` or `docket::State<Db>`. Anything else named `State` is an ordinary
/// argument, such as a user's own `enum State`.
fn state_type(ty: &Type) -> Option<&Type> {
    let segment = last_segment(ty).filter(|segment| segment.ident == "State")?;
    let PathArguments::AngleBracketed(generics) = &segment.arguments else {
        return None;
    };
    match generics.args.iter().collect::<Vec<_>>()[..] {
        [GenericArgument::Type(inner)] => Some(inner),
        _ => None,
    }
}

/// `scan_copyright` to `ScanCopyright`.
fn upper_camel_case(snake: &str) -> String {
    snake
        .split('_')
        .flat_map(|word| {
            let mut chars = word.chars();
            let first = chars.next().into_iter().flat_map(char::to_uppercase);
            first.chain(chars)
        })
        .collect()
}

fn attributes<'a>(item: &'a ItemFn, name: &str) -> Vec<&'a Attribute> {
    item.attrs
        .iter()
        .filter(|attr| attr.path().is_ident(name))
        .collect()
}

/// Walks an argument's type for what cannot come out of the queue: borrows and `impl Trait`.
struct OwnedType<'e> {
    errors: &'e mut Errors,
    owned: bool,
}

impl OwnedType<'_> {
    /// Whether `ty` is owned; if not, each reason is in `errors`.
    fn check(ty: &Type, errors: &mut Errors) -> bool {
        let mut visitor = OwnedType {
            errors,
            owned: true,
        };
        visitor.visit_type(ty);
        visitor.owned
    }

    fn push(&mut self, tokens: impl quote::ToTokens, message: impl std::fmt::Display) {
        self.owned = false;
        self.errors.push_spanned(tokens, message);
    }
}

impl<'ast> Visit<'ast> for OwnedType<'_> {
    fn visit_type_reference(&mut self, reference: &'ast TypeReference) {
        let elem = &*reference.elem;
        if is_context(elem) || state_type(elem).is_some() {
            let name = if is_context(elem) {
                "Context"
            } else {
                "State<..>"
            };
            self.push(
                reference,
                format!("take `{name}` by value, without `&`: the worker passes each run its own"),
            );
            return;
        }
        let owned = match elem {
            Type::Path(path) if path.qself.is_none() && path.path.is_ident("str") => {
                "use `String` instead of `&str`"
            }
            Type::Slice(TypeSlice { .. }) => "use `Vec<T>` instead of `&[T]`",
            _ => "take the value instead of a reference",
        };
        self.push(
            reference,
            format!("task arguments are decoded from the queue, so they must be owned: {owned}"),
        );
    }

    fn visit_lifetime(&mut self, lifetime: &'ast Lifetime) {
        if lifetime.ident != "static" {
            self.push(
                lifetime,
                "task arguments are decoded from the queue, so they cannot borrow: use owned \
                 data instead of a lifetime",
            );
        }
    }

    fn visit_type_impl_trait(&mut self, impl_trait: &'ast TypeImplTrait) {
        self.push(
            impl_trait,
            "`#[docket::task]` arguments cannot be `impl Trait`; a worker decodes each argument \
             into one concrete type: name that type",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_quote;

    fn errors(item: ItemFn) -> Vec<String> {
        match TaskFn::lower(&item) {
            Ok(_) => panic!("expected errors"),
            Err(rejected) => rejected.error.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn error(item: ItemFn) -> String {
        let mut errors = errors(item);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        errors.remove(0)
    }

    #[test]
    fn a_plain_async_fn_lowers_to_its_arguments() {
        let item: ItemFn = parse_quote! {
            /// Scan a track.
            #[cfg(feature = "scan")]
            #[allow(unused)]
            pub async fn scan(track_id: i64, mut url: String, tags: Vec<String>) -> Result<(), E> {}
        };
        let task = TaskFn::lower(&item).unwrap();
        let names: Vec<String> = task.arguments().map(|a| a.ident.to_string()).collect();
        assert_eq!(names, ["track_id", "url", "tags"]);
        assert!(task.output.is_some());
        assert_eq!(task.docs.len(), 1);
        assert_eq!(task.cfgs.len(), 1);
        assert_eq!(task.name, "scan");
        assert_eq!(task.struct_ident, "Scan");
    }

    #[test]
    fn owned_static_types_are_fine() {
        let item: ItemFn = parse_quote! {
            async fn f(a: std::borrow::Cow<'static, str>, b: Box<dyn Fn() + Send + 'static>) {}
        };
        let task = TaskFn::lower(&item).unwrap();
        assert!(task.output.is_none());
    }

    #[test]
    fn raw_identifiers_lose_their_prefix() {
        let item: ItemFn = parse_quote!(
            async fn r#match() {}
        );
        assert_eq!(TaskFn::lower(&item).unwrap().name, "match");
    }

    #[test]
    fn generated_names_follow_the_function() {
        let item: ItemFn = parse_quote!(
            async fn scan_copyright_v2() {}
        );
        let task = TaskFn::lower(&item).unwrap();
        assert_eq!(task.struct_ident, "ScanCopyrightV2");
        assert_eq!(task.schedule_ident, "schedule_scan_copyright_v2");
        let item: ItemFn = parse_quote!(
            async fn _private__job() {}
        );
        assert_eq!(TaskFn::lower(&item).unwrap().struct_ident, "PrivateJob");
        let item: ItemFn = parse_quote!(
            async fn r#move() {}
        );
        assert_eq!(TaskFn::lower(&item).unwrap().struct_ident, "Move");
        assert!(
            error(parse_quote!(
                async fn _1() {}
            ))
            .contains("cannot name a struct after `_1`")
        );
    }

    #[test]
    fn the_function_must_be_async() {
        assert_eq!(
            error(parse_quote!(
                fn f() {}
            )),
            "`#[docket::task]` functions must be `async`; add `async` before `fn`"
        );
    }

    #[test]
    fn self_is_rejected() {
        assert!(
            error(parse_quote!(
                async fn f(&self) {}
            ))
            .contains("cannot take `self`")
        );
        assert!(
            error(parse_quote!(
                async fn f(self: Box<Self>) {}
            ))
            .contains("cannot take `self`")
        );
    }

    #[test]
    fn generics_are_rejected() {
        assert!(
            error(parse_quote!(
                async fn f<T>(t: T) {}
            ))
            .contains("cannot be generic")
        );
        assert!(
            error(parse_quote!(
                async fn f<const N: usize>() {}
            ))
            .contains("cannot be generic")
        );
        assert!(
            error(parse_quote!(
                async fn f<'a>() {}
            ))
            .contains("lifetime parameters")
        );
        assert!(
            error(parse_quote!(
                async fn f()
                where
                    i32: Copy,
                {
                }
            ))
            .contains("`where` clause")
        );
        // The `where` clause is part of the generics mistake, not a second one.
        assert!(
            error(parse_quote!(
                async fn f<T>(t: T)
                where
                    T: Copy,
                {
                }
            ))
            .contains("cannot be generic")
        );
    }

    #[test]
    fn borrowed_arguments_are_rejected() {
        assert!(
            error(parse_quote!(
                async fn f(s: &str) {}
            ))
            .contains("use `String`")
        );
        assert!(
            error(parse_quote!(
                async fn f(s: &'static [u8]) {}
            ))
            .contains("use `Vec<T>`")
        );
        assert!(
            error(parse_quote!(
                async fn f(s: Vec<&mut u8>) {}
            ))
            .contains("take the value")
        );
        assert!(
            error(parse_quote!(
                async fn f(s: Cow<'_, str>) {}
            ))
            .contains("they cannot borrow")
        );
    }

    #[test]
    fn impl_trait_arguments_are_rejected() {
        assert!(
            error(parse_quote!(
                async fn f(s: impl Into<String>) {}
            ))
            .contains("`impl Trait`")
        );
        assert!(
            error(parse_quote!(
                async fn f(s: Vec<impl Send>) {}
            ))
            .contains("`impl Trait`")
        );
    }

    #[test]
    fn only_plain_names_bind_arguments() {
        for item in [
            parse_quote!(
                async fn f((a, b): (i32, i32)) {}
            ),
            parse_quote!(
                async fn f(_: i32) {}
            ),
            parse_quote!(
                async fn f(ref a: i32) {}
            ),
            parse_quote!(
                async fn f(Wrapper(a): Wrapper) {}
            ),
        ] {
            assert!(error(item).contains("must be plain names"));
        }
    }

    #[test]
    fn qualifiers_are_rejected() {
        assert!(
            error(parse_quote!(
                const async fn f() {}
            ))
            .contains("`const`")
        );
        assert!(
            error(parse_quote!(
                async unsafe fn f() {}
            ))
            .contains("`unsafe`")
        );
        assert!(
            error(parse_quote!(
                async extern "C" fn f() {}
            ))
            .contains("`extern`")
        );
    }

    #[test]
    fn every_mistake_is_reported_at_once() {
        let errors = errors(parse_quote! {
            fn f<T>(&self, (a, b): (i32, i32), s: &str, t: impl Send) {}
        });
        assert_eq!(errors.len(), 6, "{errors:#?}");
    }
    #[test]
    fn context_and_state_are_injected_not_arguments() {
        let item: ItemFn = parse_quote! {
            async fn f(
                track_id: i64,
                ctx: docket::Context,
                State(db): State<Db>,
                _: ::docket::State<std::sync::Arc<Http>>,
                mut user: u64,
            ) {}
        };
        let task = TaskFn::lower(&item).unwrap();
        let kinds: Vec<&str> = task
            .params
            .iter()
            .map(|param| match param {
                Param::Argument(_) => "argument",
                Param::Context(_) => "context",
                Param::State { .. } => "state",
            })
            .collect();
        assert_eq!(kinds, ["argument", "context", "state", "state", "argument"]);
        let names: Vec<String> = task.arguments().map(|a| a.ident.to_string()).collect();
        assert_eq!(names, ["track_id", "user"]);
        let states: Vec<String> = task
            .states()
            .map(|ty| quote::quote!(#ty).to_string().replace(' ', ""))
            .collect();
        assert_eq!(states, ["Db", "std::sync::Arc<Http>"]);
    }

    #[test]
    fn only_a_plain_context_and_a_one_type_state_are_injected() {
        let item: ItemFn = parse_quote! {
            async fn f(a: Context<T>, b: State, c: State<'static, T>, d: State<A, B>, e: Vec<Context>) {}
        };
        let task = TaskFn::lower(&item).unwrap();
        assert_eq!(task.arguments().count(), 5);
        let item: ItemFn = parse_quote!(
            async fn f(ctx: Context) {}
        );
        assert_eq!(TaskFn::lower(&item).unwrap().arguments().count(), 0);
    }

    #[test]
    fn a_second_context_is_rejected() {
        assert_eq!(
            error(parse_quote!(
                async fn f(a: Context, b: docket::Context) {}
            )),
            "a `#[docket::task]` function takes at most one `Context`; remove this parameter, \
             and clone the first one where you need two"
        );
    }

    #[test]
    fn borrowed_context_and_state_are_taken_by_value() {
        assert_eq!(
            error(parse_quote!(
                async fn f(ctx: &Context) {}
            )),
            "take `Context` by value, without `&`: the worker passes each run its own"
        );
        assert_eq!(
            error(parse_quote!(
                async fn f(db: &'a mut State<Db>) {}
            )),
            "take `State<..>` by value, without `&`: the worker passes each run its own"
        );
    }
}
