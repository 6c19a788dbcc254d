//! What the proxy holds a request against: Upstash's command list and limits, and where a
//! request's keys, hash fields and set members are.

use std::collections::HashMap;
use std::time::Duration;

use crate::redis_server::Reply;

/// The commands Upstash documents, as `NAME` (every form of the command) or `NAME SUBCOMMAND`
/// (that form only); the proxy refuses every other request with
/// `ERR Command is not available: NAME` (Upstash's reference gives no wording for this error;
/// this one is unverified).
///
/// Taken from Upstash's command reference (`redis/commands/*` in the public `upstash/docs`
/// repository, snapshot of August 2026; also listed in `../shared/reviews/redis-protocol-audit.md`
/// section R5.5 and section 8). Of note for docket:
///
/// - `CLIENT` offers only `GETNAME`, `ID`, `INFO`, `LIST`, `SETINFO` and `SETNAME`: no `UNBLOCK`,
///   no `KILL`, no `REPLY`, no `PAUSE`.
/// - `SELECT` is listed but only database 0 exists: `SELECT` of any other index is refused
///   (`ERR DB index is out of range`).
/// - `CONFIG` is left out on purpose, although Upstash's reference now lists `CONFIG GET` and
///   `CONFIG SET` for the one parameter `notify-keyspace-events`: docket has no use for it and
///   must not come to depend on server configuration. `DEBUG`, `SHUTDOWN`, `SAVE`, `BGSAVE`,
///   `SLOWLOG`, `LATENCY`, `OBJECT`, `SWAPDB`, `MOVE`, `SORT`, `SSUBSCRIBE` and the
///   cluster commands are not in the reference.
/// - `COMMAND` is accepted in every form (Upstash answers it with an empty array; the server
///   behind the proxy answers it in full).
/// - Upstash's own command families (`JSON.*`, `SEARCH.*`, `VECTOR.*`, arrays) are left out:
///   the stock `redis-server` behind the proxy could not run them anyway.
// A line a group, as Upstash's reference groups them (rustfmt would give each name a line).
#[rustfmt::skip]
pub const AVAILABLE: &[&str] = &[
    // Bitmap
    "BITCOUNT", "BITFIELD", "BITFIELD_RO", "BITOP", "BITPOS", "GETBIT", "SETBIT",
    // Connection
    "AUTH", "CLIENT GETNAME", "CLIENT ID", "CLIENT INFO", "CLIENT LIST", "CLIENT SETINFO",
    "CLIENT SETNAME", "ECHO", "HELLO", "PING", "QUIT", "RESET", "SELECT",
    // Functions
    "FCALL", "FCALL_RO", "FUNCTION DELETE", "FUNCTION FLUSH", "FUNCTION KILL", "FUNCTION LIST",
    "FUNCTION LOAD", "FUNCTION STATS",
    // Generic
    "COPY", "DEL", "DUMP", "EXISTS", "EXPIRE", "EXPIREAT", "EXPIRETIME", "KEYS", "MEMORY USAGE",
    "PERSIST", "PEXPIRE", "PEXPIREAT", "PEXPIRETIME", "PTTL", "RANDOMKEY", "RENAME", "RENAMENX",
    "RESTORE", "SCAN", "TOUCH", "TTL", "TYPE", "UNLINK", "WAIT", "WAITAOF",
    // Geo
    "GEOADD", "GEODIST", "GEOHASH", "GEOPOS", "GEORADIUS", "GEORADIUS_RO", "GEORADIUSBYMEMBER",
    "GEORADIUSBYMEMBER_RO", "GEOSEARCH", "GEOSEARCHSTORE",
    // Hash
    "HDEL", "HEXISTS", "HEXPIRE", "HEXPIREAT", "HEXPIRETIME", "HGET", "HGETALL", "HGETDEL",
    "HGETEX", "HINCRBY", "HINCRBYFLOAT", "HKEYS", "HLEN", "HMGET", "HMSET", "HPERSIST", "HPEXPIRE",
    "HPEXPIREAT", "HPEXPIRETIME", "HPTTL", "HRANDFIELD", "HSCAN", "HSET", "HSETEX", "HSETNX",
    "HSTRLEN", "HTTL", "HVALS",
    // HyperLogLog
    "PFADD", "PFCOUNT", "PFMERGE",
    // List
    "BLMOVE", "BLMPOP", "BLPOP", "BRPOP", "BRPOPLPUSH", "LINDEX", "LINSERT", "LLEN", "LMOVE",
    "LMPOP", "LPOP", "LPOS", "LPUSH", "LPUSHX", "LRANGE", "LREM", "LSET", "LTRIM", "RPOP",
    "RPOPLPUSH", "RPUSH", "RPUSHX",
    // Pub/sub
    "PSUBSCRIBE", "PUBLISH", "PUBSUB CHANNELS", "PUBSUB NUMPAT", "PUBSUB NUMSUB", "PUNSUBSCRIBE",
    "SUBSCRIBE", "UNSUBSCRIBE",
    // Scripting
    "EVAL", "EVAL_RO", "EVALSHA", "EVALSHA_RO", "SCRIPT EXISTS", "SCRIPT FLUSH", "SCRIPT KILL",
    "SCRIPT LOAD",
    // Server
    "ACL CAT", "ACL DELUSER", "ACL GENPASS", "ACL GENTOKEN", "ACL GETUSER", "ACL LIST", "ACL LOAD",
    "ACL LOG", "ACL RESTTOKEN", "ACL SAVE", "ACL SETUSER", "ACL USERS", "ACL WHOAMI", "COMMAND",
    "DBSIZE", "FLUSHALL", "FLUSHDB", "INFO", "MONITOR", "TIME",
    // Set
    "SADD", "SCARD", "SDIFF", "SDIFFSTORE", "SINTER", "SINTERCARD", "SINTERSTORE", "SISMEMBER",
    "SMEMBERS", "SMISMEMBER", "SMOVE", "SPOP", "SRANDMEMBER", "SREM", "SSCAN", "SUNION",
    "SUNIONSTORE",
    // Sorted set
    "BZMPOP", "BZPOPMAX", "BZPOPMIN", "ZADD", "ZCARD", "ZCOUNT", "ZDIFF", "ZDIFFSTORE", "ZINCRBY",
    "ZINTER", "ZINTERCARD", "ZINTERSTORE", "ZLEXCOUNT", "ZMPOP", "ZMSCORE", "ZPOPMAX", "ZPOPMIN",
    "ZRANDMEMBER", "ZRANGE", "ZRANGEBYLEX", "ZRANGEBYSCORE", "ZRANGESTORE", "ZRANK", "ZREM",
    "ZREMRANGEBYLEX", "ZREMRANGEBYRANK", "ZREMRANGEBYSCORE", "ZREVRANGE", "ZREVRANGEBYLEX",
    "ZREVRANGEBYSCORE", "ZREVRANK", "ZSCAN", "ZSCORE", "ZUNION", "ZUNIONSTORE",
    // Stream
    "XACK", "XACKDEL", "XADD", "XAUTOCLAIM", "XCLAIM", "XDEL", "XDELEX", "XGROUP CREATE",
    "XGROUP CREATECONSUMER", "XGROUP DELCONSUMER", "XGROUP DESTROY", "XGROUP SETID",
    "XINFO CONSUMERS", "XINFO GROUPS", "XINFO STREAM", "XLEN", "XPENDING", "XRANGE", "XREAD",
    "XREADGROUP", "XREVRANGE", "XTRIM",
    // String
    "APPEND", "DECR", "DECRBY", "DELEX", "DIGEST", "GET", "GETDEL", "GETEX", "GETRANGE", "GETSET",
    "INCR", "INCRBY", "INCRBYFLOAT", "MGET", "MSET", "MSETNX", "PSETEX", "SET", "SETEX", "SETNX",
    "SETRANGE", "STRLEN",
    // Transactions
    "DISCARD", "EXEC", "MULTI", "UNWATCH", "WATCH",
];

/// The commands Upstash does not bill ("Operational commands like AUTH, INFO, PING, QUIT,
/// COMMAND are not charged", Upstash's pricing page). `HELLO` is not among them, so it is
/// billed. Lower case, as `INFO commandstats` names them.
pub const FREE: &[&str] = &["auth", "info", "ping", "quit", "command"];

/// The limits the proxy enforces, each `None` to turn it off. [`Limits::upstash`] (also the
/// `Default`) has Upstash's values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Most entries one consumer of a group may have pending: an `XREADGROUP ... >` with
    /// `COUNT n` is refused when the consumer's pending count (asked of the server once the
    /// connection's earlier requests are answered) plus `n` would pass it; one without `COUNT`,
    /// when the list is full. `NOACK` reads and reads of a consumer's own history (an id other
    /// than `>`) add nothing and are let through. Upstash: 1,000.
    pub pending_per_consumer: Option<u64>,
    /// Most bytes one request may take on the wire, the whole RESP array. Upstash: 1 MB on its
    /// troubleshooting page and older quota table (read as 10^6 bytes, the stricter reading, as
    /// docket's `max_payload` reads it); its current billing table says 10 MB for the free and
    /// pay-as-you-go plans.
    pub request_bytes: Option<usize>,
    /// Longest key, among the keys the server's own key specifications find in a request: the
    /// key arguments of plain commands, the `KEYS` of `EVAL`, `EVALSHA` and `FCALL`. Not the
    /// keys a script uses inside (from `ARGV`, or built): the proxy cannot see script calls.
    /// Upstash: 32 KB (read as 32,000 bytes, the stricter reading).
    pub key_bytes: Option<usize>,
    /// Longest hash field, in the commands that name fields directly (`HSET`, `HGET`, ...;
    /// not inside scripts). Upstash: 32 KB.
    pub field_bytes: Option<usize>,
    /// Longest set or sorted-set member, in the commands that name members directly (`SADD`,
    /// `ZADD`, ...; not inside scripts). Upstash: 32 KB.
    pub member_bytes: Option<usize>,
    /// A connection on which no byte has passed either way for this long is closed, a
    /// connection blocked in `XREADGROUP` or `XREAD` included. Upstash documents no fixed time
    /// ("idle connections may be terminated" near its connection limit), so the default is
    /// off; a test picks one to see a client survive it.
    pub idle: Option<Duration>,
}

impl Limits {
    /// Upstash's limits (free and pay-as-you-go plans), with no idle timeout.
    pub fn upstash() -> Limits {
        Limits {
            pending_per_consumer: Some(1000),
            request_bytes: Some(1_000_000),
            key_bytes: Some(32_000),
            field_bytes: Some(32_000),
            member_bytes: Some(32_000),
            idle: None,
        }
    }

    /// No limit at all: the proxy only refuses commands and counts.
    pub fn none() -> Limits {
        Limits {
            pending_per_consumer: None,
            request_bytes: None,
            key_bytes: None,
            field_bytes: None,
            member_bytes: None,
            idle: None,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits::upstash()
    }
}

/// Whether Upstash offers the command `args` calls; the error reply if not.
pub(crate) fn availability(args: &[Vec<u8>]) -> Result<(), String> {
    let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
    let sub = args
        .get(1)
        .map(|sub| String::from_utf8_lossy(sub).to_ascii_uppercase());
    let listed = AVAILABLE.iter().any(|entry| match entry.split_once(' ') {
        None => *entry == name,
        Some((command, form)) => command == name && sub.as_deref() == Some(form),
    });
    if !listed {
        let shown = match (
            &sub,
            AVAILABLE.iter().any(|e| e.starts_with(&format!("{name} "))),
        ) {
            (Some(sub), true) => format!("{name} {sub}"),
            _ => name,
        };
        return Err(format!("ERR Command is not available: {shown}"));
    }
    if name == "SELECT" && args.get(1).is_some_and(|index| index.as_slice() != b"0") {
        return Err("ERR DB index is out of range".to_owned());
    }
    Ok(())
}

/// Where each command's keys are, from the server's own `COMMAND` reply, read once per proxy.
#[derive(Debug, Default)]
pub(crate) struct Commands {
    /// By `INFO commandstats` name: `get`, `xinfo|consumers`.
    known: HashMap<String, Known>,
}

#[derive(Debug, Default)]
struct Known {
    /// Flagged `blocking` (`XREAD`, `BLPOP`, ...).
    blocking: bool,
    /// Redis 7 key specifications; when there are none, the legacy first, last and step.
    specs: Vec<KeySpec>,
    legacy: (i64, i64, i64),
    /// A container command (`CLIENT`, `XINFO`): its subcommands are named `client|id`.
    container: bool,
}

#[derive(Debug)]
struct KeySpec {
    begin: Begin,
    find: Find,
}

#[derive(Debug)]
enum Begin {
    Index(i64),
    Keyword { keyword: Vec<u8>, from: i64 },
}

#[derive(Debug)]
enum Find {
    Range { last: i64, step: i64, limit: i64 },
    Keynum { index: i64, first: i64, step: i64 },
}

impl Commands {
    /// Read the reply to `COMMAND` (RESP2).
    pub(crate) fn from_reply(reply: &Reply) -> Commands {
        let mut commands = Commands::default();
        if let Reply::Array(entries) = reply {
            for entry in entries {
                commands.learn(entry);
            }
        }
        commands
    }

    fn learn(&mut self, entry: &Reply) {
        let Reply::Array(fields) = entry else { return };
        let Some(Reply::Bulk(name)) = fields.first() else {
            return;
        };
        let int = |at: usize| match fields.get(at) {
            Some(Reply::Integer(n)) => *n,
            _ => 0,
        };
        let specs = match fields.get(8) {
            Some(Reply::Array(specs)) => specs.iter().filter_map(key_spec).collect(),
            _ => Vec::new(),
        };
        let subcommands = match fields.get(9) {
            Some(Reply::Array(subcommands)) => subcommands.as_slice(),
            _ => &[],
        };
        for subcommand in subcommands {
            self.learn(subcommand);
        }
        self.known.insert(
            name.to_ascii_lowercase(),
            Known {
                blocking: matches!(fields.get(2), Some(Reply::Array(flags))
                    if flags.contains(&Reply::Status("blocking".to_owned()))),
                specs,
                legacy: (int(3), int(4), int(5)),
                container: !subcommands.is_empty(),
            },
        );
    }

    /// The name `INFO commandstats` counts `args` under: `get`, `client|id`.
    pub(crate) fn stat_name(&self, args: &[Vec<u8>]) -> String {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        match (self.known.get(&name), args.get(1)) {
            (Some(rule), Some(sub)) if rule.container => {
                format!(
                    "{name}|{}",
                    String::from_utf8_lossy(sub).to_ascii_lowercase()
                )
            }
            _ => name,
        }
    }

    /// Whether the command named `name` (as [`stat_name`](Commands::stat_name) names it) may
    /// block.
    pub(crate) fn blocking(&self, name: &str) -> bool {
        self.known.get(name).is_some_and(|known| known.blocking)
    }

    /// The keys of `args`, found as the server finds them (`getKeysUsingKeySpecs`).
    pub(crate) fn keys<'a>(&self, args: &'a [Vec<u8>]) -> Vec<&'a [u8]> {
        let Some(rule) = self.known.get(&self.stat_name(args)) else {
            return Vec::new();
        };
        let argc = args.len() as i64;
        let mut keys = Vec::new();
        let mut take = |first: i64, last: i64, step: i64| {
            if first <= 0 || step <= 0 {
                return;
            }
            let mut at = first;
            while at <= last && at < argc {
                keys.push(args[at as usize].as_slice());
                at += step;
            }
        };
        if rule.specs.is_empty() {
            let (first, last, step) = rule.legacy;
            let last = if last < 0 { argc + last } else { last };
            take(first, last, step);
        }
        for spec in &rule.specs {
            let first = match &spec.begin {
                Begin::Index(index) => *index,
                Begin::Keyword { keyword, from } => {
                    let found = if *from >= 0 {
                        (*from..argc).find(|&at| args[at as usize].eq_ignore_ascii_case(keyword))
                    } else {
                        (2..=argc + from)
                            .rev()
                            .find(|&at| args[at as usize].eq_ignore_ascii_case(keyword))
                    };
                    match found {
                        Some(at) => at + 1,
                        None => continue,
                    }
                }
            };
            if first >= argc {
                continue;
            }
            match spec.find {
                Find::Range { last, step, limit } => {
                    let last = match (last, limit) {
                        (last, _) if last >= 0 => first + last,
                        (last, 0) => argc + last,
                        (last, limit) => first + ((argc - first) / limit + last),
                    };
                    take(first, last, step);
                }
                Find::Keynum {
                    index,
                    first: offset,
                    step,
                } => {
                    let Some(count) = args
                        .get((first + index) as usize)
                        .and_then(|count| std::str::from_utf8(count).ok())
                        .and_then(|count| count.parse::<i64>().ok())
                        .filter(|&count| count >= 0)
                    else {
                        continue;
                    };
                    let first = first + offset;
                    take(first, first + (count - 1) * step, step);
                }
            }
        }
        keys
    }
}

/// One key specification from `COMMAND` (RESP2: flat arrays of names and values).
fn key_spec(spec: &Reply) -> Option<KeySpec> {
    let field = |reply: &'_ Reply, name: &str| -> Option<Reply> {
        let Reply::Array(items) = reply else {
            return None;
        };
        items
            .chunks(2)
            .find(|pair| matches!(&pair[0], Reply::Bulk(key) | Reply::Status(key) if key == name))
            .and_then(|pair| pair.get(1).cloned())
    };
    let int = |reply: &Reply, name: &str| match field(reply, name) {
        Some(Reply::Integer(n)) => Some(n),
        _ => None,
    };
    let text = |reply: &Reply, name: &str| match field(reply, name) {
        Some(Reply::Bulk(text) | Reply::Status(text)) => Some(text),
        _ => None,
    };
    let begin = field(spec, "begin_search")?;
    let begin_spec = field(&begin, "spec")?;
    let begin = match text(&begin, "type")?.as_str() {
        "index" => Begin::Index(int(&begin_spec, "index")?),
        "keyword" => Begin::Keyword {
            keyword: text(&begin_spec, "keyword")?.into_bytes(),
            from: int(&begin_spec, "startfrom")?,
        },
        _ => return None,
    };
    let find = field(spec, "find_keys")?;
    let find_spec = field(&find, "spec")?;
    let find = match text(&find, "type")?.as_str() {
        "range" => Find::Range {
            last: int(&find_spec, "lastkey")?,
            step: int(&find_spec, "keystep")?,
            limit: int(&find_spec, "limit")?,
        },
        "keynum" => Find::Keynum {
            index: int(&find_spec, "keynumidx")?,
            first: int(&find_spec, "firstkey")?,
            step: int(&find_spec, "keystep")?,
        },
        _ => return None,
    };
    Some(KeySpec { begin, find })
}

/// What a request carries besides keys: its hash fields and its set and sorted-set members.
#[derive(Debug, Default)]
pub(crate) struct Elements<'a> {
    pub(crate) fields: Vec<&'a [u8]>,
    pub(crate) members: Vec<&'a [u8]>,
}

/// The hash fields and set members of `args`, for the commands that name them directly:
/// `HSET HMSET HSETNX HGET HMGET HDEL HEXISTS HSTRLEN HINCRBY HINCRBYFLOAT`, `SADD SREM
/// SISMEMBER SMISMEMBER SMOVE`, `ZADD ZREM ZSCORE ZMSCORE ZRANK ZREVRANK ZINCRBY` and `GEOADD`.
/// Others (the hash-field expiry family, `ZRANGEBYLEX` bounds, ...) are not looked at.
pub(crate) fn elements<'a>(name: &str, args: &'a [Vec<u8>]) -> Elements<'a> {
    let from = |at: usize| args.get(at..).unwrap_or_default().iter();
    let one = |at: usize| args.get(at).map(Vec::as_slice).into_iter().collect();
    let mut elements = Elements::default();
    match name {
        "hset" | "hmset" | "hsetnx" => {
            elements.fields = from(2).step_by(2).map(Vec::as_slice).collect();
        }
        "hget" | "hexists" | "hstrlen" | "hincrby" | "hincrbyfloat" => elements.fields = one(2),
        "hdel" | "hmget" => elements.fields = from(2).map(Vec::as_slice).collect(),
        "sadd" | "srem" | "smismember" | "zrem" | "zmscore" => {
            elements.members = from(2).map(Vec::as_slice).collect();
        }
        "sismember" | "zscore" | "zrank" | "zrevrank" => elements.members = one(2),
        "smove" | "zincrby" => elements.members = one(3),
        "zadd" | "geoadd" => {
            let options: &[&str] = if name == "zadd" {
                &["NX", "XX", "GT", "LT", "CH", "INCR"]
            } else {
                &["NX", "XX", "CH"]
            };
            let start = 2 + from(2)
                .take_while(|arg| {
                    options
                        .iter()
                        .any(|o| arg.eq_ignore_ascii_case(o.as_bytes()))
                })
                .count();
            // (score, member) pairs; (longitude, latitude, member) triples.
            let width = if name == "zadd" { 2 } else { 3 };
            elements.members = from(start)
                .skip(width - 1)
                .step_by(width)
                .map(Vec::as_slice)
                .collect();
        }
        _ => {}
    }
    elements
}

/// An `XREADGROUP` that may add entries to a consumer's pending list.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct GroupRead<'a> {
    pub(crate) group: &'a [u8],
    pub(crate) consumer: &'a [u8],
    /// `COUNT`, if given.
    pub(crate) count: Option<u64>,
    /// The streams read for new entries (`>`).
    pub(crate) keys: Vec<&'a [u8]>,
}

/// `args` as a group read that can grow a pending list: `None` for other commands, `NOACK`
/// reads and reads of a consumer's own history only.
pub(crate) fn group_read(args: &[Vec<u8>]) -> Option<GroupRead<'_>> {
    if !args[0].eq_ignore_ascii_case(b"XREADGROUP") {
        return None;
    }
    let mut read = GroupRead {
        group: &[],
        consumer: &[],
        count: None,
        keys: Vec::new(),
    };
    let mut at = 1;
    while at < args.len() {
        let word = args[at].to_ascii_uppercase();
        match word.as_slice() {
            b"GROUP" => {
                read.group = args.get(at + 1)?;
                read.consumer = args.get(at + 2)?;
                at += 3;
            }
            b"COUNT" => {
                read.count = std::str::from_utf8(args.get(at + 1)?).ok()?.parse().ok();
                at += 2;
            }
            b"BLOCK" | b"CLAIM" => at += 2,
            b"NOACK" => return None,
            b"STREAMS" => {
                let rest = &args[at + 1..];
                let (keys, ids) = rest.split_at(rest.len() / 2);
                read.keys = keys
                    .iter()
                    .zip(ids)
                    .filter(|(_, id)| id.as_slice() == b">")
                    .map(|(key, _)| key.as_slice())
                    .collect();
                break;
            }
            _ => return None,
        }
    }
    (!read.keys.is_empty()).then_some(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &str) -> Vec<Vec<u8>> {
        words
            .split(' ')
            .map(|word| word.as_bytes().to_vec())
            .collect()
    }

    #[test]
    fn only_listed_commands_and_forms_are_available() {
        assert!(availability(&args("get k")).is_ok());
        assert!(availability(&args("client id")).is_ok());
        assert!(availability(&args("SELECT 0")).is_ok());
        assert_eq!(
            availability(&args("client unblock 7")),
            Err("ERR Command is not available: CLIENT UNBLOCK".into())
        );
        assert_eq!(
            availability(&args("config resetstat")),
            Err("ERR Command is not available: CONFIG".into())
        );
        assert_eq!(
            availability(&args("SELECT 1")),
            Err("ERR DB index is out of range".into())
        );
        assert!(availability(&args("debug sleep 0")).is_err());
    }

    #[test]
    fn fields_and_members_are_found_after_options() {
        let zadd = args("zadd k NX CH 1 a 2 b");
        assert_eq!(elements("zadd", &zadd).members, [b"a", b"b"]);
        let hset = args("hset k f1 v1 f2 v2");
        assert_eq!(elements("hset", &hset).fields, [b"f1", b"f2"]);
        let geoadd = args("geoadd k XX 1 2 m1 3 4 m2");
        assert_eq!(elements("geoadd", &geoadd).members, [b"m1", b"m2"]);
    }

    #[test]
    fn a_group_read_names_its_new_entry_streams() {
        let read = args("XREADGROUP GROUP g c COUNT 5 BLOCK 0 STREAMS s1 s2 > 0");
        assert_eq!(
            group_read(&read),
            Some(GroupRead {
                group: b"g",
                consumer: b"c",
                count: Some(5),
                keys: vec![b"s1"],
            })
        );
        assert_eq!(
            group_read(&args("XREADGROUP GROUP g c NOACK STREAMS s >")),
            None
        );
        assert_eq!(group_read(&args("XREADGROUP GROUP g c STREAMS s 0")), None);
    }
}
