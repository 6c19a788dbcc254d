//! The generated code names everything in full, so shadowing the prelude changes nothing.
//! (Primitive types such as `str` are left alone: serde's own derive does not survive those.)
#![allow(dead_code)]

struct Result;
struct Ok;
struct Err;
struct Option;
struct Some;
struct None;
struct Box;
struct Vec;
struct String;
struct Send;
struct Sync;
struct Sized;
struct Future;
struct Debug;
struct Clone;
struct Default;
struct Into;
struct Serialize;
struct Deserialize;
struct Task;
struct Policy;
struct Duration;
struct Context;
struct State;
struct Requirement;
mod core {}
mod std {}
mod serde {}
mod inventory {}

/// Scan an uploaded track.
#[docket::task(retries = 3, backoff = "exponential 1s..60s", timeout = "30s")]
pub async fn scan_copyright(
    track_id: i64,
    audio_url: ::std::string::String,
) -> ::core::result::Result<(), ::std::string::String> {
    let _ = (track_id, audio_url);
    ::core::result::Result::Ok(())
}

#[docket::task]
async fn ping() {}

#[derive(::core::clone::Clone)]
struct Db;

#[docket::task(result, concurrency(track_id) = 1, jitter = "10%")]
async fn injected(
    track_id: i64,
    ctx: ::docket::Context,
    db: ::docket::State<Db>,
) -> ::core::result::Result<u8, ::std::string::String> {
    let _ = (track_id, ctx, db);
    ::core::result::Result::Ok(1)
}

#[docket::task(every = "1m")]
async fn recurring(ctx: ::docket::Context) {
    let _ = ctx;
}

fn main() {
    let _ = ScanCopyright::schedule;
    let _ = schedule_ping;
    let _ = schedule_injected;
    let _ = Recurring::schedule;
}
