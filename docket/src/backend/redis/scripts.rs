//! The Lua scripts, one per atomic step, loaded once per server and run with `EVALSHA`.
//! `redis::Script` loads a script again when the server answers `NOSCRIPT` (after a restart).
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

use std::sync::{LazyLock, OnceLock};

use redis::{RedisWrite, Script, ScriptInvocation, ToRedisArgs};

use super::keys::group;
use crate::error::{Error, Result};

/// What every script starts with: the names the scripts share with the Rust side.
macro_rules! prelude {
    () => {
        concat!("local GROUP = '", group!(), "'\n")
    };
}

/// The scripts, each with the includes its header names, in order: one line per script, so
/// that the struct, its `static` and the list the tests check are written once.
macro_rules! scripts {
    ($($name:ident: $($include:ident),*;)+) => {
        pub(super) struct Scripts {
            $(pub(super) $name: Lua,)+
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
                    prelude!(),
                    $(include_str!(concat!("lua/include/", stringify!($include), ".lua")),)*
                    include_str!(concat!("lua/", stringify!($name), ".lua")),
                ),
            ),)+
        });
    };
}

scripts! {
    clear: index, entry;
    enqueue: index, delivery, store;
    tick: index, delivery, entry, settle;
    recover: index, delivery, entry, settle;
    complete: index;
    retry: index, delivery, entry, settle, store;
    bury: index, delivery, entry, settle;
    cancel: index, delivery, signals;
    replay: index, store;
    renew: ;
    retire: index, delivery, entry, settle;
    strike: signals;
    restore: signals;
    hold: index, delivery, entry, settle;
    unhold: index, store;
    admit: index, delivery, entry, settle, store;
    release: index, entry, store;
    record: ;
}

/// One script of `lua/`, assembled with the prelude and its includes.
pub(super) struct Lua {
    /// The file name in `lua/`, without `.lua`.
    name: &'static str,
    /// The includes put before it, as its header names them.
    #[cfg_attr(not(test), allow(dead_code))]
    includes: &'static [&'static str],
    /// The script file alone, whose header declares its contract.
    source: &'static str,
    script: Script,
    /// The contract of its header, read at its first call.
    contract: OnceLock<Contract>,
}

impl Lua {
    fn new(
        name: &'static str,
        includes: &'static [&'static str],
        source: &'static str,
        assembled: &'static str,
    ) -> Lua {
        Lua {
            name,
            includes,
            source,
            script: Script::new(assembled),
            contract: OnceLock::new(),
        }
    }

    /// A call of this script, to be given its keys and arguments.
    pub(super) fn prepare_invoke(&self) -> Invocation<'_> {
        Invocation {
            lua: self,
            invocation: self.script.prepare_invoke(),
            keys: 0,
            argv: 0,
        }
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

/// A call of a script being put together. It counts the keys and arguments it is given, so that
/// they can be held against the script's header before the call is sent (`checked`).
pub(super) struct Invocation<'a> {
    lua: &'a Lua,
    invocation: ScriptInvocation<'a>,
    keys: usize,
    argv: usize,
}

impl<'a> Invocation<'a> {
    /// Add a key: `KEYS[n]` in the script (a list adds one per item).
    pub(super) fn key<T: ToRedisArgs>(&mut self, key: T) -> &mut Self {
        self.keys += values(&key);
        self.invocation.key(key);
        self
    }

    /// Add an argument: `ARGV[n]` in the script (a list adds one per item).
    pub(super) fn arg<T: ToRedisArgs>(&mut self, arg: T) -> &mut Self {
        self.argv += values(&arg);
        self.invocation.arg(arg);
        self
    }

    /// The call, when it has as many keys and arguments as the script's header declares. One
    /// that has not is a bug in docket: it panics in debug builds, where every test that runs
    /// the call shows it, and is refused with an error in release builds, never sent.
    pub(super) fn checked(&self) -> Result<&ScriptInvocation<'a>> {
        let contract = self.lua.contract();
        if contract.keys.admits(self.keys) && contract.argv.admits(self.argv) {
            return Ok(&self.invocation);
        }
        let mismatch = Mismatch {
            script: self.lua.name,
            keys: self.keys,
            argv: self.argv,
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
        f.debug_struct("Invocation")
            .field("script", &self.lua)
            .field("keys", &self.keys)
            .field("argv", &self.argv)
            .finish()
    }
}

/// How many values `value` gives a script: one, or one per item of a list.
fn values(value: &impl ToRedisArgs) -> usize {
    /// Counts the values written to it, and keeps none.
    struct Count(usize);

    impl RedisWrite for Count {
        fn write_arg(&mut self, _: &[u8]) {
            self.0 += 1;
        }

        fn writer_for_next_arg(&mut self) -> impl std::io::Write + '_ {
            self.0 += 1;
            std::io::sink()
        }
    }

    let mut count = Count(0);
    value.write_redis_args(&mut count);
    count.0
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
        assert_eq!((call.keys, call.argv), (2, 5));
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
