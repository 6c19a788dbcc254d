//! The managed-Redis profile: the behaviour suite through a proxy that behaves like Upstash
//! (`tests::managed::Upstash`), and the proxy's own tests, which show that it refuses what
//! Upstash refuses, enforces each limit and bills as Upstash bills.

mod behaviour;

use std::collections::BTreeMap;
use std::time::Duration;

use tests::in_time;
use tests::managed::{Limits, Upstash, encode, read_reply};
use tests::redis_server::{RedisServer, Reply, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// How long the behaviour suite's connections may stay idle before the proxy closes them:
/// short enough that a worker's blocked reads and its signal feed are cut during a test.
const SUITE_IDLE: Duration = Duration::from_secs(2);

/// A fresh docket on a server of its own, reached through an Upstash proxy with Upstash's
/// limits and idle connections closed after [`SUITE_IDLE`]; both live as long as the test.
async fn open() -> (docket::Docket, (Upstash, RedisServer)) {
    let server = RedisServer::start();
    let limits = Limits {
        idle: Some(SUITE_IDLE),
        ..Limits::upstash()
    };
    let upstash = Upstash::with_limits(&server, limits).await;
    let docket = docket::Docket::connect(upstash.url())
        .name(unique_name("behaviour-managed"))
        .await
        .expect("open a Redis docket through the Upstash proxy");
    (docket, (upstash, server))
}

behaviour::behaviour_suite!(open);

/// A client that speaks RESP by hand, for requests no Redis library would send.
struct Raw {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Raw {
    async fn connect(upstash: &Upstash) -> Raw {
        let stream = TcpStream::connect(("127.0.0.1", upstash.port()))
            .await
            .expect("connect to the proxy");
        let (reader, writer) = stream.into_split();
        Raw {
            reader: BufReader::new(reader),
            writer,
        }
    }

    async fn send(&mut self, args: &[&str]) {
        self.send_bytes(&encode(args)).await;
    }

    async fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("send a request");
    }

    async fn reply(&mut self) -> Reply {
        in_time("a reply", read_reply(&mut self.reader))
            .await
            .expect("read a reply")
    }

    async fn call(&mut self, args: &[&str]) -> Reply {
        self.send(args).await;
        self.reply().await
    }

    /// Whether the proxy closed the connection: the next read ends without a byte.
    async fn closed(&mut self) -> bool {
        let mut byte = [0];
        matches!(self.reader.read(&mut byte).await, Ok(0) | Err(_))
    }
}

/// How many entries an `XREADGROUP` of one stream returned.
fn entries_read(reply: Reply) -> usize {
    match reply {
        Reply::Array(streams) => match &streams[0] {
            Reply::Array(stream) => match &stream[1] {
                Reply::Array(entries) => entries.len(),
                other => panic!("not entries: {other:?}"),
            },
            other => panic!("not a stream: {other:?}"),
        },
        other => panic!("not a read: {other:?}"),
    }
}

fn error(text: &str) -> Reply {
    Reply::Error(text.to_owned())
}

fn ok() -> Reply {
    Reply::Status("OK".to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_upstash_lacks_are_refused_and_never_reach_the_server() {
    let server = RedisServer::start();
    let upstash = Upstash::start(&server).await;
    let mut client = Raw::connect(&upstash).await;

    let refused: [(&[&str], &str); 6] = [
        (
            &["CLIENT", "UNBLOCK", "1"],
            "ERR Command is not available: CLIENT UNBLOCK",
        ),
        (
            &["client", "kill", "ID", "1"],
            "ERR Command is not available: CLIENT KILL",
        ),
        (
            &["CONFIG", "SET", "maxmemory", "1"],
            "ERR Command is not available: CONFIG",
        ),
        (
            &["DEBUG", "SLEEP", "0"],
            "ERR Command is not available: DEBUG",
        ),
        (
            &["SWAPDB", "0", "1"],
            "ERR Command is not available: SWAPDB",
        ),
        (&["SELECT", "1"], "ERR DB index is out of range"),
    ];
    for (args, refusal) in refused {
        assert_eq!(client.call(args).await, error(refusal), "{args:?}");
    }
    for args in [&["SELECT", "0"][..], &["CLIENT", "SETNAME", "raw"]] {
        assert_eq!(client.call(args).await, ok(), "{args:?}");
    }
    // Forwarded (the server behind may be older than `CLIENT SETINFO`, Redis 7.2).
    assert!(!matches!(
        client.call(&["CLIENT", "SETINFO", "LIB-NAME", "raw"]).await,
        Reply::Error(refusal) if refusal.contains("not available")
    ));
    assert_eq!(
        client.call(&["CLIENT", "GETNAME"]).await,
        Reply::Bulk("raw".into())
    );
    assert!(matches!(
        client.call(&["CLIENT", "ID"]).await,
        Reply::Integer(_)
    ));

    let stats = server.command_stats();
    for name in [
        "client|unblock",
        "client|kill",
        "config|set",
        "debug",
        "swapdb",
    ] {
        assert_eq!(
            stats.get(name),
            None,
            "{name} reached the server: {stats:?}"
        );
    }
    assert_eq!(stats.get("select"), Some(&1), "only SELECT 0 reached it");
    assert_eq!(
        upstash.bill().await.refused,
        BTreeMap::from([
            ("client|kill".into(), 1),
            ("client|unblock".into(), 1),
            ("config|set".into(), 1),
            ("debug".into(), 1),
            ("select".into(), 1),
            ("swapdb".into(), 1),
        ])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_keeps_its_place_among_pipelined_replies() {
    let server = RedisServer::start();
    let upstash = Upstash::start(&server).await;
    let mut client = Raw::connect(&upstash).await;

    // Arrays and inline commands, all in one write.
    let mut pipeline = encode(&["SET", "a", "1"]);
    pipeline.extend(encode(&["CLIENT", "UNBLOCK", "1"]));
    pipeline.extend(encode(&["GET", "a"]));
    pipeline.extend_from_slice(b"client kill id 1\r\n\r\nPING\r\n");
    client.send_bytes(&pipeline).await;

    assert_eq!(client.reply().await, ok());
    assert_eq!(
        client.reply().await,
        error("ERR Command is not available: CLIENT UNBLOCK")
    );
    assert_eq!(client.reply().await, Reply::Bulk("1".into()));
    assert_eq!(
        client.reply().await,
        error("ERR Command is not available: CLIENT KILL")
    );
    assert_eq!(client.reply().await, Reply::Status("PONG".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resp3_replies_and_pushes_pass_untouched_around_a_refusal() {
    let server = RedisServer::start();
    let upstash = Upstash::start(&server).await;
    let mut client = Raw::connect(&upstash).await;

    let mut pipeline = encode(&["HELLO", "3"]);
    for args in [
        &["HSET", "h", "f", "v"][..],
        &["HGETALL", "h"],
        &["CLIENT", "UNBLOCK", "1"],
        &["SUBSCRIBE", "c"],
    ] {
        pipeline.extend(encode(args));
    }
    client.send_bytes(&pipeline).await;
    let after_hello: &[u8] = b":1\r\n%1\r\n$1\r\nf\r\n$1\r\nv\r\n\
        -ERR Command is not available: CLIENT UNBLOCK\r\n\
        >3\r\n$9\r\nsubscribe\r\n$1\r\nc\r\n:1\r\n";
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + tests::PATIENCE;
    while !received.ends_with(after_hello) {
        let mut chunk = [0; 4096];
        let read = tokio::time::timeout_at(deadline, client.reader.read(&mut chunk)).await;
        let Ok(Ok(n @ 1..)) = read else {
            panic!("{read:?} after {:?}", String::from_utf8_lossy(&received));
        };
        received.extend_from_slice(&chunk[..n]);
    }
    assert!(received.starts_with(b"%"), "HELLO 3 answers a map");
    // Once subscribed, replies no longer pair with requests; a refusal is answered at once.
    client.send(&["CLIENT", "KILL", "ID", "1"]).await;
    assert_eq!(
        client.reply().await,
        error("ERR Command is not available: CLIENT KILL")
    );

    // A message published meanwhile reaches the subscriber as a push.
    let mut publisher = Raw::connect(&upstash).await;
    assert_eq!(
        publisher.call(&["PUBLISH", "c", "m"]).await,
        Reply::Integer(1)
    );
    let message = b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n";
    let mut pushed = vec![0; message.len()];
    in_time("the message", client.reader.read_exact(&mut pushed))
        .await
        .expect("read the message");
    assert_eq!(pushed, message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_read_that_would_pass_a_thousand_pending_entries_is_refused() {
    let server = RedisServer::start();
    let upstash = Upstash::start(&server).await;
    assert_eq!(upstash.limits().pending_per_consumer, Some(1000));
    let mut client = Raw::connect(&upstash).await;
    assert_eq!(
        client
            .call(&["XGROUP", "CREATE", "s", "g", "0", "MKSTREAM"])
            .await,
        ok()
    );
    let mut entries = Vec::new();
    for n in 0..1002 {
        entries.extend(encode(&["XADD", "s", "*", "n", &n.to_string()]));
    }
    client.send_bytes(&entries).await;
    for _ in 0..1002 {
        assert!(matches!(client.reply().await, Reply::Bulk(_)));
    }
    // `consumer` of group `g` reads up to `count` new entries of stream `s`.
    let read = async |client: &mut Raw, consumer: &str, count: u32| {
        let count = count.to_string();
        let read = [
            "XREADGROUP",
            "GROUP",
            "g",
            consumer,
            "COUNT",
            &count,
            "STREAMS",
            "s",
            ">",
        ];
        client.call(&read).await
    };

    assert_eq!(entries_read(read(&mut client, "c1", 999).await), 999);
    assert_eq!(
        read(&mut client, "c1", 2).await,
        error(
            "ERR XReadGroup is cancelled. Pending Entries List limit per consumer is about to \
             be reached. Limit: 1000, Current PEL size: 999, Requested Read: 2, Key: s, \
             Group: g, Consumer: c1."
        )
    );
    assert_eq!(entries_read(read(&mut client, "c1", 1).await), 1);
    assert!(matches!(
        read(&mut client, "c1", 1).await,
        Reply::Error(e) if e.contains("Current PEL size: 1000, Requested Read: 1")
    ));
    // The limit is per consumer: another reads on.
    assert_eq!(entries_read(read(&mut client, "c2", 5).await), 2);
    // Acknowledging one makes room for one.
    let Reply::Array(oldest) = client
        .call(&["XPENDING", "s", "g", "-", "+", "1", "c1"])
        .await
    else {
        panic!("no pending entries");
    };
    let Reply::Array(oldest) = &oldest[0] else {
        panic!("no pending entry");
    };
    let Reply::Bulk(id) = &oldest[0] else {
        panic!("no id");
    };
    assert_eq!(
        client.call(&["XACK", "s", "g", id]).await,
        Reply::Integer(1)
    );
    assert!(matches!(
        client.call(&["XADD", "s", "*", "n", "last"]).await,
        Reply::Bulk(_)
    ));
    assert_eq!(entries_read(read(&mut client, "c1", 1).await), 1);
    let pending = upstash.command(&["XPENDING", "s", "g"]).await.unwrap();
    let Reply::Array(summary) = pending else {
        panic!("no summary");
    };
    assert!(
        matches!(&summary[3], Reply::Array(consumers) if consumers.contains(
            &Reply::Array(vec![Reply::Bulk("c1".into()), Reply::Bulk("1000".into())])
        )),
        "c1 never holds more than 1,000: {summary:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_over_a_megabyte_is_refused_and_the_connection_goes_on() {
    let server = RedisServer::start();
    let upstash = Upstash::start(&server).await;
    let limit = upstash.limits().request_bytes.expect("a request limit");
    assert_eq!(limit, 1_000_000);
    let mut client = Raw::connect(&upstash).await;

    // SET with a value that makes the whole request `size` bytes.
    let set = |size: usize| {
        let mut value_len = size - encode(&["SET", "big", ""]).len();
        while encode(&["SET", "big", &"x".repeat(value_len)]).len() > size {
            value_len -= 1;
        }
        let request = encode(&["SET", "big", &"x".repeat(value_len)]);
        assert_eq!(request.len(), size);
        request
    };
    client.send_bytes(&set(limit + 1)).await;
    assert_eq!(client.reply().await, error("ERR max request size exceeded"));
    assert_eq!(client.call(&["EXISTS", "big"]).await, Reply::Integer(0));
    client.send_bytes(&set(limit)).await;
    assert_eq!(client.reply().await, ok());
    assert_eq!(client.call(&["EXISTS", "big"]).await, Reply::Integer(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_fields_and_members_over_32_kb_are_refused_where_the_proxy_sees_them() {
    let server = RedisServer::start();
    let upstash = Upstash::start(&server).await;
    assert_eq!(upstash.limits().key_bytes, Some(32_000));
    let mut client = Raw::connect(&upstash).await;
    let longest = "k".repeat(32_000);
    let too_long = "k".repeat(32_001);
    let refusal = |what: &str| {
        error(&format!(
            "ERR max {what} size exceeded. Limit: 32000 bytes, Actual: 32001 bytes"
        ))
    };

    assert_eq!(client.call(&["SET", &too_long, "v"]).await, refusal("key"));
    assert_eq!(client.call(&["SET", &longest, "v"]).await, ok());
    assert_eq!(
        client.call(&["MSET", "a", "1", &too_long, "2"]).await,
        refusal("key")
    );
    assert_eq!(
        client
            .call(&["XREADGROUP", "GROUP", "g", "c", "STREAMS", &too_long, ">"])
            .await,
        refusal("key")
    );
    assert_eq!(
        client.call(&["EVAL", "return 1", "1", &too_long]).await,
        refusal("key")
    );
    assert_eq!(
        client.call(&["HSET", "h", "f", "v", &too_long, "v"]).await,
        refusal("field")
    );
    assert_eq!(
        client.call(&["HSET", "h", &longest, &too_long]).await,
        Reply::Integer(1),
        "a value is neither key, field nor member"
    );
    assert_eq!(
        client.call(&["SADD", "s", &too_long]).await,
        refusal("member")
    );
    assert_eq!(
        client
            .call(&["ZADD", "z", "NX", "1", "m", "2", &too_long])
            .await,
        refusal("member")
    );
    assert_eq!(
        client.call(&["ZADD", "z", "1", &longest]).await,
        Reply::Integer(1)
    );
    // Inside a script the proxy sees nothing: a key passed in ARGV goes through.
    assert_eq!(
        client
            .call(&[
                "EVAL",
                "return redis.call('SET', ARGV[1], 'v')",
                "0",
                &too_long
            ])
            .await,
        ok()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_even_while_blocked() {
    let server = RedisServer::start();
    let idle = Duration::from_millis(300);
    let upstash = Upstash::with_limits(
        &server,
        Limits {
            idle: Some(idle),
            ..Limits::upstash()
        },
    )
    .await;
    let mut quiet = Raw::connect(&upstash).await;
    let mut blocked = Raw::connect(&upstash).await;
    let mut busy = Raw::connect(&upstash).await;
    assert_eq!(quiet.call(&["PING"]).await, Reply::Status("PONG".into()));
    blocked
        .send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"])
        .await;
    let started = std::time::Instant::now();

    for _ in 0..8 {
        tokio::time::sleep(idle / 3).await;
        assert_eq!(busy.call(&["PING"]).await, Reply::Status("PONG".into()));
    }
    assert!(in_time("the quiet connection to close", quiet.closed()).await);
    assert!(in_time("the blocked connection to close", blocked.closed()).await);
    assert!(started.elapsed() >= idle);
    assert_eq!(upstash.idle_closed(), 2);
    assert_eq!(busy.call(&["PING"]).await, Reply::Status("PONG".into()));

    // The server let go of the blocked read with its connection.
    tests::eventually(
        "the server to hold no blocked client",
        tests::PATIENCE,
        async || {
            let Ok(Reply::Bulk(info)) = upstash.command(&["INFO", "clients"]).await else {
                return false;
            };
            info.contains("blocked_clients:0")
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn billed_commands_are_those_sent_plus_the_calls_inside_scripts() {
    let server = RedisServer::start();
    let upstash = Upstash::start(&server).await;
    let mut client = Raw::connect(&upstash).await;
    let mut reader = Raw::connect(&upstash).await;
    let script = "redis.call('SET', KEYS[1], 'x') redis.call('INCR', KEYS[2]) \
                  return redis.call('GET', KEYS[1])";
    // The harness's own commands are not billed.
    let Ok(Reply::Bulk(sha)) = upstash.command(&["SCRIPT", "LOAD", script]).await else {
        panic!("SCRIPT LOAD");
    };
    assert_eq!(upstash.billed().await, 0);

    assert_eq!(client.call(&["PING"]).await, Reply::Status("PONG".into()));
    assert_eq!(client.call(&["SET", "a", "1"]).await, ok());
    assert_eq!(client.call(&["GET", "a"]).await, Reply::Bulk("1".into()));
    assert_eq!(
        client.call(&["EVAL", script, "2", "a", "n"]).await,
        Reply::Bulk("x".into())
    );
    assert_eq!(
        client.call(&["EVALSHA", &sha, "2", "a", "n"]).await,
        Reply::Bulk("x".into())
    );
    assert!(matches!(
        client.call(&["CLIENT", "UNBLOCK", "1"]).await,
        Reply::Error(_)
    ));
    assert!(matches!(
        client.call(&["INFO", "server"]).await,
        Reply::Bulk(_)
    ));
    // A read still blocked counts once, as sent.
    reader
        .send(&["XREAD", "BLOCK", "0", "STREAMS", "s", "$"])
        .await;
    tests::eventually("the read to block", tests::PATIENCE, async || {
        let Ok(Reply::Bulk(info)) = upstash.command(&["INFO", "clients"]).await else {
            return false;
        };
        info.contains("blocked_clients:1")
    })
    .await;
    assert_eq!(
        upstash.command(&["GET", "n"]).await,
        Ok(Reply::Bulk("2".into()))
    );

    let bill = upstash.bill().await;
    println!("{bill}");
    let counts = |pairs: &[(&str, u64)]| -> BTreeMap<String, u64> {
        pairs
            .iter()
            .map(|&(name, n)| (name.to_owned(), n))
            .collect()
    };
    assert_eq!(
        bill.sent,
        counts(&[
            ("eval", 1),
            ("evalsha", 1),
            ("get", 1),
            ("set", 1),
            ("xread", 1)
        ])
    );
    assert_eq!(bill.scripts, counts(&[("get", 2), ("incr", 2), ("set", 2)]));
    assert_eq!(bill.free, counts(&[("info", 1), ("ping", 1)]));
    assert_eq!(bill.refused, counts(&[("client|unblock", 1)]));
    assert_eq!(bill.total(), 5 + 6);

    // The blocked read ends; an entry added by the client is billed, the read is not again.
    assert!(matches!(
        client.call(&["XADD", "s", "*", "f", "v"]).await,
        Reply::Bulk(_)
    ));
    assert!(matches!(reader.reply().await, Reply::Array(_)));
    assert_eq!(upstash.billed().await, 5 + 6 + 1);

    upstash.reset_billing().await;
    assert_eq!(upstash.billed().await, 0);
    assert_eq!(
        client.call(&["EVALSHA", &sha, "2", "a", "n"]).await,
        Reply::Bulk("x".into())
    );
    assert_eq!(upstash.billed().await, 1 + 3);
}
