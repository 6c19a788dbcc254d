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

fn main() {
    let _ = ScanCopyright::schedule;
    let _ = schedule_ping;
}
