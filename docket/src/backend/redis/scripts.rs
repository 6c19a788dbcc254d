//! The Lua scripts, one per atomic step, loaded once per server and run with `EVALSHA`.
//! `redis::Script` loads a script again when the server answers `NOSCRIPT` (after a restart).
//! Scripts that store, settle, cancel or set aside tasks start with `store.lua`, their shared
//! functions.

use std::sync::LazyLock;

use redis::Script;

pub(super) struct Scripts {
    pub(super) enqueue: Script,
    pub(super) tick: Script,
    pub(super) recover: Script,
    pub(super) complete: Script,
    pub(super) retry: Script,
    pub(super) bury: Script,
    pub(super) cancel: Script,
    pub(super) replay: Script,
    pub(super) renew: Script,
    pub(super) retire: Script,
    pub(super) strike: Script,
    pub(super) restore: Script,
    pub(super) hold: Script,
    pub(super) unhold: Script,
    pub(super) admit: Script,
    pub(super) release: Script,
    pub(super) record: Script,
}

/// A script that starts with the shared functions of `store.lua`.
macro_rules! storing {
    ($file:literal) => {
        Script::new(concat!(
            include_str!("lua/store.lua"),
            include_str!(concat!("lua/", $file))
        ))
    };
}

pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    enqueue: storing!("enqueue.lua"),
    tick: storing!("tick.lua"),
    recover: storing!("recover.lua"),
    complete: Script::new(include_str!("lua/complete.lua")),
    retry: storing!("retry.lua"),
    bury: storing!("bury.lua"),
    cancel: storing!("cancel.lua"),
    replay: storing!("replay.lua"),
    renew: Script::new(include_str!("lua/renew.lua")),
    retire: Script::new(include_str!("lua/retire.lua")),
    strike: Script::new(include_str!("lua/strike.lua")),
    restore: Script::new(include_str!("lua/restore.lua")),
    hold: storing!("hold.lua"),
    unhold: storing!("unhold.lua"),
    admit: storing!("admit.lua"),
    release: storing!("release.lua"),
    record: storing!("record.lua"),
});
