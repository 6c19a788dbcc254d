//! The Lua scripts, one per atomic step, loaded once per server and run with `EVALSHA`.
//! `redis::Script` loads a script again when the server answers `NOSCRIPT` (after a restart).
//! Scripts that store tasks start with `store.lua`, their shared function.

use std::sync::LazyLock;

use redis::Script;

pub(super) struct Scripts {
    pub(super) enqueue: Script,
    pub(super) tick: Script,
    pub(super) complete: Script,
    pub(super) retry: Script,
    pub(super) bury: Script,
    pub(super) cancel: Script,
    pub(super) replay: Script,
    pub(super) renew: Script,
    pub(super) retire: Script,
}

pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: Script::new(concat!(
        include_str!("lua/store.lua"),
        include_str!("lua/enqueue.lua")
    )),
    tick: Script::new(include_str!("lua/tick.lua")),
    complete: Script::new(include_str!("lua/complete.lua")),
    retry: Script::new(concat!(
        include_str!("lua/store.lua"),
        include_str!("lua/retry.lua")
    )),
    bury: Script::new(include_str!("lua/bury.lua")),
    cancel: Script::new(include_str!("lua/cancel.lua")),
    replay: Script::new(concat!(
        include_str!("lua/store.lua"),
        include_str!("lua/replay.lua")
    )),
    renew: Script::new(include_str!("lua/renew.lua")),
    retire: Script::new(include_str!("lua/retire.lua")),
});
