//! The Lua scripts, one per atomic step, loaded once per server and run with `EVALSHA`; a
//! script the server answers `NOSCRIPT` for (after a restart) is loaded again and run.
//!
//! Each script comes in two variants. The flagged one opens with the shebang
//! `#!lua flags=allow-key-locking`: on Upstash, a script without it takes a lock on the whole
//! database, one with it locks only the hash tag of its `KEYS` (every key of a docket shares
//! `{name}`, and every script is given every key it touches), so a docket's scripts do not stall
//! the other users of a shared database. Stock Redis and Valkey refuse the flag (Redis 7:
//! `ERR Unexpected flag in script shebang: allow-key-locking`), and Redis 6 any shebang (a
//! compile error, `unexpected symbol near '#'`): a backend handle sends the flagged variant
//! until the server refuses it once ([`KeyLocking`]), then the plain one, which is the same
//! script without its first line.
//!
//! Each script in `lua/` opens with its contract: what it does, the shared functions it uses
//! (`-- include: index, store`), then `-- KEYS:`, `-- ARGV:` and `-- Returns`. When the crate
//! is built, the script is assembled as the prelude (`local GROUP = 'workers'`, the consumer
//! group of `keys.rs`), the files of `lua/include/` it names, in that order, and the script
//! itself. An include names the includes it needs the same way; a script names them all, each
//! after those it needs.
//!
//! The KEYS and ARGV lines are a list, continued on lines that start with `--` and two or more
//! spaces:
//!
//! ```text
//! list  = "none" | item { ", " item }
//! item  = name [ "..." ] [ " (" note ")" ]          a name with `...` repeats
//!       | "[" plain { ", " plain } "]..." [ " (" note ")" ]
//!                                                   a group that repeats as a whole
//! plain = name [ " (" note ")" ]
//! name  = text without `,` `(` `)` `[` `]`, not starting or ending with a space
//! note  = text whose parentheses and brackets balance: what the item means, its unit
//! ```
//!
//! Repeated items come last, and all repeat the same number of times: `now (ms), keys...` is one
//! value and any number of keys; `n, ids..., keys...` is one value, then as many ids as keys.
//!
//! The header is a checked contract: the unit tests below hold every script's body against it,
//! and every call counts the keys and arguments it is given (`Invocation`), which the one place
//! that sends scripts (`RedisBackend::invoke`) holds against it before sending.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{LazyLock, OnceLock};

use redis::{Cmd, Script, ToRedisArgs};

use super::keys::group;
use crate::error::{Error, Result};

/// The first line of a script's flagged variant (see the module docs). A shebang script on
/// Redis 7 semantics is refused whole while the server is out of memory or cannot persist,
/// rather than failing at its first write; it may not touch keys of other cluster slots. Every
/// docket script writes, and keeps to its docket's slot, so it needs no other flag.
macro_rules! shebang {
    () => {
        "#!lua flags=allow-key-locking\n"
    };
}

/// What every script starts with: the names the scripts share with the Rust side.
macro_rules! prelude {
    () => {
        concat!("local GROUP = '", group!(), "'\n")
    };
}

/// The scripts, each with the includes its header names, in order: one line per script, so
/// that the struct, its `static` and the list the tests check are written once.
macro_rules! scripts {
    ($($(#[$meta:meta])* $name:ident: $($include:ident),*;)+) => {
        pub(super) struct Scripts {
            $($(#[$meta])* pub(super) $name: Lua,)+
        }

        impl Scripts {
            /// Every script, for the tests that check them all.
            #[cfg(test)]
            fn all(&self) -> Vec<&Lua> {
                vec![$(&self.$name),+]
            }
        }

        pub(super) static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
            $($name: Lua::new(
                stringify!($name),
                &[$(stringify!($include)),*],
                include_str!(concat!("lua/", stringify!($name), ".lua")),
                concat!(
                    shebang!(),
                    prelude!(),
                    $(include_str!(concat!("lua/include/", stringify!($include), ".lua")),)*
                    include_str!(concat!("lua/", stringify!($name), ".lua")),
                ),
            ),)+
        });
    };
}

scripts! {
    // pydocket's protocol (`backend/redis/pydocket/`); assembled in every build, so the header
    // checks below cover them, and used with the `pydocket` feature.
    #[cfg_attr(not(feature = "pydocket"), allow(dead_code))]
    py_schedule: ;
    #[cfg_attr(not(feature = "pydocket"), allow(dead_code))]
    py_due: ;
    #[cfg_attr(not(feature = "pydocket"), allow(dead_code))]
    py_claim: ;
    #[cfg_attr(not(feature = "pydocket"), allow(dead_code))]
    py_terminal: ;
    #[cfg_attr(not(feature = "pydocket"), allow(dead_code))]
    py_cancel: ;
    clear: index, entry;
    enqueue: index, delivery, store, signals;
    add_fresh: ;
    tick: index, delivery, entry, settle, consumers;
    recover: index, delivery, entry, settle;
    complete: index;
    retry: index, delivery, entry, settle, store;
    bury: index, delivery, entry, settle;
    cancel: index, delivery, signals;
    replay: index, store;
    renew: ;
    retire: index, delivery, entry, settle, giveback;
    give_back: index, delivery, entry, settle, giveback;
    strike: signals;
    restore: signals;
    hold: index, delivery, entry, settle;
    unhold: index, store;
    admit: index, delivery, entry, settle, store;
    release: index, entry, store;
    record: ;
    keep: consumers, glance;
    survey: consumers, glance;
}

/// One script of `lua/`, assembled with the prelude and its includes, in its two variants.
pub(super) struct Lua {
    /// The file name in `lua/`, without `.lua`.
    name: &'static str,
    /// The includes put before it, as its header names them.
    #[cfg_attr(not(test), allow(dead_code))]
    includes: &'static [&'static str],
    /// The script file alone, whose header declares its contract.
    source: &'static str,
    /// The whole flagged text, as assembled.
    #[cfg_attr(not(test), allow(dead_code))]
    assembled: &'static str,
    /// The script with the `allow-key-locking` shebang first.
    flagged: Script,
    /// The script without it, for servers that refuse the flag.
    plain: Script,
    /// The contract of its header, read at its first call.
    contract: OnceLock<Contract>,
}

impl Lua {
    /// The script `name`, from its `flagged` assembly: the shebang, then the plain script.
    fn new(
        name: &'static str,
        includes: &'static [&'static str],
        source: &'static str,
        flagged: &'static str,
    ) -> Lua {
        let plain = flagged
            .strip_prefix(shebang!())
            .expect("the flagged variant starts with the shebang");
        Lua {
            name,
            includes,
            source,
            assembled: flagged,
            flagged: Script::new(flagged),
            plain: Script::new(plain),
            contract: OnceLock::new(),
        }
    }

    /// A call of this script, to be given its keys and arguments.
    pub(super) fn prepare_invoke(&self) -> Invocation<'_> {
        Invocation {
            lua: self,
            keys: Packed::default(),
            args: Packed::default(),
        }
    }

    /// The variant to send: flagged, or plain for a server that refuses the flag.
    pub(super) fn variant(&self, flagged: bool) -> &Script {
        if flagged { &self.flagged } else { &self.plain }
    }

    /// The contract its header declares (every header parses: the unit tests read them all).
    fn contract(&self) -> Contract {
        *self.contract.get_or_init(|| {
            Contract::parse(self.source).unwrap_or_else(|error| panic!("{self:?}: {error}"))
        })
    }
}

impl std::fmt::Debug for Lua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.lua", self.name)
    }
}

/// A call of a script being put together: its keys and arguments, so that they can be held
/// against the script's header before the call is sent (`checked`), and sent with either
/// variant of the script (`command`).
pub(super) struct Invocation<'a> {
    lua: &'a Lua,
    keys: Packed,
    args: Packed,
}

/// Values written one after another into one buffer: a call of a thousand arguments (a
/// worker's batch of acknowledgements) makes two allocations, where a list of values made one
/// each.
#[derive(Default)]
struct Packed {
    bytes: Vec<u8>,
    /// Where each value starts in `bytes`; it ends where the next starts.
    starts: Vec<usize>,
}

impl Packed {
    fn len(&self) -> usize {
        self.starts.len()
    }

    fn values(&self) -> impl Iterator<Item = &[u8]> {
        let ends = self.starts.iter().skip(1).copied();
        self.starts
            .iter()
            .zip(ends.chain([self.bytes.len()]))
            .map(|(&start, end)| &self.bytes[start..end])
    }
}

impl redis::RedisWrite for Packed {
    fn write_arg(&mut self, arg: &[u8]) {
        self.starts.push(self.bytes.len());
        self.bytes.extend_from_slice(arg);
    }

    fn writer_for_next_arg(&mut self) -> impl std::io::Write + '_ {
        self.starts.push(self.bytes.len());
        &mut self.bytes
    }
}

impl<'a> Invocation<'a> {
    /// Add a key: `KEYS[n]` in the script (a list adds one per item).
    pub(super) fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        key.write_redis_args(&mut self.keys);
        self
    }

    /// Add an argument: `ARGV[n]` in the script (a list adds one per item).
    pub(super) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        arg.write_redis_args(&mut self.args);
        self
    }

    /// The script called.
    pub(super) fn lua(&self) -> &'a Lua {
        self.lua
    }

    /// The `EVALSHA` of `script` (a variant of this call's script) with this call's keys and
    /// arguments.
    pub(super) fn command(&self, script: &Script) -> Cmd {
        let mut command = redis::cmd("EVALSHA");
        command.arg(script.get_hash()).arg(self.keys.len());
        for value in self.keys.values().chain(self.args.values()) {
            command.arg(value);
        }
        command
    }

    /// Ok when the call has as many keys and arguments as the script's header declares. One
    /// that has not is a bug in docket: it panics in debug builds, where every test that runs
    /// the call shows it, and is refused with an error in release builds, never sent.
    pub(super) fn checked(&self) -> Result<()> {
        let contract = self.lua.contract();
        if contract.keys.admits(self.keys.len()) && contract.argv.admits(self.args.len()) {
            return Ok(());
        }
        let mismatch = Mismatch {
            script: self.lua.name,
            keys: self.keys.len(),
            argv: self.args.len(),
            contract,
        };
        if cfg!(debug_assertions) {
            panic!("{mismatch}");
        }
        Err(Error::Backend {
            source: Box::new(mismatch),
        })
    }
}

impl std::fmt::Debug for Invocation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys and arguments may carry task data: only their numbers are shown.
        f.debug_struct("Invocation")
            .field("script", &self.lua)
            .field("keys", &self.keys.len())
            .field("argv", &self.args.len())
            .finish()
    }
}

/// What a backend handle knows of its server and the `allow-key-locking` flag: nothing yet,
/// that it takes the flagged scripts, or that it refused them once (then it is sent the plain
/// ones for the handle's life).
#[derive(Debug, Default)]
pub(super) struct KeyLocking {
    state: AtomicU8,
    /// Held by the call that finds out, so that the calls made meanwhile wait for its answer
    /// rather than each be refused in turn.
    probe: tokio::sync::Mutex<()>,
}

/// The states of [`KeyLocking`].
const UNKNOWN: u8 = 0;
const TAKEN: u8 = 1;
const REFUSED: u8 = 2;

/// What a call of a script should do about the flag.
#[derive(Debug)]
pub(super) enum Locking<'a> {
    /// Send the flagged variant; the server takes it.
    Flagged,
    /// Send the plain variant; the server refused the flag.
    Plain,
    /// Send the flagged variant and report what came of it ([`KeyLocking::learn`]); the
    /// guard keeps the other calls waiting meanwhile.
    Probe(tokio::sync::MutexGuard<'a, ()>),
}

impl KeyLocking {
    /// How the next call goes: by what is known; while nothing is, the first call finds out and
    /// the others wait for its answer (or, if it found nothing out, send the flagged variant
    /// side by side rather than each wait for the one before).
    pub(super) async fn next(&self) -> Locking<'_> {
        match self.state.load(Ordering::Acquire) {
            TAKEN => return Locking::Flagged,
            REFUSED => return Locking::Plain,
            _ => {}
        }
        if let Ok(guard) = self.probe.try_lock() {
            return match self.state.load(Ordering::Acquire) {
                UNKNOWN => Locking::Probe(guard),
                REFUSED => Locking::Plain,
                _ => Locking::Flagged,
            };
        }
        drop(self.probe.lock().await);
        match self.state.load(Ordering::Acquire) {
            REFUSED => Locking::Plain,
            _ => Locking::Flagged,
        }
    }

    /// Learn from the answer to a flagged call: a success means the server takes the flag, a
    /// refusal of the flag (see [`refuses_key_locking`]) that it does not; anything else (an
    /// outage) tells nothing. Returns whether the flag was refused, and the call should be sent
    /// again with the plain variant.
    pub(super) fn learn<T>(&self, answer: &Result<T>) -> bool {
        match answer {
            Ok(_) => {
                let _ = self.state.compare_exchange(
                    UNKNOWN,
                    TAKEN,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                false
            }
            Err(Error::Backend { source }) if refuses_key_locking(&source.to_string()) => {
                if self.state.swap(REFUSED, Ordering::AcqRel) != REFUSED {
                    tracing::debug!(
                        "the Redis server refuses the `allow-key-locking` script flag; \
                         docket's scripts are sent without it"
                    );
                }
                true
            }
            Err(_) => false,
        }
    }
}

/// Whether a server's answer to a flagged script says it does not take the shebang: Redis 7 and
/// Valkey name the flag they do not know (`Unexpected flag in script shebang:
/// allow-key-locking`), Redis 6 and older fail to compile the line (`Error compiling script
/// (new function): user_script:1: unexpected symbol near '#'`). Either comes before the script
/// runs, so sending the plain variant next runs it once.
pub(super) fn refuses_key_locking(message: &str) -> bool {
    message.contains("shebang") || message.contains("unexpected symbol near '#'")
}

/// A script called with other numbers of keys or arguments than its header declares.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{script}.lua` was called with {keys} KEYS and {argv} ARGV, where its header declares {} KEYS and {} ARGV",
    .contract.keys,
    .contract.argv
)]
struct Mismatch {
    script: &'static str,
    keys: usize,
    argv: usize,
    contract: Contract,
}

/// How many KEYS or ARGV a script takes: `fixed` values, then any number of repetitions of
/// `step` more (none when `step` is 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Arity {
    fixed: usize,
    step: usize,
}

impl Arity {
    /// Whether `count` values fit.
    fn admits(self, count: usize) -> bool {
        match count.checked_sub(self.fixed) {
            None => false,
            Some(0) => true,
            Some(rest) => self.step > 0 && rest % self.step == 0,
        }
    }

    /// Whether a script may read the value at `position` (from 1) by its literal index: a fixed
    /// one, or one of the first repetition.
    #[cfg(test)]
    fn declares(self, position: usize) -> bool {
        position >= 1 && position <= self.fixed + self.step
    }
}

impl std::fmt::Display for Arity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.step {
            0 => write!(f, "{}", self.fixed),
            1 => write!(f, "{} or more", self.fixed),
            step => write!(f, "{} plus a multiple of {step}", self.fixed),
        }
    }
}

/// What a script's header declares it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Contract {
    keys: Arity,
    argv: Arity,
}

impl Contract {
    /// The contract in the `-- KEYS:` and `-- ARGV:` lines of a script, in that order.
    fn parse(source: &str) -> Result<Contract, String> {
        let mut lines = source
            .lines()
            .skip_while(|line| !line.starts_with("-- KEYS:"))
            .peekable();
        let keys = header_list(&mut lines, "-- KEYS:")?;
        let argv = header_list(&mut lines, "-- ARGV:")?;
        Ok(Contract {
            keys: arity(&keys).map_err(|error| format!("KEYS: {error}"))?,
            argv: arity(&argv).map_err(|error| format!("ARGV: {error}"))?,
        })
    }
}

/// The list after `tag`, on the next line and the continuation lines after it.
fn header_list<'a>(
    lines: &mut std::iter::Peekable<impl Iterator<Item = &'a str>>,
    tag: &str,
) -> Result<String, String> {
    let first = lines.next().unwrap_or_default();
    let Some(rest) = first.strip_prefix(tag) else {
        return Err(format!("expected a `{tag}` line, found `{first}`"));
    };
    let mut list = rest.trim().to_owned();
    while let Some(line) = lines.next_if(|line| line.starts_with("--  ")) {
        list.push(' ');
        list.push_str(line[2..].trim());
    }
    Ok(list)
}

/// The arity of a KEYS or ARGV list (see the grammar above).
fn arity(list: &str) -> Result<Arity, String> {
    if list == "none" {
        return Ok(Arity { fixed: 0, step: 0 });
    }
    let mut arity = Arity { fixed: 0, step: 0 };
    for item in split_top(list)? {
        let (repeats, width) = item_width(item)?;
        if repeats {
            arity.step += width;
        } else if arity.step > 0 {
            return Err(format!("`{item}` comes after a repeated item"));
        } else {
            arity.fixed += width;
        }
    }
    Ok(arity)
}

/// Whether one item of a list repeats, and how many values it stands for.
fn item_width(item: &str) -> Result<(bool, usize), String> {
    let bare = strip_note(item)?;
    let (repeats, bare) = match bare.strip_suffix("...") {
        Some(bare) => (true, bare),
        None => (false, bare),
    };
    if let Some(group) = bare.strip_prefix('[') {
        let Some(group) = group.strip_suffix(']').filter(|_| repeats) else {
            return Err(format!("`{item}`: a group is written `[a, b]...`"));
        };
        let mut width = 0;
        for inner in split_top(group)? {
            if item_width(inner)? != (false, 1) {
                return Err(format!("`{item}`: a group holds plain names"));
            }
            width += 1;
        }
        return Ok((true, width));
    }
    if bare.is_empty() || bare.contains([',', '(', ')', '[', ']']) || bare.trim() != bare {
        return Err(format!("`{item}` is no name, `name...` or `[a, b]...`"));
    }
    Ok((repeats, 1))
}

/// The item without its trailing ` (note)`.
fn strip_note(item: &str) -> Result<&str, String> {
    if !item.ends_with(')') {
        return Ok(item);
    }
    let mut depth = 0;
    for (at, c) in item.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => depth -= 1,
            _ => {}
        }
        if depth == 0 {
            return item[..at]
                .strip_suffix(' ')
                .ok_or_else(|| format!("`{item}`: a note follows its name after a space"));
        }
    }
    Err(format!("`{item}`: unbalanced parentheses"))
}

/// The items of a list: split at the commas outside parentheses and brackets.
fn split_top(list: &str) -> Result<Vec<&str>, String> {
    let (mut items, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (at, c) in list.char_indices() {
        match c {
            '(' | '[' => depth += 1,
            ')' | ']' => depth -= 1,
            ',' if depth == 0 => {
                items.push(list[start..at].trim());
                start = at + 1;
            }
            _ => {}
        }
        if depth < 0 {
            return Err(format!("`{list}`: unbalanced parentheses"));
        }
    }
    items.push(list[start..].trim());
    if depth != 0 || items.iter().any(|item| item.is_empty()) {
        return Err(format!("`{list}`: unbalanced parentheses or an empty item"));
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::PathBuf;

    use super::*;

    fn lua_dir() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/backend/redis/lua")
    }

    /// The `.lua` files of a folder, by name without `.lua`.
    fn files(dir: PathBuf) -> BTreeMap<String, String> {
        std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
            .map(|entry| entry.expect("a readable folder").path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "lua"))
            .map(|path| {
                let name = path.file_stem().unwrap().to_string_lossy().into_owned();
                (
                    name,
                    std::fs::read_to_string(&path).expect("a readable file"),
                )
            })
            .collect()
    }

    /// The names a file's `-- include:` line gives, in order; none without the line.
    fn includes(source: &str) -> Vec<&str> {
        let mut lines = source
            .lines()
            .filter_map(|line| line.strip_prefix("-- include:"));
        let names = lines
            .next()
            .map_or(Vec::new(), |list| list.split(',').map(str::trim).collect());
        assert!(lines.next().is_none(), "more than one `-- include:` line");
        names
    }

    /// The names an include defines: its `local function`s and top-level `local` constants.
    fn definitions(source: &str) -> Vec<&str> {
        let mut names = Vec::new();
        for line in source.lines() {
            if let Some(rest) = line.strip_prefix("local function ") {
                names.push(rest.split('(').next().unwrap().trim());
            } else if let Some(rest) = line.strip_prefix("local ") {
                let (list, _) = rest.split_once('=').expect("`local name = value`");
                names.extend(list.split(',').map(str::trim));
            }
        }
        names
    }

    /// The code of a file, comments removed.
    fn code(source: &str) -> String {
        source
            .lines()
            .map(|line| line.split("--").next().unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Whether `name` occurs in `code` as a whole word.
    fn uses(code: &str, name: &str) -> bool {
        let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
        code.match_indices(name).any(|(at, _)| {
            !code[..at].ends_with(word) && !code[at + name.len()..].starts_with(word)
        })
    }

    /// The literal indices `table[n]` a script reads.
    fn indices(code: &str, table: &str) -> BTreeSet<usize> {
        let open = format!("{table}[");
        code.match_indices(&open)
            .filter_map(|(at, _)| {
                let rest = &code[at + open.len()..];
                let digits = &rest[..rest.find(']')?];
                digits.parse().ok()
            })
            .collect()
    }

    #[test]
    fn the_header_grammar_reads_fixed_and_repeated_items() {
        let parse = |list: &str| arity(list);
        assert_eq!(parse("none"), Ok(Arity { fixed: 0, step: 0 }));
        assert_eq!(
            parse("now (ms, since the epoch), most tasks to move, consumer"),
            Ok(Arity { fixed: 3, step: 0 })
        );
        assert_eq!(parse("now (ms), keys..."), Ok(Arity { fixed: 1, step: 1 }));
        assert_eq!(
            parse("n, ids... (n ids), keys... (n keys)"),
            Ok(Arity { fixed: 1, step: 2 })
        );
        assert_eq!(
            parse("now, [key, message, due (ms), mode ('add' (keep it))]... (a task each)"),
            Ok(Arity { fixed: 1, step: 4 })
        );
        assert!(parse("keys..., now").is_err());
        assert!(parse("now (ms").is_err());
        assert!(parse("now, , key").is_err());
        assert!(parse("[key, message]").is_err());
        assert!(parse("now(ms)").is_err());
    }

    #[test]
    fn an_arity_admits_its_fixed_values_and_whole_repetitions() {
        let fixed = Arity { fixed: 4, step: 0 };
        assert!(fixed.admits(4) && !fixed.admits(3) && !fixed.admits(5));
        let pairs = Arity { fixed: 1, step: 2 };
        assert!(pairs.admits(1) && pairs.admits(3) && pairs.admits(5));
        assert!(!pairs.admits(0) && !pairs.admits(2));
    }

    #[test]
    fn a_call_with_the_keys_and_arguments_its_header_declares_is_sent() {
        let mut call = SCRIPTS.strike.prepare_invoke();
        call.key("strikes").key("signals").arg("{}");
        assert!(call.checked().is_ok());
        // A list gives one value per item.
        let mut call = SCRIPTS.complete.prepare_invoke();
        call.key(&["stream", "index"][..])
            .arg(2)
            .arg(&["1-0", "2-0"][..])
            .arg(vec!["a".to_owned(), "b".to_owned()]);
        assert!(call.checked().is_ok());
        assert_eq!((call.keys.len(), call.args.len()), (2, 5));
        // Each value as it was given, the empty one included, in order.
        let mut call = SCRIPTS.complete.prepare_invoke();
        call.key("stream")
            .key("index")
            .arg(2)
            .arg("1-0")
            .arg("")
            .arg("k");
        let sent = call
            .command(call.lua().variant(true))
            .args_iter()
            .map(|arg| match arg {
                redis::Arg::Simple(bytes) => bytes.to_vec(),
                _ => b"(not a value)".to_vec(),
            })
            .collect::<Vec<_>>();
        let expected: Vec<&[u8]> = vec![
            b"EVALSHA",
            SCRIPTS.complete.variant(true).get_hash().as_bytes(),
            b"2",
            b"stream",
            b"index",
            b"2",
            b"1-0",
            b"",
            b"k",
        ];
        assert_eq!(sent, expected);
    }

    #[test]
    #[cfg_attr(
        debug_assertions,
        should_panic(
            expected = "`complete.lua` was called with 2 KEYS and 4 ARGV, where its header declares 2 KEYS and 1 plus a multiple of 2 ARGV"
        )
    )]
    fn a_call_that_breaks_its_header_is_never_sent() {
        let mut call = SCRIPTS.complete.prepare_invoke();
        call.key("stream")
            .key("index")
            .arg(2)
            .arg("1-0")
            .arg("2-0")
            .arg("a");
        let error = call.checked().map(drop).unwrap_err();
        let Error::Backend { source } = error else {
            panic!("{error:?}");
        };
        assert!(
            source
                .to_string()
                .starts_with("`complete.lua` was called with")
        );
    }

    #[test]
    fn every_script_declares_the_keys_and_argv_it_reads() {
        for (name, source) in files(lua_dir()) {
            let contract = Contract::parse(&source).unwrap_or_else(|error| {
                panic!("{name}.lua: no `-- KEYS:` and `-- ARGV:` header to parse: {error}")
            });
            let code = code(&source);
            for (table, arity) in [("KEYS", contract.keys), ("ARGV", contract.argv)] {
                let read = indices(&code, table);
                for position in &read {
                    assert!(
                        arity.declares(*position),
                        "{name}.lua reads {table}[{position}], which its header does not declare"
                    );
                }
                for position in 1..=arity.fixed {
                    assert!(
                        read.contains(&position),
                        "{name}.lua declares {table}[{position}] but never reads it"
                    );
                }
            }
        }
    }

    #[test]
    fn every_script_uses_only_the_includes_it_names() {
        let available = files(lua_dir().join("include"));
        let defined: BTreeMap<&str, Vec<&str>> = available
            .iter()
            .map(|(name, source)| (name.as_str(), definitions(source)))
            .collect();
        let scripts = files(lua_dir());
        for (name, source) in available
            .iter()
            .map(|(name, source)| (format!("include/{name}"), source))
            .chain(scripts.iter().map(|(name, source)| (name.clone(), source)))
        {
            let named = includes(source);
            let code = code(source);
            for (i, include) in named.iter().enumerate() {
                let Some(its_source) = available.get(*include) else {
                    panic!("{name}.lua names `{include}`: there is no lua/include/{include}.lua");
                };
                for needed in includes(its_source) {
                    assert!(
                        named[..i].contains(&needed),
                        "{name}.lua names `{include}`, which needs `{needed}` named before it"
                    );
                }
            }
            let own = name.strip_prefix("include/");
            for (include, names) in &defined {
                if named.contains(include) || own == Some(*include) {
                    continue;
                }
                for function in names {
                    assert!(
                        !uses(&code, function),
                        "{name}.lua uses `{function}` of lua/include/{include}.lua; add \
                         `{include}` to its `-- include:` line"
                    );
                }
            }
        }
    }

    #[test]
    fn the_flagged_variant_is_the_plain_script_under_a_shebang_first_line() {
        for lua in SCRIPTS.all() {
            let (first, plain) = lua.assembled.split_once('\n').unwrap();
            assert_eq!(first, "#!lua flags=allow-key-locking", "{lua:?}");
            assert!(
                plain.starts_with(prelude!()),
                "{lua:?}: the prelude follows"
            );
            assert!(plain.ends_with(lua.source), "{lua:?}: the script ends it");
            assert_eq!(
                lua.variant(true).get_hash(),
                Script::new(lua.assembled).get_hash()
            );
            assert_eq!(lua.variant(false).get_hash(), Script::new(plain).get_hash());
            assert!(
                !plain.contains("#!"),
                "{lua:?}: one shebang, on the first line"
            );
        }
    }

    /// The names the scripts bind from `KEYS` (`local a, b = KEYS[1], KEYS[2]`, or
    /// `t.x, t.y = KEYS[n], ARGV[m]`).
    fn bound_from_keys(code: &str) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for line in code.lines().filter(|line| line.contains("KEYS[")) {
            let Some((left, right)) = line.split_once(" = ") else {
                continue;
            };
            let left = left.trim().trim_start_matches("local ");
            for (name, value) in left.split(',').zip(right.split(", ")) {
                if value.trim().starts_with("KEYS[") {
                    names.insert(name.trim().to_owned());
                }
            }
        }
        names
    }

    /// The key each Redis call of `code` names: the argument after the command (after the
    /// subcommand, for `XGROUP` and `XINFO`).
    fn keys_called(code: &str) -> Vec<String> {
        let mut keys = Vec::new();
        for opening in ["redis.call(", "redis.pcall(", "pcall(redis.call, "] {
            for (at, _) in code.match_indices(opening) {
                let rest = &code[at + opening.len()..];
                let mut args = rest.split(',').map(str::trim);
                let command = args.next().unwrap_or_default();
                if opening != "pcall(redis.call, " && command == "redis.call" {
                    continue; // Counted as `pcall(redis.call, ..`.
                }
                if ["'XGROUP'", "'XINFO'"].contains(&command) {
                    args.next();
                }
                let key = args.next().unwrap_or_default();
                let key = key.split(')').next().unwrap_or_default();
                keys.push(key.trim().to_owned());
            }
        }
        keys
    }

    /// With `allow-key-locking`, Upstash locks the `KEYS` a script is given and refuses any
    /// other key: every key a script touches must arrive in `KEYS`, none be built inside.
    #[test]
    fn every_key_a_script_touches_comes_from_its_keys() {
        let scripts = files(lua_dir());
        let includes = files(lua_dir().join("include"));
        let keys: BTreeSet<String> = scripts
            .values()
            .flat_map(|source| bound_from_keys(&code(source)))
            .collect();
        assert!(
            keys.contains("stream") && keys.contains("task.record"),
            "{keys:?}"
        );
        for (name, source) in scripts.iter().chain(&includes) {
            let code = code(source);
            for key in keys_called(&code) {
                // `XCLAIM` with many ids is called as `unpack(args)`, `args` starting with
                // the stream.
                let built = key == "unpack(args" && code.contains("local args = { stream,");
                assert!(
                    keys.contains(&key) || built,
                    "{name}.lua calls Redis on `{key}`, which is not a name bound from KEYS"
                );
            }
        }
        for (name, source) in &scripts {
            let code = code(source);
            let own = bound_from_keys(&code);
            for key in keys_called(&code) {
                assert!(
                    own.contains(&key) || key == "unpack(args",
                    "{name}.lua calls Redis on `{key}`, which it does not bind from its KEYS"
                );
            }
        }
    }

    #[test]
    fn a_refused_flag_is_told_from_other_script_errors() {
        for refused in [
            "Unexpected flag in script shebang: allow-key-locking",
            "ERR Unexpected flag in script shebang: allow-key-locking",
            "ERR Error compiling script (new function): user_script:1: unexpected symbol near '#'",
        ] {
            assert!(refuses_key_locking(refused), "{refused}");
        }
        for other in [
            "NOSCRIPT No matching script. Please use EVAL.",
            "ERR Error compiling script (new function): user_script:3: '=' expected near 'x'",
            "ERR user_script:9: Script attempted to access nonexistent global variable 'x'",
            "NOPERM User docket has no permissions to run the 'script|load' command",
            "OOM command not allowed when used memory > 'maxmemory'.",
        ] {
            assert!(!refuses_key_locking(other), "{other}");
        }
    }

    fn refusal() -> Result<()> {
        Err(Error::Backend {
            source: "Unexpected flag in script shebang: allow-key-locking".into(),
        })
    }

    #[tokio::test]
    async fn a_handle_sends_the_plain_scripts_once_the_server_refused_the_flag() {
        let locking = KeyLocking::default();
        let Locking::Probe(guard) = locking.next().await else {
            panic!("the first call finds out");
        };
        assert!(locking.learn(&refusal()));
        drop(guard);
        assert!(matches!(locking.next().await, Locking::Plain));
        assert!(
            !locking.learn(&Ok(())),
            "a plain call's answer changes nothing"
        );
        assert!(matches!(locking.next().await, Locking::Plain));
    }

    #[tokio::test]
    async fn a_handle_keeps_the_flag_once_the_server_took_it() {
        let locking = KeyLocking::default();
        let Locking::Probe(guard) = locking.next().await else {
            panic!("the first call finds out");
        };
        let outage: Result<()> = Err(Error::Unavailable {
            source: "connection refused".into(),
        });
        assert!(!locking.learn(&outage));
        drop(guard);
        let Locking::Probe(guard) = locking.next().await else {
            panic!("an outage tells nothing: the next call finds out");
        };
        assert!(!locking.learn(&Ok(())));
        drop(guard);
        assert!(matches!(locking.next().await, Locking::Flagged));
    }

    #[tokio::test]
    async fn calls_made_while_the_first_finds_out_wait_for_its_answer() {
        let locking = std::sync::Arc::new(KeyLocking::default());
        let Locking::Probe(guard) = locking.next().await else {
            panic!("the first call finds out");
        };
        let waiting = tokio::spawn({
            let locking = std::sync::Arc::clone(&locking);
            async move { matches!(locking.next().await, Locking::Plain) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        assert!(!waiting.is_finished(), "the second call waits");
        assert!(locking.learn(&refusal()));
        drop(guard);
        assert!(waiting.await.unwrap(), "and then sends the plain variant");
    }

    #[test]
    fn every_script_is_assembled_with_the_includes_it_names() {
        let scripts = files(lua_dir());
        let mut assembled = BTreeSet::new();
        for lua in SCRIPTS.all() {
            assert_eq!(
                lua.source, scripts[lua.name],
                "{lua:?} is not the file of its name"
            );
            assert_eq!(
                lua.includes,
                includes(lua.source),
                "{lua:?}: the `scripts!` line and the `-- include:` line differ"
            );
            assembled.insert(lua.name);
        }
        let unassembled: Vec<_> = scripts
            .keys()
            .filter(|name| !assembled.contains(name.as_str()))
            .collect();
        assert!(unassembled.is_empty(), "not in `scripts!`: {unassembled:?}");
    }

    #[test]
    fn no_script_names_the_consumer_group_but_the_prelude() {
        let literals = [format!("'{}'", group!()), format!("\"{}\"", group!())];
        let scripts = files(lua_dir());
        let includes = files(lua_dir().join("include"));
        for (name, source) in scripts.iter().chain(&includes) {
            for literal in &literals {
                assert!(
                    !code(source).contains(literal.as_str()),
                    "{name}.lua writes {literal}; use `GROUP`"
                );
            }
        }
        assert_eq!(
            prelude!(),
            format!("local GROUP = '{}'\n", super::super::keys::GROUP)
        );
    }

    #[test]
    fn includes_read_no_keys_or_argv() {
        for (name, source) in files(lua_dir().join("include")) {
            let code = code(&source);
            assert!(
                !code.contains("KEYS") && !code.contains("ARGV"),
                "include/{name}.lua reads KEYS or ARGV; pass what it needs as arguments"
            );
        }
    }
}
