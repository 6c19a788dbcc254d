use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use syn::{File, Item};

use crate::expand::task;

fn expand(attr: TokenStream, item: TokenStream) -> File {
    syn::parse2(task(attr, item)).expect("the expansion parses as items")
}

/// Each item's kind and name, as `struct ScanCopyright`.
fn outline(file: &File) -> Vec<String> {
    file.items
        .iter()
        .map(|item| match item {
            Item::Fn(item) => format!("fn {}", item.sig.ident),
            Item::Struct(item) => format!("struct {}", item.ident),
            Item::Impl(item) => format!("impl {}", item.self_ty.to_token_stream()),
            Item::Macro(item) => format!("{}!", item.mac.path.to_token_stream()).replace(' ', ""),
            Item::Const(item) => format!("const {}", item.ident),
            other => panic!("unexpected item {}", other.to_token_stream()),
        })
        .collect()
}

#[test]
fn an_attribute_error_keeps_stand_ins_for_the_generated_names() {
    let file = expand(
        quote!(retries = "3"),
        quote! {
            /// Scan a track.
            pub async fn scan_copyright(track_id: i64, ctx: Context) {}
        },
    );
    assert_eq!(
        outline(&file),
        [
            "fn scan_copyright",
            "struct ScanCopyright",
            "impl ScanCopyright",
            "fn schedule_scan_copyright",
            "::core::compile_error!",
        ]
    );
    let Item::Struct(strukt) = &file.items[1] else {
        unreachable!()
    };
    let fields: Vec<String> = strukt
        .fields
        .iter()
        .map(|field| field.to_token_stream().to_string())
        .collect();
    assert_eq!(
        fields,
        ["# [doc = \" The `track_id` argument of [`scan_copyright`].\"] pub track_id : i64"]
    );
    let text = file.to_token_stream().to_string();
    assert!(
        text.contains("# [allow (dead_code , missing_debug_implementations)] pub struct"),
        "{text}"
    );
    assert!(text.contains("pub fn schedule (track_id : i64) -> :: docket :: Schedule < __docket_not_generated > { :: core :: unreachable ! () }"), "{text}");
    // No derive that could fail on the argument types, and no task: nothing to run or register.
    assert!(!text.contains("derive") && !text.contains("Task"), "{text}");
}

#[test]
fn a_function_error_keeps_stand_ins_when_the_arguments_are_clear() {
    let file = expand(
        quote!(),
        quote! {
            #[cfg(feature = "scan")]
            fn scan(track_id: i64, mut url: String) {}
        },
    );
    assert_eq!(
        outline(&file),
        [
            "fn scan",
            "struct Scan",
            "impl Scan",
            "fn schedule_scan",
            "::core::compile_error!"
        ]
    );
    for item in &file.items[1..4] {
        let text = item.to_token_stream().to_string();
        assert!(text.contains("# [cfg (feature = \"scan\")]"), "{text}");
    }
    let text = file.items[3].to_token_stream().to_string();
    assert!(
        text.contains("fn schedule_scan (track_id : i64 , url : String)"),
        "{text}"
    );
}

#[test]
fn a_mismatch_between_attribute_and_function_keeps_stand_ins() {
    let file = expand(
        quote!(concurrency(user) = 1),
        quote!(
            async fn sweep(days: u32) {}
        ),
    );
    assert!(outline(&file).contains(&"struct Sweep".to_owned()));
}

#[test]
fn no_stand_ins_when_an_argument_cannot_be_a_field() {
    for item in [
        quote!(
            async fn scan<T>(track: T) {}
        ),
        quote!(
            async fn scan<'a>(name: &'a str) {}
        ),
        quote!(
            async fn scan(name: &str) {}
        ),
        quote!(
            async fn scan(url: impl Into<String>) {}
        ),
        quote!(
            async fn scan((a, b): (i64, i64)) {}
        ),
        quote!(
            async fn scan(&self, id: i64) {}
        ),
        quote!(
            async fn _1(id: i64) {}
        ),
    ] {
        let file = expand(quote!(), item.clone());
        let outline = outline(&file);
        assert_eq!(
            outline[0],
            "fn scan".replace("scan", &outline[0][3..]),
            "{item}"
        );
        assert!(
            outline[1..]
                .iter()
                .all(|item| item == "::core::compile_error!"),
            "{item}: {outline:?}"
        );
    }
}

#[test]
fn no_stand_ins_for_what_is_not_a_function() {
    let file = expand(
        quote!(retries = "3"),
        quote!(
            struct Scan;
        ),
    );
    assert_eq!(outline(&file).len(), 3);
    assert!(!file.to_token_stream().to_string().contains("schedule"));
}
