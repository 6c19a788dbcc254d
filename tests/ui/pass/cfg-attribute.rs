//! `#[cfg]` on the function applies to everything generated from it.

#[docket::task]
#[cfg(any())]
async fn never_compiled(track_id: i64) {
    let _ = track_id;
}

#[docket::task]
#[cfg(all())]
async fn always_compiled(track_id: i64) {
    let _ = track_id;
}

fn main() {
    let _ = AlwaysCompiled::schedule;
}
