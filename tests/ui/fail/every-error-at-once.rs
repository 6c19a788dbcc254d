#[docket::task(retry = 3, timeout = "soon", backoff = "fixed 1s")]
fn scan_copyright<T>(name: &str, (a, b): (i32, i32), tags: impl IntoIterator<Item = T>) {
    let _ = (name, a, b, tags);
}

fn main() {}
