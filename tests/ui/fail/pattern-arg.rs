#[docket::task]
async fn add((a, b): (i32, i32)) {
    let _ = a + b;
}

fn main() {}
